"""Referrers and artifacts: the pure model, the registry client over a scripted session, the facts over FakeRegistry."""
import json

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._module import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci import referrers as model
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    artifact_facts,
    entry_kind,
    manifest_kind,
    predicate_types,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    MEDIA_OCI_EMPTY,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    sha256_digest,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.referrers import Referrers
from ansible_collections.archfleet.multiarch.plugins.module_utils._inspect import ManifestFacts
from ansible_collections.archfleet.multiarch.plugins.module_utils._supply_chain import parse_referrers_option

from fake_registry import FakeRegistry
from scripted_registry import PING_OPEN, Script, answer, client_with

SUBJECT = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
EMPTY = {"mediaType": MEDIA_OCI_EMPTY, "digest": sha256_digest(b"{}"), "size": 2}
SPDX = "application/spdx+json"


def artifact(artifact_type, subject=SUBJECT, layer_type="application/octet-stream"):
    return {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST, "artifactType": artifact_type, "config": EMPTY,
            "layers": [{"mediaType": layer_type, "digest": "sha256:" + "c" * 64, "size": 3}],
            "subject": {"mediaType": MEDIA_OCI_MANIFEST, "digest": subject, "size": 10},
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}}


# ---------------------------------------------------------------------------------------------- pure
def test_artifacts_are_told_from_images_by_artifact_type_or_config():
    assert manifest_kind(MEDIA_OCI_MANIFEST, artifact(SPDX)) == "artifact"
    no_type = dict(artifact(SPDX), config={"mediaType": "application/vnd.cncf.helm.config.v1+json",
                                           "digest": "sha256:" + "d" * 64, "size": 5})
    del no_type["artifactType"]
    assert manifest_kind(MEDIA_OCI_MANIFEST, no_type) == "artifact"
    image = {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST, "layers": [],
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": SUBJECT, "size": 1}}
    assert manifest_kind(MEDIA_OCI_MANIFEST, image) == "image"
    assert manifest_kind(MEDIA_OCI_INDEX, {"manifests": [], "artifactType": "x/y"}) == "artifact"
    assert manifest_kind(MEDIA_OCI_INDEX, {"manifests": []}) == "index"
    facts = artifact_facts(artifact(SPDX, layer_type="text/spdx"))
    assert facts == {"artifact_type": SPDX, "subject": {"digest": SUBJECT, "media_type": MEDIA_OCI_MANIFEST,
                                                        "size": 10}, "layers": ["text/spdx"]}
    assert artifact_facts(no_type)["artifact_type"] == "application/vnd.cncf.helm.config.v1+json"
    assert entry_kind({"mediaType": MEDIA_OCI_MANIFEST, "digest": SUBJECT, "artifactType": SPDX}) == "artifact"


def test_predicate_types_come_from_layer_annotations():
    document = {"layers": [
        {"annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}},
        {"annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}},
        {"annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}, {}]}
    assert predicate_types(document) == ["https://slsa.dev/provenance/v0.2", "https://spdx.dev/Document"]
    assert model.supply_chain([], [{"predicate_types": predicate_types(document)}]) == {
        "signed": False, "signers": [], "signature_present": False, "sbom": True, "provenance": True}


def test_tag_names_and_categories():
    assert model.tag_schema_tag(SUBJECT) == "sha256-" + "a" * 64
    assert model.tag_schema_tag("sha512:" + "f" * 128) == "sha512-" + "f" * 64
    assert [tag for tag, _type in model.cosign_tags(SUBJECT)] == ["sha256-%s.%s" % ("a" * 64, s) for s in ("sig", "att", "sbom")]
    assert model.category(model.COSIGN_SIGNATURE) == "signature"
    assert model.category("application/vnd.cncf.notary.signature") == "signature"
    assert model.category(SPDX) == "sbom"
    assert model.category("application/vnd.cyclonedx+json") == "sbom"
    assert model.category(model.COSIGN_ATTESTATION) == "attestation"
    assert model.category(None, ["https://slsa.dev/provenance/v1"]) == "provenance"
    assert model.category("application/x-other") == "other"


def test_tag_schema_index_adds_each_descriptor_once():
    first = {"mediaType": MEDIA_OCI_MANIFEST, "digest": OTHER, "size": 5, "artifactType": SPDX}
    document, body, digest, added = model.tag_schema_index(None, [first])
    assert added == [first] and json.loads(body) == document and digest == sha256_digest(body)
    again = model.tag_schema_index(document, [first])
    assert again[3] == [] and again[2] == digest


def test_the_option_is_false_true_or_a_list_of_types():
    assert parse_referrers_option(False) is None
    assert parse_referrers_option(True) == []
    assert parse_referrers_option("yes") == []
    assert parse_referrers_option([SPDX]) == [SPDX]
    for bad in ([], [""], [1], {"a": 1}, "sometimes", 3):
        with pytest.raises(OptionError, match="referrers must be true, false or a non-empty list"):
            parse_referrers_option(bad)


# ---------------------------------------------------------------------------------------------- registry client
REF = parse_reference("registry.example/team/app:1.0")
API_PATH = "/v2/team/app/referrers/" + SUBJECT


def index_body(*descriptors):
    return json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": list(descriptors)}).encode()


def test_api_pages_are_followed_and_filtered_when_the_registry_did_not():
    sig = {"mediaType": MEDIA_OCI_MANIFEST, "digest": OTHER, "size": 9, "artifactType": model.COSIGN_SIGNATURE}
    sbom = {"mediaType": MEDIA_OCI_MANIFEST, "digest": "sha256:" + "e" * 64, "size": 8, "artifactType": SPDX,
            "annotations": {"a": "b"}}
    script = Script({**PING_OPEN, ("GET", API_PATH): [
        lambda: answer(200, index_body(sig), {"Link": '<%s?n=1&last=x>; rel="next"' % API_PATH,
                                              "Content-Type": MEDIA_OCI_INDEX}),
        lambda: answer(200, index_body(sbom), {"Content-Type": MEDIA_OCI_INDEX})],
        ("GET", "/v2/team/app/tags/list"): [lambda: answer(200, b'{"tags": ["1.0"]}')]})
    reader = Referrers(client_with(script))
    facts = reader.list(REF, SUBJECT)
    assert [(f["digest"], f["category"], f["source"]) for f in facts] == [
        (OTHER, "signature", "api"), (sbom["digest"], "sbom", "api")]
    assert facts[1]["annotations"] == {"a": "b"}
    assert [s[1] for s in script.sent].count(API_PATH) == 2
    assert reader.supports_api("registry.example") is True
    # One type asked for: sent as the artifactType filter, and the answer filtered here too.
    script2 = Script({**PING_OPEN, ("GET", API_PATH): [lambda: answer(200, index_body(sig, sbom))],
                      ("GET", "/v2/team/app/tags/list"): [lambda: answer(200, b'{"tags": []}')]})
    assert [f["digest"] for f in Referrers(client_with(script2)).list(REF, SUBJECT, [SPDX])] == [sbom["digest"]]


def test_404_falls_back_to_the_tag_schema_once_per_registry_and_finds_cosign_tags():
    listed = {"mediaType": MEDIA_OCI_MANIFEST, "digest": OTHER, "size": 9, "artifactType": SPDX}
    schema_body = index_body(listed)
    tag_path = "/v2/team/app/manifests/sha256-" + "a" * 64
    sig_tag = "sha256-%s.sig" % ("a" * 64)
    sig_body = json.dumps(artifact(model.COSIGN_SIGNATURE)).encode()
    script = Script({**PING_OPEN,
                     ("GET", API_PATH): [lambda: answer(404, b"404 page not found\n")],
                     ("GET", tag_path): [lambda: answer(200, schema_body, {"Content-Type": MEDIA_OCI_INDEX})],
                     ("GET", "/v2/team/app/tags/list"): [lambda: answer(200, json.dumps(
                         {"tags": ["1.0", "sha256-" + "a" * 64, sig_tag]}).encode())],
                     ("HEAD", "/v2/team/app/manifests/" + sig_tag): [lambda: answer(200, b"", {
                         "Docker-Content-Digest": sha256_digest(sig_body), "Content-Length": str(len(sig_body)),
                         "Content-Type": MEDIA_OCI_MANIFEST})]})
    reader = Referrers(client_with(script))
    facts = reader.list(REF, SUBJECT)
    assert [(f["source"], f["category"]) for f in facts] == [("tag-schema", "sbom"), ("cosign-tag", "signature")]
    assert facts[1]["tag"] == sig_tag and facts[1]["digest"] == sha256_digest(sig_body)
    assert reader.supports_api("registry.example") is False
    # The next subject: no referrers request, no second tag list, and no GET for a tag the list lacks.
    assert reader.list(REF, OTHER) == []
    paths = [s[1] for s in script.sent]
    assert paths.count(API_PATH) == 1 and paths.count("/v2/team/app/referrers/" + OTHER) == 0
    assert paths.count("/v2/team/app/tags/list") == 1 and paths.count(tag_path) == 1
    assert not any(p.endswith("sha256-" + "b" * 64) for p in paths)


def test_a_put_referrer_tells_whether_the_registry_indexed_it():
    body = json.dumps(artifact(SPDX)).encode()
    digest = sha256_digest(body)
    for headers, indexed in (({"OCI-Subject": SUBJECT}, True), ({}, False)):
        script = Script({**PING_OPEN, ("PUT", "/v2/team/app/manifests/" + digest): [
            lambda headers=headers: answer(201, b"", dict(headers, **{"Docker-Content-Digest": digest}))]})
        assert Referrers(client_with(script)).put_referrer(REF, body, MEDIA_OCI_MANIFEST) is indexed


# ---------------------------------------------------------------------------------------------- facts (FakeRegistry)
class NoReferrersApi(FakeRegistry):
    """FakeRegistry as Debian's docker-registry: the Referrers API answers 404."""

    class transport:
        max_retries = 0

    def request(self, method, ref, path, kind, **kwargs):
        self._record("request", method, path)
        response = answer(404, b"404 page not found\n")
        return response


def test_facts_of_an_artifact_and_of_an_image_with_referrers():
    registry = NoReferrersApi()
    base = parse_reference("r.example/team/app:1.0")
    image_digest, image_size = registry.add_image(base, "amd64", tag="1.0")
    sbom = artifact(SPDX, subject=image_digest)
    sbom_digest, sbom_size = registry.add_manifest(base, sbom, tag="sbom")
    registry.add_index(base, [dict(model.referrer_descriptor(MEDIA_OCI_MANIFEST, sbom_digest, sbom_size, sbom))],
                       tag=model.tag_schema_tag(image_digest))
    facts = ManifestFacts(registry, required_platforms=["linux/arm64"], referrers=True)
    image, art = facts.gather([base, base.with_tag("sbom")])
    assert image["kind"] == "image" and image["missing_platforms"] == ["linux/arm64"]
    assert [(r["digest"], r["category"], r["source"]) for r in image["referrers"]] == [
        (sbom_digest, "sbom", "tag-schema")]
    assert image["supply_chain"] == {"signed": False, "signers": [], "signature_present": False, "sbom": True,
                                     "provenance": False}
    assert image["manifests"][0]["supply_chain"]["sbom"] is True
    assert art["kind"] == "artifact" and art["artifact_type"] == SPDX and art["platforms"] == []
    assert art["subject"]["digest"] == image_digest and art["missing_platforms"] == []
    # Without the option nothing more is read and no referrers facts appear.
    registry.calls.clear()
    plain = ManifestFacts(registry).gather([base])[0]
    assert "referrers" not in plain and [c[0] for c in registry.calls] == ["authorize", "get_manifest", "get_blob"]


def test_artifact_entries_of_an_index_are_never_missing_platforms():
    registry = NoReferrersApi()
    base = parse_reference("r.example/team/app:1.0")
    amd64 = registry.add_image(base, "amd64")
    entries = [{"mediaType": MEDIA_OCI_MANIFEST, "digest": amd64[0], "size": amd64[1],
                "platform": {"architecture": "amd64", "os": "linux"}},
               {"mediaType": MEDIA_OCI_MANIFEST, "digest": OTHER, "size": 3, "artifactType": SPDX,
                "platform": {"architecture": "arm64", "os": "linux"}}]
    registry.add_index(base, entries, tag="1.0")
    facts = ManifestFacts(registry, required_platforms=["linux/amd64", "linux/arm64"]).gather([base])[0]
    assert [m["kind"] for m in facts["manifests"]] == ["image", "artifact"]
    assert facts["missing_platforms"] == ["linux/arm64"]
