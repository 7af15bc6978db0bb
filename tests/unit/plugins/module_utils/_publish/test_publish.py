"""The publish layer against an in-memory registry: plan, write order, re-runs, merge, check mode, delete."""
import json

import pytest
from fake_registry import FakeRegistry

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._module import registry_argument_spec
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.index import PlanError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_OCI_INDEX, sha256_digest
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.batch import Batch
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.jobs import (
    ARGUMENT_RULES,
    ARGUMENT_SPEC,
    parse_jobs,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError

REG = "registry.example"
OTHER = "mirror.example"


def ref(text):
    return parse_reference(text)


def params(**options):
    """docker_manifest_create's params as AnsibleModule makes them: checked against the module's own argument
    spec and rules (ArgumentSpecValidator, the validator AnsibleModule runs), defaults filled in."""
    options.setdefault("concurrency", 4)
    result = ArgumentSpecValidator(registry_argument_spec(**ARGUMENT_SPEC), **ARGUMENT_RULES).validate(options)
    if result.error_messages:
        raise OptionError("; ".join(result.error_messages))
    return result.validated_parameters


def publish(registry, check_mode=False, diff=False, **options):
    options = params(**options)
    return Batch(registry, *parse_jobs(options), check_mode=check_mode, diff=diff).run()


@pytest.fixture
def registry():
    fake = FakeRegistry()
    fake.add_image(ref(REG + "/builds/app:amd64"), "amd64")
    fake.add_image(ref(REG + "/builds/app:arm64"), "arm64")
    fake.add_image(ref(REG + "/builds/app:armv7"), "arm", variant="v7")
    return fake


SOURCES = [REG + "/builds/app:amd64", REG + "/builds/app:arm64"]


def test_first_publish_writes_children_before_the_index_and_extra_tags_last(registry):
    result = publish(registry, name=REG + "/team/app:1.0", sources=SOURCES, tags=["latest"])
    assert result["changed"] is True
    assert result["platforms"] == ["linux/amd64", "linux/arm64"]
    assert result["written_tags"] == [REG + "/team/app:1.0", REG + "/team/app:latest"]
    puts = [call[1] for call in registry.calls if call[0] == "put_manifest"]
    assert [p.split("@")[0] if "@" in p else p for p in puts[:2]] == [REG + "/team/app"] * 2
    assert puts[2:] == [REG + "/team/app:1.0", REG + "/team/app:latest"]
    stored = registry.repo(ref(REG + "/team/app")).manifests[result["digest"]][1]
    assert sha256_digest(stored) == result["digest"]
    assert json.loads(stored)["mediaType"] == MEDIA_OCI_INDEX
    # Blobs come over by cross-repository mount, not by copy.
    assert result["copied"]["blobs_mounted"] == 4 and result["copied"]["blobs_copied"] == 0
    assert result["copied"]["manifests"] == 2


def test_unchanged_rerun_writes_nothing_and_reads_little(registry):
    first = publish(registry, name=REG + "/team/app:1.0", sources=SOURCES, tags=["latest"])
    registry.calls.clear()
    again = publish(registry, name=REG + "/team/app:1.0", sources=SOURCES, tags=["latest"])
    assert again["changed"] is False and again["digest"] == first["digest"] and again["written_tags"] == []
    assert registry.writes() == []
    kinds = [call[0] for call in registry.calls if call[0] != "authorize"]
    assert kinds.count("get_manifest") == 1          # the current index, once
    assert kinds.count("head_manifest") == 3         # each source given by tag, and the extra tag
    assert "get_blob" not in kinds


def test_check_mode_predicts_the_digest_and_writes_nothing(registry):
    predicted = publish(registry, check_mode=True, diff=True, name=REG + "/team/app:1.0", sources=SOURCES)
    assert registry.writes() == []
    assert predicted["changed"] is True
    assert predicted["diff"]["before"] == "" and "linux/arm64: sha256:" in predicted["diff"]["after"]
    real = publish(registry, name=REG + "/team/app:1.0", sources=SOURCES)
    assert real["digest"] == predicted["digest"]


def test_merge_adds_a_platform_and_keeps_the_others(registry):
    publish(registry, name=REG + "/team/app:1.0", sources=SOURCES)
    merged = publish(registry, name=REG + "/team/app:1.0", sources=[REG + "/builds/app:armv7"], mode="merge")
    assert merged["platforms"] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]


def test_duplicate_platform_across_sources_writes_nothing(registry):
    registry.add_image(ref(REG + "/builds/app:amd64-again"), "amd64", layers=2)
    with pytest.raises(PlanError, match="duplicate platform linux/amd64"):
        publish(registry, name=REG + "/team/app:1.0", sources=SOURCES + [REG + "/builds/app:amd64-again"])
    assert registry.writes() == []


def test_a_bad_source_anywhere_in_a_batch_writes_nothing(registry):
    with pytest.raises(RegistryError, match=r"indexes\[1\] \(registry.example/team/two:latest\): source "
                                            r"registry.example/builds/app:nope does not exist"):
        publish(registry, indexes=[{"name": REG + "/team/one", "sources": SOURCES},
                                   {"name": REG + "/team/two", "sources": [REG + "/builds/app:nope"]}])
    assert registry.writes() == []


def test_cross_registry_sources_are_copied(registry):
    result = publish(registry, name=OTHER + "/team/app:1.0", sources=SOURCES)
    assert result["copied"]["blobs_copied"] == 4 and result["copied"]["blobs_mounted"] == 0
    assert registry.repo(ref(OTHER + "/team/app")).tags["1.0"] == result["digest"]


def test_a_bad_image_config_is_a_registry_error_not_an_unexpected_one(registry):
    target = ref(REG + "/builds/broken:1")
    config_digest = registry.add_blob(target, b"not json")
    registry.add_manifest(target, {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                              "digest": config_digest, "size": 8}, "layers": []})
    with pytest.raises(RegistryError, match="image config .* of registry.example/builds/broken is not valid JSON"):
        publish(registry, name=REG + "/team/app:1.0", sources=[REG + "/builds/broken:1"])


def test_push_permission_is_checked_before_any_write(registry):
    registry.granted = {(REG, "team/app"): {"pull"}}
    with pytest.raises(RegistryError, match="no push permission on registry.example/team/app: the token service "
                                            "granted only pull, not push; nothing was written"):
        publish(registry, name=REG + "/team/app:1.0", sources=SOURCES)
    assert registry.writes() == []


def test_index_sources_keep_or_drop_attestations(registry):
    amd64 = registry.repo(ref(REG + "/builds/app")).tags["amd64"]
    size = len(registry.repo(ref(REG + "/builds/app")).manifests[amd64][1])
    attestation, att_size = registry.add_manifest(ref(REG + "/builds/app"), {"schemaVersion": 2, "layers": [],
                                                                             "config": {}}, media_type="x", tag="")
    registry.add_index(ref(REG + "/upstream/app:1"), [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64, "size": size,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": attestation, "size": att_size,
         "platform": {"architecture": "unknown", "os": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": amd64}}])
    registry.repo(ref(REG + "/upstream/app")).manifests.update(registry.repo(ref(REG + "/builds/app")).manifests)
    kept = publish(registry, check_mode=True, name=REG + "/team/app:1.0", sources=[REG + "/upstream/app:1"])
    assert len(kept["manifest"]["manifests"]) == 2
    dropped = publish(registry, check_mode=True, name=REG + "/team/app:1.0", sources=[REG + "/upstream/app:1"],
                      attestations="drop")
    assert [m["digest"] for m in dropped["manifest"]["manifests"]] == [amd64]


def test_absent_deletes_only_the_named_tag_and_reports_it(registry):
    publish(registry, name=REG + "/team/app:1.0", sources=SOURCES, tags=["latest"])
    predicted = publish(registry, check_mode=True, diff=True, name=REG + "/team/app:1.0", state="absent")
    assert predicted["changed"] is True and predicted["written_tags"] == [REG + "/team/app:1.0"]
    assert not [call for call in registry.calls if call[0] in ("delete_manifest", "delete_tag")]
    assert predicted["diff"]["after"] == "" and predicted["diff"]["before"].startswith(REG + "/team/app:1.0: sha256:")
    deleted = publish(registry, name=REG + "/team/app:1.0", state="absent")
    assert deleted["changed"] is True and deleted["deleted"] == "tag"
    assert sorted(registry.repo(ref(REG + "/team/app")).tags) == ["latest"]
    assert publish(registry, name=REG + "/team/app:1.0", state="absent")["changed"] is False


def test_delete_manifest_names_every_tag_and_refuses_what_an_index_lists(registry):
    first = publish(registry, name=REG + "/builds/app:1.0", sources=SOURCES)
    amd64 = registry.repo(ref(REG + "/builds/app")).tags["amd64"]
    registry.repo(ref(REG + "/builds/app")).tags["amd64-copy"] = amd64
    with pytest.raises(PlanError, match=r"refusing to delete manifest %s of registry.example/builds/app:amd64: the "
                                        r"index\(es\) registry.example/builds/app:1.0 in the same repository" % amd64):
        publish(registry, name=REG + "/builds/app:amd64", state="absent", delete_manifest=True)
    forced = publish(registry, check_mode=True, name=REG + "/builds/app:amd64", state="absent",
                     delete_manifest=True, force=True)
    assert forced["written_tags"] == [REG + "/builds/app:amd64", REG + "/builds/app:amd64-copy"]
    assert first["digest"] and registry.writes()[-1][0] == "put_manifest"


def test_batch_results_carry_every_index(registry):
    result = publish(registry, diff=True, indexes=[{"name": REG + "/team/one:1", "sources": SOURCES[:1]},
                                                   {"name": REG + "/team/two:1", "sources": SOURCES[1:]}])
    assert result["changed"] is True and len(result["indexes"]) == 2 and len(result["diff"]) == 2
    assert [r["tags"] for r in result["indexes"]] == [[REG + "/team/one:1"], [REG + "/team/two:1"]]


@pytest.mark.parametrize("options, message", [
    # The argument spec's rules (AnsibleModule refuses these before parse_jobs runs).
    (dict(), "one of the following is required: name, indexes"),
    (dict(indexes=[{"name": "x/a", "source": ["x/b"]}]),
     r"indexes.source. Supported parameters include: annotations, name, sources, tags"),
    (dict(indexes=[{"sources": ["x/b"]}]), "missing required arguments: name found in indexes"),
    (dict(name="x/app", sources=["x/b"], signing_key_passphrase="pw"),
     "missing parameter\\(s\\) required by 'signing_key_passphrase': signing_key"),
    (dict(name="x/app", sources=[]), "sources must list at least one image when state=present"),
    (dict(name="x/app@sha256:" + "a" * 64, sources=["x/b"]), "must be a tag, not a digest"),
    (dict(name="x/app", sources=[{"image": "x/b", "arch": "arm64"}]),
     r"Unsupported parameters: sources\[0\]\.arch\. Supported parameters include: annotations, image, platform, "
     r"platforms\."),
    (dict(name="x/app", sources=[{"platform": "linux/arm64"}]), r"missing required arguments: image found in sources\[0\]"),
    (dict(name="x/app", sources=[42]),
     r"sources\[0\] must be a reference string or a dict with image, platform, platforms, annotations; got int"),
    (dict(indexes=[{"name": "x/a", "sources": [{"image": "x/b", "os": "linux"}]}]),
     r"Unsupported parameters: indexes\[0\]\.sources\[0\]\.os\."),
    (dict(name="x/app", sources=[{"image": "x/b", "platform": "linux/arm46"}]), r"sources\[0\]: invalid platform"),
    (dict(name="x/app", sources=["x/b"], tags=["latest", "bad tag"]), r"tags\[1\]"),
    (dict(name="x/app", sources=["x/b"], tags=["latest"], indexes=[{"name": "x/c"}]),
     r"parameters are mutually exclusive: indexes\|name, indexes\|sources, indexes\|tags"),
    (dict(indexes=[{"name": "x/a", "sources": ["x/b"]}, {"name": "x/a", "sources": ["x/b"]}]),
     r"x/a:latest is published twice \(by indexes\[0\] and indexes\[1\]\)"),
    (dict(name="x/app", sources=["x/b"], annotations={"a": 1}), "annotation 'a' must be a string, got int 1"),
    # Options the state would silently ignore.
    (dict(name="x/app", state="absent", sources=["x/b"]),
     r"state=absent deletes the tag name and nothing else, so sources cannot be given with it: remove sources"),
    (dict(name="x/app", state="absent", tags=["latest"], annotations={"a": "b"}),
     "so tags, annotations cannot be given with it: remove tags and annotations"),
    (dict(state="absent", indexes=[{"name": "x/a", "sources": ["x/b"]}]), r"indexes\[0\]\.sources cannot be given"),
    (dict(name="x/app", sources=["x/b"], delete_manifest=True),
     "delete_manifest=true applies to state=absent only: set state=absent, or remove delete_manifest"),
])
def test_bad_options_are_refused_before_any_request(options, message):
    with pytest.raises(OptionError, match=message):
        parse_jobs(params(**options))


def test_an_index_with_the_same_entries_written_by_another_tool_is_left_unless_forced(registry):
    from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.publisher import Publisher
    from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.jobs import Source
    first = publish(registry, name=REG + "/team/app:1.0", sources=SOURCES)
    stored = registry.repo(ref(REG + "/team/app")).manifests[first["digest"]][1]
    other_bytes = json.dumps(json.loads(stored)).encode()  # same document, other whitespace
    registry.add_manifest(ref(REG + "/team/app:1.0"), other_bytes)
    sources = [Source(s, ref(s)) for s in SOURCES]
    plan = Publisher(registry, ref(REG + "/team/app:1.0")).plan(sources)
    assert plan.changed is False and plan.digest == sha256_digest(other_bytes)
    forced = Publisher(registry, ref(REG + "/team/app:1.0"), force=True).plan(sources)
    assert forced.changed is True and forced.digest == first["digest"]


def test_deleter_reads_once_and_writes_nothing_for_a_missing_tag(registry):
    from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.delete import Deleter
    result = Deleter(registry, ref(REG + "/team/none:1")).run(diff=True)
    assert result == {"changed": False, "digest": None, "written_tags": [], "deleted": None,
                      "diff": {"before": "", "after": ""}}
    assert registry.writes() == [] and [c[0] for c in registry.calls] == ["get_manifest"]


def merge_planned(registry):
    """``builds/app:arm64`` to merge into ``team/app:1.0`` (amd64), planned and its children written.

    Returns ``(target, stale, publisher, plan)``; ``stale`` is the digest the tag held before the merge (what
    a concurrent writer that read it early writes back).
    """
    from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.publisher import Publisher
    from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.jobs import Source
    publish(registry, name=REG + "/team/app:1.0", sources=SOURCES[:1])
    target = ref(REG + "/team/app:1.0")
    stale = registry.repo(target).tags["1.0"]
    publisher = Publisher(registry, target)
    plan = publisher.plan([Source(REG + "/builds/app:arm64", ref(REG + "/builds/app:arm64"))], mode="merge")
    publisher.apply(plan, write_tags=False)
    return target, stale, publisher, plan


def clobber_after_index_writes(registry, monkeypatch, target, stale, times):
    """Another writer that read the tag early writes it back right after each of the first ``times`` index
    writes of this run (before its read-back)."""
    real_put, done = registry.put_manifest, []

    def put(reference, body, media_type, what="writing manifest"):
        digest = real_put(reference, body, media_type, what)
        if reference.tag == target.tag and len(done) < times:
            registry.repo(target).tags[target.tag] = stale
            done.append(digest)
        return digest
    monkeypatch.setattr(registry, "put_manifest", put)
    return done


def architectures(registry, target):
    document = json.loads(registry.repo(target).manifests[registry.repo(target).tags[target.tag]][1])
    return [m["platform"]["architecture"] for m in document["manifests"]]


def test_a_merge_writes_its_contribution_to_a_side_tag_then_the_index(registry):
    target, _stale, publisher, plan = merge_planned(registry)
    final = publisher.merge(plan, sleep=lambda seconds: None)
    assert final.rewrites == 0 and [r.canonical for r in final.tags_to_write] == [REG + "/team/app:1.0"]
    (side_tag,) = final.side_tags
    assert side_tag.startswith("1.0.merge.") and len(side_tag) == len("1.0.merge.") + 25
    contribution = json.loads(registry.repo(target).manifests[registry.repo(target).tags[side_tag]][1])
    assert [m["digest"] for m in contribution["manifests"]] == [plan.own_entries[0].digest]
    assert architectures(registry, target) == ["amd64", "arm64"]
    assert final.digest == registry.repo(target).tags["1.0"]


def test_a_merge_another_writer_replaced_is_merged_again(registry, monkeypatch):
    target, stale, publisher, plan = merge_planned(registry)
    clobbered = clobber_after_index_writes(registry, monkeypatch, target, stale, times=1)
    slept = []
    final = publisher.merge(plan, sleep=slept.append, jitter=lambda: 0.5)
    assert len(clobbered) == 1 and final.rewrites == 1 and slept == [0.2]    # MERGE_BACKOFF x 2 ** 1 x 0.5
    assert architectures(registry, target) == ["amd64", "arm64"]
    assert final.digest == registry.repo(target).tags["1.0"]


def test_a_merge_that_never_sticks_gives_up_with_a_clear_error(registry, monkeypatch):
    target, stale, publisher, plan = merge_planned(registry)
    clobber_after_index_writes(registry, monkeypatch, target, stale, times=100)
    slept = []
    with pytest.raises(RegistryError, match=r"other writers undid this run's index write 3 times \(3 index writes\); "
                                            r"side tags 1\.0\.merge\.[0-9a-f]{12}\.[0-9a-f]{12} "
                                            r"keep this run's entries for the next merge") as caught:
        publisher.merge(plan, attempts=2, sleep=slept.append, jitter=lambda: 1.0)
    assert caught.value.code == "CONFLICT"
    assert slept == [0.4, 0.8]                     # full-jitter back-off, doubled after each undone write


def test_a_read_back_that_meets_a_server_error_is_tried_again(registry, monkeypatch):
    """A registry on filesystem storage can answer 500 while another PUT rewrites the tag link."""
    target, _stale, publisher, plan = merge_planned(registry)
    real_get, failures = registry.get_manifest, []

    def flaky_get(reference, *args, **kwargs):
        if not failures and reference.tag == "1.0":
            failures.append(reference)
            raise RegistryError("reading back the merged index failed: 500 UNKNOWN", status=500)
        return real_get(reference, *args, **kwargs)
    monkeypatch.setattr(registry, "get_manifest", flaky_get)
    final = publisher.merge(plan, sleep=lambda seconds: None, jitter=lambda: 0.0)
    assert failures and final.rewrites == 0 and final.digest == registry.repo(target).tags["1.0"]


def test_a_read_back_error_that_is_not_transient_fails_at_once(registry, monkeypatch):
    _target, _stale, publisher, plan = merge_planned(registry)

    def denied(*args, **kwargs):
        raise RegistryError("reading back the merged index failed: 403 DENIED", code="DENIED", status=403)
    monkeypatch.setattr(registry, "get_manifest", denied)
    with pytest.raises(RegistryError, match="403 DENIED"):
        publisher.merge(plan, sleep=lambda seconds: None)


def test_merge_with_media_type_docker_is_refused_before_anything_is_written(registry):
    publish(registry, name=REG + "/team/app:1.0", sources=SOURCES[:1])
    registry.calls.clear()
    with pytest.raises(PlanError, match="mode=merge writes an OCI image index: it carries the merge epoch "
                                        "annotation io.archfleet.merge.epoch"):
        publish(registry, name=REG + "/team/app:1.0", sources=SOURCES[1:], mode="merge", media_type="docker")
    assert registry.writes() == []


def test_a_first_publish_into_a_new_repository_asks_once_instead_of_a_head_per_child(registry):
    publish(registry, name=REG + "/team/app:1.0", sources=SOURCES)
    kinds = [call[0] for call in registry.calls]
    assert kinds.count("repository_exists") == 1 and kinds.count("head_manifest") == 0
    assert registry.repo(ref(REG + "/team/app")).tags["1.0"]


def test_a_new_tag_in_a_repository_with_tags_checks_each_child(registry):
    """The children may be there already (per-architecture tags pushed into the same repository)."""
    publish(registry, name=REG + "/team/app:1.0", sources=SOURCES)
    registry.calls.clear()
    result = publish(registry, name=REG + "/team/app:2.0", sources=SOURCES)
    kinds = [call[0] for call in registry.calls]
    assert kinds.count("repository_exists") == 1 and kinds.count("head_manifest") == 2
    assert result["copied"]["manifests"] == 0 and [c for c in registry.writes() if "@" in c[1]] == []


STATED_ARM64_AS_AMD64 = ("source registry.example/builds/app:arm64 is stated as platform linux/amd64, but its image "
                         "config says linux/arm64")


def test_a_stated_platform_that_contradicts_the_image_config_is_refused_and_nothing_is_written(registry):
    with pytest.raises(PlanError) as failure:
        publish(registry, name=REG + "/team/app:1.0",
                sources=[{"image": REG + "/builds/app:arm64", "platform": "linux/amd64"}])
    assert str(failure.value) == (STATED_ARM64_AS_AMD64 + ": nothing was written. Remove platform to publish the "
                                  "image as its config says, or set force_platform=true to publish it as stated")
    assert registry.writes() == []


def test_a_contradicting_platform_is_a_warning_in_check_mode_and_published_with_force_platform(registry):
    sources = [{"image": REG + "/builds/app:arm64", "platform": "linux/amd64"}]
    checked = publish(registry, check_mode=True, name=REG + "/team/app:1.0", sources=sources)
    assert checked["warnings"] == [STATED_ARM64_AS_AMD64 + "; a real run refuses it unless force_platform=true"]
    assert checked["changed"] is True and registry.writes() == []
    forced = publish(registry, name=REG + "/team/app:1.0", sources=sources, force_platform=True)
    assert forced["platforms"] == ["linux/amd64"] and "warnings" not in forced


@pytest.mark.parametrize("image, stated", [
    ("armv7", "linux/arm/v7"),      # the config's own platform
    ("arm64", "linux/aarch64"),     # an alias of it
    ("armv7", "linux/arm"),         # arm is arm/v7
])
def test_a_stated_platform_the_config_agrees_with_is_published(registry, image, stated):
    result = publish(registry, name=REG + "/team/app:1.0",
                     sources=[{"image": REG + "/builds/app:" + image, "platform": stated}])
    assert result["changed"] is True and "warnings" not in result


def test_a_variant_the_config_leaves_out_may_be_stated(registry):
    registry.add_image(ref(REG + "/builds/app:arm"), "arm")
    result = publish(registry, name=REG + "/team/app:1.0",
                     sources=[{"image": REG + "/builds/app:arm", "platform": "linux/arm/v6"}])
    assert result["platforms"] == ["linux/arm/v6"]


def test_a_rerun_with_a_stated_platform_reads_no_config(registry):
    sources = [{"image": REG + "/builds/app:armv7", "platform": "linux/arm/v7"}, REG + "/builds/app:amd64"]
    publish(registry, name=REG + "/team/app:1.0", sources=sources)
    registry.calls.clear()
    again = publish(registry, name=REG + "/team/app:1.0", sources=sources)
    assert again["changed"] is False
    assert not [call for call in registry.calls if call[0] in ("get_blob", "get_image_config")]
