"""The field's own tools as test partners, both directions, through real ansible-playbook runs (issue 19).

Peers, built by tools/peers.sh at pinned versions from the Go module proxy: ``crane`` (go-containerregistry),
``oras`` and ``regctl`` (regclient). Each runs with its own HOME (and DOCKER_CONFIG) in the test's tmp_path,
against every registry of conftest.REAL_REGISTRIES on loopback, plain HTTP (crane ``--insecure``, oras
``--plain-http``, regctl ``registry set --tls disabled``). A peer that cannot be built here (no Go, or too
old a Go) is a skip naming it (a failure under ARCHFLEET_REQUIRE_PEERS=1, as .ci/run sets).

- The collection writes (docker_manifest_create: an OCI index of two platforms, a Docker list, a merge, a
  mirror with ``referrers: copy``), and each peer reads the same bytes, digest and platforms (and the
  mirror's copied referrer, with oras and regctl: crane has no referrers command).
- Each peer writes (``crane index append``, ``crane mutate``, ``crane append``, ``oras push``, ``oras attach``,
  ``regctl index create/add``, ``regctl artifact put --subject``), and docker_manifest_info reads the right
  facts; the collection merges into an index crane wrote, and crane reads the merge.

The docker CLI with buildx and buildkitd, and cosign, are not partners here yet (issue 19).
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from harness import suite
from harness.suite import peer_or_skip, registry_options
from harness.ansible_run import play, task
from harness.goregistry import peer_version
from harness.images import DOCKER_LIST, OCI_INDEX, PushClient, platform_string, push_image, sha256_digest
from harness.referrers import SIGNATURE_TYPE, SIMPLESIGNING, push_artifact, push_tag_schema

# The peers read and write the same way on every registry; two are enough to meet both referrers forms:
# distribution 2.8 (the tag schema) and go-containerregistry's registry (the Referrers API). The other
# registries run the collection's own suite (test_registries.py).
pytestmark = pytest.mark.parametrize("real_registry", ["distribution-2.8", "ggcr"], indirect=True)

unique = functools.partial(suite.unique, namespace="peers")  # every repository under peers/
TWO = ["linux/amd64", "linux/arm64"]
ARTIFACT_TYPE = "application/vnd.archfleet.test-report.v1+json"


def op(title: str, module: str, registry, **args) -> dict:
    """A task of ``module`` with the credentials ``registry`` needs."""
    return task(title, module, **registry_options(registry, **args))


# --- the peers --------------------------------------------------------------------------------------
@dataclass
class Peer:
    """One peer binary with its own HOME; ``peer(*args)`` runs it and returns its stdout (bytes)."""

    name: str
    binary: str
    home: Path

    def __call__(self, *args: str, cwd: Path | None = None) -> bytes:
        env = dict(os.environ, HOME=str(self.home), DOCKER_CONFIG=str(self.home / ".docker"))
        proc = subprocess.run([self.binary, *args], env=env, cwd=cwd, capture_output=True, timeout=300, check=False)
        assert proc.returncode == 0, \
            f"{self.name} {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace').strip()}"
        return proc.stdout

    def text(self, *args: str) -> str:
        return self(*args).decode().strip()


def make_peer(name: str, tmp_path: Path, registry) -> Peer:
    home = tmp_path / f"{name}-home"
    (home / ".docker").mkdir(parents=True)
    peer = Peer(f"{name} {peer_version(name)}", peer_or_skip(name), home)
    if name == "regctl":
        peer("registry", "set", "--skip-check", "--tls", "disabled", registry.host)  # a ping needs the login
    if registry.auth_tuple:
        user, password = registry.auth_tuple
        peer(*{"crane": ["auth", "login"], "oras": ["login", "--plain-http"], "regctl": ["registry", "login"]}[name],
             "-u", user, "-p", password, registry.host)
    return peer


@pytest.fixture
def crane(tmp_path, real_registry):
    return make_peer("crane", tmp_path, real_registry)


@pytest.fixture
def oras(tmp_path, real_registry):
    return make_peer("oras", tmp_path, real_registry)


@pytest.fixture
def regctl(tmp_path, real_registry):
    return make_peer("regctl", tmp_path, real_registry)


# --- how each peer reads a manifest: (its raw bytes, the digest the peer states) -------------------
def read_crane(crane: Peer, ref: str) -> tuple[bytes, str]:
    return crane("manifest", "--insecure", ref), crane.text("digest", "--insecure", ref)


def read_regctl(regctl: Peer, ref: str) -> tuple[bytes, str]:
    return regctl("manifest", "get", "--format", "raw-body", ref), regctl.text("image", "digest", ref)


def read_oras(oras: Peer, ref: str) -> tuple[bytes, str]:
    descriptor = json.loads(oras("manifest", "fetch", "--plain-http", "--descriptor", ref))
    return oras("manifest", "fetch", "--plain-http", ref), descriptor["digest"]


READERS = {"crane": read_crane, "regctl": read_regctl, "oras": read_oras}


def platforms_of(body: bytes) -> list[str]:
    return [platform_string(m["platform"]) for m in json.loads(body)["manifests"]
            if m.get("platform", {}).get("os") != "unknown"]


def referrers_by_oras(oras: Peer, ref: str) -> dict[str, str]:
    """digest -> artifactType of ``ref``'s referrers, as ``oras discover`` lists them."""
    listed = json.loads(oras("discover", "--plain-http", "--format", "json", ref))
    return {m["digest"]: m.get("artifactType") for m in listed.get("referrers", listed.get("manifests", []))}


def referrers_by_regctl(regctl: Peer, ref: str) -> dict[str, str]:
    """digest -> artifactType of ``ref``'s referrers, as ``regctl artifact list`` lists them."""
    listed = json.loads(regctl("artifact", "list", "--format", "body", ref))
    return {m["digest"]: m.get("artifactType") for m in listed["manifests"]}


# --- the collection writes, the peers read -----------------------------------------------------------
def referrers_api(registry, repo: str, digest: str) -> dict | None:
    """The registry's own Referrers API answer for ``repo@digest`` (an OCI index), None without the API."""
    response = requests.get(f"{registry.url}/v2/{repo}/referrers/{digest}", auth=registry.auth_tuple, timeout=30)
    if response.status_code == 200 and response.headers.get("Content-Type", "").startswith(OCI_INDEX):
        return response.json()
    return None


def listed_type(registry, repo: str, subject: str, referrer: str, written: str) -> str:
    """The artifactType a reader is given for ``referrer``: the Referrers API's (ggcr's registry lists the
    config's media type where distribution-spec 1.1 says the manifest's artifactType), else ``written``
    (the tag-schema index carries the artifactType its writer wrote)."""
    api = referrers_api(registry, repo, subject)
    if api is None:
        return written
    return next(m.get("artifactType") for m in api["manifests"] if m["digest"] == referrer)


def push_signed(registry, repo: str, subject: dict) -> str:
    """An OCI 1.1 signature artifact of ``subject`` in ``repo`` (and its tag-schema index where there is no API)."""
    with PushClient(registry.url, auth=registry.auth_tuple, verify=registry.verify) as client:
        signature = push_artifact(client, repo, SIGNATURE_TYPE, subject, f"signature of {repo}\n".encode(),
                                  SIMPLESIGNING)
        if referrers_api(registry, repo, subject["digest"]) is None:
            push_tag_schema(client, repo, subject["digest"], [signature])
    return signature["digest"]


@pytest.fixture(scope="module")
def written(real_registry, tmp_path_factory):
    """One ansible-playbook run of docker_manifest_create on ``real_registry``: what each case wrote.

    ``{case: {"ref", "digest", "media_type", "platforms"}}``, and ``signature`` (the mirror's source's referrer).
    """
    if real_registry.fixtures is None:
        pytest.skip(f"{real_registry.implementation} takes no pushes")
    from harness.ansible_run import run_playbook
    h, fx = real_registry.host, real_registry.fixtures
    refs = {case: f"{h}/{unique(case)}:1" for case in ("oci-index", "docker-list", "merge", "mirror")}
    source = dict(mediaType=fx["multi"]["media_type"], digest=fx["multi"]["digest"], size=fx["multi"]["size"])
    signed_repo = unique("signed")
    subject_ref = f"{h}/{signed_repo}:release"

    def create(title: str, **args) -> dict:
        return op(title, "docker_manifest_create", real_registry, **args)

    copied = run_playbook(play(create("copy multi", name=subject_ref, sources=[f"{h}/fixtures/multi:latest"])))
    assert copied.rc == 0, copied.output
    signature = push_signed(real_registry, signed_repo, source)
    run = run_playbook(play(
        create("oci-index", name=refs["oci-index"],
               sources=[f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64"]),
        create("docker-list", name=refs["docker-list"], media_type="docker",
               sources=[f"{h}/fixtures/docker-single:latest", f"{h}/fixtures/docker-single:arm64"]),
        create("merge base", name=refs["merge"], sources=[f"{h}/fixtures/single:amd64"]),
        create("merge", name=refs["merge"], mode="merge", sources=[f"{h}/fixtures/single:arm64"]),
        create("mirror", name=refs["mirror"], sources=[subject_ref], referrers="copy"),
    ))
    assert run.rc == 0, run.output
    cases = {case: dict(ref=ref, **{k: run.result(case)[k] for k in ("digest", "media_type", "platforms")})
             for case, ref in refs.items()}
    cases["mirror"]["signature"] = signature
    assert cases["mirror"]["digest"] == fx["multi"]["digest"]
    return cases


@pytest.mark.parametrize("case", ["oci-index", "docker-list", "merge", "mirror"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_peer_reads_what_the_collection_wrote(reader, case, written, tmp_path, real_registry):
    wrote = written[case]
    peer = make_peer(reader, tmp_path, real_registry)
    body, stated = READERS[reader](peer, wrote["ref"])
    assert (sha256_digest(body), stated) == (wrote["digest"], wrote["digest"]), f"{peer.name} read another manifest"
    assert json.loads(body)["mediaType"] == wrote["media_type"], peer.name
    assert platforms_of(body) == wrote["platforms"], peer.name
    if case == "docker-list":
        assert wrote["media_type"] == DOCKER_LIST
    if case == "merge":
        assert wrote["platforms"] == TWO


def test_crane_ls_lists_the_tags_the_collection_wrote(playbook, crane, real_registry):
    h = real_registry.host
    repo = unique("tags")
    run = playbook(play(op("publish", "docker_manifest_create", real_registry, name=f"{h}/{repo}:1",
                           tags=["latest", "1.0"],
                           sources=[f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64"])))
    assert run.rc == 0, run.output
    assert sorted(crane.text("ls", "--insecure", f"{h}/{repo}").split()) == ["1", "1.0", "latest"], crane.name
    assert crane.text("digest", "--insecure", f"{h}/{repo}:1.0") == run.result("publish")["digest"], crane.name


@pytest.mark.parametrize("reader", ["oras", "regctl"])
def test_peer_discovers_the_referrer_the_mirror_copied(reader, written, tmp_path, real_registry):
    mirror = written["mirror"]
    peer = make_peer(reader, tmp_path, real_registry)
    repository = mirror["ref"].rsplit(":", 1)[0]
    discover = {"oras": referrers_by_oras, "regctl": referrers_by_regctl}[reader]
    listed = discover(peer, f"{repository}@{mirror['digest']}")
    expected = listed_type(real_registry, repository.split("/", 1)[1], mirror["digest"], mirror["signature"],
                           SIGNATURE_TYPE)
    assert listed == {mirror["signature"]: expected}, f"{peer.name} discovered {listed}"


# --- the peers write, the collection reads -----------------------------------------------------------
def info(playbook, registry, ref: str, **args) -> dict:
    run = playbook(play(op("info", "docker_manifest_info", registry, images=[ref], **args)))
    assert run.rc == 0, run.output
    return run.result("info")["images"][0]


def test_crane_index_append_is_read(playbook, crane, real_registry):
    h = real_registry.host
    target = f"{h}/{unique('crane-index')}:1"
    crane("index", "append", "--insecure", "-m", f"{h}/fixtures/single:amd64", "-m", f"{h}/fixtures/single:arm64",
          "-t", target)
    facts = info(playbook, real_registry, target)
    assert facts["digest"] == crane.text("digest", "--insecure", target), "crane index append"
    assert facts["kind"] == "index" and facts["media_type"] == OCI_INDEX
    assert facts["platforms"] == TWO
    children = {m["platform_string"]: m["digest"] for m in facts["manifests"]}
    fx = real_registry.fixtures
    assert children == {"linux/amd64": fx["single_amd64"]["digest"], "linux/arm64": fx["single_arm64"]["digest"]}


def test_crane_mutate_is_read(playbook, crane, real_registry):
    h = real_registry.host
    target = f"{h}/{unique('crane-mutate')}:1"
    crane("mutate", "--insecure", f"{h}/fixtures/single:arm64", "--annotation", "org.example.peer=crane",
          "--label", "org.example.label=mutated", "-t", target)
    facts = info(playbook, real_registry, target)
    assert facts["digest"] == crane.text("digest", "--insecure", target), "crane mutate"
    assert facts["kind"] == "image" and facts["platforms"] == ["linux/arm64"]
    assert facts["annotations"] == {"org.example.peer": "crane"}


@pytest.mark.parametrize("writer", ["oras", "regctl"])
def test_artifact_attached_by_a_peer_is_a_referrer(writer, playbook, tmp_path, real_registry):
    h, repo = real_registry.host, unique(f"{writer}-attach")
    subject = f"{h}/{repo}:1"
    image = push_image(real_registry.url, repo, "1", payload=f"{repo}\n".encode(), auth=real_registry.auth_tuple)
    peer = make_peer(writer, tmp_path, real_registry)
    report = tmp_path / "report.json"
    report.write_text('{"passed": true}\n')
    if writer == "oras":
        # oras names the layer after the path it is given: run it beside the file
        digest = json.loads(peer("attach", "--plain-http", "--format", "json", "--artifact-type", ARTIFACT_TYPE,
                                 "--annotation", "org.example.peer=oras", subject,
                                 f"{report.name}:application/json", cwd=tmp_path))["digest"]
    else:
        digest = peer.text("artifact", "put", "--subject", subject, "--artifact-type", ARTIFACT_TYPE,
                           "--file", str(report), "--file-media-type", "application/json",
                           "--annotation", "org.example.peer=regctl",
                           "--format", "{{ .Manifest.GetDescriptor.Digest }}")
    facts = info(playbook, real_registry, subject, referrers=True)
    assert facts["digest"] == image["digest"]
    source = "tag-schema" if referrers_api(real_registry, repo, image["digest"]) is None else "api"
    # the artifactType the peer wrote, also where ggcr's Referrers API lists the empty config's type
    found = [(r["digest"], r["artifact_type"], r["source"]) for r in facts["referrers"]]
    assert found == [(digest, ARTIFACT_TYPE, source)], f"{peer.name} attached {digest}; the collection read {found}"
    assert facts["referrers"][0]["annotations"].get("org.example.peer") == writer


def test_oras_push_artifact_is_read(playbook, oras, tmp_path, real_registry):
    target = f"{real_registry.host}/{unique('oras-push')}:report"
    (tmp_path / "report.json").write_text('{"passed": true}\n')
    pushed = json.loads(oras("push", "--plain-http", "--format", "json", "--artifact-type", ARTIFACT_TYPE, target,
                             "report.json:application/json", cwd=tmp_path))
    facts = info(playbook, real_registry, target)
    assert facts["digest"] == pushed["digest"], "oras push"
    assert (facts["kind"], facts["artifact_type"], facts["subject"]) == ("artifact", ARTIFACT_TYPE, None), "oras push"
    assert facts["layers"] == ["application/json"], "oras push"


def test_crane_append_is_read(playbook, crane, tmp_path, real_registry):
    h, fx = real_registry.host, real_registry.fixtures
    target = f"{h}/{unique('crane-append')}:1"
    (tmp_path / "layer" / "etc").mkdir(parents=True)
    (tmp_path / "layer" / "etc" / "appended").write_text("appended by crane\n")
    subprocess.run(["tar", "-C", str(tmp_path / "layer"), "-cf", str(tmp_path / "layer.tar"), "etc"], check=True)
    crane("append", "--insecure", "-b", f"{h}/fixtures/single:arm64", "-f", str(tmp_path / "layer.tar"),
          "-t", target)
    base = info(playbook, real_registry, f"{h}/fixtures/single:arm64", config=True)
    facts = info(playbook, real_registry, target, config=True)
    assert facts["digest"] == crane.text("digest", "--insecure", target) != fx["single_arm64"]["digest"], "crane append"
    assert facts["platforms"] == ["linux/arm64"], "crane append"
    assert facts["config"]["layers"] == base["config"]["layers"] + 1, "crane append"


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_regctl_index_create_and_add_is_read(media_type, playbook, regctl, real_registry):
    h, fx = real_registry.host, real_registry.fixtures
    first, second = ("single_amd64", "single_arm64") if media_type == OCI_INDEX else \
        ("docker_single", "docker_single_arm64")
    target = f"{h}/{unique('regctl-index')}:1"
    regctl("index", "create", target, "--media-type", media_type, "--ref", fx[first]["reference"])
    regctl("index", "add", target, "--ref", fx[second]["reference"])
    facts = info(playbook, real_registry, target)
    assert facts["digest"] == regctl.text("image", "digest", target), "regctl index create/add"
    assert (facts["media_type"], facts["platforms"]) == (media_type, TWO), "regctl index create/add"
    assert [m["digest"] for m in facts["manifests"]] == [fx[first]["digest"], fx[second]["digest"]]


# --- both: the collection merges into what a peer wrote ----------------------------------------------
def test_merge_into_a_crane_index_is_read_by_crane(playbook, crane, real_registry):
    h, fx = real_registry.host, real_registry.fixtures
    target = f"{h}/{unique('crane-merge')}:1"
    crane("index", "append", "--insecure", "-m", f"{h}/fixtures/single:amd64", "-t", target)
    merge = play(op("merge", "docker_manifest_create", real_registry, name=target, mode="merge",
                    sources=[f"{h}/fixtures/single:arm64"]))
    run = playbook(merge)
    assert run.rc == 0, run.output
    result = run.result("merge")
    assert result["changed"] is True and result["platforms"] == TWO
    body, stated = read_crane(crane, target)
    assert sha256_digest(body) == stated == result["digest"], "crane read another manifest than the merge wrote"
    assert [m["digest"] for m in json.loads(body)["manifests"]] == [fx["single_amd64"]["digest"],
                                                                    fx["single_arm64"]["digest"]], "crane manifest"
    assert playbook(merge).result("merge")["changed"] is False
