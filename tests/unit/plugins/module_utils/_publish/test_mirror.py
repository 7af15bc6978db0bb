"""Mirrors: an index taken whole keeps its digest, platforms filters one, referrers: copy (FakeRegistry)."""
import json

import pytest
from fake_registry import FakeRegistry
from test_publish import params, ref
from scripted_registry import answer

from ansible_collections.archfleet.multiarch.plugins.module_utils._module import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.index import PlanError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    MEDIA_OCI_EMPTY,
    MEDIA_OCI_MANIFEST,
    sha256_digest,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.referrers import (
    referrer_descriptor,
    tag_schema_tag,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.batch import Batch
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.jobs import parse_jobs
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.mirror import whole_source
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.referrers_copy import copied_facts

SRC = "source.example/team/app"
DST = "mirror.example/copy/app"
SPDX = "application/spdx+json"


class TagSchemaRegistry(FakeRegistry):
    """FakeRegistry with the distribution 2.x answers to what Referrers sends itself: no Referrers API, and
    manifest PUTs by digest stored (without ``OCI-Subject``)."""

    class transport:
        max_retries = 0

    def request(self, method, target, path, kind, headers=None, data=None, **kwargs):
        self._record("request", method, target.canonical, path)
        if method == "PUT":
            self.put_manifest(target, data, headers["Content-Type"])
            return answer(201, b"", {"Docker-Content-Digest": sha256_digest(data)})
        return answer(404, b"404 page not found\n")


def mirror_source():
    """A TagSchemaRegistry holding SRC:1, a buildx-style index (amd64, arm64, s390x and an attestation) in compact
    bytes, with a cosign signature of the index and an SPDX SBOM of amd64 in the tag schema (the ``source``
    fixture of _publish/conftest.py)."""
    fake = TagSchemaRegistry()
    base = ref(SRC + ":1")
    entries = []
    for arch in ("amd64", "arm64", "s390x"):
        digest, size = fake.add_image(base, arch, tag=None)
        entries.append({"mediaType": MEDIA_OCI_MANIFEST, "digest": digest, "size": size,
                        "platform": {"architecture": arch, "os": "linux"}})
    attestation = {"mediaType": MEDIA_OCI_MANIFEST, "digest": entries[2]["digest"], "size": entries[2]["size"],
                   "platform": {"architecture": "unknown", "os": "unknown"},
                   "annotations": {"vnd.docker.reference.digest": entries[1]["digest"],
                                   "vnd.docker.reference.type": "attestation-manifest"}}
    # Compact bytes, as buildx writes them: never what build_index would write.
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": entries + [attestation]}, separators=(",", ":")).encode()
    fake.index_digest, _size = fake.add_manifest(base, body)
    fake.entries = entries
    # A signature of the index and an SBOM of amd64, in the tag schema.
    empty = fake.add_blob(base, b"{}")
    fake.referrers = {}
    for subject, artifact_type in ((fake.index_digest, "application/vnd.dev.cosign.artifact.sig.v1+json"),
                                   (entries[0]["digest"], SPDX)):
        layer = fake.add_blob(base, ("payload of " + subject).encode())
        document = {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST, "artifactType": artifact_type,
                    "config": {"mediaType": MEDIA_OCI_EMPTY, "digest": empty, "size": 2},
                    "layers": [{"mediaType": artifact_type, "digest": layer, "size": 10}],
                    "subject": {"mediaType": MEDIA_OCI_MANIFEST, "digest": subject, "size": 1}}
        digest, size = fake.add_manifest(base, document, tag="")
        fake.add_index(base, [referrer_descriptor(MEDIA_OCI_MANIFEST, digest, size, document)],
                       tag=tag_schema_tag(subject))
        fake.referrers[subject] = digest
    return fake


def run(registry, check_mode=False, **options):
    options = params(**options)
    options.setdefault("referrers", "skip")
    return Batch(registry, *parse_jobs(options), check_mode=check_mode).run()


def test_an_index_taken_whole_keeps_its_bytes_and_digest(source):
    result = run(source, name=DST + ":1", sources=[SRC + ":1"])
    assert result["digest"] == source.index_digest
    stored = source.repositories[("mirror.example", "copy/app")]
    assert stored.manifests[stored.tags["1"]][1] == source.repositories[("source.example", "team/app")].manifests[
        source.index_digest][1]
    source.calls.clear()
    again = run(source, name=DST + ":1", sources=[SRC + ":1"])
    assert again["changed"] is False and source.writes() == []


@pytest.mark.parametrize("change", [dict(annotations={"a": "b"}), dict(attestations="drop"), dict(media_type="docker"),
                                    dict(sources=[{"image": SRC + ":1", "annotations": {"x": "y"}}])])
def test_any_change_makes_a_new_index(source, change):
    options = dict(name=DST + ":1", sources=[SRC + ":1"])
    options.update(change)
    if change.get("media_type") == "docker":
        with pytest.raises(PlanError):
            run(source, **options)
        return
    assert run(source, **options)["digest"] != source.index_digest


def test_platforms_filter_an_index_source_with_its_attestations(source):
    result = run(source, name=DST + ":f", sources=[{"image": SRC + ":1", "platforms": ["linux/arm64", "linux/amd64"]}])
    assert result["platforms"] == ["linux/amd64", "linux/arm64"]
    references = [m for m in result["manifest"]["manifests"] if m.get("annotations")]
    assert [m["annotations"]["vnd.docker.reference.digest"] for m in references] == [source.entries[1]["digest"]]
    assert result["digest"] != source.index_digest
    with pytest.raises(PlanError, match=r"has no entry for platform linux/ppc64le \(it has: linux/amd64, "
                                        r"linux/arm64, linux/s390x\)"):
        run(source, name=DST + ":g", sources=[{"image": SRC + ":1", "platforms": ["linux/ppc64le"]}])


def test_bad_platforms_values_are_refused_before_any_request():
    for value, message in (([], "sources\\[0\\].platforms must be a non-empty list of platforms"),
                           ("linux/amd64", "must be a non-empty list"),
                           (["linux/sparc42"], "sources\\[0\\].platforms\\[0\\]: invalid platform 'linux/sparc42'")):
        with pytest.raises(OptionError, match=message):
            parse_jobs(params(name=DST + ":1", sources=[{"image": SRC + ":1", "platforms": value}]))
    with pytest.raises(OptionError, match=r"parameters are mutually exclusive: platform\|platforms found in sources\[0\]"):
        both = {"image": SRC + ":1", "platform": "linux/amd64", "platforms": ["linux/amd64"]}
        parse_jobs(params(name=DST + ":1", sources=[both]))


def test_referrers_are_copied_into_the_tag_schema_once(source):
    options = params(name=DST + ":1", sources=[SRC + ":1"], referrers="copy")
    result = Batch(source, *parse_jobs(options), check_mode=True, diff=True).run()
    assert result["changed"] is True and source.writes() == []
    assert sorted(c["subject"] for c in result["referrers_copied"]) == sorted(source.referrers)
    for digest in source.referrers.values():
        assert "referrer %s (copied)" % digest in result["diff"]["after"].replace("signature: ", "").replace(
            "sbom: ", "")

    result = run(source, name=DST + ":1", sources=[SRC + ":1"], referrers="copy")
    target = source.repositories[("mirror.example", "copy/app")]
    for subject, digest in source.referrers.items():
        assert digest in target.manifests
        schema = json.loads(target.manifests[target.tags[tag_schema_tag(subject)]][1])
        assert [m["digest"] for m in schema["manifests"]] == [digest]
    # Written before the index tag, so a refused referrer write leaves the tag as it was.
    puts = [c for c in source.calls if c[0] == "put_manifest"]
    assert puts[-1][1] == DST + ":1"

    source.calls.clear()
    again = run(source, name=DST + ":1", sources=[SRC + ":1"], referrers="copy")
    assert again["changed"] is False and again["referrers_copied"] == [] and source.writes() == []


def test_whole_source_needs_exactly_one_untouched_index_source():
    jobs = parse_jobs(params(name=DST + ":1", sources=[SRC + ":1", SRC + ":2"]))[0]
    assert whole_source(jobs[0].sources, {}, "replace", "auto", {}, "keep", None) is None
    one = parse_jobs(params(name=DST + ":1", sources=[SRC + ":1"]))[0][0].sources
    index = type("Manifest", (), {"media_type": "application/vnd.oci.image.index.v1+json"})()
    found = {id(one[0]): index}
    assert whole_source(one, found, "replace", "auto", {}, "keep", None) is index
    assert whole_source(one, found, "replace", "oci", {}, "keep", None) is index
    assert whole_source(one, found, "replace", "docker", {}, "keep", None) is None
    assert whole_source(one, found, "merge", "auto", {}, "keep", {"manifests": []}) is None
    assert copied_facts([]) == []


def test_a_docker_list_holding_oci_manifests_is_not_written_whole_as_docker():
    """media_type=docker needs Docker v2 manifests (docker CLI 20.10 cannot read the rest): a Docker list
    some tool filled with OCI manifests is not copied whole; the entries path refuses it in one sentence."""
    from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_DOCKER_LIST
    fake = FakeRegistry()
    child = fake.add_image(ref(SRC + ":amd64"), "amd64")
    document = {"schemaVersion": 2, "mediaType": MEDIA_DOCKER_LIST, "manifests": [
        {"mediaType": MEDIA_OCI_MANIFEST, "digest": child[0], "size": child[1],
         "platform": {"architecture": "amd64", "os": "linux"}}]}
    fake.add_manifest(ref(SRC + ":odd"), document, tag="odd")
    options = params(name=DST + ":1", sources=[SRC + ":odd"], media_type="docker")
    with pytest.raises(PlanError, match="media_type=docker needs Docker v2 image manifests"):
        Batch(fake, *parse_jobs(options)).run()
    assert not [call for call in fake.calls if call[0] == "put_manifest"]
