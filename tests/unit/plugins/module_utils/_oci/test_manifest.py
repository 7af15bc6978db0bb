"""Index documents to facts (attestations excluded from platforms); image config blobs to dicts."""
import re

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    config_facts,
    index_facts,
    parse_image_config,
)

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def test_index_facts_with_attestation():
    document = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "annotations": {"org.opencontainers.image.source": "https://example.org/app"},
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D1, "size": 500,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D2, "size": 501,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D3, "size": 300,
             "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": D1}},
        ],
    }
    facts = index_facts(document)
    assert facts["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert [m["digest"] for m in facts["manifests"]] == [D1, D2]
    assert facts["manifests"][1]["platform"]["variant"] == "v8"
    assert facts["attestations"] == [{
        "digest": D3, "size": 300, "media_type": "application/vnd.oci.image.manifest.v1+json",
        "reference_digest": D1, "reference_type": "attestation-manifest",
        "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": D1}}]
    assert facts["annotations"] == {"org.opencontainers.image.source": "https://example.org/app"}


def test_unknown_child_media_type_is_reported_not_fatal():
    facts = index_facts({"manifests": [{"mediaType": "application/x-weird", "digest": D1, "size": 1}]})
    assert facts["platforms"] == [] and facts["manifests"][0]["media_type"] == "application/x-weird"


def test_config_facts():
    config = {"created": "2026-01-01T00:00:00Z", "architecture": "arm64",
              "config": {"Labels": {"a": "b"}, "Entrypoint": ["/bin/sh"], "Cmd": None}}
    manifest = {"config": {"digest": D1}, "layers": [{"size": 10}, {"size": 32}]}
    assert config_facts(config, manifest) == {
        "created": "2026-01-01T00:00:00Z", "labels": {"a": "b"}, "entrypoint": ["/bin/sh"], "cmd": None,
        "layers": 2, "size": 42, "config_digest": D1}


def test_parse_image_config_returns_the_object():
    blob = (b'{"architecture": "arm64", "variant": "v8", "os": "linux", "created": "2026-01-01T00:00:00Z", '
            b'"config": {"Labels": {"org.example": "caf\xc3\xa9"}}, "rootfs": {"type": "layers", "diff_ids": []}}')
    config = parse_image_config(blob)
    assert config["architecture"] == "arm64" and config["variant"] == "v8"
    assert config["config"]["Labels"] == {"org.example": "caf\u00e9"}
    assert parse_image_config(b"{}") == {}


@pytest.mark.parametrize("blob, words", [
    (b"not json", "not UTF-8 JSON"),
    (b"", "not UTF-8 JSON"),
    (b'{"os": "linux"', "not UTF-8 JSON"),
    (b'{"os": "\xff"}', "not UTF-8 JSON"),
    (b"[]", "not an object (list)"),
    (b'"linux"', "not an object (str)"),
    (b"42", "not an object (int)"),
    (b"null", "not an object (NoneType)"),
])
def test_parse_image_config_refuses_anything_but_a_json_object(blob, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_image_config(blob)


def test_index_entries_are_the_dict_descriptors_in_order():
    from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import index_entries
    first, second = {"digest": "sha256:" + "a" * 64}, {"digest": "sha256:" + "b" * 64}
    assert index_entries({"manifests": [first, "junk", second]}) == [first, second]
    assert index_entries(None) == [] and index_entries({"layers": []}) == [] and index_entries({"manifests": None}) == []


def test_blob_descriptors_are_config_then_layers_and_copyable_ones_leave_foreign_layers_out():
    from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import blob_descriptors
    config, layer = {"digest": "sha256:" + "c" * 64}, {"digest": "sha256:" + "1" * 64}
    foreign = {"digest": "sha256:" + "2" * 64, "urls": ["https://mcr.microsoft.com/layer"]}
    document = {"config": config, "layers": [layer, foreign, {"size": 3}]}
    assert blob_descriptors(document) == [config, layer, foreign]
    assert blob_descriptors(document, copyable=True) == [config, layer]
    assert blob_descriptors({"manifests": []}) == [] and blob_descriptors(None) == []
