"""Pure decisions of the registry client: retries, Retry-After, error bodies, digests."""
import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import sha256_digest
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.blobs import verify_digest
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError, parse_error_body
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.transport import (
    MAX_RETRY_DELAY,
    parse_retry_after,
    retry_delay,
    should_retry,
)


@pytest.mark.parametrize("status, retry", [(429, True), (502, True), (503, True), (504, True), (500, False),
                                           (401, False), (404, False), (200, False)])
def test_should_retry(status, retry):
    assert should_retry(status) is retry


def test_backoff_grows_and_is_capped():
    delays = [retry_delay(n, jitter=lambda: 0.0) for n in range(1, 12)]
    assert delays[:3] == [0.5, 1.0, 2.0]
    assert max(delays) == MAX_RETRY_DELAY


def test_retry_after_wins():
    assert retry_delay(1, {"Retry-After": "7"}, jitter=lambda: 0.0) == 7.0
    assert retry_delay(1, {"retry-after": "3600"}) == MAX_RETRY_DELAY
    assert retry_delay(2, {"Retry-After": "soon"}, jitter=lambda: 0.0) == 1.0


def test_retry_after_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("garbage") is None


@pytest.mark.parametrize("body, code, message", [
    (b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}',
     "MANIFEST_UNKNOWN", "manifest unknown"),
    (b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}', "DENIED",
     "requested access to the resource is denied"),
    (b"You have reached your pull rate limit. You may increase the limit by authenticating.", None,
     "You have reached your pull rate limit. You may increase the limit by authenticating."),
    (b"<html><body>502 Bad Gateway</body></html>", None, None),
    (b"", None, None),
    (b'{"details":"incorrect username or password"}', None, "incorrect username or password"),
    # GitLab says why in a string detail (gitlab-org/container-registry: media-type allowlist)
    (b'{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":"unknown media type: '
     b'application/x-thing"}]}', "MANIFEST_INVALID", "manifest invalid: unknown media type: application/x-thing"),
])
def test_parse_error_body(body, code, message):
    assert parse_error_body(body) == (code, message)


def test_verify_digest():
    data = b'{"schemaVersion":2}'
    verify_digest(data, sha256_digest(data), "reading x")
    with pytest.raises(RegistryError) as info:
        verify_digest(data + b" ", sha256_digest(data), "reading x")
    assert info.value.code == "DIGEST_MISMATCH" and "refusing" in str(info.value)


def test_an_error_body_with_several_errors_names_every_code():
    body = (b'{"errors": [{"code": "DENIED", "message": "no push"}, {"code": "NAME_UNKNOWN", "message": "no repo"},'
            b' {"code": "UNAUTHORIZED"}]}')
    assert parse_error_body(body) == ("DENIED", "no push; also NAME_UNKNOWN (no repo), UNAUTHORIZED")
    assert parse_error_body(b'{"errors": [{"code": "DENIED"}, {"code": "UNAUTHORIZED"}]}') == (
        "DENIED", "also UNAUTHORIZED")
