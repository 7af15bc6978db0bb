"""Every example in the documentation of the registry modules and the filters runs, against real registries.

The examples name registry.example.com, registry.internal:5000, registry.lan:5000, ghcr.io and
docker.io; the test points those names at registries it starts on loopback and pushes the images
the examples use, then runs every example of every plugin in one playbook, in documentation order
(publishing first, so that the inspection and audit examples find a published release).
"""
from __future__ import annotations

import ast
import json

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness.ansible_run import COLLECTION_ROOT, play
from harness.images import push_image, push_index
from harness.registry import Registry

PLUGINS = ["modules/docker_manifest_create.py", "modules/docker_manifest_info.py", "filter/image_ref.py",
           "filter/platform.py", "filter/qemu_target.py", "filter/manifest_query.py", "filter/manifest_audit.py"]


def examples(relative):
    tree = ast.parse((COLLECTION_ROOT / "plugins" / relative).read_text())
    return next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "EXAMPLES")


@pytest.fixture(scope="module")
def registries():
    with Registry() as public, Registry() as internal:
        url = public.url
        for platform, suffix in (("linux/amd64", "amd64"), ("linux/arm64", "arm64"), ("linux/arm/v7", "armv7")):
            push_image(url, "team/app", f"1.4.2-{suffix}", platform=platform)
        push_image(url, "builds/app", "1.4.2-riscv64", platform="linux/riscv64")
        for name in ("api", "worker"):
            for arch in ("amd64", "arm64"):
                push_image(url, f"builds/{name}", f"1.4.2-{arch}", platform=f"linux/{arch}", payload=name.encode())
        push_image(url, "library/busybox", "1.36", platform="linux/amd64", payload=b"busybox")
        children = [push_image(url, "example/app", platform=p, payload=b"upstream") for p in ("linux/amd64",
                                                                                              "linux/arm64")]
        push_index(url, "example/app", "1.4.2", children, attestations=True)
        yield public, internal


def test_every_documented_example_runs(playbook, registries, tmp_path):
    public, internal = registries
    docker_config = tmp_path / "config.json"
    docker_config.write_text(json.dumps({"auths": {}}))
    text = "\n".join(examples(relative) for relative in PLUGINS)
    for name, host in (("registry.example.com", public.host), ("registry.internal:5000", internal.host),
                       ("registry.lan:5000", internal.host), ("ghcr.io", public.host), ("docker.io", public.host)):
        text = text.replace(name, host)
    text = text.replace("/etc/ci/docker/config.json", str(docker_config))
    # The signature-verification example names the release key; a P-256 public key made here stands in.
    release_key = tmp_path / "cosign.pub"
    release_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    text = text.replace("/etc/ci/cosign.pub", str(release_key))
    tasks = yaml.safe_load(text)
    release = [f"{public.host}/team/app:1.4.2"]
    run = playbook(play(*tasks), extra_vars={
        "git_sha": "0123abc", "release_images": release, "required": ["linux/amd64", "linux/arm64"]})
    assert run.rc == 0, run.output
    published = run.result("Publish app:1.4.2 for three platforms from per-platform tags")
    assert published["platforms"] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    riscv = run.result("Add (or replace) the riscv64 image in the existing index")
    assert riscv["changed"] is True and riscv["platforms"][-1] == "linux/riscv64"
    mirrored = run.result("Re-publish a buildx index without its attestations, from another registry")
    assert mirrored["platforms"] == ["linux/amd64", "linux/arm64"]
    slim = run.result("Mirror only the amd64 platform of an upstream index (a new index, with that platform's "
                      "attestations)")
    assert slim["platforms"] == ["linux/amd64"] and len(slim["manifest"]["manifests"]) == 2
    assert len(run.result("Publish a whole release in one task")["indexes"]) == 2
    assert run.result("Platforms of a list of Debian architectures (dpkg names are aliases too)")["msg"] == [
        "amd64", "arm", "ppc64le", "386"]
    assert run.result("What uname -m prints in an arm/v7 container run under emulation")["msg"] == "armv7l"
    assert run.result("Images that lack a required platform")["msg"] == []
