"""Artifacts, referrers and attestation predicates in docker_manifest_info, against a real registry.

Debian's docker-registry has no Referrers API: read directly it exercises the tag-schema fallback;
behind the proxy with harness.referrers.ReferrersApi it has the API (answered from its storage).
Request counts are measured at a counting proxy.
"""
from __future__ import annotations

import pytest

from harness.ansible_run import play, task
from harness.proxy import Proxy
from harness.referrers import BUNDLE_TYPE, SBOM_TYPE, SIGNATURE_TYPE, SLSA, SPDX_PREDICATE, ReferrersApi, \
    build_supply_chain
from harness.registry import Registry


@pytest.fixture(scope="module")
def supply():
    with Registry() as registry:
        registry.supply = build_supply_chain(registry)
        yield registry


def inspect(playbook, host, images, **options):
    run = playbook(play(task("inspect", "docker_manifest_info", images=images, **options)))
    assert run.rc == 0, run.output
    return run.result("inspect")


def test_facts_through_the_tag_schema_fallback(playbook, supply):
    fx, repo = supply.supply, supply.supply["repo"]
    with Proxy(supply) as proxy:
        h = proxy.host
        images = [f"{h}/{repo}:signed", f"{h}/{repo}:cosign", f"{h}/{repo}:buildx", f"{h}/{repo}:bundle",
                  f"{h}/{repo}:mixed", f"{h}/{repo}@{fx['signed']['sbom']['digest']}"]
        result = inspect(playbook, h, images, referrers=True, require_platforms=["linux/amd64", "linux/arm64"])
        signed, cosign, buildx, bundle, mixed, sbom = result["images"]

        assert signed["kind"] == "image"
        assert [(r["digest"], r["category"], r["source"]) for r in signed["referrers"]] == [
            (fx["signed"]["signature"]["digest"], "signature", "tag-schema"),
            (fx["signed"]["sbom"]["digest"], "sbom", "tag-schema")]
        assert signed["referrers"][0]["artifact_type"] == SIGNATURE_TYPE
        # Attached, not verified (no signature_keys): present, but not signed.
        assert signed["supply_chain"] == {"signed": False, "signers": [], "signature_present": True, "sbom": True,
                                          "provenance": False}
        assert signed["manifests"][0]["supply_chain"]["signature_present"] is True
        assert "signatures" not in signed

        assert [(r["tag"], r["category"], r["source"]) for r in cosign["referrers"]] == [
            (fx["cosign"]["sig"]["tag"], "signature", "cosign-tag"),
            (fx["cosign"]["att"]["tag"], "attestation", "cosign-tag")]
        assert cosign["referrers"][0]["digest"] == fx["cosign"]["sig"]["digest"]
        assert cosign["supply_chain"]["signature_present"] is True

        assert buildx["kind"] == "index" and buildx["platforms"] == ["linux/amd64", "linux/arm64"]
        assert [a["predicate_types"] for a in buildx["attestations"]] == [[SLSA, SPDX_PREDICATE]] * 2
        assert [m["supply_chain"] for m in buildx["manifests"]] == [
            {"signed": False, "signers": [], "signature_present": False, "sbom": True, "provenance": True}] * 2
        assert buildx["supply_chain"] == {"signed": False, "signers": [], "signature_present": False, "sbom": False,
                                          "provenance": False}

        assert bundle["kind"] == "artifact" and bundle["artifact_type"] == BUNDLE_TYPE
        assert bundle["layers"] == ["application/vnd.oci.image.manifest.v1+json"]
        assert bundle["missing_platforms"] == [] and bundle["platforms"] == []

        # An artifact entry of an index is classified, and never taken for a platform.
        assert [m["kind"] for m in mixed["manifests"]] == ["image", "artifact"]
        assert mixed["missing_platforms"] == ["linux/arm64"]

        assert sbom["kind"] == "artifact" and sbom["artifact_type"] == SBOM_TYPE
        assert sbom["subject"] == {"digest": fx["signed"]["digest"], "size": sbom["subject"]["size"],
                                   "media_type": "application/vnd.oci.image.manifest.v1+json"}
        assert sbom["layers"] == [SBOM_TYPE] and sbom["missing_platforms"] == []
        assert "config" not in sbom

        # Cost: the first subject finds the API missing (one 404), every subject then costs one GET of its
        # tag-schema tag; one tag list for the repository; one HEAD per cosign tag; one GET per attestation.
        requests = proxy.log
        assert sum(1 for r in requests if "/referrers/" in r.path) == 1
        assert proxy.count("GET", "other") >= 1     # tags/list
        assert sum(1 for r in requests if r.path.endswith("/tags/list?n=1000")) == 1


def test_facts_through_the_referrers_api_with_pages_and_a_filter(playbook, supply):
    fx, repo = supply.supply, supply.supply["repo"]
    api = ReferrersApi(supply, page_size=1)
    with Proxy(supply, fault=api) as proxy:
        h = proxy.host
        result = inspect(playbook, h, [f"{h}/{repo}:signed", f"{h}/{repo}:release"], referrers=True)
        signed, release = result["images"]
        assert sorted((r["digest"], r["source"]) for r in signed["referrers"]) == sorted([
            (fx["signed"]["signature"]["digest"], "api"), (fx["signed"]["sbom"]["digest"], "api")])
        assert [r["source"] for r in release["referrers"]] == ["api"]
        assert release["supply_chain"]["signature_present"] is True
        amd64 = release["manifests"][0]
        assert [r["digest"] for r in amd64["referrers"]] == [fx["release"]["amd64_sbom"]["digest"]]
        assert amd64["supply_chain"] == {"signed": False, "signers": [], "signature_present": False, "sbom": True,
                                         "provenance": False}
        assert release["manifests"][1]["referrers"] == []
        # signed: 2 referrers, 1 per page -> 2 requests; release + 2 platforms: 1 request each (empty or 1).
        assert sum(1 for r in proxy.log if "/referrers/" in r.path) == 5
        assert sum(1 for r in proxy.log if "/manifests/sha256-" in r.path) == 0   # no tag-schema reads

        proxy.reset()
        filtered = inspect(playbook, h, [f"{h}/{repo}:signed"], referrers=[SBOM_TYPE])["images"][0]
        assert [r["digest"] for r in filtered["referrers"]] == [fx["signed"]["sbom"]["digest"]]
        assert [r.path for r in proxy.log if "/referrers/" in r.path] == [
            f"/v2/{repo}/referrers/{fx['signed']['digest']}?artifactType=application%2Fspdx%2Bjson"]


def test_referrers_false_reads_nothing_more(playbook, supply):
    repo = supply.supply["repo"]
    with Proxy(supply) as proxy:
        h = proxy.host
        images = [f"{h}/{repo}:signed", f"{h}/{repo}:buildx"]
        plain = inspect(playbook, h, images)
        counts = dict(proxy.counts)
        for image in plain["images"]:
            assert "referrers" not in image and "supply_chain" not in image
        assert counts == {("GET", "other"): 1, ("GET", "manifest"): 2, ("GET", "blob"): 1}


def test_referrers_read_and_copied_with_bearer_tokens(playbook):
    """Token auth: referrers, tag lists and tag-schema reads use the pull token; the copy pushes with pull,push."""
    with Registry(auth="token") as registry:
        fx = build_supply_chain(registry, "tokens/app")
        h, auth = registry.host, {"username": registry.username, "password": registry.password}
        run = playbook(play(
            task("inspect", "docker_manifest_info", images=[f"{h}/tokens/app:signed"], referrers=True, **auth),
            task("mirror", "docker_manifest_create", name=f"{h}/tokens/mirror:1", sources=[f"{h}/tokens/app:release"],
                 referrers="copy", **auth),
            task("again", "docker_manifest_info", images=[f"{h}/tokens/mirror:1"], referrers=True, **auth)))
        assert run.rc == 0, run.output
        assert run.result("inspect")["images"][0]["supply_chain"] == {
            "signed": False, "signers": [], "signature_present": True, "sbom": True, "provenance": False}
        assert run.result("mirror")["digest"] == fx["release"]["digest"]
        assert len(run.result("mirror")["referrers_copied"]) == 2
        mirrored = run.result("again")["images"][0]
        assert mirrored["supply_chain"]["signature_present"] is True
        assert mirrored["manifests"][0]["supply_chain"]["sbom"] is True
