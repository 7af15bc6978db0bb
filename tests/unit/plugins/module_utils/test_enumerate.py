"""Repositories and catalogs to references: tag filters, semantic-version limits, missing repositories, digest-only."""
import pytest
from fake_registry import FakeRegistry

from ansible_collections.archfleet.multiarch.plugins.module_utils._enumerate import (
    Enumerator,
    TagFilter,
    parse_catalogs,
    parse_repositories,
    sort_tags,
    version_key,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._inspect import inspect_task
from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import OptionError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference

REG = "registry.example"


@pytest.mark.parametrize("tags, expected", [
    (["1.10.0", "1.9.0", "1.2.0-rc.1", "1.2.0", "v2"], ["1.2.0-rc.1", "1.2.0", "1.9.0", "1.10.0", "v2"]),
    (["1.0", "latest", "1.1"], ["1.0", "1.1", "latest"]),            # not all versions: name order
    (["1.0.0-rc.2", "1.0.0-rc.10", "1.0.0-alpha"], ["1.0.0-alpha", "1.0.0-rc.2", "1.0.0-rc.10"]),
])
def test_tags_sort_as_versions_when_they_all_are(tags, expected):
    assert sort_tags(tags) == expected


def test_version_key_rejects_other_tags():
    assert version_key("latest") is None and version_key("1.2.3.4") is None and version_key("v1.2.3")


def test_filters_and_limit_keep_the_newest():
    import re
    tags = ["1.0.0", "1.1.0", "1.2.0", "1.2.0-debug", "2.0.0-rc.1", "nightly"]
    chosen = TagFilter([re.compile(r"^\d")], [re.compile("debug")], 2).apply(tags)
    assert chosen == ["1.2.0", "2.0.0-rc.1"]
    assert TagFilter(limit=0).apply(tags) == []


@pytest.mark.parametrize("value, message", [
    ([{"name": "app:1"}], r"repositories\[0\]: 'app:1' names a tag or digest"),
    ([{"name": "app", "include": ["("]}], r"repositories\[0\].include\[0\]: '\(' is not a valid regular expression"),
    ([{"name": "app", "limit": -1}], r"repositories\[0\].limit must be a number of tags"),
    ([{"name": "app", "tags": []}], r"Unsupported parameters: repositories\[0\]\.tags\. Supported parameters include: "
                                    r"exclude, include, limit, name\."),
    ([{"include": ["^v"]}], r"missing required arguments: name found in repositories\[0\]"),
    ([42], r"repositories\[0\] must be a repository reference or a dict with name, include, exclude, limit; got int"),
])
def test_bad_repositories_are_refused(value, message):
    with pytest.raises(OptionError, match=message):
        parse_repositories(value)


@pytest.mark.parametrize("value, message", [
    (["registry.example/team"], r"catalog\[0\] must be a registry host \(host or host:port\), got 'registry.example/team'"),
    ([{"registry": "registry.example", "tags": 1}],
     r"Unsupported parameters: catalog\[0\]\.tags\. Supported parameters include: exclude, exclude_repositories, "
     r"include, limit, registry, repositories\."),
    ([7], r"catalog\[0\] must be a registry host \(host or host:port\) or a dict with registry, repositories, "
          r"exclude_repositories, include, exclude, limit; got int"),
])
def test_bad_catalogs_are_refused(value, message):
    with pytest.raises(OptionError, match=message):
        parse_catalogs(value)


@pytest.fixture
def registry():
    fake = FakeRegistry()
    for repo in ("team/app", "team/worker", "other/x"):
        for tag in ("1.0.0", "1.1.0", "latest"):
            fake.add_image(parse_reference("%s/%s:%s" % (REG, repo, tag)), "amd64", layers=1)
    return fake


def test_repositories_and_catalogs_expand_to_tags_with_facts(registry):
    repositories = parse_repositories([REG + "/team/app", {"name": REG + "/team/none"}])
    catalogs = parse_catalogs([{"registry": REG, "repositories": ["^team/"], "exclude_repositories": ["app"],
                                "include": [r"^\d"], "limit": 1}])
    refs, facts = Enumerator(registry).expand(repositories, catalogs)
    assert [r.canonical for r in refs] == [REG + "/team/app:1.0.0", REG + "/team/app:1.1.0", REG + "/team/app:latest",
                                           REG + "/team/worker:1.1.0"]
    assert facts[1] == {"name": REG + "/team/none", "exists": False, "tags": 0, "matched": []}


def test_digest_only_heads_each_tag_and_returns_six_facts(registry):
    params = {"config": False, "require_platforms": [], "verify_children": False, "fail_on_error": False,
              "digest_only": True, "concurrency": 4}
    result = inspect_task(registry, ([], parse_repositories([REG + "/team/app"]), []), params)
    assert [sorted(image) for image in result["images"]] == [
        ["canonical", "digest", "exists", "media_type", "reference", "size"]] * 3
    assert all(image["digest"].startswith("sha256:") for image in result["images"])
    kinds = [call[0] for call in registry.calls if call[0] not in ("authorize", "list_tags")]
    assert kinds == ["head_manifest"] * 3


def test_the_side_tags_of_merges_are_not_enumerated():
    """docs/manifests.md (Concurrent merges): mode=merge's side tags are contributions, not releases."""
    from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.merge import side_prefix
    side = side_prefix("1.0", "3f2a9c81d0e4") + "77c0ab12ef34"
    long_side = side_prefix("v" * 120, "000000000000") + "77c0ab12ef34"
    tags = ["1.0", side, long_side, "1.0.merge.notes", "2.0"]
    assert TagFilter().apply(tags) == ["1.0", "1.0.merge.notes", "2.0"]
    import re
    assert TagFilter([re.compile("merge")]).apply(tags) == ["1.0.merge.notes"]
