"""The same operations on every real registry, through real ansible-playbook runs.

``real_registry`` (conftest) runs each implementation of conftest.REAL_REGISTRIES: Debian's distribution 2.8,
distribution v3 and go-containerregistry's registry (both built by tools/peers.sh), open and plain HTTP,
seeded with harness.images.seed_fixtures. Each test is one operation (its ``registry_operation`` marker)
and records its outcome with the ``compat`` fixture (harness.compat) into build/registry-compat.json,
from which tools/registries_table.py makes the table of docs/registries.md.

Where a registry cannot do something, the test finds out from the registry itself (a direct request,
not the collection's client), asserts that the module's one-sentence error names that answer, and
records the operation as unsupported.
"""
from __future__ import annotations

import functools
import json
import re
import time

import pytest
import requests

from harness import suite
from harness.suite import REAL_REGISTRIES, registry_options, start_real_registry
from harness.ansible_run import play, task
from harness.images import ALL_MANIFEST_TYPES, HARNESS_USER_AGENT, MULTI_PLATFORMS, OCI_INDEX, PushClient, \
    push_image, push_index, sha256_digest
from harness.proxy import Proxy
from harness.referrers import SBOM_TYPE, SIGNATURE_TYPE, SIMPLESIGNING, push_artifact, push_tag_schema

unique = functools.partial(suite.unique, namespace="compat")  # every repository under compat/
NO_SUCH_DIGEST = "sha256:" + "0" * 64


def run_task(playbook, module: str, **args) -> dict:
    """The result of one task of ``module`` (failures are returned, not raised)."""
    run = playbook(play(task("op", module, ignore_errors=True, **args)))
    return run.result("op")


def creds(registry) -> dict:
    """The module options that reach ``registry`` (credentials where it wants them: Pulp takes no anonymous push)."""
    return registry_options(registry)


def ok(result: dict) -> dict:
    assert not result.get("failed"), result.get("msg")
    return result


def answer(registry, method: str, path: str) -> tuple[int, str]:
    """(status, error code or '') of one request sent straight to ``registry``: what it really answers."""
    response = requests.request(method, registry.url + path, auth=registry.auth_tuple, verify=registry.verify,
                                headers={"User-Agent": HARNESS_USER_AGENT, "Accept": ALL_MANIFEST_TYPES},
                                timeout=30)
    try:
        code = response.json()["errors"][0]["code"]
    except (ValueError, KeyError, IndexError, TypeError):
        code = ""
    return response.status_code, code


def read_digest(registry, repo: str, reference: str) -> str | None:
    """The digest of the manifest at ``repo:reference`` read straight from the registry, None if absent."""
    response = requests.get(f"{registry.url}/v2/{repo}/manifests/{reference}", auth=registry.auth_tuple,
                            verify=registry.verify, headers={"Accept": ALL_MANIFEST_TYPES}, timeout=30)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return sha256_digest(response.content)


def assert_names_answer(message: str, status: int, code: str) -> None:
    """The module failed with one sentence that names the registry's answer (status or error code)."""
    assert "\n" not in message.strip(), message
    assert str(status) in message or (code and code in message), (status, code, message)


def has_referrers_api(registry, repo: str, digest: str) -> bool:
    """Whether ``registry`` answers the OCI 1.1 Referrers API (200 and an OCI index) for ``repo``."""
    response = requests.get(f"{registry.url}/v2/{repo}/referrers/{digest}", auth=registry.auth_tuple,
                            verify=registry.verify, timeout=30)
    return response.status_code == 200 and response.headers.get("Content-Type", "").startswith(OCI_INDEX)


def push_signed_release(registry, repo: str) -> dict:
    """An OCI index (amd64, arm64) at ``repo:release``, signed (signature on the index) with an SBOM on amd64.

    The artifacts are OCI 1.1 (empty config, ``artifactType``, ``subject``); on a registry without the
    Referrers API the tag-schema indexes are written too, as a client does. Returns digests and ``api``.
    """
    url, auth = registry.url, registry.auth_tuple
    images = [push_image(url, repo, platform=p, auth=auth, payload=f"{repo} {p}\n".encode())
              for p in ("linux/amd64", "linux/arm64")]
    index = push_index(url, repo, "release", images, auth=auth)
    subject = {"mediaType": OCI_INDEX, "digest": index["digest"], "size": index["size"]}
    amd64 = {"mediaType": images[0]["media_type"], "digest": images[0]["digest"], "size": images[0]["size"]}
    with PushClient(url, auth=auth, verify=registry.verify) as client:
        signature = push_artifact(client, repo, SIGNATURE_TYPE, subject, f"signature of {repo}\n".encode(),
                                  SIMPLESIGNING)
        sbom = push_artifact(client, repo, SBOM_TYPE, amd64, b'{"spdxVersion": "SPDX-2.3"}\n', SBOM_TYPE)
        api = has_referrers_api(registry, repo, index["digest"])
        if not api:
            push_tag_schema(client, repo, index["digest"], [signature])
            push_tag_schema(client, repo, amd64["digest"], [sbom])
    return {"repo": repo, "digest": index["digest"], "amd64": amd64["digest"], "signature": signature["digest"],
            "sbom": sbom["digest"], "api": api}


def listed_artifact_type(registry, repo: str, subject: str, referrer: str) -> str | None:
    """The ``artifactType`` the registry's Referrers API gives ``referrer`` of ``subject``."""
    response = requests.get(f"{registry.url}/v2/{repo}/referrers/{subject}", verify=registry.verify, timeout=30)
    return next((m.get("artifactType") for m in response.json()["manifests"] if m["digest"] == referrer), None)


# --- reading ------------------------------------------------------------------------------------
@pytest.mark.registry_operation("inspect")
def test_inspect_full_facts(playbook, real_registry, compat):
    h, fx = real_registry.host, real_registry.fixtures
    refs = [f"{h}/fixtures/multi:latest", f"{h}/fixtures/dockerlist:latest", f"{h}/fixtures/single:amd64",
            fx["missing_tag"]]
    result = ok(run_task(playbook, "docker_manifest_info", **creds(real_registry),
                         images=refs, require_platforms=["linux/arm64"]))
    multi, dockerlist, single, missing = result["images"]
    assert multi["kind"] == "index" and multi["digest"] == fx["multi"]["digest"]
    assert multi["platforms"] == list(MULTI_PLATFORMS)
    assert {m["platform_string"]: m["digest"] for m in multi["manifests"]} == fx["multi"]["platforms"]
    assert [a["reference_digest"] for a in multi["attestations"]] == [fx["multi"]["platforms"]["linux/amd64"]]
    assert dockerlist["digest"] == fx["dockerlist"]["digest"]
    assert sorted(dockerlist["platforms"]) == ["linux/amd64", "linux/arm64"]
    assert single["digest"] == fx["single_amd64"]["digest"] and single["missing_platforms"] == ["linux/arm64"]
    assert missing["exists"] is False and missing["digest"] is None


@pytest.mark.registry_operation("digest_only")
def test_digest_only(playbook, real_registry, compat):
    h, fx = real_registry.host, real_registry.fixtures
    refs = [f"{h}/fixtures/multi:latest", f"{h}/fixtures/single:amd64", fx["missing_tag"]]
    result = ok(run_task(playbook, "docker_manifest_info", **creds(real_registry), images=refs, digest_only=True))
    assert [(i["exists"], i["digest"]) for i in result["images"]] == [
        (True, fx["multi"]["digest"]), (True, fx["single_amd64"]["digest"]), (False, None)]
    stats = result["registry_stats"]["requests"]
    compat.note(f"{stats.get('HEAD manifest', 0)} manifest HEAD and {stats.get('GET manifest', 0)} manifest GET "
                f"for {len(refs)} references")


@pytest.mark.registry_operation("enumeration")
def test_enumeration_of_repositories_and_catalog(playbook, real_registry, compat):
    h, fx = real_registry.host, real_registry.fixtures
    result = ok(run_task(playbook, "docker_manifest_info", **creds(real_registry),
                         digest_only=True, repositories=[f"{h}/fixtures/single"],
                         catalog=[{"registry": h, "repositories": ["^fixtures/(multi|docker)"]}]))
    listed = [r["name"] for r in result["repositories"]]
    assert listed[0] == f"{h}/fixtures/single" and result["repositories"][0]["matched"] == ["amd64", "arm64"]
    digests = {i["canonical"]: i["digest"] for i in result["images"]}
    assert digests[f"{h}/fixtures/single:amd64"] == fx["single_amd64"]["digest"]
    from_catalog = sorted(listed[1:])
    if not from_catalog:
        status, code = answer(real_registry, "GET", "/v2/_catalog")
        assert status != 200, "the catalog answers 200 but the module listed no repository from it"
        compat.unsupported(f"GET /v2/_catalog answers {status} {code}; the module lists no repository (documented)")
        return
    assert from_catalog == [f"{h}/fixtures/{r}" for r in ("docker-single", "dockerlist", "multi")]
    assert digests[f"{h}/fixtures/multi:latest"] == fx["multi"]["digest"]


# --- writing ------------------------------------------------------------------------------------
@pytest.mark.registry_operation("publish")
def test_publish_from_two_single_platform_images(playbook, real_registry, compat):
    h, fx = real_registry.host, real_registry.fixtures
    repo = unique("publish")
    result = ok(run_task(playbook, "docker_manifest_create", **creds(real_registry),
                         name=f"{h}/{repo}:1.0", tags=["latest"],
                         sources=[f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64"]))
    assert result["changed"] is True and result["platforms"] == ["linux/amd64", "linux/arm64"]
    assert [m["digest"] for m in result["manifest"]["manifests"]] == [fx["single_amd64"]["digest"],
                                                                      fx["single_arm64"]["digest"]]
    assert read_digest(real_registry, repo, "1.0") == result["digest"] == read_digest(real_registry, repo, "latest")
    compat.note(f"blobs mounted {result['copied']['blobs_mounted']}, copied {result['copied']['blobs_copied']}")


@pytest.mark.registry_operation("rerun_no_writes")
def test_rerun_writes_nothing(playbook, real_registry, compat):
    with Proxy(real_registry) as proxy:
        h = proxy.host
        args = dict(name=f"{h}/{unique('rerun')}:1", tags=["latest"],
                    sources=[f"{h}/fixtures/single:amd64", f"{h}/fixtures/docker-single:arm64"])
        first = ok(run_task(playbook, "docker_manifest_create", **creds(real_registry), **args))
        proxy.reset()
        again = ok(run_task(playbook, "docker_manifest_create", **creds(real_registry), **args))
        assert again["changed"] is False and again["digest"] == first["digest"]
        assert proxy.writes == 0, proxy.counts
        compat.note(f"0 writes, {sum(proxy.counts.values())} requests on the re-run")


@pytest.mark.registry_operation("merge")
def test_merge_adds_a_platform(playbook, real_registry, compat):
    h = real_registry.host
    repo = unique("merge")
    base = ok(run_task(playbook, "docker_manifest_create", **creds(real_registry), name=f"{h}/{repo}:1",
                       sources=[f"{h}/fixtures/single:amd64"]))
    merged = ok(run_task(playbook, "docker_manifest_create", **creds(real_registry),
                         name=f"{h}/{repo}:1", mode="merge", force_platform=True,
                         sources=[{"image": f"{h}/fixtures/docker-single:arm64", "platform": "linux/s390x"}]))
    assert base["platforms"] == ["linux/amd64"]
    assert merged["changed"] is True and merged["platforms"] == ["linux/amd64", "linux/s390x"]
    assert read_digest(real_registry, repo, "1") == merged["digest"]


@pytest.mark.registry_operation("tag_delete")
def test_tag_delete_keeps_the_other_tags(playbook, real_registry, compat):
    h = real_registry.host
    repo = unique("delete")
    published = ok(run_task(playbook, "docker_manifest_create", **creds(real_registry),
                            name=f"{h}/{repo}:rc1", tags=["1.0"],
                            sources=[f"{h}/fixtures/single:amd64"]))
    result = run_task(playbook, "docker_manifest_create", **creds(real_registry),
                      name=f"{h}/{repo}:rc1", state="absent")
    if result.get("failed"):
        status, code = answer(real_registry, "DELETE", f"/v2/{repo}/manifests/{NO_SUCH_DIGEST}")
        assert status not in (202, 404), f"the registry takes deletes ({status}), yet: {result['msg']}"
        assert_names_answer(result["msg"], status, code)
        compat.unsupported(f"DELETE answers {status} {code}: {result['msg']}")
        return
    assert result["changed"] is True and result["digest"] == published["digest"]
    # Pulp answers a DELETE with 202 and deletes in a worker task a moment later (distribution-spec: 202
    # Accepted): the tag is gone within seconds, not at once.
    deadline = time.monotonic() + 30
    while read_digest(real_registry, repo, "rc1") is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert read_digest(real_registry, repo, "rc1") is None
    assert read_digest(real_registry, repo, "1.0") == published["digest"]
    compat.note(f"deleted: {result['deleted']}")


# --- referrers ----------------------------------------------------------------------------------
@pytest.mark.registry_operation("referrers_read")
def test_referrers_read(playbook, real_registry, compat):
    signed = push_signed_release(real_registry, unique("signed"))
    h, repo = real_registry.host, signed["repo"]
    facts = ok(run_task(playbook, "docker_manifest_info", **creds(real_registry),
                        images=[f"{h}/{repo}:release"], referrers=True))["images"][0]
    source = "api" if signed["api"] else "tag-schema"
    assert [(r["digest"], r["source"]) for r in facts["referrers"]] == [(signed["signature"], source)]
    assert [(r["digest"], r["source"]) for r in facts["manifests"][0]["referrers"]] == [(signed["sbom"], source)]
    listed_type = listed_artifact_type(real_registry, repo, signed["digest"], signed["signature"]) if signed["api"] \
        else SIGNATURE_TYPE
    # Where the registry lists the signature with another artifactType (go-containerregistry v0.22.1 lists the
    # config's media type; distribution-spec 1.1 says the manifest's artifactType), the module reads the
    # referrer's own manifest and reports the type it states.
    assert facts["referrers"][0]["artifact_type"] == SIGNATURE_TYPE
    # A signature is attached (not verified: no keys are given). supply_chain.signature_present says so where
    # supply_chain.signed means a verified signature; before that, signed meant attached.
    chain = facts["supply_chain"]
    assert facts["referrers"][0]["category"] == "signature" and chain.get("signature_present", chain["signed"]) is True
    assert facts["manifests"][0]["supply_chain"]["sbom"] is True
    compat.note(f"source: {source}" + ("" if listed_type == SIGNATURE_TYPE else
                                       f"; the API lists the signature as {listed_type}, its manifest is read"))


@pytest.mark.registry_operation("referrers_copy")
def test_referrers_copy_with_a_mirror(playbook, real_registry, compat):
    signed = push_signed_release(real_registry, unique("signed"))
    h, target = real_registry.host, unique("mirror")
    result = ok(run_task(playbook, "docker_manifest_create", **creds(real_registry), name=f"{h}/{target}:1",
                         sources=[f"{h}/{signed['repo']}:release"], referrers="copy"))
    assert result["digest"] == signed["digest"] == read_digest(real_registry, target, "1")
    wanted = {(signed["digest"], signed["signature"]): "the index's signature",
              (signed["amd64"], signed["sbom"]): "the amd64 entry's SBOM"}
    copied = {(c["subject"], c["digest"]) for c in result["referrers_copied"]}
    assert copied == set(wanted), "not copied: " + ", ".join(what for key, what in wanted.items() if key not in copied)
    seen = ok(run_task(playbook, "docker_manifest_info", **creds(real_registry),
                       images=[f"{h}/{target}:1"], referrers=True))["images"][0]
    assert [r["digest"] for r in seen["referrers"]] == [signed["signature"]]
    assert [r["digest"] for r in seen["manifests"][0]["referrers"]] == [signed["sbom"]]
    tag_schema = read_digest(real_registry, target, signed["digest"].replace(":", "-")) is not None
    compat.note(f"read through the {'api' if signed['api'] else 'tag schema'}; "
                f"the mirror's tag-schema index {'written' if tag_schema else 'not needed'}")


# --- authentication -----------------------------------------------------------------------------
@pytest.mark.registry_operation("token_auth")
def test_token_auth_reads_and_publishes(playbook, real_registry, compat):
    implementation = real_registry.implementation
    if not REAL_REGISTRIES[implementation].token:
        compat.unsupported(f"{implementation} serves without authentication here (no token auth configured)")
        return
    with start_real_registry(implementation, auth="token") as registry:
        h, creds = registry.host, {"username": registry.username, "password": registry.password}
        for platform in ("linux/amd64", "linux/arm64"):
            push_image(registry.url, "app", platform.split("/")[1], platform=platform, auth=registry.auth_tuple)
        published = ok(run_task(playbook, "docker_manifest_create", name=f"{h}/app:1",
                                sources=[f"{h}/app:amd64", f"{h}/app:arm64"], **creds))
        facts = ok(run_task(playbook, "docker_manifest_info", images=[f"{h}/app:1"], **creds))["images"][0]
        assert facts["digest"] == published["digest"] and facts["platforms"] == ["linux/amd64", "linux/arm64"]
        denied = run_task(playbook, "docker_manifest_info", images=[f"{h}/app:1"], username=registry.username,
                          password="wrong-" + registry.password)
        assert denied.get("failed") and registry.password not in json.dumps(denied)
        assert re.search(r"401|credentials|unauthorized|denied", denied["msg"], re.IGNORECASE), denied["msg"]
        compat.note("Bearer tokens from Pulp's own token service (ES256)" if implementation == "pulp"
                    else "Bearer tokens from harness.tokenserver (RS256, x5c)")


# --- the harness's registries themselves (nothing recorded) -------------------------------------
def test_access_log_of_every_implementation(real_registry):
    """Each implementation's log parses into method, path, status and user agent (the seeding's pushes included)."""
    puts = [e for e in real_registry.access_log() if e.method == "PUT" and "/manifests/" in e.path and e.from_harness
            and e.status != 401]     # a registry with auth challenges the harness's first try (Pulp)
    assert len(puts) >= 10 and {e.status for e in puts} == {201}


@pytest.mark.parametrize("variant", [{"auth": "htpasswd", "tls": True}, {"auth": "token", "tls": True}],
                         ids=["tls-htpasswd", "tls-token"])
def test_distribution_3_takes_the_variants_of_2_8(playbook, variant):
    with start_real_registry("distribution-3", **variant) as registry:
        pushed = push_image(registry.url, "app", "1", auth=registry.auth_tuple, verify=registry.verify)
        facts = ok(run_task(playbook, "docker_manifest_info", images=[f"{registry.host}/app:1"],
                            **registry_options(registry)))["images"][0]
        assert facts["digest"] == pushed["digest"] and registry.url.startswith("https://")
