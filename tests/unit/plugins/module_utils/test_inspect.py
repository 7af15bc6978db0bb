"""Facts for docker_manifest_info against an in-memory registry: images, indexes, missing, configs."""
import pytest
from fake_registry import FakeRegistry

from ansible_collections.archfleet.multiarch.plugins.module_utils._inspect import ManifestFacts, parse_options
from ansible_collections.archfleet.multiarch.plugins.module_utils._module import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError

REG = "registry.example"


@pytest.fixture
def registry():
    fake = FakeRegistry()
    builds = parse_reference(REG + "/team/app")
    amd64 = fake.add_image(builds, "amd64", tag="amd64")
    arm = fake.add_image(builds, "arm", variant="v7", tag="armv7")
    fake.add_index(parse_reference(REG + "/team/app:1.0"), [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64[0], "size": amd64[1],
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm[0], "size": arm[1],
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
    ], annotations={"org.opencontainers.image.revision": "abc"})
    return fake


def gather(registry, images, **options):
    return ManifestFacts(registry, **options).gather([parse_reference(i) for i in images], concurrency=4)


def test_index_facts_and_missing_platforms(registry):
    facts, = gather(registry, [REG + "/team/app:1.0"], required_platforms=["linux/amd64", "arm64", "linux/arm/v7"])
    assert facts["exists"] is True and facts["kind"] == "index"
    assert facts["platforms"] == ["linux/amd64", "linux/arm/v7"]
    assert facts["missing_platforms"] == ["arm64"]
    assert facts["annotations"] == {"org.opencontainers.image.revision": "abc"}
    assert facts["reference"] == REG + "/team/app:1.0" and facts["tag"] == "1.0"
    # One GET of the index; configs only when asked.
    assert [c[0] for c in registry.calls if c[0] != "authorize"] == ["get_manifest"]


def test_index_with_configs_reads_each_child(registry):
    facts, = gather(registry, [REG + "/team/app:1.0"], fetch_config=True)
    assert [m["config"]["labels"] for m in facts["manifests"]] == [{"arch": "amd64"}, {"arch": "arm"}]


def test_single_image_facts_come_from_its_config(registry):
    facts, = gather(registry, [REG + "/team/app:armv7"], fetch_config=True)
    assert facts["kind"] == "image" and facts["platforms"] == ["linux/arm/v7"]
    assert facts["config"]["created"] == "2026-01-01T00:00:00Z" and facts["config"]["layers"] == 1


def test_missing_reference_is_a_fact(registry):
    facts, = gather(registry, [REG + "/team/app:nope"], required_platforms=["linux/amd64"])
    assert facts["exists"] is False and facts["kind"] is None and facts["missing_platforms"] == ["linux/amd64"]


def test_results_keep_input_order_and_tokens_are_asked_per_registry(registry):
    results = gather(registry, [REG + "/team/app:armv7", REG + "/team/app:1.0", REG + "/other/x:1"])
    assert [r["tag"] for r in results] == ["armv7", "1.0", "1"]
    assert [c for c in registry.calls if c[0] == "authorize"] == [
        ("authorize", REG, (("other/x", ("pull",)), ("team/app", ("pull",))))]


def test_a_listed_child_that_is_gone_is_named(registry):
    index = registry.repo(parse_reference(REG + "/team/app"))
    armv7 = index.tags.pop("armv7")
    del index.manifests[armv7]
    with pytest.raises(RegistryError, match="index entry registry.example/team/app@%s is listed but its manifest "
                                            "is missing" % armv7):
        gather(registry, [REG + "/team/app:1.0"], fetch_config=True)


def test_parse_options_names_the_bad_value():
    with pytest.raises(OptionError, match=r"require_platforms\[1\]: invalid platform 'linux/arm46'"):
        parse_options({"images": ["app"], "require_platforms": ["linux/amd64", "linux/arm46"]})
    with pytest.raises(OptionError, match=r"images\[0\]"):
        parse_options({"images": ["Upper"], "require_platforms": []})
    assert [r.canonical for r in parse_options({"images": ["app"], "require_platforms": []})] == [
        "docker.io/library/app"]
