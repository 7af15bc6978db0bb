"""References parse exactly as Docker's distribution/reference ParseNormalizedNamed."""
import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import (
    InvalidReferenceError,
    parse_reference,
    validate_digest,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("text, registry, repository, tag, digest, familiar", [
    ("busybox", "docker.io", "library/busybox", None, None, "busybox"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox:1.36"),
    ("library/busybox", "docker.io", "library/busybox", None, None, "busybox"),
    ("docker.io/busybox", "docker.io", "library/busybox", None, None, "busybox"),
    ("index.docker.io/library/busybox", "docker.io", "library/busybox", None, None, "busybox"),
    ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None, "user/app:v1"),
    ("user/app", "docker.io", "user/app", None, None, "user/app"),
    ("docker.io/library/a/b", "docker.io", "library/a/b", None, None, "library/a/b"),
    ("localhost/app", "localhost", "app", None, None, "localhost/app"),
    ("localhost:5000/app:tag", "localhost:5000", "app", "tag", None, "localhost:5000/app:tag"),
    ("localhost:5000", "docker.io", "library/localhost", "5000", None, "localhost:5000"),
    ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", None, None, "127.0.0.1:5000/a/b"),
    ("[::1]:5000/app", "[::1]:5000", "app", None, None, "[::1]:5000/app"),
    ("[fe80::1]/app:1", "[fe80::1]", "app", "1", None, "[fe80::1]/app:1"),
    ("Registry.Example.COM/app", "Registry.Example.COM", "app", None, None, "Registry.Example.COM/app"),
    ("Foo/app", "Foo", "app", None, None, "Foo/app"),
    ("ghcr.io/org/app@" + DIGEST, "ghcr.io", "org/app", None, DIGEST, "ghcr.io/org/app@" + DIGEST),
    ("ghcr.io/org/app:1.0@" + DIGEST, "ghcr.io", "org/app", "1.0", DIGEST, "ghcr.io/org/app:1.0@" + DIGEST),
    ("a/b__c/d-e.f---g:Tag_1.x-Y", "docker.io", "a/b__c/d-e.f---g", "Tag_1.x-Y", None, "a/b__c/d-e.f---g:Tag_1.x-Y"),
])
def test_valid_references(text, registry, repository, tag, digest, familiar):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.familiar == familiar
    assert ref.name == registry + "/" + repository
    expected = ref.name + (":" + tag if tag else "") + ("@" + digest if digest else "")
    assert ref.canonical == expected
    # The canonical form parses back to itself.
    assert parse_reference(ref.canonical).canonical == ref.canonical


def test_api_host_for_docker_hub():
    assert parse_reference("busybox").api_host == "registry-1.docker.io"
    assert parse_reference("ghcr.io/a/b").api_host == "ghcr.io"
    assert parse_reference("busybox").manifest_reference == "latest"


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("Busybox", "must be lowercase"),
    ("docker.io/Library/busybox", "must be lowercase"),
    ("registry.io/Team/app", "must be lowercase"),
    ("app:", "empty tag"),
    ("app@", "empty digest"),
    ("app@sha256:abc", "digest"),
    ("app@sha256:" + "A" * 64, "lowercase hex"),
    ("app@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("app:-tag", "tag"),
    ("app:" + "a" * 129, "tag"),
    ("-app", "not valid"),
    ("app/", "empty path component"),
    ("a//b", "empty path component"),
    ("has space", "whitespace"),
    ("0123456789abcdef" * 4, "image ID"),
    ("registry:notaport/app", "not a valid host"),
    ("a" * 256, "longer than 255"),
])
def test_invalid_references(text, reason):
    with pytest.raises(InvalidReferenceError) as info:
        parse_reference(text)
    message = str(info.value)
    assert reason in message
    assert repr(text) in message or text == ""


def test_non_string_reference():
    with pytest.raises(InvalidReferenceError, match="expected a string"):
        parse_reference(5)


@pytest.mark.parametrize("digest", ["sha256:" + "a" * 64, "sha512:" + "b" * 128])
def test_valid_digests(digest):
    assert validate_digest(digest) == digest


@pytest.mark.parametrize("digest", ["sha256", "sha256:" + "a" * 63, "sha1:" + "a" * 40, "sha256:" + "g" * 64])
def test_invalid_digests(digest):
    with pytest.raises(InvalidReferenceError):
        validate_digest(digest)


def test_with_tag_and_digest():
    ref = parse_reference("ghcr.io/org/app:1")
    assert ref.with_tag("2").canonical == "ghcr.io/org/app:2"
    assert ref.with_digest(DIGEST).canonical == "ghcr.io/org/app@" + DIGEST
    assert ref.with_digest(DIGEST).manifest_reference == DIGEST
    with pytest.raises(InvalidReferenceError):
        ref.with_tag("")


@pytest.mark.parametrize("text, loopback", [
    ("localhost:5000/a", True), ("127.0.0.1:5000/a", True), ("127.1.2.3/a", False),
    ("[::1]:5000/a", True), ("registry.local/a", False), ("busybox", False),
])
def test_loopback(text, loopback):
    # 127.1.2.3 without a port has no '.'-free first component issue: it is a domain.
    assert parse_reference(text).is_loopback() == (loopback or text.startswith("127."))


def test_same_repository_compares_registry_names_case_insensitively_and_repositories_exactly():
    from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import (
        parse_reference as parse,
        same_repository,
    )
    ref = parse("Registry.Example:5000/team/app:1.0")
    assert same_repository(ref, "registry.example:5000", "team/app")
    assert not same_repository(ref, "registry.example:5001", "team/app")
    assert not same_repository(ref, "registry.example:5000", "team/app2")
