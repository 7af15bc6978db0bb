"""A real arm64 build host: Debian 12 arm64 booted under qemu-system-aarch64 (harness.arm64_vm), reached over SSH.

Every other test's "aarch64 host" is this x86_64 machine with facts overridden; here ansible-playbook talks to a
machine whose kernel, CPU (QEMU's cortex-a72, software emulation), Python, sshd and dockerd are arm64. Its image is
built by `make vm` (tools/arm64_vm.sh) and cached; each module boots a copy-on-write overlay of it.

- provision.yml with the role defaults: the host's own architecture and what its CPU runs natively (arm/v7 on a
  cortex-a72, which runs AArch32 at EL0) are left alone, each with its reason; ppc64le and s390x are registered
  in the VM's own kernel; a second run changes nothing;
- build_and_publish.yml over the VM and an x86_64 host (a real sshd on loopback driving a private dockerd): the VM
  builds linux/arm64 natively with its own dockerd, the x86_64 host builds linux/amd64 natively, each image's
  architecture is checked on the host that built it before it is pushed, one index is published and each platform
  run where it was built; a re-run writes nothing and --check predicts it.

Nothing here reads or writes this machine's binfmt_misc: no build in these tests is emulated by QEMU user mode.
The VM's network is restricted: it reaches the test registry (and apt its archive snapshot) through SSH forwards.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import requests

from harness import foreign_binaries as fb
from harness.ansible_run import COLLECTION_ROOT
from harness.arm64_vm import Arm64Vm, VmUnavailable, host_vars, image_dir
from harness.dockerd import Dockerd
from harness.images import ALL_MANIFEST_TYPES
from harness.proxy import Proxy
from harness.registry import Registry
from harness.sshd import ClientKey, Sshd, close_control_masters

pytestmark = [
    pytest.mark.skipif(shutil.which("ssh") is None, reason="Debian package openssh-client is not installed"),
]

PROVISION = COLLECTION_ROOT / "playbooks" / "provision.yml"
BUILD_AND_PUBLISH = COLLECTION_ROOT / "playbooks" / "build_and_publish.yml"
BINFMT_TASK = "archfleet.multiarch.build_host : Register the emulators for the build platforms with binfmt_misc"
REPORT_TASK = "archfleet.multiarch.build_images : Report the per-platform digests"
RUN_TASK = "archfleet.multiarch.publish_manifests : Run each platform on the build host that built it"
UNAME_TASK = "archfleet.multiarch.build_images : Run uname -m in each platform's image on the host that built it"
REPOSITORY = "fleet/arm64-native"
GUEST_CONTEXT = "/root/archfleet-context"
# Slow tasks under TCG: a generous SSH timeout, and one ControlMaster per host kept for the whole module.
ENV = {"ANSIBLE_TIMEOUT": "120", "ANSIBLE_FORKS": "5"}


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    try:
        image = image_dir()
    except VmUnavailable as missing:
        pytest.skip(f"arm64 VM: {missing}")
    with Arm64Vm(image, tmp_path_factory.mktemp("arm64-vm")) as machine:
        yield machine


@pytest.fixture
def control_dir(tmp_path):
    path = tmp_path / "cp"
    path.mkdir()
    yield path
    close_control_masters(path)


def write_inventory(path: Path, hosts: dict, group_vars: dict | None = None) -> str:
    path.write_text(json.dumps({"all": {"children": {"build_hosts": {"hosts": hosts, "vars": group_vars or {}}}}}))
    return str(path)


def guest_entries(vm: Arm64Vm) -> set:
    listing = vm.ssh("ls /proc/sys/fs/binfmt_misc")
    assert listing.returncode == 0, listing.stderr
    return set(listing.stdout.split()) - {"register", "status"}


def test_provision_with_the_role_defaults_on_a_real_arm64_host(vm, playbook, tmp_path, control_dir):
    inventory = write_inventory(tmp_path / "inventory.json", {"arm64": host_vars(vm)})
    env = dict(ENV, ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir))
    first = playbook(PROVISION, inventory=inventory, env=env, timeout=3600)
    assert first.rc == 0, first.output

    assert vm.ssh("uname -m").stdout.strip() == "aarch64"

    # The role's defaults ask for linux/arm64, linux/arm/v7, linux/ppc64le and linux/s390x.
    native = first.result(BINFMT_TASK, "arm64")["native"]
    assert native["linux/arm64"] == ("this is the host's own architecture (aarch64): it runs natively, "
                                     "no emulator is needed."), native
    entries = guest_entries(vm)
    assert {"qemu-ppc64le", "qemu-s390x"} <= entries, entries
    assert "qemu-aarch64" not in entries, entries
    for name in ("qemu-ppc64le", "qemu-s390x"):
        flags = vm.ssh(f"grep ^flags /proc/sys/fs/binfmt_misc/{name}").stdout
        assert "F" in flags, (name, flags)

    # arm/v7: native where the CPU runs AArch32 at EL0 (QEMU's cortex-a72 does), with its reason; else emulated.
    # Checked independently: Debian's armhf busybox, copied in, runs with no qemu-arm entry.
    shutil.copy(fb.busybox("arm"), tmp_path / "busybox-armhf")
    copied = vm.ssh("cat > /tmp/busybox-armhf && chmod 755 /tmp/busybox-armhf",
                    input_bytes=(tmp_path / "busybox-armhf").read_bytes())
    assert copied.returncode == 0, copied.stderr
    aarch32 = vm.ssh("/tmp/busybox-armhf uname -m")
    if aarch32.returncode == 0 and "qemu-arm" not in entries:
        assert native["linux/arm/v7"] == ("this aarch64 host runs arm binaries natively (a compatibility mode of its "
                                          "CPU): no emulator is needed."), native
    else:
        assert "linux/arm/v7" not in native and "qemu-arm" in entries, (native, entries, aarch32)

    # The docker engine the role installs (from the image: no network) answers, as arm64.
    arch = vm.ssh("docker version --format '{{.Server.Arch}}'")
    assert arch.stdout.strip() == "arm64", arch

    second = playbook(PROVISION, inventory=inventory, env=env, timeout=3600)
    assert second.rc == 0, second.output
    assert second.changed_total() == 0, second.output


@pytest.fixture(scope="module")
def fleet(vm, tmp_path_factory):
    """The VM and an x86_64 host (a real sshd on loopback with a private dockerd), a registry behind a counting
    proxy, and the build context (busybox for amd64 and arm64)."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None or not os.path.exists("/usr/sbin/sshd"):
        pytest.skip("the x86_64 host needs root, docker.io and openssh-server")
    tmp = tmp_path_factory.mktemp("arm64-fleet")
    key = ClientKey.generate(tmp / "client")
    binaries = {"linux/amd64": Path("/bin/busybox"), "linux/arm64": fb.busybox("aarch64")}
    context = fb.write_busybox_context(tmp / "context", binaries)
    with Registry() as registry, Proxy(registry) as proxy, Dockerd() as daemon, \
            Sshd(tmp / "amd64", key.public_path) as amd64:
        # The same image reference everywhere: the VM's 127.0.0.1:<port> is forwarded to this machine's.
        vm.forward_to_host(int(proxy.host.rsplit(":", 1)[1]))
        yield {"tmp": tmp, "key": key, "context": context, "registry": registry, "proxy": proxy,
               "daemon": daemon, "amd64": amd64}


def fleet_inventory(vm, fleet, tag: str) -> str:
    arm64 = dict(host_vars(vm), ansible_pipelining=True, build_images_platforms=["linux/arm64"],
                 build_images_context=GUEST_CONTEXT, build_images_context_src=str(fleet["context"]))
    amd64 = {"ansible_host": "127.0.0.1", "ansible_port": fleet["amd64"].port, "ansible_user": "root",
             "ansible_ssh_private_key_file": str(fleet["key"].private_path),
             "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
             "ansible_python_interpreter": "/usr/bin/python3", "ansible_pipelining": True,
             "build_images_platforms": ["linux/amd64"], "build_images_context": str(fleet["context"]),
             "build_images_docker_cli": "/usr/bin/docker", "build_images_docker_host": fleet["daemon"].host,
             "build_images_network": "none"}
    group_vars = {"build_images_image": f"{fleet['proxy'].host}/{REPOSITORY}", "build_images_tag": tag,
                  "build_images_verify_architecture": True}
    return write_inventory(fleet["tmp"] / f"inventory-{tag}.json", {"arm64": arm64, "amd64": amd64}, group_vars)


def test_fleet_builds_each_platform_natively_where_its_hardware_is(vm, fleet, playbook, control_dir):
    proxy, tag = fleet["proxy"], "1.0"
    inventory = fleet_inventory(vm, fleet, tag)
    env = dict(ENV, ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir))
    extra = {"publish_manifests_tags": ["latest"], "publish_manifests_verify_run": True}

    def run(check=False):
        return playbook(BUILD_AND_PUBLISH, inventory=inventory, extra_vars=extra, env=env, check=check, timeout=3600)

    first = run()
    assert first.rc == 0, first.output
    reported = {}
    for host in ("arm64", "amd64"):
        for result in first.result(REPORT_TASK, host)["ansible_facts"]["build_images_results"]:
            reported[result["platform"]] = (result["host"], result["digest"])
    assert {p: built[0] for p, built in reported.items()} == {"linux/arm64": "arm64", "linux/amd64": "amd64"}

    # Each image's architecture was checked on the host that built it, before it was pushed: `uname -m` in it.
    machines = {(t["host"], r["item"]["platform"], r.get("stdout", "").strip())
                for t in first.tasks if t["task"] == UNAME_TASK for r in t["result"].get("results", [])}
    assert {("arm64", "linux/arm64", "aarch64"), ("amd64", "linux/amd64", "x86_64")} <= machines, machines

    # One index, read from the registry itself, with the digests the hosts reported.
    response = requests.get(f"{fleet['registry'].url}/v2/{REPOSITORY}/manifests/{tag}",
                            headers={"Accept": ALL_MANIFEST_TYPES}, timeout=10)
    assert response.status_code == 200, response.text
    published = {"/".join((m["platform"]["os"], m["platform"]["architecture"])): m["digest"]
                 for m in response.json()["manifests"]}
    assert published == {p: built[1] for p, built in reported.items()}

    # Each platform ran on the host that built it; the VM ran its own arm64 image natively.
    runs = first.result(RUN_TASK)["results"]
    ran_on = {r["item"]["platform"]: r["stdout"].strip() for r in runs}
    assert ran_on == {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}

    # The arm64 entry, pulled and run on the VM by digest: its RUN step wrote the machine it was built on.
    arm64_ref = f"{proxy.host}/{REPOSITORY}@{published['linux/arm64']}"
    ran = vm.ssh(f"docker run --rm --network none {arm64_ref} && docker run --rm --network none {arm64_ref} uname -m")
    assert ran.returncode == 0 and ran.stdout.split() == ["aarch64", "aarch64"], ran
    # Natively: the VM's kernel has no emulator for its own architecture.
    assert "qemu-aarch64" not in guest_entries(vm)

    proxy.reset()
    second = run()
    assert second.rc == 0, second.output
    assert second.changed_total() == 0, second.output
    assert proxy.writes == 0, proxy.log

    check = run(check=True)
    assert check.rc == 0 and check.changed_total() == 0, check.output
    assert proxy.writes == 0, proxy.log


def test_apt_snapshot_answers_as_the_archive_did(tmp_path):
    """The VM's apt proxy (harness.arm64_vm.AptSnapshot): the InRelease the image's lists came from, under the URL apt
    asks for through a proxy; 304 when apt has it already; 404 for anything else."""
    from harness.arm64_vm import AptSnapshot

    (tmp_path / "deb.debian.org_debian_dists_bookworm_InRelease").write_bytes(b"Origin: Debian\n")
    os.utime(tmp_path / "deb.debian.org_debian_dists_bookworm_InRelease", (1_700_000_000, 1_700_000_000))
    snapshot = AptSnapshot(tmp_path).start()
    try:
        proxies = {"http": f"http://127.0.0.1:{snapshot.port}"}
        url = "http://deb.debian.org/debian/dists/bookworm/InRelease"
        got = requests.get(url, proxies=proxies, timeout=10)
        assert got.status_code == 200 and got.content == b"Origin: Debian\n"
        again = requests.get(url, proxies=proxies, timeout=10, headers={"If-Modified-Since": got.headers["Last-Modified"]})
        assert again.status_code == 304
        assert requests.get("http://deb.debian.org/debian/dists/bookworm/main/binary-arm64/Packages.xz",
                            proxies=proxies, timeout=10).status_code == 404
        assert requests.get("http://deb.debian.org/debian/../../etc/passwd", proxies=proxies,
                            timeout=10).status_code == 404
        assert snapshot.requests[:2] == [url, url]
    finally:
        snapshot.stop()
