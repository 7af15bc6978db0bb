"""Property tests (hypothesis) of every parser that sees registry or user input (issue 21).

The property for each: on any input it returns or raises its module's own error type (never KeyError,
TypeError, RecursionError ...); where a parser has an inverse, the round trip holds; normalising twice
changes nothing. Registry answers are generated as arbitrary JSON and arbitrary bytes.
"""
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci import jsondoc, manifest, media, platform
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import (
    InvalidReferenceError,
    is_valid_repository,
    is_valid_tag,
    parse_reference,
    validate_digest,
    validate_tag,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry import tags
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.auth import Challenge, parse_scope
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.credentials import parse_www_authenticate
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import parse_error_body

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30)
HEX = "0123456789abcdef"
digests = st.one_of(
    st.text(HEX, min_size=64, max_size=64).map(lambda h: "sha256:" + h),
    st.text(HEX, min_size=128, max_size=128).map(lambda h: "sha512:" + h))
tag_text = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
component = st.from_regex(r"\A[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+){0,2}\Z")
repositories = st.lists(component, min_size=1, max_size=4).map("/".join).filter(lambda r: len(r) <= 200)


# ---------------------------------------------------------------------- references
@SETTINGS
@given(st.text(max_size=300))
def test_parse_reference_raises_only_reference_error(text):
    try:
        ref = parse_reference(text)
    except InvalidReferenceError:
        return
    assert "\n" not in ref.canonical and " " not in ref.canonical
    assert parse_reference(ref.canonical).canonical == ref.canonical       # idempotent


@SETTINGS
@given(repositories, st.one_of(st.none(), tag_text), st.one_of(st.none(), digests))
def test_references_round_trip(repository, tag, digest):
    text = "registry.example:5000/" + repository + (":" + tag if tag else "") + ("@" + digest if digest else "")
    ref = parse_reference(text)
    assert (ref.repository, ref.tag, ref.digest) == (repository, tag, digest)
    assert parse_reference(ref.canonical).canonical == ref.canonical


@SETTINGS
@given(st.text(max_size=200))
def test_tag_repository_and_digest_checks_agree_and_never_accept_control_characters(text):
    assert is_valid_tag(text) == _accepts(validate_tag, text)
    if is_valid_tag(text) or is_valid_repository(text):
        assert all(c.isalnum() or c in "._-/" for c in text) and text.isascii()
        assert not text.startswith(("-", ".", "/"))
    if _accepts(validate_digest, text):
        assert text.split(":")[0] in ("sha256", "sha512") and "\n" not in text and ".." not in text


def _accepts(function, value):
    try:
        function(value)
        return True
    except InvalidReferenceError:
        return False


# ---------------------------------------------------------------------- platforms
@SETTINGS
@given(st.text(max_size=80))
def test_parse_platform_raises_only_platform_error_and_round_trips(text):
    try:
        parsed = platform.parse_platform(text)
    except platform.PlatformError:
        return
    formatted = platform.format_platform(parsed)
    assert platform.format_platform(platform.parse_platform(formatted)) == formatted    # idempotent


@SETTINGS
@given(json_values)
def test_from_oci_takes_any_json(value):
    try:
        platform.from_oci(value if isinstance(value, dict) else {"architecture": value})
    except platform.PlatformError:
        pass


# ---------------------------------------------------------------------- WWW-Authenticate, scopes, Link
@SETTINGS
@given(st.text(max_size=400))
def test_www_authenticate_parsing_never_raises(header):
    scheme, params = parse_www_authenticate(header)
    assert scheme is None or scheme == scheme.lower()
    assert all(key == key.lower() for key in params)
    challenge = Challenge.parse(header)
    assert challenge is None or challenge.scheme in ("basic", "bearer")
    parse_scope(header)


@SETTINGS
@given(st.sampled_from(["realm", "service", "scope", "error"]), st.text(st.characters(blacklist_categories=("Cs",)),
                                                                        max_size=60))
def test_quoted_challenge_values_round_trip(key, value):
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    scheme, params = parse_www_authenticate('Bearer %s="%s",other="x"' % (key, quoted))
    assert scheme == "bearer" and params[key] == value and params["other"] == "x"


@SETTINGS
@given(st.text(max_size=200))
def test_next_page_url_never_leaves_the_page(link):
    page = "https://registry.example/v2/team/app/tags/list?n=100"
    target = tags.next_page_url(page, link)
    assert target.startswith("https://registry.example/v2/team/app/tags/list")


@SETTINGS
@given(st.text(max_size=300))
def test_link_headers_parse_without_raising(header):
    import requests
    response = requests.Response()
    response.headers["Link"] = header
    links = response.links
    assert isinstance(links, dict)


# ---------------------------------------------------------------------- media types, digests, errors
@SETTINGS
@given(st.one_of(st.none(), st.text(max_size=120)))
def test_media_type_of_is_idempotent(content_type):
    value = media.media_type_of(content_type)
    assert value is None or media.media_type_of(value) == value


@SETTINGS
@given(st.binary(max_size=64), st.text(max_size=80))
def test_compute_digest_knows_two_algorithms(data, digest):
    value = media.compute_digest(data, digest)
    assert value is None or value.split(":")[0] in ("sha256", "sha512")


@SETTINGS
@given(st.binary(max_size=400))
def test_error_bodies_of_any_bytes_are_worded(body):
    code, message = parse_error_body(body)
    assert code is None or isinstance(code, str) or code is not None
    assert message is None or len(message) < 2000


# ---------------------------------------------------------------------- JSON, manifests, indexes
@SETTINGS
@given(st.binary(max_size=300))
def test_loads_strict_raises_only_value_error_on_bytes(data):
    try:
        jsondoc.loads_strict(data)
    except ValueError:
        pass


@SETTINGS
@given(json_values)
def test_loads_strict_round_trips_json(value):
    text = json.dumps(value)
    assert jsondoc.loads_strict(text.encode()) == json.loads(text)


@SETTINGS
@given(st.integers(min_value=jsondoc.MAX_DEPTH + 1, max_value=5000), st.sampled_from("[{"))
def test_loads_strict_refuses_deep_nesting_without_recursion_error(depth, opener):
    closer = "]" if opener == "[" else "}"
    text = (opener if opener == "[" else '{"a":') * depth + ("1" if opener == "{" else "") + closer * depth
    try:
        jsondoc.loads_strict(text)
        raise AssertionError("accepted")
    except ValueError as exc:
        assert "deeper" in str(exc) or "not valid JSON" in str(exc)


@SETTINGS
@given(json_values)
def test_manifest_parsers_take_any_json_object(value):
    document = value if isinstance(value, dict) else {"manifests": value, "layers": value, "config": value}
    problem = manifest.descriptor_problem(document)
    if problem is None:
        # What passes the check is safe for every reader of the collection.
        for name in ("manifests", "layers"):
            for item in document.get(name) or []:
                assert isinstance(item, dict)
                if name == "manifests" or item.get("digest") is not None:
                    validate_digest(item["digest"])
        kind = manifest.manifest_kind(document.get("mediaType"), document) if isinstance(
            document.get("mediaType"), (str, type(None))) else None
        assert kind is None or isinstance(kind, str)


@SETTINGS
@given(st.lists(st.fixed_dictionaries({
    "mediaType": st.sampled_from([media.MEDIA_OCI_MANIFEST, media.MEDIA_OCI_INDEX, "x/y"]),
    "digest": digests, "size": st.integers(min_value=0, max_value=10 ** 9)},
    optional={"platform": st.fixed_dictionaries({"architecture": st.sampled_from(["amd64", "arm64", "arm", ""]),
                                                 "os": st.sampled_from(["linux", "windows", ""])}),
              "annotations": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)}),
    max_size=8))
def test_index_facts_of_valid_descriptors(children):
    document = {"schemaVersion": 2, "mediaType": media.MEDIA_OCI_INDEX, "manifests": children}
    assert manifest.descriptor_problem(document) is None
    facts = manifest.index_facts(document)
    assert isinstance(facts, dict)


@SETTINGS
@given(st.binary(max_size=300))
def test_parse_image_config_raises_only_value_error(data):
    try:
        assert isinstance(manifest.parse_image_config(data), dict)
    except ValueError:
        pass


# ---------------------------------------------------------------------- binfmt_misc entries
@SETTINGS
@given(st.text(max_size=200))
def test_binfmt_entries_parse_or_raise_binfmt_error(text):
    try:
        entries.parse_entry("qemu-x", text)
    except entries.BinfmtError:
        pass
    try:
        entries.parse_register_line(text)
    except entries.BinfmtError:
        pass


@SETTINGS
@given(st.binary(max_size=64))
def test_binfmt_escape_round_trips(data):
    assert entries.unescape(entries.escape(data)) == data


@SETTINGS
@given(st.text(max_size=20))
def test_binfmt_flags_normalise_idempotently(flags):
    try:
        once = entries.normalize_flags(flags)
    except entries.BinfmtError:
        return
    assert entries.normalize_flags(once) == once
