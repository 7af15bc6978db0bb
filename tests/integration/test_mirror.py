"""Mirrors that keep digests and signatures: docker_manifest_create across two real registries.

The source registry holds the supply-chain fixtures (harness.referrers) in the referrers tag schema,
as a client writes them on Debian's docker-registry. Targets: a plain docker-registry (no Referrers
API: its tag-schema index is maintained) and one behind the harness Referrers API (answers
``OCI-Subject``: nothing more to maintain). skopeo reads the mirror back.
"""
from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from harness.ansible_run import play, task
from harness.images import skopeo_args
from harness.proxy import Fault, Proxy
from harness.referrers import ReferrersApi, build_supply_chain
from harness.registry import Registry
from harness.suite import skopeo_raw


@pytest.fixture(scope="module")
def source():
    with Registry() as registry:
        registry.supply = build_supply_chain(registry)
        yield registry


@pytest.fixture
def target():
    with Registry() as registry:
        yield registry


@pytest.mark.parametrize("api", [False, True], ids=["tag-schema-target", "api-target"])
def test_a_whole_mirror_keeps_the_digest_and_copies_referrers_once(playbook, source, target, api):
    fx, repo = source.supply, source.supply["repo"]
    referrers_api = ReferrersApi(target) if api else None
    with Proxy(target, fault=referrers_api) as proxy:
        name = f"{proxy.host}/mirror/app:1"
        mirror = task("mirror", "docker_manifest_create", name=name, sources=[f"{source.host}/{repo}:release"],
                      referrers="copy")
        first = playbook(play(mirror))
        assert first.rc == 0, first.output
        result = first.result("mirror")
        assert result["changed"] is True and result["digest"] == fx["release"]["digest"]
        copied = {(c["subject"], c["digest"]) for c in result["referrers_copied"]}
        assert copied == {(fx["release"]["digest"], fx["release"]["signature"]["digest"]),
                          (fx["release"]["amd64"], fx["release"]["amd64_sbom"]["digest"])}

        # skopeo reads the same bytes back: the digest signatures were made for.
        body = skopeo_raw(target, f"{target.host}/mirror/app:1")
        assert "sha256:" + hashlib.sha256(body).hexdigest() == fx["release"]["digest"]
        assert body == fx["release"]["body"]
        tag_schema = f"{target.host}/mirror/app:{fx['release']['digest'].replace(':', '-')}"
        if api:
            assert not any("/manifests/sha256-" in r.path and r.method == "PUT" for r in proxy.log)
        else:
            listed = json.loads(skopeo_raw(target, tag_schema))["manifests"]
            assert [m["digest"] for m in listed] == [fx["release"]["signature"]["digest"]]

        # The mirror's referrers, as docker_manifest_info sees them.
        seen = playbook(play(task("inspect", "docker_manifest_info", images=[name], referrers=True)))
        facts = seen.result("inspect")["images"][0]
        assert facts["supply_chain"]["signature_present"] is True     # attached; nothing verified without keys
        assert facts["manifests"][0]["supply_chain"]["sbom"] is True

        proxy.reset()
        again = playbook(play(mirror))
        assert again.rc == 0, again.output
        assert again.result("mirror")["changed"] is False and again.result("mirror")["referrers_copied"] == []
        assert proxy.writes == 0


def test_a_filtered_mirror_is_a_new_index(playbook, source, target):
    fx, repo = source.supply, source.supply["repo"]
    run = playbook(play(task("mirror", "docker_manifest_create", name=f"{target.host}/mirror/app:arm64",
                             sources=[{"image": f"{source.host}/{repo}:buildx", "platforms": ["linux/arm64"]}])))
    assert run.rc == 0, run.output
    result = run.result("mirror")
    assert result["platforms"] == ["linux/arm64"] and result["digest"] != fx["buildx"]["digest"]
    kept = [m["digest"] for m in result["manifest"]["manifests"]]
    assert kept == [result["manifest"]["manifests"][0]["digest"], fx["buildx"]["attestations"][1]]
    body = skopeo_raw(target, f"{target.host}/mirror/app:arm64")
    assert "sha256:" + hashlib.sha256(body).hexdigest() == result["digest"]


def test_a_target_that_refuses_the_referrer_write_keeps_its_tag_untouched(playbook, source, target):
    fx, repo = source.supply, source.supply["repo"]

    def refuse_tag_schema(request):
        if request.method == "PUT" and "/manifests/sha256-" in request.path:
            return Fault.respond(403, {"Content-Type": "application/json"}, json.dumps(
                {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}).encode())
        return None

    with Proxy(target, fault=refuse_tag_schema) as proxy:
        run = playbook(play(task("mirror", "docker_manifest_create", ignore_errors=True,
                                 name=f"{proxy.host}/mirror/app:refused", sources=[f"{source.host}/{repo}:release"],
                                 referrers="copy")))
        result = run.result("mirror")
        assert result.get("failed") is True
        assert "writing the referrers tag" in result["msg"] and "DENIED" in result["msg"]
        assert "no push permission on" in result["msg"]
    missing = subprocess.run(["skopeo", "inspect", "--raw", *skopeo_args(target),
                              f"docker://{target.host}/mirror/app:refused"], capture_output=True, check=False)
    assert missing.returncode != 0   # the tag was never written
    del fx
