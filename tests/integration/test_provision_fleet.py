"""playbooks/provision.yml over three build hosts re-run with nothing to change: the steps each host runs.

bench/bench_provision_fleet.py measures the same over 1, 5 and 20 hosts (docs/performance.md, "Provisioning a
fleet"); this test keeps the shape it measures true. The hosts are this machine under three inventory names, each
reached over real SSH through an sshd of its own (harness.sshd: own port, host key, pid file, authorized_keys) and
each with a daemon.json of its own; all of them drive one private dockerd (harness.dockerd), as in test_fleet.

binfmt_misc: ``build_host_platforms`` is this machine's own platform, so qemu_binfmt and qemu_binfmt_info run on
every host and find it native: nothing is registered and no entry is read. The test holds the binfmt_misc lock all
the same, as every test that runs provision.yml does (tests/unit/test_suite_layout.py), so that a test registering
emulators beside it cannot make the role see a table in the middle of a change. The emulated platforms'
registration and verification are test_build_host's.
"""
from __future__ import annotations

import json
import os
import platform
import shutil

import pytest

from harness.ansible_run import COLLECTION_ROOT
from harness.dockerd import Dockerd
from harness.sshd import ClientKey, Sshd, close_control_masters

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="sshd and dockerd need root"),
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="Debian package docker.io is not installed"),
    pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="Debian package openssh-server is not installed"),
    pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="own platform known for x86_64, aarch64"),
    pytest.mark.usefixtures("binfmt_state"),  # conftest: holds the binfmt_misc lock, restores the kernel's table
]

PROVISION = COLLECTION_ROOT / "playbooks" / "provision.yml"
ROLE = "archfleet.multiarch.build_host : "
INSECURE = "registry.lan:5000"
OWN_PLATFORM = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}

# What a re-run with nothing to change runs on each host, in order: the actions of its ok results that are modules
# run on the host (the steps that run on the controller alone are RERUN_CONTROLLER_STEPS).
RERUN_MODULES = [
    "ansible.builtin.setup",                   # the role's subset of facts (provision.yml gathers none itself)
    "ansible.builtin.apt",                     # packages present, apt lists fresh
    "archfleet.multiarch.qemu_binfmt",         # registration (and verification) of build_host_platforms
    "ansible.builtin.slurp",                   # daemon.json as it is
    "ansible.builtin.file",                    # its directory
    "ansible.builtin.copy",                    # unchanged; no `dockerd --help` before it (only a write is validated)
    "ansible.builtin.command",                 # docker info
    "ansible.builtin.command",                 # docker buildx version (Debian's CLI has no buildx)
    "archfleet.multiarch.qemu_binfmt_info",    # every platform usable in containers
]
RERUN_CONTROLLER_STEPS = {"ansible.builtin.validate_argument_spec", "validate_argument_spec",
                          "ansible.builtin.assert", "ansible.builtin.set_fact", "ansible.builtin.include_tasks",
                          "ansible.builtin.debug"}


def test_a_rerun_on_three_hosts_runs_each_step_once_per_host(playbook, tmp_path):
    """Converged once, then re-run and run with --check (the verify-only path): changed=0, the same steps on every
    host, and on each exactly RERUN_MODULES (in check mode without the usability check, which check mode skips
    because on a fresh host nothing is registered yet); the facts gathered are the role's subset."""
    key = ClientKey.generate(tmp_path / "client")
    hosts = {f"host{i}": Sshd(tmp_path / f"host{i}", key.public_path) for i in (1, 2, 3)}
    control = tmp_path / "cp"
    control.mkdir()
    with Dockerd(insecure_registries=[INSECURE]) as shared:
        try:
            for sshd in hosts.values():
                sshd.start()
            inventory = tmp_path / "inventory.json"
            inventory.write_text(json.dumps({"all": {"children": {"build_hosts": {
                "hosts": {name: {"ansible_port": sshd.port,
                                 "build_host_docker_daemon_json_path": str(tmp_path / name / "daemon.json")}
                          for name, sshd in hosts.items()},
                "vars": {"ansible_host": "127.0.0.1", "ansible_user": "root",
                         "ansible_ssh_private_key_file": str(key.private_path),
                         "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                         "ansible_python_interpreter": "/usr/bin/python3", "ansible_pipelining": True,
                         # Connected as root: this machine has no sudo (su would turn pipelining off).
                         "ansible_become": False,
                         "build_host_platforms": [OWN_PLATFORM[platform.machine()]],
                         "build_host_docker_host": shared.host,
                         "build_host_dockerd_pidfile": str(shared.root / "dockerd.pid"),
                         "build_host_docker_daemon_options": {"insecure-registries": [INSECURE]},
                         # No run refreshes the apt lists (network time, and not a re-run with nothing to do).
                         "build_host_apt_cache_valid_time": 10 * 365 * 24 * 3600}}}}}))
            env = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(control)}
            first = playbook(PROVISION, inventory=str(inventory), env=env)
            assert first.rc == 0, first.output
            for name in hosts:
                assert json.loads((tmp_path / name / "daemon.json").read_text()) == {"insecure-registries": [INSECURE]}
                # A write is validated: the first run asked dockerd whether it can.
                assert first.result(ROLE + "Check whether dockerd can validate a configuration file", name)["rc"] == 0

            for check in (False, True):
                rerun = playbook(PROVISION, inventory=str(inventory), env=env, check=check)
                assert rerun.rc == 0 and rerun.changed_total() == 0, rerun.output
                shapes = {name: [(t["task"], t["status"]) for t in rerun.tasks if t["host"] == name] for name in hosts}
                assert shapes["host2"] == shapes["host1"] and shapes["host3"] == shapes["host1"], shapes
                ran = [t["action"] for t in rerun.tasks if t["host"] == "host1" and t["status"] == "ok"]
                modules = [action for action in ran if action not in RERUN_CONTROLLER_STEPS]
                assert modules == (RERUN_MODULES[:-1] if check else RERUN_MODULES), ran
                assert rerun.stats["host1"]["ok"] == len(ran), rerun.stats
                assert "Gathering Facts" not in rerun.output
                gathered = rerun.result(ROLE + "Gather the facts this role uses", "host1")["ansible_facts"]
                assert "ansible_memtotal_mb" not in gathered and gathered["ansible_os_family"] == "Debian"
                assert rerun.task(ROLE + "Check whether dockerd can validate a configuration file", "host1")[
                    "status"] == "skipped"
        finally:
            close_control_masters(control)
            for sshd in hosts.values():
                sshd.stop()
