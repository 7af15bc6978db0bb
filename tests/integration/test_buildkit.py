"""A current docker CLI, its buildx plugin and BuildKit as test partners, both directions (issue 19).

Peers, built by tools/peers.sh at pinned versions from the Go module proxy: the docker CLI (docker/cli), the
buildx plugin (docker/buildx), buildkitd and buildctl (moby/buildkit). buildkitd runs rootful with runc on a
private socket (harness/buildkitd.py), one per module; buildx reaches it with the ``remote`` driver, so no
dockerd takes part: ``docker manifest inspect`` and ``docker buildx imagetools`` talk to the registry
themselves. The docker CLI runs with DOCKER_CONFIG in the test's tmp_path (the buildx plugin linked into its
cli-plugins) and DOCKER_HOST at a socket nobody serves. A peer that cannot be built here is a skip naming it (a
failure under ARCHFLEET_REQUIRE_PEERS=1, as .ci/run sets).

- The collection writes (the cases of test_peers.py's ``written``: an OCI index, a Docker list, a merge, a
  mirror that keeps a buildx attestation), and ``docker manifest inspect`` and ``docker buildx imagetools
  inspect`` read the same digest, media type, children and platforms.
- The peers write (``docker buildx imagetools create --annotation``, BuildKit multi-platform builds with
  provenance attestations through ``buildctl`` and through ``docker buildx build``), and docker_manifest_info
  reads the right facts: the platforms, and the attestation manifests as attestations, not platforms.

Builds are ``FROM scratch`` + ``COPY`` for linux/amd64, linux/arm64 and linux/arm/v7: BuildKit runs no process
for them, so no emulator (binfmt_misc) and no image from the internet is needed. SBOM attestations are left
out: BuildKit's SBOM generator is a scanner image from Docker Hub (docker/buildkit-syft-scanner).
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from harness.suite import peer_or_skip
from harness.buildkitd import Buildkitd
from harness.goregistry import peer_version
from harness.images import DOCKER_LIST, OCI_INDEX, sha256_digest
# written: test_peers' fixture (what the collection wrote on the registry), used here as it is there
from test_peers import info, platforms_of, unique, written  # noqa: F401  # pylint: disable=unused-import

pytestmark = pytest.mark.parametrize("real_registry", ["distribution-2.8", "ggcr"], indirect=True)

THREE = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
ATTESTATION = "attestation-manifest"


@pytest.fixture(scope="module")
def buildkitd(real_registry):
    """One buildkitd for the module, with ``real_registry`` as a plain-HTTP registry."""
    peer_or_skip("buildkitd")
    peer_or_skip("buildctl")
    with Buildkitd(insecure_registries=[real_registry.host]) as daemon:
        yield daemon


class Docker:
    """The docker CLI with the buildx plugin, its own DOCKER_CONFIG, no daemon, and a ``remote`` buildx builder
    on ``buildkitd``. ``docker(*args)`` runs it and returns its stdout (str)."""

    def __init__(self, home: Path, buildkitd: Buildkitd, registry):
        self.binary = peer_or_skip("docker")
        buildx = peer_or_skip("buildx")
        self.name = f"docker {peer_version('docker')} (buildx {peer_version('buildx')})"
        self.config = home / ".docker"
        (self.config / "cli-plugins").mkdir(parents=True)
        (self.config / "cli-plugins" / "docker-buildx").symlink_to(buildx)
        config = {}
        if registry.auth_tuple:
            user, password = registry.auth_tuple
            config["auths"] = {registry.host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}
        (self.config / "config.json").write_text(json.dumps(config))
        self.env = dict(os.environ, HOME=str(home), DOCKER_CONFIG=str(self.config),
                        DOCKER_HOST=f"unix://{home}/no-dockerd.sock", BUILDX_NO_DEFAULT_ATTESTATIONS="")
        self.env.pop("DOCKER_CONTEXT", None)
        # (the remote driver takes no buildkitd.toml: the daemon has its own, harness/buildkitd.py)
        self.builder = f"archfleet-{os.getpid()}-{abs(hash(home)) % 10000}"
        self("buildx", "create", "--name", self.builder, "--driver", "remote", buildkitd.address)

    def __call__(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run([self.binary, *args], env=self.env, cwd=cwd, capture_output=True, text=True,
                              timeout=600, check=False, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"{self.name}: docker {' '.join(args)} failed ({proc.returncode}): " \
                                     f"{proc.stderr.strip()[-3000:]}"
        return proc.stdout

    def imagetools(self, *args: str) -> str:
        return self("buildx", "imagetools", *args[:1], "--builder", self.builder, *args[1:])


@pytest.fixture
def docker(tmp_path, buildkitd, real_registry):
    return Docker(tmp_path / "docker-home", buildkitd, real_registry)


def registry_manifest(registry, ref: str) -> dict:
    """The manifest of ``ref`` (``host/repo:tag`` or ``@digest``) as the registry serves it."""
    repo_tag = ref.split("/", 1)[1]
    repo, tag = repo_tag.rsplit("@" if "@" in repo_tag else ":", 1)
    accept = ", ".join([OCI_INDEX, DOCKER_LIST, "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json"])
    response = requests.get(f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": accept},
                            auth=registry.auth_tuple, timeout=30)
    response.raise_for_status()
    return response.json()


def children(manifest: dict) -> list[tuple[str, str]]:
    """(digest, platform) of each entry of an index that is a platform (not an attestation)."""
    return [(m["digest"], "/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"],
                                                 m["platform"].get("variant")))))
            for m in manifest["manifests"] if m.get("platform", {}).get("os") != "unknown"]


# --- the collection writes, docker reads --------------------------------------------------------------
@pytest.mark.parametrize("case", ["oci-index", "docker-list", "merge", "mirror"])
def test_docker_manifest_inspect_reads_what_the_collection_wrote(case, written, docker, real_registry):
    wrote = written[case]
    served = registry_manifest(real_registry, wrote["ref"])
    read = json.loads(docker("manifest", "inspect", "--insecure", wrote["ref"]))
    assert read["mediaType"] == wrote["media_type"], docker.name
    assert children(read) == children(served), f"{docker.name}: docker manifest inspect read other children"
    assert platforms_of(json.dumps(read).encode()) == wrote["platforms"], docker.name


@pytest.mark.parametrize("case", ["oci-index", "docker-list", "merge", "mirror"])
def test_imagetools_inspect_reads_what_the_collection_wrote(case, written, docker, real_registry):
    wrote = written[case]
    raw = docker.imagetools("inspect", "--raw", wrote["ref"]).encode()
    assert sha256_digest(raw) == wrote["digest"], f"{docker.name}: imagetools inspect --raw read another manifest"
    stated = json.loads(docker.imagetools("inspect", "--format", "{{json .Manifest}}", wrote["ref"]))
    assert (stated["digest"], stated["mediaType"]) == (wrote["digest"], wrote["media_type"]), docker.name
    assert platforms_of(json.dumps(stated).encode()) == wrote["platforms"], docker.name
    assert children(stated) == children(json.loads(raw)), docker.name


# --- docker and BuildKit write, the collection reads --------------------------------------------------
def test_imagetools_create_with_annotations_is_read(playbook, docker, real_registry):
    h, fx = real_registry.host, real_registry.fixtures
    target = f"{h}/{unique('imagetools')}:1"
    docker.imagetools("create", "--annotation", "index:org.opencontainers.image.description=made by imagetools",
                      "--annotation", "index:org.example.peer=buildx",
                      "-t", target, fx["single_amd64"]["reference"], fx["single_arm64"]["reference"])
    stated = json.loads(docker.imagetools("inspect", "--format", "{{json .Manifest}}", target))
    facts = info(playbook, real_registry, target)
    assert facts["digest"] == stated["digest"], "buildx imagetools create"
    assert (facts["kind"], facts["media_type"]) == ("index", OCI_INDEX)
    assert facts["platforms"] == ["linux/amd64", "linux/arm64"]
    assert [m["digest"] for m in facts["manifests"]] == [fx["single_amd64"]["digest"], fx["single_arm64"]["digest"]]
    assert facts["annotations"] == {"org.opencontainers.image.description": "made by imagetools",
                                    "org.example.peer": "buildx"}


DOCKERFILE = """\
FROM scratch
ARG TARGETARCH
ARG TARGETVARIANT
COPY hello.txt /hello.txt
COPY platform-${TARGETARCH}${TARGETVARIANT}.txt /platform.txt
"""


def build_context(path: Path) -> Path:
    """A FROM scratch context whose image differs per platform (a file named after TARGETARCH+TARGETVARIANT)."""
    path.mkdir()
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / "hello.txt").write_text("hello from archfleet's BuildKit test\n")
    for arch in ("amd64", "arm64", "armv7"):
        (path / f"platform-{arch}.txt").write_text(f"{arch}\n")
    return path


def build(builder: str, buildkitd, docker_factory, context: Path, target: str, metadata: Path) -> str:
    """Build ``context`` for THREE platforms with provenance (mode=max) and push it as ``target``; the digest
    the builder states in its metadata file."""
    platforms = ",".join(THREE)
    if builder == "buildctl":
        buildkitd.buildctl("build", "--frontend", "dockerfile.v0", "--local", f"context={context}",
                           "--local", f"dockerfile={context}", "--opt", f"platform={platforms}",
                           "--opt", "attest:provenance=mode=max",
                           "--output", f"type=image,name={target},push=true,registry.insecure=true",
                           "--metadata-file", str(metadata))
    else:
        docker = docker_factory()
        docker("buildx", "build", "--builder", docker.builder, "--platform", platforms, "--provenance=mode=max",
               "--push", "--metadata-file", str(metadata), "-t", target, str(context))
    return json.loads(metadata.read_text())["containerimage.digest"]


@pytest.mark.parametrize("builder", ["buildctl", "buildx"])
def test_buildkit_multi_platform_build_with_provenance_is_read(builder, playbook, buildkitd, tmp_path, real_registry):
    target = f"{real_registry.host}/{unique(f'{builder}-build')}:1"
    digest = build(builder, buildkitd, lambda: Docker(tmp_path / "docker-home", buildkitd, real_registry),
                   build_context(tmp_path / "context"), target, tmp_path / "metadata.json")
    served = registry_manifest(real_registry, target)
    facts = info(playbook, real_registry, target, referrers=True)
    assert facts["digest"] == digest, f"{builder}: the collection read another index than BuildKit pushed"
    assert (facts["kind"], facts["media_type"]) == ("index", OCI_INDEX), builder
    # the three platforms, and BuildKit's attestation manifests as attestations, not as platforms
    assert facts["platforms"] == THREE, builder
    assert [(m["digest"], m["platform_string"]) for m in facts["manifests"]] == children(served)
    attestations = facts["attestations"]
    assert [a["reference_type"] for a in attestations] == [ATTESTATION] * 3, builder
    assert sorted(a["reference_digest"] for a in attestations) == sorted(m["digest"] for m in facts["manifests"])
    for attestation in attestations:
        assert attestation["predicate_types"], f"{builder}: no in-toto predicate type read"
        assert all(p.startswith("https://slsa.dev/provenance/") for p in attestation["predicate_types"]), \
            f"{builder}: {attestation['predicate_types']}"


# --- build_images with BuildKit for real --------------------------------------------------------------
FLEET_PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "build_and_publish.yml"
ROLE_BUILD = "archfleet.multiarch.build_images : "
ROLE_PUBLISH = "archfleet.multiarch.publish_manifests : "
WRITES = {"PUT", "POST", "PATCH", "DELETE"}


def registry_writes(registry, since: int) -> list:
    return [(e.method, e.path) for e in registry.access_log()[since:] if e.method in WRITES and not e.from_harness]


def test_build_and_publish_with_buildkit_keeps_the_attestations(playbook, buildkitd, docker, tmp_path, real_registry):
    """playbooks/build_and_publish.yml on one build host (this machine, connection local) whose docker CLI builds
    through buildx on the real buildkitd (remote driver; no dockerd: DOCKER_HOST names a socket nobody serves):
    build_images_buildx_output push builds linux/amd64, linux/arm64 and linux/arm/v7 in one build with provenance
    (mode=max), and publish_manifests publishes each platform with the attestation manifest that describes it.
    SOURCE_DATE_EPOCH makes the images reproducible, so a re-run builds, finds the same images in the registry,
    and changes and writes nothing; --check on a new tag builds and pushes nothing."""
    h = real_registry.host
    repository = unique("buildkit-app")
    context = build_context(tmp_path / "context")

    def inventory(tag: str) -> str:
        group = {"ansible_connection": "local", "build_images_image": f"{h}/{repository}", "build_images_tag": tag,
                 "build_images_context": str(context), "build_images_platforms": THREE,
                 "build_images_docker_cli": docker.binary, "build_images_docker_host": docker.env["DOCKER_HOST"],
                 "build_images_buildx_builder": docker.builder, "build_images_buildx_output": "push",
                 "build_images_provenance": "max", "build_images_build_args": {"SOURCE_DATE_EPOCH": "1700000000"},
                 "build_images_insecure_registries": [h], "publish_manifests_insecure_registries": [h]}
        if real_registry.auth_tuple:
            user, password = real_registry.auth_tuple
            group.update(build_images_registry_username=user, build_images_registry_password=password,
                         publish_manifests_registry_username=user, publish_manifests_registry_password=password)
        path = tmp_path / f"inventory-{tag}.json"
        path.write_text(json.dumps({"all": {"children": {"build_hosts": {"hosts": {"buildkit1": {}}, "vars": group}}}}))
        return str(path)

    env = {"DOCKER_CONFIG": str(docker.config), "HOME": docker.env["HOME"]}
    check = playbook(FLEET_PLAYBOOK, inventory=inventory("new"), check=True, env=env)
    assert check.rc == 0, check.output
    assert registry_manifest_status(real_registry, f"{repository}:new") == 404, "--check pushed something"
    assert registry_manifest_status(real_registry, f"{repository}:new-buildx-buildkit1") == 404

    first = playbook(FLEET_PLAYBOOK, inventory=inventory("1.0"), env=env)
    assert first.rc == 0, first.output
    pushed = first.result(ROLE_BUILD + "Push the build (its platform images differ from the registry's index)",
                          "buildkit1")
    assert pushed["changed"] and "--provenance=mode=max" in pushed["cmd"], pushed["cmd"]
    results = first.result(ROLE_BUILD + "Report the per-platform digests (each platform is taken from this host's "
                           "index, with its attestations)", "buildkit1")["ansible_facts"]["build_images_results"]
    digests = {r["platform"]: r["digest"] for r in results}
    assert sorted(digests) == sorted(THREE) and all(d.startswith("sha256:") for d in digests.values()), results
    assert first.result(ROLE_PUBLISH + "Publish the index, pinned by digest", "buildkit1")["changed"]

    # The published index, read by the collection: the three platforms with the digests BuildKit built, and
    # each one's provenance attestation manifest (not a platform).
    facts = info(playbook, real_registry, f"{h}/{repository}:1.0", referrers=True)
    assert facts["platforms"] == THREE
    assert {m["platform_string"]: m["digest"] for m in facts["manifests"]} == digests
    attestations = facts["attestations"]
    assert [a["reference_type"] for a in attestations] == [ATTESTATION] * 3, attestations
    assert sorted(a["reference_digest"] for a in attestations) == sorted(digests.values())
    assert all(p.startswith("https://slsa.dev/provenance/") for a in attestations for p in a["predicate_types"])
    # The attestations are BuildKit's own: the same digests as in the index it pushed.
    built = registry_manifest(real_registry, f"{h}/{repository}:1.0-buildx-buildkit1")
    assert sorted(a["digest"] for a in attestations) == sorted(
        m["digest"] for m in built["manifests"] if m.get("annotations", {}).get("vnd.docker.reference.type"))

    # An unchanged re-run: BuildKit builds again (its provenance is new), the images are the same, nothing is
    # pushed or published.
    mark = len(real_registry.access_log())
    second = playbook(FLEET_PLAYBOOK, inventory=inventory("1.0"), env=env)
    assert second.rc == 0 and second.changed_total() == 0, second.output
    assert registry_writes(real_registry, mark) == []


def registry_manifest_status(registry, repo_tag: str) -> int:
    repo, tag = repo_tag.rsplit(":", 1)
    return requests.head(f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_INDEX},
                         auth=registry.auth_tuple, timeout=30).status_code


def test_buildx_output_push_refuses_the_architecture_check(playbook, docker, tmp_path, real_registry):
    """build_images_buildx_output push keeps no image in an image store: with build_images_verify_architecture the
    role fails before building, naming both variables, and nothing is pushed."""
    h, repository = real_registry.host, unique("buildkit-refused")
    extra = {"build_and_publish_hosts": "localhost", "build_images_image": f"{h}/{repository}",
             "build_images_context": str(build_context(tmp_path / "context")), "build_images_platforms": THREE,
             "build_images_docker_cli": docker.binary, "build_images_docker_host": docker.env["DOCKER_HOST"],
             "build_images_buildx_builder": docker.builder, "build_images_buildx_output": "push",
             "build_images_verify_architecture": True, "build_images_insecure_registries": [h]}
    run = playbook(FLEET_PLAYBOOK, extra_vars=extra, env={"DOCKER_CONFIG": str(docker.config),
                                                          "HOME": docker.env["HOME"]})
    assert run.rc != 0
    assert ("Build host localhost: build_images_buildx_output: push keeps no image in an image store, so "
            "build_images_verify_architecture cannot run the images") in run.output, run.output
    assert registry_manifest_status(real_registry, f"{repository}:latest-buildx-localhost") == 404
