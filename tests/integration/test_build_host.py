"""The build_host role applied to localhost with real ansible-playbook.

This host has no service manager (or the tests must not disturb it), so the test starts
its own dockerd on a private socket and points the role at it: the role installs the
packages, registers the emulators persistently, writes that dockerd's daemon.json and
reloads it through its handler, verifies a built-in program of every platform, and runs
--platform containers built from Debian's busybox-static. A second run changes nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import foreign_binaries as fb
from harness.ansible_run import COLLECTION_ROOT
from harness.dockerd import Dockerd
from harness.suite import dpkg_installed

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the role needs root"),
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="Debian package docker.io is not installed"),
    pytest.mark.usefixtures("binfmt_state"),  # conftest: holds the binfmt_misc lock, restores the kernel's table
]

PROVISION = COLLECTION_ROOT / "playbooks" / "provision.yml"
TARGETS = ("aarch64", "arm", "s390x", "ppc64le")
CONTAINER_TARGETS = ("aarch64", "arm")
INSECURE = "127.0.0.1:5999"
ROLE = "archfleet.multiarch.build_host : "  # how the callback names role tasks


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    # The role writes this daemon.json; the test's dockerd reads it (and is HUPed on change).
    config = tmp_path_factory.mktemp("dockerconf") / "daemon.json"
    with Dockerd(config_file=config) as dockerd:
        for target in CONTAINER_TARGETS:
            tar = fb.busybox_image_tar(target, f"archfleet-test/busybox:{target}",
                                       dockerd.root / f"{target}.tar")
            dockerd.docker("load", "-i", str(tar))
        yield dockerd


def role_vars(daemon):
    return {
        "provision_hosts": "localhost",
        "build_host_platforms": [fb.platform_of(t) for t in TARGETS],
        "build_host_docker_host": daemon.host,
        "build_host_docker_daemon_json_path": str(daemon.config_file),
        "build_host_docker_daemon_options": {"insecure-registries": [INSECURE], "debug": False},
        "build_host_dockerd_pidfile": str(daemon.root / "dockerd.pid"),
        "build_host_verify_container_images": {
            fb.platform_of(t): f"archfleet-test/busybox:{t}" for t in CONTAINER_TARGETS},
    }


def test_role_provisions_localhost_and_is_idempotent(playbook, daemon):
    for target in TARGETS:
        fb.remove_entry("qemu-" + target)
        Path(f"/etc/binfmt.d/qemu-{target}.conf").unlink(missing_ok=True)
    extra = role_vars(daemon)

    first = playbook(PROVISION, extra_vars=extra)
    assert first.rc == 0, first.output

    # Packages are installed.
    for package in ("docker.io", "qemu-user-static", "python3-requests"):
        assert dpkg_installed(package), package

    # Emulators registered persistently, and verified by the role itself.
    registered = first.result(ROLE + "Register the emulators for the build platforms with binfmt_misc")
    assert registered["changed"]
    verified = registered  # one task registers and verifies (verify: true), nothing is registered twice
    for target in TARGETS:
        assert verified["entries"][target]["verified"] is True
        assert Path(f"/etc/binfmt.d/qemu-{target}.conf").exists()
        rc = subprocess.run([str(fb.busybox(target)), "uname", "-m"], capture_output=True, text=True, check=False)
        assert rc.stdout.strip() == fb.uname_of(target)

    # daemon.json written from the dict, and the unmanaged dockerd reloaded by the handler.
    assert json.loads(daemon.config_file.read_text()) == {"insecure-registries": [INSECURE], "debug": False}
    assert first.result(ROLE + "Make that dockerd reload daemon.json")["changed"]
    info = json.loads(daemon.docker("info", "--format", "{{json .RegistryConfig.IndexConfigs}}").stdout)
    assert info[INSECURE]["Secure"] is False

    # --platform containers ran under emulation, checked by the role's assert.
    runs = first.result(ROLE + "Run a container of each verification platform")["results"]
    assert sorted((r["item"]["key"], r["stdout"]) for r in runs) == sorted(
        (fb.platform_of(t), fb.uname_of(t)) for t in CONTAINER_TARGETS)
    out = daemon.docker("run", "--rm", "--platform", "linux/arm64", "--network", "none",
                        "archfleet-test/busybox:aarch64", "uname", "-m").stdout
    assert out.strip() == "aarch64"

    second = playbook(PROVISION, extra_vars=extra)
    assert second.rc == 0, second.output
    assert second.changed_total() == 0, second.output

    check = playbook(PROVISION, extra_vars=extra, check=True)
    assert check.rc == 0 and check.changed_total() == 0, check.output


def test_role_fails_clearly_when_a_container_does_not_run_emulated(playbook, daemon):
    extra = role_vars(daemon)
    extra["build_host_install_packages"] = False
    # An arm64 image asked to run as s390x: docker refuses it, and the role says so.
    extra["build_host_verify_container_images"] = {"linux/s390x": "archfleet-test/busybox:aarch64"}
    run = playbook(PROVISION, extra_vars=extra)
    assert run.rc != 0
    assert "Emulation of linux/s390x does not work in containers" in run.output, run.output


@pytest.fixture()
def own_daemon(tmp_path_factory):
    """A dockerd whose daemon.json already holds keys the role does not manage."""
    config = tmp_path_factory.mktemp("ownconf") / "daemon.json"
    config.write_text(json.dumps({"labels": ["team=a"], "insecure-registries": ["10.9.9.9:5000"]}, indent=2))
    with Dockerd(config_file=config) as dockerd:
        yield dockerd


def daemon_only_vars(daemon, options, **extra):
    return dict(role_vars(daemon), build_host_install_packages=False, build_host_verify=False,
                build_host_buildx_builder="", build_host_platforms=["linux/s390x"],
                build_host_docker_daemon_options=options, build_host_docker_daemon_wait=5, **extra)


def daemon_info(daemon) -> dict:
    return json.loads(daemon.docker("info", "--format", "{{json .}}").stdout)


def test_daemon_json_merges_backs_up_and_restores_what_dockerd_rejects(playbook, own_daemon):
    config = own_daemon.config_file
    mirror = "https://mirror.example"
    run = playbook(PROVISION, extra_vars=daemon_only_vars(own_daemon, {"registry-mirrors": [mirror]}))
    assert run.rc == 0, run.output
    # Keys the role does not manage are kept, and dockerd runs with all of them.
    merged = {"labels": ["team=a"], "insecure-registries": ["10.9.9.9:5000"], "registry-mirrors": [mirror]}
    assert json.loads(config.read_text()) == merged
    info = daemon_info(own_daemon)
    assert info["Labels"] == ["team=a"] and [m.rstrip("/") for m in info["RegistryConfig"]["Mirrors"]] == [mirror]
    assert info["RegistryConfig"]["IndexConfigs"]["10.9.9.9:5000"]["Secure"] is False
    backups = [p for p in config.parent.iterdir() if p.name.startswith("daemon.json.") and p.name.endswith("~")]
    assert len(backups) == 1 and json.loads(backups[0].read_text())["labels"] == ["team=a"]
    assert playbook(PROVISION, extra_vars=daemon_only_vars(own_daemon, {"registry-mirrors": [mirror]})).changed_total() == 0

    # --check predicts the change and writes nothing (no file, no reload).
    before = config.read_text()
    run = playbook(PROVISION, extra_vars=daemon_only_vars(own_daemon, {"registry-mirrors": ["https://other.example"]}),
                   check=True)
    assert run.rc == 0 and run.result(ROLE + "Write daemon.json")["changed"], run.output
    assert config.read_text() == before and "Make that dockerd reload daemon.json" not in run.output

    # A value of the wrong type: refused before anything is written.
    before = config.read_text()
    run = playbook(PROVISION, extra_vars=daemon_only_vars(own_daemon, {"insecure-registries": "10.0.0.5:5000"}))
    assert run.rc != 0
    assert ("docker_daemon_json: build_host_docker_daemon_options: 'insecure-registries' must be a list of "
            "strings for dockerd, got a string \"10.0.0.5:5000\"") in run.output, run.output
    assert config.read_text() == before

    # A value of the right type that dockerd rejects on reload: the previous file is back and applied.
    run = playbook(PROVISION, extra_vars=daemon_only_vars(own_daemon, {"registry-mirrors": ["not a url"]}))
    assert run.rc != 0
    assert "dockerd did not take the new " + str(config) in run.output, run.output
    assert "The previous daemon.json was restored and applied (dockerd answers)" in run.output, run.output
    assert config.read_text() == before
    info = daemon_info(own_daemon)
    assert [m.rstrip("/") for m in info["RegistryConfig"]["Mirrors"]] == [mirror] and info["Labels"] == ["team=a"]

    # replace: the managed keys alone.
    run = playbook(PROVISION, extra_vars=daemon_only_vars(
        own_daemon, {"debug": True}, build_host_docker_daemon_json_mode="replace"))
    assert run.rc == 0, run.output
    assert json.loads(config.read_text()) == {"debug": True} and daemon_info(own_daemon)["Debug"] is True


def test_role_defaults_on_a_simulated_aarch64_host(playbook, daemon, tmp_path):
    """Simulated: no aarch64 machine is available, so the python that runs the role's modules reports
    aarch64 (platform.machine, hence ansible_architecture and qemu_binfmt's host). The default platforms
    then used to fail ("refusing to register" the host's own arm64); now arm64 is skipped with the reason.
    The arm test program cannot run natively here, as on an aarch64 CPU without AArch32, so arm/v7 is
    registered (on a CPU with AArch32 it is skipped; see the unit tests)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import platform\nplatform.machine = lambda: 'aarch64'\n")
    wrapper = tmp_path / "python-aarch64"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec /usr/bin/python3 \"$@\"\n")
    wrapper.chmod(0o755)
    fb.remove_entry("qemu-arm")
    extra = {"provision_hosts": "localhost", "ansible_python_interpreter": str(wrapper),
             "build_host_install_packages": False, "build_host_buildx_builder": "",
             "build_host_docker_host": daemon.host, "build_host_binfmt_persistent": False}
    run = playbook(PROVISION, extra_vars=extra)
    assert run.rc == 0, run.output
    registered = run.result(ROLE + "Register the emulators for the build platforms with binfmt_misc")
    assert list(registered["native"]) == ["linux/arm64"]
    assert "host's own architecture (aarch64)" in registered["native"]["linux/arm64"]
    assert set(registered["entries"]) == {"arm", "ppc64le", "s390x"}
    assert all(registered["entries"][t]["verified"] for t in ("arm", "ppc64le", "s390x"))
    usable = run.result(ROLE + "Check that every build platform runs natively or through a usable entry")
    assert usable["machine"] == "aarch64" and usable["usable"], usable


SIMULATED_FACTS = """\
- name: A simulated host of another distribution
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Pretend to be {distribution}
      ansible.builtin.set_fact:
        os_family: {os_family}
        distribution: {distribution}
        # With these defined too, the role gathers no facts (which would put Debian back).
        service_mgr: none
        architecture: x86_64
        pkg_mgr: dnf
        cacheable: true
- name: Provision it
  hosts: localhost
  gather_facts: false
  roles:
    - role: archfleet.multiarch.build_host
"""


def test_package_tasks_by_distribution_on_simulated_hosts(playbook):
    """Simulated: only Debian 12 is available, so the distribution facts are overridden (set_fact cacheable,
    which is what ansible_facts shows). A Red Hat family host gets podman from dnf; dnf itself is not on this
    machine, so the dnf task is only seen to run (and fail for want of dnf). docker on Red Hat, and an
    uncovered distribution, are refused before anything is installed."""
    redhat = SIMULATED_FACTS.format(os_family="RedHat", distribution="AlmaLinux")
    extra = {"build_host_engine": "podman", "build_host_platforms": ["linux/arm64"]}
    run = playbook(redhat, extra_vars=extra)
    assert run.rc != 0
    dnf = run.result(ROLE + "Install podman, buildah, the static emulators and python3-requests (dnf)")
    assert dnf["failed"] and "Could not import the dnf python module" in dnf["msg"], dnf
    apt = run.result(ROLE + "Install the container engine, the static emulators and python3-requests (apt)")
    assert apt["false_condition"] == "ansible_facts['os_family'] == 'Debian'", apt
    assert "Register the emulators" not in run.output

    run = playbook(redhat, extra_vars=dict(extra, build_host_engine="docker"))
    assert run.rc != 0
    assert ("Build host localhost: the package tasks cover Debian and Ubuntu (apt, build_host_engine docker or podman) "
            "and the Red Hat family (dnf, build_host_engine podman only), not AlmaLinux (os_family RedHat) with "
            "build_host_engine docker. Use build_host_engine: podman, or install the packages yourself") in run.output, run.output

    run = playbook(SIMULATED_FACTS.format(os_family="Suse", distribution="openSUSE Leap"), extra_vars=extra)
    assert run.rc != 0
    assert "not openSUSE Leap (os_family Suse) with build_host_engine podman. Install the packages yourself" in run.output, run.output
