"""Pure policy code: JMESPath errors, ages, policy validation, the audit document."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._policy import (
    PolicyError,
    age_days,
    audit,
    compile_expression,
    parse_timestamp,
    plain,
    search,
    validate_policies,
    with_ages,
)

NOW = "2024-06-01T00:00:00Z"


def manifest(platform, digest, created="2024-05-01T00:00:00Z", size=1000):
    os_name, arch, *variant = platform.split("/")
    return {"digest": digest, "platform_string": platform,
            "platform": {"os": os_name, "architecture": arch, "variant": variant[0] if variant else None},
            "config": {"created": created, "size": size}}


def image(name, manifests, exists=True, kind="index", missing=(), annotations=None):
    return {"reference": name, "canonical": name, "exists": exists, "kind": kind if exists else "missing",
            "digest": "sha256:" + "ab" * 32 if exists else None, "manifests": manifests,
            "platforms": [m["platform_string"] for m in manifests], "missing_platforms": list(missing),
            "annotations": annotations or {}, "attestations": []}


MULTI = image("r/multi:1", [manifest("linux/amd64", "sha256:" + "1" * 64),
                            manifest("linux/arm64/v8", "sha256:" + "2" * 64, created="2024-01-01T12:00:00.123456789Z")],
              annotations={"org.opencontainers.image.source": "https://git.example/app"})
SINGLE = image("r/single:1", [manifest("linux/amd64", "sha256:" + "3" * 64)], kind="image", missing=["linux/arm64"])
MISSING = image("r/missing:1", [], exists=False, missing=["linux/amd64", "linux/arm64"])
POLICIES = [
    {"name": "exists", "expression": "exists", "severity": "error"},
    {"name": "platforms", "expression": "!exists || length(missing_platforms) == `0`", "severity": "error"},
    {"name": "fresh", "expression": "!exists || age_days <= `90`", "severity": "warning"},
    {"name": "multi", "expression": "!exists || length(platforms) > `1`", "severity": "info",
     "description": "more than one platform"},
]


@pytest.mark.parametrize("expression, reason", [
    ("a[?b=]", "invalid JMESPath expression 'a[?b=]': Unknown token '=' at position 4"),
    ("a & b", "invalid JMESPath expression 'a & b': Unexpected token: & at position 2 (token '&')"),
    ("length(", "invalid JMESPath expression 'length(': the expression is incomplete at position 7 (its end)"),
    ("`bad", "invalid JMESPath expression '`bad': Unclosed ` delimiter at position 0"),
    ("", "invalid JMESPath expression '': the expression is empty"),
])
def test_malformed_expression_names_expression_and_position(expression, reason):
    with pytest.raises(PolicyError) as caught:
        compile_expression(expression)
    assert str(caught.value) == reason


def test_non_string_expression():
    with pytest.raises(PolicyError, match="must be a string, got int 3"):
        compile_expression(3)


def test_search_and_evaluation_errors():
    assert search("images[?exists].canonical", {"images": [MULTI, MISSING]}) == ["r/multi:1"]
    with pytest.raises(PolicyError, match=r"JMESPath expression 'nosuch\(a\)' failed: Unknown function: nosuch\(\)"):
        search("nosuch(a)", {})
    with pytest.raises(PolicyError, match="'length\\(a\\)' failed: In function length\\(\\), invalid type"):
        search("length(a)", {"a": None})


def test_plain_unwraps_subclasses_so_jmespath_functions_accept_them():
    class WrappedStr(str):
        pass

    class WrappedDict(dict):
        pass

    data = WrappedDict(platforms=[WrappedStr("linux/amd64")], count=True)
    unwrapped = plain(data)
    assert (unwrapped.__class__, unwrapped["platforms"][0].__class__) == (dict, str)
    assert search("length(platforms[0])", data) == 11
    with pytest.raises(PolicyError, match=r"input.when is a datetime, which is not JSON data"):
        plain({"when": datetime.datetime(2024, 1, 1)})


def ansible_text(text):
    """``text`` as the running ansible-core hands templated and registered strings to a filter."""
    try:
        from ansible.template import trust_as_template  # ansible-core 2.19+: tagged str subclasses
    except ImportError:
        from ansible.utils.unsafe_proxy import AnsibleUnsafeText  # 2.17, 2.18: __str__ returns itself
        return AnsibleUnsafeText(text)
    return trust_as_template(text)


def exact_types(data):
    """Every type in ``data``, recursively (keys included), to check that only plain ones remain."""
    if isinstance(data, dict):
        return {type(data)} | set().union(*(exact_types(key) | exact_types(value) for key, value in data.items()))
    if isinstance(data, list):
        return {type(data)} | set().union(*(exact_types(value) for value in data))
    return {type(data)}


def test_plain_converts_ansible_strings_so_jmespath_string_functions_accept_them():
    wrapped = {ansible_text("images"): [{
        ansible_text("canonical"): ansible_text("r/app:1"),
        "platforms": [ansible_text("linux/arm64"), ansible_text("linux/amd64")],
        "manifests": [{"created": ansible_text("2024-02-01")}, {"created": ansible_text("2024-01-01")}],
        "size": 3, "ok": True, "ratio": 0.5, "none": None}]}
    assert type(wrapped["images"][0]["canonical"]) is not str  # the test holds Ansible's own type  # pylint: disable=unidiomatic-typecheck
    converted = plain(wrapped)
    assert converted == wrapped
    assert exact_types(converted) == {dict, list, str, int, float, bool, type(None)}
    assert search("images[?starts_with(canonical, 'r/')].canonical", wrapped) == ["r/app:1"]
    assert search("length(images[0].canonical)", wrapped) == 7
    assert search("join(',', images[0].platforms)", wrapped) == "linux/arm64,linux/amd64"
    assert search("sort_by(images[0].manifests, &created)[].created", wrapped) == ["2024-01-01", "2024-02-01"]


@pytest.mark.parametrize("text, expected", [
    ("2024-01-01T00:00:00Z", datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)),
    ("2024-01-01T00:00:00.123456789Z", datetime.datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=datetime.timezone.utc)),
    ("2024-01-01T02:00:00+02:00", datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)),
    ("2024-01-01 00:00:00z", datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)),
    ("2024-13-01T00:00:00Z", None),
    ("yesterday", None),
    (None, None),
])
def test_parse_timestamp(text, expected):
    assert parse_timestamp(text) == expected


def test_ages_are_whole_days_and_the_image_takes_its_oldest_platform():
    now = parse_timestamp(NOW)
    assert age_days("2024-05-31T00:00:01Z", now) == 0
    assert age_days("2024-05-01T00:00:00Z", now) == 31
    assert age_days(None, now) is None
    aged = with_ages(MULTI, now)
    assert [m["age_days"] for m in aged["manifests"]] == [31, 151]
    assert aged["age_days"] == 151
    assert "age_days" not in MULTI, "the input facts are not modified"
    assert with_ages(MISSING, now)["age_days"] is None


@pytest.mark.parametrize("policies, message", [
    ({"name": "x"}, "policies must be a list"),
    (["exists"], r"policies\[0\] must be a dict"),
    ([{"expression": "exists"}], r"policies\[0\] has no name"),
    ([{"name": "a", "expression": "exists", "level": "error"}], r"policy 'a' \(policies\[0\]\) has unknown keys level"),
    ([{"name": "a", "expression": "exists"}, {"name": "a", "expression": "kind"}],
     r"policy 'a' \(policies\[1\]\): the name is used by an earlier policy"),
    ([{"name": "a", "expression": "exists", "severity": "fatal"}], "has severity 'fatal'; expected one of error, warning, info"),
    ([{"name": "a"}], r"policy 'a' \(policies\[0\]\) has no expression"),
    ([{"name": "ok", "expression": "exists"}, {"name": "broken", "expression": "length(platforms"}],
     r"^policy 'broken' \(policies\[1\]\): invalid JMESPath expression 'length\(platforms': the expression is incomplete"),
])
def test_invalid_policies(policies, message):
    with pytest.raises(PolicyError, match=message):
        validate_policies(policies)


def test_policy_defaults():
    [(policy, compiled)] = validate_policies([{"name": "a", "expression": "exists"}])
    assert policy == {"name": "a", "expression": "exists", "severity": "error", "description": ""}
    assert compiled.search({"exists": True}) is True


def test_audit_document():
    result = audit([MULTI, SINGLE, MISSING], POLICIES, NOW, require_platforms=["linux/amd64", "linux/arm64"])
    assert result["now"] == "2024-06-01T00:00:00+00:00"
    multi, single, missing = result["images"]

    assert [(r["policy"], r["passed"]) for r in multi["results"]] == [
        ("exists", True), ("platforms", True), ("fresh", False), ("multi", True)]
    assert multi["status"] == "warning" and multi["age_days"] == 151
    assert single["status"] == "error"
    assert [r["policy"] for r in single["results"] if not r["passed"]] == ["platforms", "multi"]
    assert missing["status"] == "error"
    assert [r["policy"] for r in missing["results"] if not r["passed"]] == ["exists"]
    assert multi["results"][2]["value"] is False

    # arm64/v8 and arm64 share one column; required platforms come first
    assert result["platform_columns"] == ["linux/amd64", "linux/arm64"]
    amd64, arm64 = multi["platform_cells"]
    assert amd64 == {"present": True, "required": True, "platform": "linux/amd64", "digest": "sha256:" + "1" * 64,
                     "short_digest": "1" * 12, "size": 1000, "created": "2024-05-01T00:00:00Z", "age_days": 31}
    assert arm64["platform"] == "linux/arm64/v8"
    assert single["platform_cells"][1] == {"present": False, "required": True}

    summary = result["summary"]
    assert summary["images"] == 3 and summary["policies"] == 4 and summary["evaluations"] == 12
    assert summary["failed"] == {"error": 2, "warning": 1, "info": 1}
    assert summary["status"] == "error"
    assert summary["failures"] == [
        {"image": "r/multi:1", "policy": "fresh", "severity": "warning"},
        {"image": "r/single:1", "policy": "platforms", "severity": "error"},
        {"image": "r/single:1", "policy": "multi", "severity": "info"},
        {"image": "r/missing:1", "policy": "exists", "severity": "error"},
    ]
    assert [(p["name"], p["failed"]) for p in result["policies"]] == [
        ("exists", 1), ("platforms", 1), ("fresh", 1), ("multi", 1)]
    assert result["policies"][3]["description"] == "more than one platform"


def test_audit_is_reproducible_for_a_fixed_now():
    first = audit([MULTI], POLICIES, NOW)
    assert audit([MULTI], POLICIES, parse_timestamp(NOW)) == first
    later = audit([MULTI], POLICIES, "2024-09-01T00:00:00Z")
    assert later["images"][0]["age_days"] == first["images"][0]["age_days"] + 92


def test_platforms_outside_the_requirements_get_columns_in_order_of_appearance():
    extra = image("r/extra:1", [manifest("linux/s390x", "sha256:" + "4" * 64), manifest("linux/arm/v7", "sha256:" + "5" * 64)])
    result = audit([SINGLE, extra], [], NOW, require_platforms=["linux/riscv64"])
    assert result["platform_columns"] == ["linux/riscv64", "linux/amd64", "linux/s390x", "linux/arm/v7"]
    assert [cell["present"] for cell in result["images"][1]["platform_cells"]] == [False, False, True, True]
    assert result["summary"]["status"] == "pass" and result["summary"]["failures"] == []


def test_passing_everything():
    result = audit([MULTI], [{"name": "index", "expression": "kind == 'index'", "severity": "error"}], NOW)
    assert result["images"][0]["status"] == "pass"
    assert result["summary"]["failed"] == {"error": 0, "warning": 0, "info": 0}


@pytest.mark.parametrize("value, passed", [(0, True), ("x", True), ([0], True), (None, False), (False, False),
                                           ("", False), ([], False), ({}, False)])
def test_jmespath_truthiness(value, passed):
    result = audit([dict(MULTI, probe=value)], [{"name": "p", "expression": "probe"}], NOW)
    assert result["images"][0]["results"][0]["passed"] is passed


def test_expression_failing_on_an_image_names_policy_expression_and_image():
    with pytest.raises(PolicyError) as caught:
        audit([MULTI], [{"name": "typo", "expression": "length(missing_platform)"}], NOW)
    assert str(caught.value).startswith(
        "policy 'typo': JMESPath expression 'length(missing_platform)' failed on r/multi:1: In function length()")


def test_invalid_now_and_require_platforms():
    with pytest.raises(PolicyError, match="now must be an RFC 3339 timestamp"):
        audit([MULTI], POLICIES, "June")
    with pytest.raises(PolicyError, match="require_platforms: invalid platform 'linux/arm46'"):
        audit([MULTI], POLICIES, NOW, require_platforms=["linux/arm46"])
    with pytest.raises(PolicyError, match="images must be the list docker_manifest_info returns"):
        audit({"images": []}, POLICIES, NOW)


def test_outcome_is_not_applicable_for_policies_a_missing_or_unreadable_image_passes():
    unreadable = dict(image("r/broken:1", [], exists=None), error={"code": "MANIFEST_UNKNOWN", "message": "gone"})
    policies = POLICIES + [{"name": "readable", "expression": "!error", "severity": "error"}]
    document = audit([MULTI, MISSING, unreadable], policies, NOW)
    outcomes = [dict((r["policy"], r["outcome"]) for r in entry["results"]) for entry in document["images"]]
    assert outcomes[0] == {"exists": "pass", "platforms": "pass", "fresh": "fail", "multi": "pass", "readable": "pass"}
    assert outcomes[1] == {"exists": "fail", "platforms": "n/a", "fresh": "n/a", "multi": "n/a", "readable": "n/a"}
    assert outcomes[2] == {"exists": "fail", "platforms": "n/a", "fresh": "n/a", "multi": "n/a", "readable": "fail"}
    assert [entry["status"] for entry in document["images"]] == ["warning", "error", "error"]
