"""The publish plan and options as values, and the write orderings of Publisher.apply (FakeRegistry).

docs/architecture.md, "The publish plan": a Plan is complete when made and never changed afterwards; the
options shared by every index are one PublishOptions made by parse_jobs; children are written images first,
then the indexes that list them, then the referrers, and the tags last.
"""
import pytest
from fake_registry import FakeRegistry
from test_mirror import DST, SRC, run
from test_publish import REG, SOURCES, params, publish, ref

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_OCI_INDEX
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.jobs import PublishOptions, Source, parse_jobs
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.publisher import Publisher


def planned(registry, **options):
    jobs = parse_jobs(params(**options))[0]
    return Publisher(registry, jobs[0].target, jobs[0].tags).plan(jobs[0].sources)


@pytest.fixture
def registry():
    fake = FakeRegistry()
    fake.add_image(ref(REG + "/builds/app:amd64"), "amd64")
    fake.add_image(ref(REG + "/builds/app:arm64"), "arm64")
    return fake


def test_a_plan_is_complete_when_made_and_cannot_be_changed(registry):
    """docs/architecture.md: "A Plan is complete when made and never changed afterwards." """
    plan = planned(registry, name=REG + "/team/app:1.0", sources=SOURCES, tags=["latest"])
    assert [r.canonical for r in plan.tags_to_write] == [REG + "/team/app:1.0", REG + "/team/app:latest"]
    assert plan.referrers == [] and plan.signature is None and plan.rewrites == 0 and plan.side_tags == []
    assert plan.own_entries == plan.entries and plan.existing is None and plan.changed
    with pytest.raises(AttributeError, match="plan.replace"):
        plan.signature = {"sign": True}
    signed = plan.replace(signature={"sign": True})
    assert signed.signature == {"sign": True} and plan.signature is None and signed.digest == plan.digest
    with pytest.raises(TypeError):
        plan.replace(tags_written=[])          # one name for written tags: tags_to_write


def test_nothing_to_write_is_an_unchanged_plan(registry):
    publish(registry, name=REG + "/team/app:1.0", sources=SOURCES)
    plan = planned(registry, name=REG + "/team/app:1.0", sources=SOURCES)
    assert plan.tags_to_write == [] and not plan.changed
    assert plan.replace(referrers=[{"fact": {}}]).changed    # a referrer to copy is a write


def test_publish_options_are_one_value_made_by_parse_jobs():
    """docs/architecture.md: "The options shared by every index of a task are one `PublishOptions`, made by
    `parse_jobs`." """
    jobs, options = parse_jobs(params(name=REG + "/team/app:1.0", sources=SOURCES, mode="merge"))
    assert isinstance(options, PublishOptions) and isinstance(jobs[0].sources[0], Source)
    assert (options.mode, options.state, options.media_type, options.referrers, options.batch) == (
        "merge", "present", "auto", "skip", False)
    assert options.concurrency == 4 and options.force is False and options.delete_manifest is False
    with pytest.raises(AttributeError):
        options.mode = "replace"
    batch_jobs, batch = parse_jobs(params(indexes=[{"name": REG + "/a:1", "sources": SOURCES},
                                                   {"name": REG + "/b:1", "sources": SOURCES}]))
    assert batch.batch is True and [j.label for j in batch_jobs] == ["indexes[0]", "indexes[1]"]
    with pytest.raises(TypeError, match="no field colour"):
        PublishOptions(colour="red", **{name: getattr(options, name) for name in PublishOptions.__slots__})


def test_images_are_written_before_the_indexes_that_list_them():
    """docs/architecture.md: "Child images are written before the indexes that list them, referrers before the
    tags, and the main tag before the extra tags." (a nested index source: images, its inner index, tags)"""
    fake = FakeRegistry()
    source = ref(SRC + ":nested")
    amd64, amd64_size = fake.add_image(source, "amd64", tag=None)
    arm64, arm64_size = fake.add_image(source, "arm64", tag=None)
    inner, inner_size = fake.add_index(source, [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64, "size": amd64_size,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm64, "size": arm64_size,
         "platform": {"architecture": "arm64", "os": "linux"}}], tag=None)
    fake.add_index(source, [{"mediaType": MEDIA_OCI_INDEX, "digest": inner, "size": inner_size,
                             "platform": {"architecture": "amd64", "os": "linux"}}], tag="nested")
    result = publish(fake, name=DST + ":1", sources=[SRC + ":nested"], tags=["latest"])
    puts = [call[1] for call in fake.calls if call[0] == "put_manifest"]
    assert puts[:2] and {p.split("@")[1] for p in puts[:2]} == {amd64, arm64}
    assert puts[2:] == [DST + "@" + inner, DST + ":1", DST + ":latest"]
    assert result["written_tags"] == [DST + ":1", DST + ":latest"]


def test_referrers_are_written_before_every_tag(source):
    """docs/architecture.md: "Child images are written before the indexes that list them, referrers before the
    tags, and the main tag before the extra tags." (referrers: copy with two extra tags)"""
    run(source, name=DST + ":1", sources=[SRC + ":1"], tags=["latest", "stable"], referrers="copy")
    puts = [call[1] for call in source.calls if call[0] == "put_manifest"]
    requests = [call for call in source.calls if call[0] == "request" and call[1] == "PUT"]
    assert requests, "the referrers were written"
    first_tag = min(puts.index(DST + ":" + tag) for tag in ("1", "latest", "stable"))
    referrer_puts = [i for i, call in enumerate(source.calls) if call[0] == "request" and call[1] == "PUT"]
    tag_calls = [i for i, call in enumerate(source.calls) if call[0] == "put_manifest" and call[1] in
                 (DST + ":1", DST + ":latest", DST + ":stable")]
    assert max(referrer_puts) < min(tag_calls) and first_tag == len(puts) - 3


def test_no_code_reads_a_plan_field_that_might_not_be_there():
    """Every field is set when a Plan is made, so nothing reads one with getattr and a default."""
    from pathlib import Path
    plugins = Path(__file__).resolve().parents[5] / "plugins"
    assert [str(p) for p in plugins.rglob("*.py") if "getattr(plan" in p.read_text()] == []
