"""playbooks/build_and_publish.yml against a fleet of three build hosts over real SSH.

Three sshd instances on loopback ports (host and client keys made at test time) stand for
three build hosts; all of them drive one private dockerd (harness.dockerd) through
build_images_docker_host. Each host builds other platforms from a build context of
Debian's static busybox per architecture (FROM scratch, emulated RUN steps), pushes them
through a counting proxy to a real registry, and publish_manifests publishes the index.
The test checks the index against the registry directly (not through the collection's
client), a second run that changes and writes nothing, and inputs that must fail with one
clear message naming the host and the value, publishing nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from harness import foreign_binaries as fb
from harness.ansible_run import COLLECTION_ROOT
from harness.dockerd import Dockerd
from harness.images import ALL_MANIFEST_TYPES
from harness.proxy import Proxy
from harness.registry import Registry, free_port
from harness.sshd import ClientKey, Sshd, close_control_masters

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="sshd and dockerd need root"),
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="Debian package docker.io is not installed"),
    pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="Debian package openssh-server is not installed"),
]

PLAYBOOK = COLLECTION_ROOT / "playbooks" / "build_and_publish.yml"
DOCKER_CLI = "/usr/bin/docker"   # Debian's 20.10 CLI: BuildKit without the buildx plugin
NATIVE_BUSYBOX = Path("/bin/busybox")   # Debian busybox-static for this (amd64) machine
FOREIGN = {"linux/arm64": "aarch64", "linux/arm/v7": "arm", "linux/ppc64le": "ppc64le", "linux/s390x": "s390x"}
ASSIGNMENT = {
    "host1": ["linux/amd64", "linux/arm64"],
    "host2": ["linux/arm/v7", "linux/ppc64le"],
    "host3": ["linux/s390x"],
}
REPOSITORY = "fleet/app"
SOURCE_URL = "https://git.example.com/fleet/app"
REVISION = "0123456789abcdef"
REPORT_TASK = "archfleet.multiarch.build_images : Report the per-platform digests"


def write_context(directory: Path) -> Path:
    """A build context: a Dockerfile and one busybox rootfs per architecture."""
    binaries = {"linux/amd64": NATIVE_BUSYBOX}
    binaries.update({platform: fb.busybox(target) for platform, target in FOREIGN.items()})
    return fb.write_busybox_context(directory, binaries)


class Fleet:
    """The running parts, and an inventory writer for them."""

    def __init__(self, tmp: Path, key: ClientKey, hosts: dict, proxy: Proxy, registry: Registry, daemon: Dockerd):
        self.tmp, self.key, self.hosts = tmp, key, hosts
        self.proxy, self.registry, self.daemon = proxy, registry, daemon
        self.context = write_context(tmp / "context")
        self.control_dir = tmp / "cp"
        self.control_dir.mkdir()

    def inventory(self, tag: str, **host_overrides) -> str:
        hosts = {}
        for name, sshd in self.hosts.items():
            hosts[name] = {"ansible_port": sshd.port, "build_images_platforms": ASSIGNMENT[name]}
            hosts[name].update(host_overrides.get(name, {}))
        group_vars = {
            "ansible_host": "127.0.0.1",
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.key.private_path),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_pipelining": True,
            "build_images_image": f"{self.proxy.host}/{REPOSITORY}",
            "build_images_tag": tag,
            "build_images_context": str(self.context),
            "build_images_docker_cli": DOCKER_CLI,
            "build_images_docker_host": self.daemon.host,
            "build_images_network": "none",     # the test dockerd has no bridge
        }
        path = self.tmp / f"inventory-{tag}.json"
        path.write_text(json.dumps({"all": {"children": {"build_hosts": {"hosts": hosts, "vars": group_vars}}}}))
        return str(path)

    def run(self, playbook, inventory: str, check: bool = False, **extra_vars):
        extra = {"publish_manifests_tags": ["latest"], "publish_manifests_source": SOURCE_URL,
                 "publish_manifests_revision": REVISION, "publish_manifests_verify_run": True}
        extra.update(extra_vars)
        env = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir), "ANSIBLE_FORKS": "5"}
        return playbook(PLAYBOOK, inventory=inventory, extra_vars=extra, env=env, check=check)

    def manifest(self, tag: str):
        """The manifest at ``tag``, read from the registry itself (not through the collection)."""
        return requests.get(f"{self.registry.url}/v2/{REPOSITORY}/manifests/{tag}",
                            headers={"Accept": ALL_MANIFEST_TYPES}, timeout=10)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    key = ClientKey.generate(tmp / "client")
    hosts = {name: Sshd(tmp / name, key.public_path) for name in ASSIGNMENT}
    binfmt = fb.BinfmtState.capture()  # holds the binfmt_misc lock until restore()
    # The hosts build foreign platforms under emulation: the emulators must be registered (this
    # test is about the roles, not about registering them; test_build_host covers that).
    fb.ensure_emulators(["aarch64", "arm", "ppc64le", "s390x"])
    try:
        with Registry() as registry, Proxy(registry) as proxy, Dockerd() as daemon:
            try:
                for sshd in hosts.values():
                    sshd.start()
                yield Fleet(tmp, key, hosts, proxy, registry, daemon)
            finally:
                close_control_masters(tmp / "cp")
                for sshd in hosts.values():
                    sshd.stop()
    finally:
        binfmt.restore()


def reported_digests(run) -> dict:
    """{platform: (host, digest)} from the build_images_results each host reported."""
    reported = {}
    for host in ASSIGNMENT:
        for result in run.result(REPORT_TASK, host)["ansible_facts"]["build_images_results"]:
            assert result["host"] == host
            reported[result["platform"]] = (host, result["digest"])
    return reported


def test_fleet_builds_publishes_and_rerun_changes_nothing(fleet, playbook):
    inventory = fleet.inventory("1.0")
    first = fleet.run(playbook, inventory)
    assert first.rc == 0, first.output

    reported = reported_digests(first)
    assert {p: host for p, (host, _digest) in reported.items()} == {
        p: host for host, platforms in ASSIGNMENT.items() for p in platforms}

    response = fleet.manifest("1.0")
    assert response.status_code == 200, response.text
    index = response.json()
    assert index["annotations"] == {"org.opencontainers.image.source": SOURCE_URL,
                                    "org.opencontainers.image.revision": REVISION}
    published = {"/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"],
                                        m["platform"].get("variant")))): m["digest"] for m in index["manifests"]}
    assert published == {p: digest for p, (_host, digest) in reported.items()}
    assert fleet.manifest("latest").headers["Docker-Content-Digest"] == response.headers["Docker-Content-Digest"]

    # Each platform ran on the host that built it, under emulation where foreign.
    runs = first.result("archfleet.multiarch.publish_manifests : Run each platform on the build host that built it")
    machines = {r["item"]["platform"]: r["stdout"].strip() for r in runs["results"]}
    assert machines == {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l",
                        "linux/ppc64le": "ppc64le", "linux/s390x": "s390x"}

    fleet.proxy.reset()
    second = fleet.run(playbook, inventory)
    assert second.rc == 0, second.output
    assert second.changed_total() == 0, second.output
    assert fleet.proxy.writes == 0, fleet.proxy.log
    assert reported_digests(second) == reported

    # --check on the published tag predicts the real run: nothing to change, nothing written.
    check = fleet.run(playbook, inventory, check=True)
    assert check.rc == 0 and check.changed_total() == 0, check.output
    assert fleet.proxy.writes == 0, fleet.proxy.log


def test_check_mode_on_a_new_tag_predicts_and_writes_nothing(fleet, playbook):
    """--check on a tag never built: it used to fail with "No such image" and a read-back assertion
    although the real run succeeds. Now it says what a real run would publish and writes nothing."""
    fleet.proxy.reset()
    tag = "check-new"
    run = fleet.run(playbook, fleet.inventory(tag), check=True)
    assert run.rc == 0, run.output
    assert run.changed_total() > 0, run.output
    predicted = run.result("archfleet.multiarch.publish_manifests : Predict the publication (check mode, images still to be "
                           "built or pushed)")
    assert "A real run would publish" in predicted["msg"] and "linux/s390x" in predicted["msg"], predicted
    assert fleet.proxy.writes == 0, fleet.proxy.log
    assert fleet.manifest(tag).status_code == 404
    # And the real run that --check predicted succeeds (checking each image's architecture before pushing).
    real = fleet.run(playbook, fleet.inventory(tag), build_images_verify_architecture=True)
    assert real.rc == 0, real.output
    checked = real.result("archfleet.multiarch.build_images : Check that each image is of its platform", "host3")
    assert [r["item"]["platform"] for r in checked["results"]] == ["linux/s390x"], checked
    assert fleet.manifest(tag).status_code == 200


def no_emulation_dir(fleet) -> str:
    empty = fleet.tmp / "binfmt-empty"
    empty.mkdir(exist_ok=True)
    return str(empty)


def docker_ce_cli_without_buildx(fleet) -> str:
    """A docker CLI 23 or later without the buildx plugin: Docker CE's own CLI when this machine has one
    (a real one, e.g. /usr/local/bin/docker 28), else a stand-in that answers `version` as Docker CE 28 and
    lacks buildx (simulated: Debian packages no such CLI), passing everything else to Debian's CLI."""
    for candidate in (shutil.which("docker"), "/usr/local/bin/docker"):
        if not candidate:
            continue
        version = subprocess.run([candidate, "version", "--format", "{{.Client.Version}}"], capture_output=True,
                                 text=True, check=False).stdout.strip()
        no_buildx = subprocess.run([candidate, "buildx", "version"], capture_output=True, check=False).returncode
        if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 23 and no_buildx:
            return candidate
    stand_in = fleet.tmp / "docker-ce-28"
    stand_in.write_text(
        "#!/bin/sh\n"
        "case \"$1\" in\n"
        "  version) echo '{\"Client\":{\"Version\":\"28.2.2\"},\"Server\":{\"Version\":\"28.2.2\"}}' ;;\n"
        "  buildx) echo \"docker: unknown command: docker buildx\" >&2; exit 1 ;;\n"
        f"  *) exec {DOCKER_CLI} \"$@\" ;;\n"
        "esac\n")
    stand_in.chmod(0o755)
    return str(stand_in)


BAD_INPUTS = {
    "duplicate-platform": (
        lambda fleet, port: {"host2": {"build_images_platforms": ["linux/arm/v7", "linux/ppc64le", "linux/s390x"]}},
        ["Nothing built: linux/s390x is assigned to more than one build host (host2, host3)"]),
    "docker-cli-without-buildx": (
        lambda fleet, port: {"host1": {"build_images_docker_cli": docker_ce_cli_without_buildx(fleet)}},
        ["needs the buildx plugin for BuildKit builds", "Build host host1: the docker CLI "]),
    "unknown-platform": (
        lambda fleet, port: {"host2": {"build_images_platforms": ["linux/arm/v7", "linux/arm46"]}},
        ["Build host host2: invalid platform 'linux/arm46'"]),
    "missing-context": (
        lambda fleet, port: {"host1": {"build_images_context": "/nonexistent/context"}},
        ["Build host host1: the build context /nonexistent/context (build_images_context) does not exist"]),
    "unreachable-registry": (
        lambda fleet, port: {name: {"build_images_image": f"127.0.0.1:{port}/{REPOSITORY}"} for name in ASSIGNMENT},
        ["cannot reach registry 127.0.0.1:{port}"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_clearly_and_publishes_nothing(fleet, playbook, case):
    unused_port = free_port()
    overrides, messages = BAD_INPUTS[case]
    tag = "bad-" + case
    fleet.proxy.reset()
    run = fleet.run(playbook, fleet.inventory(tag, **overrides(fleet, unused_port)))
    assert run.rc != 0, run.output
    for message in messages:
        assert message.format(port=unused_port) in run.output, run.output
    assert fleet.proxy.writes == 0, fleet.proxy.log
    assert fleet.manifest(tag).status_code == 404
    # Every input is checked before anything is built.
    assert "TASK [archfleet.multiarch.build_images : Build each platform]" not in run.output


def test_an_entry_without_flag_f_is_refused_before_building(fleet, playbook):
    """The real kernel entry qemu-s390x registered with flags P only (no F): docker builds would fail
    late with "no such file or directory" inside the container; the role refuses it first."""
    line = next(x for x in Path("/usr/lib/binfmt.d/qemu-s390x.conf").read_text().splitlines() if x.startswith(":"))
    fb.remove_entry("qemu-s390x")
    fb.register(line.rsplit(":", 1)[0] + ":P")
    try:
        fleet.proxy.reset()
        run = fleet.run(playbook, fleet.inventory("bad-no-flag-f"))
        assert run.rc != 0, run.output
        assert ("Build host host3 (x86_64) cannot run platform linux/s390x: entry qemu-s390x lacks flag F "
                "(fix binary), so the kernel looks for /usr/libexec/qemu-binfmt/s390x-binfmt-P inside each "
                "container and builds fail with 'no such file or directory'") in run.output, run.output
        assert "TASK [archfleet.multiarch.build_images : Build each platform]" not in run.output
        assert fleet.proxy.writes == 0 and fleet.manifest("bad-no-flag-f").status_code == 404
    finally:
        fb.remove_entry("qemu-s390x")
        fb.ensure_emulators(["s390x"])


def test_no_emulation_where_binfmt_misc_is_not_mounted_is_refused_by_what_runs(fleet, playbook):
    """binfmt_misc not mounted where the check looks (build_images_binfmt_dir: an empty directory) AND no s390x entry in
    the kernel: the s390x test program does not run, so host3 is refused, saying both. (With the kernel's entry in
    place the same empty directory is no refusal: the test program runs; see test_qemu_binfmt_info.py.)"""
    fb.remove_entry("qemu-s390x")
    try:
        fleet.proxy.reset()
        empty = no_emulation_dir(fleet)
        run = fleet.run(playbook, fleet.inventory("bad-no-emulation", host3={"build_images_binfmt_dir": empty}))
        assert run.rc != 0, run.output
        assert (f"Build host host3 (x86_64) cannot run platform linux/s390x: binfmt_misc is not mounted on {empty} in "
                "this task's mount namespace, so entry qemu-s390x cannot be read, and a s390x test program does not run "
                "here ([Errno 8] Exec format error") in run.output, run.output
        assert "TASK [archfleet.multiarch.build_images : Build each platform]" not in run.output
        assert fleet.proxy.writes == 0 and fleet.manifest("bad-no-emulation").status_code == 404
    finally:
        fb.ensure_emulators(["s390x"])


def test_images_of_the_wrong_architecture_are_not_published(fleet, playbook):
    """A Dockerfile that ignores TARGETARCH: every platform's image holds x86-64 busybox. Before this
    check, the run step printed x86_64 for each platform and the index was published."""
    context = fleet.tmp / "context-ignores-targetarch"
    if not context.exists():
        write_context(context)
        for busybox in context.glob("rootfs/*/bin/busybox"):
            shutil.copy(NATIVE_BUSYBOX, busybox)
    fleet.proxy.reset()
    tag = "bad-wrong-architecture"
    run = fleet.run(playbook, fleet.inventory(tag, **{name: {"build_images_context": str(context)} for name in ASSIGNMENT}))
    assert run.rc != 0, run.output
    assert ("Nothing published: linux/arm64 (built on host1, " in run.output
            and "is not a linux/arm64 image: `uname -m` in it printed x86_64 (expected aarch64), and its "
                "entrypoint is x86_64 code (expected aarch64)" in run.output), run.output
    assert "is not a linux/s390x image" in run.output and "is not a linux/amd64 image" not in run.output
    assert fleet.manifest(tag).status_code == 404

    # build_images can make the same check before pushing: then nothing is pushed either.
    fleet.proxy.reset()
    tag = "bad-wrong-architecture-push"
    overrides = {name: {"build_images_context": str(context), "build_images_verify_architecture": True}
                 for name in ASSIGNMENT}
    run = fleet.run(playbook, fleet.inventory(tag, **overrides))
    assert run.rc != 0, run.output
    assert "Nothing pushed: linux/arm64" in run.output and "is not a linux/arm64 image" in run.output, run.output
    assert fleet.proxy.writes == 0, fleet.proxy.log


FAILING_STEP = 'RUN echo "this build fails on purpose" >&2; exit 3\n'
MISSING = {
    # host2 is down: its inventory port is one nothing listens on.
    "host-down": (lambda fleet: {"host2": {"ansible_port": free_port()}}, "host2", ["linux/arm/v7", "linux/ppc64le"]),
    # host3's build fails: a RUN step of its Dockerfile exits 3 (under s390x emulation).
    "build-fails": (lambda fleet: {"host3": {"build_images_dockerfile": failing_dockerfile(fleet)}}, "host3",
                    ["linux/s390x"]),
}
PARTIAL_WARNING = ("archfleet.multiarch.publish_manifests : Warn that the release leaves platforms out "
                   "(publish_manifests_allow_partial_release)")


def failing_dockerfile(fleet) -> str:
    """A Dockerfile in the fleet's context that passes every check and fails in its last RUN step."""
    path = fleet.context / "Dockerfile.fails"
    path.write_text(fb.BUSYBOX_DOCKERFILE + FAILING_STEP)
    return path.name


@pytest.mark.parametrize("case", sorted(MISSING))
def test_a_missing_host_stops_the_release_and_nothing_is_written(fleet, playbook, case):
    """A host down, or a host whose build fails: the other hosts hold their pushes, the publish step names the
    missing platforms, and the registry sees no write at all."""
    overrides, host, platforms = MISSING[case]
    tag = "missing-" + case
    fleet.proxy.reset()
    run = fleet.run(playbook, fleet.inventory(tag, **overrides(fleet)))
    assert run.rc != 0, run.output
    text = " ".join(run.output.split())
    assert (f"Nothing published: {', '.join(platforms)} {'is' if len(platforms) == 1 else 'are'} missing: build "
            f"host(s) {host} reported no per-platform digests") in text, run.output
    assert " held their pushes of " in text and "Set publish_manifests_allow_partial_release to true" in text
    assert fleet.proxy.writes == 0, fleet.proxy.log
    assert fleet.manifest(tag).status_code == 404
    if case == "build-fails":
        assert "this build fails on purpose" in run.output


@pytest.mark.parametrize("case", sorted(MISSING))
def test_a_partial_release_publishes_what_exists_and_says_what_it_left_out(fleet, playbook, case):
    overrides, host, platforms = MISSING[case]
    tag = "partial-" + case
    fleet.proxy.reset()
    run = fleet.run(playbook, fleet.inventory(tag, **overrides(fleet)), publish_manifests_allow_partial_release=True)
    # The run still fails (a host did), but the release of what exists is published and checked.
    assert run.rc in (2, 4), run.output
    expected = sorted(p for assigned in ASSIGNMENT.values() for p in assigned if p not in platforms)
    response = fleet.manifest(tag)
    assert response.status_code == 200, run.output
    assert sorted("/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"],
                                         m["platform"].get("variant")))) for m in response.json()["manifests"]) == expected
    warning = run.result(PARTIAL_WARNING)["msg"]
    assert f"is published without {', '.join(platforms)} (build host(s) {host} reported no per-platform digests)" in (
        warning), warning
    left_out = run.result("archfleet.multiarch.publish_manifests : Read what the build hosts reported, and what the "
                          "release lacks")["ansible_facts"]["publish_manifests_left_out"]
    assert left_out == {"platforms": platforms, "hosts": [host]}
