"""build_images on BuildKit with RUN steps of foreign platforms under QEMU (issue 19).

TOUCHES THE KERNEL'S binfmt_misc: registers the qemu-aarch64 and qemu-arm entries (Debian's qemu-user-static,
flag F) and restores the entries as they were afterwards (harness.foreign_binaries.BinfmtState), like
test_build_host.py and test_podman_engine.py. Run it only in the serial suite, never beside another test that
touches binfmt_misc.

playbooks/build_and_publish.yml on one build host (this machine, connection local) whose docker CLI builds
through buildx on a real buildkitd (remote driver, no dockerd), build_images_buildx_output push: the context is
Debian's static busybox per platform, and the Dockerfile's RUN steps (``busybox --install``, ``uname -m >
/etc/machine``) run natively for linux/amd64 and under QEMU for linux/arm64 and linux/arm/v7. buildkitd starts
after the emulators are registered, as its workers list the platforms it can run at start. Each published
platform's last layer, read from the registry, holds the machine name its RUN step saw (x86_64, aarch64,
armv7l); the index keeps BuildKit's provenance attestations; an unchanged re-run changes and writes nothing.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import requests

from harness import foreign_binaries as fb
from harness.buildkitd import Buildkitd
from test_buildkit import ATTESTATION, FLEET_PLAYBOOK, THREE, Docker, registry_writes
from test_peers import info, unique

pytestmark = pytest.mark.parametrize("real_registry", ["distribution-2.8"], indirect=True)

MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}


def machine_of(registry, repository: str, digest: str) -> str:
    """The /etc/machine that the image ``digest`` of ``repository`` holds in its last layer."""
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    manifest = requests.get(f"{registry.url}/v2/{repository}/manifests/{digest}", headers={"Accept": accept},
                            auth=registry.auth_tuple, timeout=30).json()
    blob = requests.get(f"{registry.url}/v2/{repository}/blobs/{manifest['layers'][-1]['digest']}",
                        auth=registry.auth_tuple, timeout=60).content
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as layer:
        return layer.extractfile("etc/machine").read().decode().strip()


def test_buildkit_builds_foreign_run_steps_under_qemu(playbook, binfmt_state, tmp_path, real_registry):
    fb.ensure_emulators(["aarch64", "arm"])
    context = fb.write_busybox_context(tmp_path / "context", {"linux/amd64": Path("/bin/busybox"),
                                                              "linux/arm64": fb.busybox("aarch64"),
                                                              "linux/arm/v7": fb.busybox("arm")})
    h, repository = real_registry.host, unique("buildkit-qemu")
    with Buildkitd(insecure_registries=[h]) as buildkitd:
        docker = Docker(tmp_path / "docker-home", buildkitd, real_registry)
        group = {"ansible_connection": "local", "build_images_image": f"{h}/{repository}", "build_images_tag": "1.0",
                 "build_images_context": str(context), "build_images_platforms": THREE,
                 "build_images_docker_cli": docker.binary, "build_images_docker_host": docker.env["DOCKER_HOST"],
                 "build_images_buildx_builder": docker.builder, "build_images_buildx_output": "push",
                 "build_images_provenance": "max", "build_images_build_args": {"SOURCE_DATE_EPOCH": "1700000000"},
                 "build_images_insecure_registries": [h], "publish_manifests_insecure_registries": [h]}
        inventory = tmp_path / "inventory.json"
        inventory.write_text(json.dumps({"all": {"children": {"build_hosts": {"hosts": {"buildkit1": {}},
                                                                              "vars": group}}}}))
        env = {"DOCKER_CONFIG": str(docker.config), "HOME": docker.env["HOME"]}
        first = playbook(FLEET_PLAYBOOK, inventory=str(inventory), env=env)
        assert first.rc == 0, first.output
        facts = info(playbook, real_registry, f"{h}/{repository}:1.0")
        assert facts["platforms"] == THREE
        assert [a["reference_type"] for a in facts["attestations"]] == [ATTESTATION] * 3
        machines = {m["platform_string"]: machine_of(real_registry, repository, m["digest"]) for m in facts["manifests"]}
        assert machines == MACHINES, "a RUN step did not run as its platform"

        mark = len(real_registry.access_log())
        second = playbook(FLEET_PLAYBOOK, inventory=str(inventory), env=env)
        assert second.rc == 0 and second.changed_total() == 0, second.output
        assert registry_writes(real_registry, mark) == []
