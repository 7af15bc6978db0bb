"""Platforms parse and normalise as containerd's platforms.Parse."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import (
    PlatformError,
    format_key,
    format_platform,
    host_platform,
    platform_key,
    oci_platform,
    parse_platform,
    platform_matches,
)


@pytest.mark.parametrize("text, os_name, arch, variant", [
    ("linux/amd64", "linux", "amd64", None),
    ("Linux/x86_64", "linux", "amd64", None),
    ("linux/x86-64", "linux", "amd64", None),
    ("amd64", "linux", "amd64", None),
    ("x86_64", "linux", "amd64", None),
    ("linux/amd64/v1", "linux", "amd64", None),
    ("linux/amd64/v3", "linux", "amd64", "v3"),
    ("aarch64", "linux", "arm64", None),
    ("linux/arm64", "linux", "arm64", None),
    ("linux/arm64/v8", "linux", "arm64", "v8"),
    ("linux/aarch64/8", "linux", "arm64", "v8"),
    ("linux/arm64/v9.0", "linux", "arm64", "v9"),
    ("armhf", "linux", "arm", None),
    ("linux/armhf", "linux", "arm", None),
    ("armel", "linux", "arm", "v6"),
    ("linux/arm", "linux", "arm", None),
    ("linux/arm/7", "linux", "arm", "v7"),
    ("linux/arm/v7", "linux", "arm", "v7"),
    ("linux/arm/6", "linux", "arm", "v6"),
    ("linux/arm/v5", "linux", "arm", "v5"),
    ("i386", "linux", "386", None),
    ("linux/386", "linux", "386", None),
    ("ppc64le", "linux", "ppc64le", None),
    ("s390x", "linux", "s390x", None),
    ("riscv64", "linux", "riscv64", None),
    ("macos/arm64", "darwin", "arm64", None),
    ("windows/amd64", "windows", "amd64", None),
    ("LINUX/ARM64", "linux", "arm64", None),
])
def test_parse(text, os_name, arch, variant):
    platform = parse_platform(text)
    assert (platform["os"], platform["architecture"], platform["variant"]) == (os_name, arch, variant)
    assert platform["os_version"] is None and platform["os_features"] == []


def test_os_only_takes_host_architecture():
    platform = parse_platform("linux")
    assert platform["os"] == "linux"
    assert platform["architecture"] == host_platform()["architecture"]


def test_os_version_and_features():
    platform = parse_platform("windows(10.0.17763+win32k)/amd64")
    assert platform["os"] == "windows"
    assert platform["os_version"] == "10.0.17763"
    assert platform["os_features"] == ["win32k"]
    assert oci_platform(platform) == {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763",
                                      "os.features": ["win32k"]}


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("/amd64", "empty component"),
    ("linux/", "empty component"),
    ("linux//amd64", "empty component"),
    ("linux/amd64/v8/x", "at most three"),
    ("linux/am d64", "may contain only"),
    ("linux/*", "wildcards"),
    ("sparcv42", "unknown operating system or architecture"),
    ("linux/arm64$", "may contain only"),
    ("arm/v7", "did you mean 'linux/arm/v7'"),
    ("plan10/amd64", "unknown operating system 'plan10'"),
    ("linux/arm46", "unknown architecture 'arm46'"),
    ("linux/sparc42/v1", "unknown architecture 'sparc42'"),
])
def test_invalid(text, reason):
    with pytest.raises(PlatformError, match=reason.replace("*", r"\*")):
        parse_platform(text)


@pytest.mark.parametrize("left, right", [
    ("arm64", "linux/arm64/v8"),
    ("aarch64", "linux/arm64"),
    ("armhf", "linux/arm/v7"),
    ("linux/arm", "linux/arm/v7"),
    ("x86_64", "linux/amd64"),
    ("Linux/AMD64", "amd64"),
    ("i386", "linux/386"),
])
def test_equivalent_platforms_match(left, right):
    assert platform_key(left) == platform_key(right)


@pytest.mark.parametrize("left, right", [
    ("linux/arm/v6", "linux/arm/v7"),
    ("linux/arm64", "linux/amd64"),
    ("windows/amd64", "linux/amd64"),
])
def test_different_platforms_differ(left, right):
    assert platform_key(left) != platform_key(right)


def test_match_key_of_index_platform_objects():
    assert platform_key({"os": "linux", "architecture": "arm64", "variant": "v8"}) == ("linux", "arm64", "", "", ())
    assert platform_key({"os": "linux", "architecture": "arm"}) == ("linux", "arm", "v7", "", ())
    assert platform_key({"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.5458",
                         "os.features": ["win32k"]}) == ("windows", "amd64", "", "10.0.17763.5458", ("win32k",))


WINDOWS_2019 = {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.5458"}
WINDOWS_2022 = {"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2340"}


def test_windows_versions_are_two_platforms():
    assert platform_key(WINDOWS_2019) != platform_key(WINDOWS_2022)
    assert format_platform(WINDOWS_2019) == "windows(10.0.17763.5458)/amd64"
    assert parse_platform("windows(10.0.17763.5458)/amd64")["os_version"] == "10.0.17763.5458"
    assert format_platform({"os": "windows", "architecture": "amd64", "os.features": ["win32k"]}) == \
        "windows(+win32k)/amd64"


@pytest.mark.parametrize("required, platform, matches", [
    ("windows(10.0.20348)/amd64", WINDOWS_2022, True),
    ("windows(10.0.20348)/amd64", WINDOWS_2019, False),
    ("windows(10.0.2034)/amd64", WINDOWS_2022, False),   # a prefix on a dot boundary only
    ("windows/amd64", WINDOWS_2019, True),
    ("windows(10.0.17763.5458)/amd64", WINDOWS_2019, True),
    ("linux/arm64", {"os": "linux", "architecture": "arm64", "variant": "v8"}, True),
    ("linux/arm/v6", {"os": "linux", "architecture": "arm", "variant": "v7"}, False),
    ("windows(+win32k)/amd64", dict(WINDOWS_2019, **{"os.features": ["win32k"]}), True),
    ("windows(+win32k)/amd64", WINDOWS_2019, False),
])
def test_requirements_match_as_containerd_matches(required, platform, matches):
    assert platform_matches(required, platform) is matches


@pytest.mark.parametrize("alias, canonical", [
    ("linux/armv7l", "linux/arm/v7"), ("linux/armv6l", "linux/arm/v6"), ("linux/armel", "linux/arm/v6"),
    ("linux/armhf", "linux/arm/v7"), ("linux/i686", "linux/386"), ("linux/i386", "linux/386"),
    ("linux/ppc64el", "linux/ppc64le"), ("linux/loongarch64", "linux/loong64"), ("linux/x86_64", "linux/amd64"),
    ("linux/aarch64", "linux/arm64"), ("linux/mips64el", "linux/mips64le"), ("armv7l", "linux/arm/v7"),
    ("i686", "linux/386"), ("linux/armv8l", "linux/arm/v8"),
])
def test_aliases_normalise_identically(alias, canonical):
    assert platform_key(alias) == platform_key(canonical)


@pytest.mark.parametrize("text, message", [
    ("linux/amd64/v8", r"architecture amd64 has no variant v8 \(valid: v1, v2, v3, v4\)"),
    ("linux/386/v7", r"architecture 386 has no variants \(write it without one, e.g. 'linux/386'\)"),
    ("linux/arm/v9", r"architecture arm has no variant v9 \(valid: v5, v6, v7, v8\)"),
    ("linux/arm64/v7", r"architecture arm64 has no variant v7 \(valid: v8, v8.1, ..., v8.9, v9"),
    ("linux/s390x/v2", "architecture s390x has no variants"),
])
def test_impossible_variants_are_refused_with_the_valid_ones(text, message):
    with pytest.raises(PlatformError, match=message):
        parse_platform(text)


@pytest.mark.parametrize("text", ["linux/amd64/v1", "linux/amd64/v3", "linux/arm64/v8", "linux/arm64/v8.2",
                                  "linux/arm64/v9", "linux/arm/v5", "linux/riscv64/rva22u64"])
def test_possible_variants_are_accepted(text):
    parse_platform(text)


def test_format_keeps_what_is_written():
    assert format_platform({"os": "linux", "architecture": "arm64", "variant": "v8"}) == "linux/arm64/v8"
    assert format_platform({"os": "linux", "architecture": "amd64"}) == "linux/amd64"
    assert format_key(("linux", "arm", "v7")) == "linux/arm/v7"


# ---------------------------------------------------------------------- properties
CANONICAL = st.sampled_from(["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5",
                             "linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64", "linux/mips64le",
                             "windows/amd64", "linux/amd64/v2", "linux/amd64/v3", "linux/loong64"])
ALIASES = {"linux/arm64": ["linux/aarch64", "arm64", "linux/arm64/v8"], "linux/amd64": ["linux/x86_64", "amd64"],
           "linux/arm/v7": ["linux/arm", "linux/armhf", "arm"]}


@given(CANONICAL)
def test_platform_strings_round_trip(text):
    parsed = parse_platform(text)
    assert format_platform(oci_platform(parsed)) == text
    assert parse_platform(format_platform(oci_platform(parsed))) == parsed


@given(st.sampled_from(sorted(ALIASES)), st.data())
def test_aliases_match_their_canonical_platform(text, data):
    alias = data.draw(st.sampled_from(ALIASES[text]))
    assert platform_key(alias) == platform_key(text)


def test_a_platform_is_one_frozen_value_with_two_edges():
    """The collection's one form of a platform: the OCI object and the facts dict are only its edges."""
    import json

    from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import (
        Platform,
        as_platform,
        parse_platform as parse,
    )
    windows = parse("windows(10.0.20348.2340+win32k)/amd64")
    assert isinstance(windows, Platform)
    assert (windows.os, windows.architecture, windows.variant) == ("windows", "amd64", None)
    assert windows.os_version == "10.0.20348.2340" and windows.os_features == ("win32k",)
    with pytest.raises(AttributeError):
        windows.architecture = "arm64"
    oci = windows.oci()
    assert oci == {"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.2340",
                   "os.features": ["win32k"]}
    assert Platform.from_oci(oci) == windows and hash(Platform.from_oci(oci)) == hash(windows)
    facts = windows.as_dict()
    expected = {"os": "windows", "architecture": "amd64", "variant": None, "os_version": "10.0.20348.2340",
                "os_features": ["win32k"]}
    assert json.loads(json.dumps(facts)) == facts == expected
    assert windows == facts and as_platform(facts) == windows and as_platform(oci) == windows
    assert as_platform("linux/arm64/v8") == parse("linux/arm64/v8") != parse("linux/arm64")
    assert str(parse("linux/arm/v7")) == "linux/arm/v7" and parse("arm64").key() == ("linux", "arm64", "", "", ())
    assert {parse("linux/amd64"), parse("linux/amd64")} == {parse("linux/amd64")}
