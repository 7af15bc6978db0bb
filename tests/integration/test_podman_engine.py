"""Build engines: the Podman/Buildah engine for real.

Podman (Debian 12's podman 4.3 and buildah 1.28, running as root): build_host with
build_host_engine=podman registers the arm64 emulator through qemu_binfmt and runs a foreign
container with podman. playbooks/build_and_publish.yml over a fleet of two hosts (this machine
twice, connection local): one with build_images_engine=podman builds linux/amd64 and, under QEMU
emulation, linux/arm64, the other with docker (a private dockerd) linux/arm/v7, from one
FROM-scratch context of Debian's static busybox (emulated RUN steps); each image's architecture
is checked with its host's engine, pushed to a plain-HTTP registry (podman: --tls-verify=false),
and publish_manifests publishes one index and runs each platform with the engine that built it.
The index is checked against the registry directly, and an unchanged re-run changes and writes
nothing. Podman's storage and settings are test-only files in a temporary directory
(CONTAINERS_STORAGE_CONF, CONTAINERS_CONF: vfs storage, cgroupfs, runc, file events), handed to
the roles through build_images_podman_environment / build_host_podman_environment; the system's
/etc/containers is not touched. binfmt_misc is restored afterwards.

docker buildx with BuildKit is tested for real in test_buildkit.py (a current docker CLI and buildx plugin on
buildkitd, built from the Go module proxy); its stand-in CLI test is gone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from harness import foreign_binaries as fb
from harness.ansible_run import COLLECTION_ROOT
from harness.dockerd import Dockerd
from harness.images import ALL_MANIFEST_TYPES
from harness.registry import Registry
from harness.suite import dpkg_installed

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="podman here runs as root, and binfmt_misc needs root"),
]
needs_podman = pytest.mark.skipif(shutil.which("podman") is None or shutil.which("buildah") is None,
                                  reason="Debian packages podman and buildah are not installed")

PROVISION = COLLECTION_ROOT / "playbooks" / "provision.yml"
ROLE_HOST = "archfleet.multiarch.build_host : "
ROLE_BUILD = "archfleet.multiarch.build_images : "
ROLE_PUBLISH = "archfleet.multiarch.publish_manifests : "
NATIVE_BUSYBOX = Path("/bin/busybox")
PODMAN_PLATFORMS = ["linux/amd64", "linux/arm64"]
DOCKER_PLATFORMS = ["linux/arm/v7"]
FLEET_PLAYBOOK = COLLECTION_ROOT / "playbooks" / "build_and_publish.yml"
REPOSITORY = "podman/app"
WRITES = {"PUT", "POST", "PATCH", "DELETE"}

BUILD_AND_PUBLISH = """\
- name: Build with podman and publish
  hosts: localhost
  gather_facts: false
  roles:
    - role: archfleet.multiarch.build_images
    - role: archfleet.multiarch.publish_manifests
"""


class Podman:
    """Test-only podman configuration in a private directory; the system's /etc/containers stays as is."""

    def __init__(self):
        # Short path: conmon's attach socket lives under the run root (108-byte socket path limit).
        self.root = Path(tempfile.mkdtemp(prefix="afp-", dir="/tmp"))
        storage = self.root / "storage.conf"
        storage.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{self.root}/graph"\n'
                           f'runroot = "{self.root}/run"\n')
        containers = self.root / "containers.conf"
        # This machine mounts cgroup v1 and v2 side by side (crun refuses that: runc), has no systemd
        # (cgroupfs, file events), and caps RLIMIT_NOFILE/NPROC below what podman asks for root.
        containers.write_text(
            '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\nnetns = "none"\n'
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{self.root}/events.log"\nruntime = "runc"\n')
        self.env = {"CONTAINERS_STORAGE_CONF": str(storage), "CONTAINERS_CONF": str(containers)}

    def podman(self, *args, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(["podman", *args], capture_output=True, text=True, check=check,
                              env=dict(os.environ, **self.env), timeout=300)

    def cleanup(self) -> None:
        self.podman("rm", "--all", "--force", check=False)
        self.podman("system", "reset", "--force", check=False)
        subprocess.run(["umount", "-R", str(self.root / "run")], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def podman():
    engine = Podman()
    try:
        yield engine
    finally:
        engine.cleanup()


@pytest.fixture(scope="module")
def registry():
    with Registry() as started:
        yield started


def write_context(directory: Path) -> Path:
    return fb.write_busybox_context(directory, {"linux/amd64": NATIVE_BUSYBOX, "linux/arm64": fb.busybox("aarch64"),
                                                "linux/arm/v7": fb.busybox("arm")})


def writes(registry: Registry, since: int) -> list:
    return [(e.method, e.path) for e in registry.access_log()[since:] if e.method in WRITES and not e.from_harness]


@needs_podman
def test_build_host_with_podman_registers_emulation_and_runs_a_foreign_container(playbook, binfmt_state, podman, tmp_path):
    fb.remove_entry("qemu-aarch64")
    tar = fb.busybox_image_tar("aarch64", "localhost/archfleet-test/busybox:aarch64", tmp_path / "busybox.tar")
    podman.podman("load", "--input", str(tar))
    extra = {
        "provision_hosts": "localhost",
        "build_host_engine": "podman",
        "build_host_platforms": ["linux/arm64"],
        "build_host_binfmt_persistent": False,
        "build_host_podman_environment": podman.env,
        "build_host_verify_container_images": {"linux/arm64": "localhost/archfleet-test/busybox:aarch64"},
    }
    first = playbook(PROVISION, extra_vars=extra)
    assert first.rc == 0, first.output
    for package in ("podman", "buildah", "qemu-user-static"):
        assert dpkg_installed(package), package
    assert first.result(ROLE_HOST + "Register the emulators for the build platforms with binfmt_misc")["changed"]
    runs = first.result(ROLE_HOST + "Run a container of each verification platform")["results"]
    assert [(r["cmd"][0], r["stdout"]) for r in runs] == [("podman", "aarch64")]
    # No docker step ran: no daemon.json, no docker service, no buildx builder.
    ran = {t["task"] for t in first.tasks if not t["result"].get("skipped")}
    docker_steps = {ROLE_HOST + name for name in (
        "Read the current daemon.json", "Enable and start the docker service", "Check whether a docker daemon answers",
        "Check for the docker buildx plugin", "Create the buildx builder for the build platforms")}
    assert ran & docker_steps == set(), sorted(ran)
    assert ROLE_HOST + "Check that podman runs" in ran

    second = playbook(PROVISION, extra_vars=extra)
    assert second.rc == 0 and second.changed_total() == 0, second.output
    check = playbook(PROVISION, extra_vars=extra, check=True)
    assert check.rc == 0 and check.changed_total() == 0, check.output


@needs_podman
@pytest.mark.skipif(shutil.which("dockerd") is None, reason="Debian package docker.io is not installed")
def test_fleet_playbook_with_a_podman_host_and_a_docker_host(playbook, binfmt_state, podman, registry, tmp_path):
    """playbooks/build_and_publish.yml over two build hosts (both this machine, connection local): podman
    builds linux/amd64 and, emulated, linux/arm64; docker (a private dockerd) builds linux/arm/v7, emulated.
    One index from both, each image checked and run with the engine of the host that built it."""
    fb.ensure_emulators(["aarch64", "arm"])
    context = write_context(tmp_path / "context")
    podman_host = {"ansible_connection": "local", "build_images_platforms": PODMAN_PLATFORMS,
                   "build_images_engine": "podman", "build_images_podman_environment": podman.env}

    def inventory(tag, daemon):
        docker_host = {"ansible_connection": "local", "build_images_platforms": DOCKER_PLATFORMS,
                       "build_images_docker_cli": "/usr/bin/docker", "build_images_docker_host": daemon.host}
        group = {"build_images_image": f"{registry.host}/{REPOSITORY}", "build_images_tag": tag,
                 "build_images_context": str(context), "build_images_network": "none",
                 "build_images_insecure_registries": [registry.host], "build_images_verify_architecture": True,
                 "publish_manifests_insecure_registries": [registry.host], "publish_manifests_verify_run": True}
        path = tmp_path / f"inventory-{tag}.json"
        path.write_text(json.dumps({"all": {"children": {"build_hosts": {
            "hosts": {"podman1": podman_host, "docker1": docker_host}, "vars": group}}}}))
        return str(path)

    with Dockerd() as daemon:
        # --check on a new tag: nothing built or pushed, nothing fails.
        check = playbook(FLEET_PLAYBOOK, inventory=inventory("1.0", daemon), check=True)
        assert check.rc == 0, check.output
        assert podman.podman("image", "exists", f"{registry.host}/{REPOSITORY}:1.0-linux-arm64", check=False).returncode == 1
        assert requests.get(f"{registry.url}/v2/{REPOSITORY}/tags/list", timeout=10).status_code == 404

        first = playbook(FLEET_PLAYBOOK, inventory=inventory("1.0", daemon))
        assert first.rc == 0, first.output
        built = first.result(ROLE_BUILD + "Build each platform", "podman1")["results"]
        assert all(r["changed"] and r["cmd"][:2] == ["podman", "build"] for r in built), built
        assert first.result(ROLE_BUILD + "Build each platform", "docker1")["results"][0]["cmd"][:2] == ["/usr/bin/docker", "build"]
        pushes = first.result(ROLE_BUILD + "Push the images the registry does not hold", "podman1")["results"]
        assert all(r["cmd"][:2] == ["podman", "push"] and "--tls-verify=false" in r["cmd"] for r in pushes), pushes
        digests = {}
        for host in ("podman1", "docker1"):
            for result in first.result(ROLE_BUILD + "Report the per-platform digests", host)["ansible_facts"]["build_images_results"]:
                digests[result["platform"]] = result["digest"]
        assert sorted(digests) == sorted(PODMAN_PLATFORMS + DOCKER_PLATFORMS)
        assert all(d.startswith("sha256:") for d in digests.values())

        # The index, read from the registry itself: every platform, with the digest its host pushed.
        index = requests.get(f"{registry.url}/v2/{REPOSITORY}/manifests/1.0",
                             headers={"Accept": ALL_MANIFEST_TYPES}, timeout=10).json()
        found = {"/".join([m["platform"]["os"], m["platform"]["architecture"]]
                          + ([m["platform"]["variant"]] if m["platform"].get("variant") else [])): m["digest"]
                 for m in index["manifests"]}
        assert found == digests
        # Each pushed image is of its platform (config read from the registry).
        for platform, digest in digests.items():
            manifest = requests.get(f"{registry.url}/v2/{REPOSITORY}/manifests/{digest}",
                                    headers={"Accept": ALL_MANIFEST_TYPES}, timeout=10).json()
            config = requests.get(f"{registry.url}/v2/{REPOSITORY}/blobs/{manifest['config']['digest']}", timeout=10).json()
            assert config["architecture"] == platform.split("/")[1]
        # The architecture checks ran with each host's engine: uname -m in each image, before publishing.
        unames = first.result(ROLE_BUILD + "Run uname -m in each platform's image on the host that built it")["results"]
        assert sorted((r["item"]["platform"], r["cmd"][0], r["stdout"]) for r in unames) == [
            ("linux/amd64", "podman", "x86_64"), ("linux/arm/v7", "/usr/bin/docker", "armv7l"),
            ("linux/arm64", "podman", "aarch64")]
        ran = first.result(ROLE_PUBLISH + "Run each platform on the build host that built it")["results"]
        assert sorted(r["stdout"].strip() for r in ran) == ["aarch64", "armv7l", "x86_64"]

        # An unchanged re-run: nothing changed, nothing written to the registry.
        mark = len(registry.access_log())
        second = playbook(FLEET_PLAYBOOK, inventory=inventory("1.0", daemon))
        assert second.rc == 0 and second.changed_total() == 0, second.output
        assert writes(registry, mark) == []
        recheck = playbook(FLEET_PLAYBOOK, inventory=inventory("1.0", daemon), check=True)
        assert recheck.rc == 0 and recheck.changed_total() == 0, recheck.output


@needs_podman
def test_podman_engine_errors_name_the_value(playbook, registry, tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    base = {"build_images_image": f"{registry.host}/{REPOSITORY}", "build_images_context": str(context),
            "build_images_platforms": ["linux/amd64"], "build_images_insecure_registries": [registry.host]}
    run = playbook(BUILD_AND_PUBLISH, extra_vars=dict(base, build_images_engine="podmn"))
    assert run.rc != 0
    assert "build_images_engine" in run.output and "podmn" in run.output and "docker, podman" in run.output, run.output
    run = playbook(BUILD_AND_PUBLISH, extra_vars=dict(base, build_images_engine="podman",
                                                      build_images_podman_cli="/nonexistent/podman"))
    assert run.rc != 0
    assert "Build host localhost: the podman CLI /nonexistent/podman does not run" in run.output, run.output
