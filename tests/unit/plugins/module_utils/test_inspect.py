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
    assert facts["exists"] is False and facts["kind"] == "missing" and facts["missing_platforms"] == ["linux/amd64"]


def test_results_keep_input_order_and_tokens_are_asked_per_registry(registry):
    results = gather(registry, [REG + "/team/app:armv7", REG + "/team/app:1.0", REG + "/other/x:1"])
    assert [r["tag"] for r in results] == ["armv7", "1.0", "1"]
    assert [c for c in registry.calls if c[0] == "authorize"] == [
        ("authorize", REG, (("other/x", ("pull",)), ("team/app", ("pull",))))]


def test_a_listed_child_that_is_gone_is_a_fact_not_a_failure(registry):
    index = registry.repo(parse_reference(REG + "/team/app"))
    armv7 = index.tags.pop("armv7")
    del index.manifests[armv7]
    for options in ({"fetch_config": True}, {"verify_children": True}):
        broken, fine = gather(registry, [REG + "/team/app:1.0", REG + "/team/app:amd64"],
                              required_platforms=["linux/arm/v7"], **options)
        assert broken["exists"] is True and broken["missing_children"] == [armv7]
        assert broken["error"] == {"code": "MANIFEST_UNKNOWN", "message": (
            "registry.example/team/app:1.0 lists 1 child manifest(s) missing from the registry: %s" % armv7)}
        assert broken["missing_platforms"] == ["linux/arm/v7"]
        assert "error" not in fine and fine["exists"] is True
    with pytest.raises(RegistryError, match="lists 1 child manifest"):
        gather(registry, [REG + "/team/app:1.0"], fetch_config=True, fail_on_error=True)


def test_an_unreadable_image_gets_an_error_fact(registry):
    target = parse_reference(REG + "/team/broken:1")
    registry.add_manifest(target, {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   "config": {"digest": "sha256:" + "9" * 64, "size": 2}, "layers": []})
    facts, = gather(registry, [REG + "/team/broken:1"])
    assert facts["exists"] is True and facts["error"]["code"] == "BLOB_UNKNOWN"


def test_schema1_is_reported_for_that_image_only(registry):
    target = parse_reference(REG + "/team/old:1")
    registry.add_manifest(target, {"schemaVersion": 1, "name": "team/old", "tag": "1", "architecture": "amd64",
                                   "fsLayers": [], "history": []},
                          media_type="application/vnd.docker.distribution.manifest.v1+prettyjws")
    old, new = gather(registry, [REG + "/team/old:1", REG + "/team/app:1.0"])
    assert old["kind"] == "schema1" and old["exists"] is True and old["error"]["code"] == "UNSUPPORTED"
    assert "Docker schema 1 manifest" in old["error"]["message"] and new["kind"] == "index"


def test_windows_requirements_name_a_version_prefix():
    fake = FakeRegistry()
    ref = parse_reference(REG + "/team/win:1")
    entries = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "%064x" % n,
                "size": 1, "platform": {"architecture": "amd64", "os": "windows", "os.version": version}}
               for n, version in ((1, "10.0.17763.5458"), (2, "10.0.20348.2340"))]
    fake.add_index(ref, entries[:1])
    facts, = gather(fake, [REG + "/team/win:1"], required_platforms=["windows(10.0.20348)/amd64", "windows/amd64"])
    assert facts["platforms"] == ["windows(10.0.17763.5458)/amd64"]
    assert facts["missing_platforms"] == ["windows(10.0.20348)/amd64"]
    fake.add_index(ref, entries)
    facts, = gather(fake, [REG + "/team/win:1"], required_platforms=["windows(10.0.20348)/amd64"])
    assert facts["missing_platforms"] == []


def test_parse_options_names_the_bad_value():
    with pytest.raises(OptionError, match=r"require_platforms\[1\]: invalid platform 'linux/arm46'"):
        parse_options({"images": ["app"], "require_platforms": ["linux/amd64", "linux/arm46"]})
    with pytest.raises(OptionError, match=r"images\[0\]"):
        parse_options({"images": ["Upper"], "require_platforms": []})
    refs, repositories, catalogs = parse_options({"images": ["app"], "require_platforms": []})
    assert [r.canonical for r in refs] == ["docker.io/library/app"] and repositories == [] and catalogs == []


class OneRegistryDown(FakeRegistry):
    """A fake where one registry cannot be reached (its token request, the first request of a task, fails)."""

    def __init__(self, down):
        super().__init__()
        self.down = down

    def authorize(self, registry, scopes):
        if registry == self.down:
            raise RegistryError("cannot reach registry %s: connection refused" % registry, code="UNREACHABLE")
        super().authorize(registry, scopes)


def test_an_unreachable_registry_fails_only_the_images_on_it():
    fake = OneRegistryDown("down.example")
    fake.add_image(parse_reference(REG + "/team/app:1"), "amd64", tag="1")
    facts = gather(fake, [REG + "/team/app:1", "down.example/team/app:1", "down.example/other:2"])
    assert facts[0]["exists"] is True and "error" not in facts[0]
    for image in facts[1:]:
        assert image["exists"] is None and image["error"] == {
            "code": "UNREACHABLE", "message": "cannot reach registry down.example: connection refused"}
    assert not [call for call in fake.calls if call[0] != "authorize" and "down.example" in str(call)]


def test_the_task_fails_when_no_image_could_be_read_and_with_fail_on_error():
    fake = OneRegistryDown("down.example")
    fake.add_image(parse_reference(REG + "/team/app:1"), "amd64", tag="1")
    with pytest.raises(RegistryError, match="cannot reach registry down.example"):
        gather(fake, ["down.example/team/app:1", "down.example/other:2"])
    with pytest.raises(RegistryError, match="cannot reach registry down.example"):
        gather(fake, [REG + "/team/app:1", "down.example/team/app:1"], fail_on_error=True)
