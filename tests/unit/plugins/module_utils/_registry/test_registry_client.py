"""The registry client through all its layers (api, auth, transport, errors) over a scripted adapter.

No network: the transport adapter's inner ``requests`` adapter is replaced by one that answers from a
script of ``(method, url-suffix) -> [answers]``; everything above it (``requests``' session, redirects,
the auth handler's hooks, the retry loop) runs for real, so retries, challenges, token flows and error
wording are exercised exactly.
"""
import json

import pytest
import requests

from scripted_registry import DIGEST, MANIFEST, PING_OPEN, REF, Adapter, Script, answer, client_with, no_credentials

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_OCI_MANIFEST, sha256_digest
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import (
    RegistryError,
    describe_path,
    response_error,
    transport_error,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.auth import jwt_granted_actions
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.transport import Request, Transport


def test_manifest_get_retries_rate_limits_and_broken_bodies_in_one_loop():
    script = Script({**PING_OPEN, **{("GET", "/v2/team/app/manifests/1.0"): [
        lambda: answer(429, headers={"Retry-After": "1"}),
        lambda: answer(200, MANIFEST, broken=True),
        lambda: answer(200, MANIFEST, {"Content-Type": MEDIA_OCI_MANIFEST, "Docker-Content-Digest": DIGEST}),
    ]}})
    client = client_with(script)
    manifest = client.get_manifest(REF)
    assert manifest.digest == DIGEST and manifest.media_type == MEDIA_OCI_MANIFEST and manifest.size == len(MANIFEST)
    stats = client.stats()
    assert stats["retries"] == 2 and stats["requests"]["GET manifest"] == 3


def test_a_body_that_always_breaks_names_the_read():
    script = Script({**PING_OPEN, **{("GET", "/v2/team/app/manifests/1.0"): [
        lambda: answer(200, MANIFEST, broken=True)]}})
    with pytest.raises(RegistryError, match=r"reading manifest of registry.example/team/app:1.0 failed: the "
                                            r"connection broke while the body was read, 3 time\(s\) \(the body was "
                                            r"cut short\)"):
        client_with(script, retries=2).get_manifest(REF)


def test_a_digest_the_registry_lies_about_is_refused():
    script = Script({**PING_OPEN, **{("GET", "/v2/team/app/manifests/1.0"): [
        lambda: answer(200, MANIFEST, {"Docker-Content-Digest": "sha256:" + "0" * 64})]}})
    with pytest.raises(RegistryError, match="announced digest sha256:0+ but the bytes it sent hash to") as info:
        client_with(script).get_manifest(REF)
    assert info.value.code == "DIGEST_MISMATCH"


def test_missing_manifest_is_none_and_head_falls_back_to_get_without_a_digest():
    script = Script({**PING_OPEN, **{
        ("HEAD", "/v2/team/app/manifests/1.0"): [lambda: answer(200, headers={"Content-Type": MEDIA_OCI_MANIFEST})],
        ("GET", "/v2/team/app/manifests/1.0"): [lambda: answer(200, MANIFEST)],
    }})
    client = client_with(script)
    assert client.get_manifest(parse_reference("registry.example/team/app:gone")) is None
    assert client.head_manifest(REF).digest == DIGEST


def test_bearer_tokens_are_fetched_once_for_many_scopes_and_refreshed_on_401():
    challenge = {"WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="registry.example"'}
    script = Script({
        ("GET", "/v2/"): [lambda: answer(401, headers=challenge)],
        ("GET", "/token"): [lambda: answer(200, json.dumps({"token": "tok-1", "expires_in": 300}).encode()),
                            lambda: answer(200, json.dumps({"access_token": "tok-2"}).encode())],
        ("HEAD", "/v2/team/app/manifests/1.0"): [
            lambda: answer(401),
            lambda: answer(200, headers={"Docker-Content-Digest": DIGEST, "Content-Length": str(len(MANIFEST))})],
    })
    client = client_with(script, username="ci", password="s3cret-pass")
    client.authorize("registry.example", [("team/app", ("pull",)), ("team/other", ("pull",))])
    token_requests = [s for s in script.sent if s[1] == "/token"]
    assert len(token_requests) == 1 and token_requests[0][2]["Authorization"].startswith("Basic ")
    assert client.head_manifest(REF).digest == DIGEST
    heads = [s for s in script.sent if s[0] == "HEAD"]
    assert [h[2]["Authorization"] for h in heads] == ["Bearer tok-1", "Bearer tok-2"]
    assert set(client.secrets()) >= {"s3cret-pass", "tok-1", "tok-2"}


def test_an_unreachable_registry_says_so_and_where_plain_http_is_tried():
    script = Script({("GET", "/v2/"): [requests.exceptions.ConnectionError("Connection refused")]})
    with pytest.raises(RegistryError, match="cannot reach registry registry.example: connection refused "
                                            r"\(plain HTTP is tried only for loopback hosts"):
        client_with(script, retries=0).get_manifest(REF)


def test_write_errors_say_that_push_is_not_allowed():
    script = Script({**PING_OPEN, **{("PUT", "/v2/team/app/manifests/1.0"): [
        lambda: answer(403, b'{"errors": [{"code": "DENIED", "message": "requested access to the resource is '
                            b'denied"}]}')]}})
    with pytest.raises(RegistryError, match=r"no push permission on registry.example/team/app: the registry "
                                            r"refused the write for these credentials \(writing manifest"):
        client_with(script).put_manifest(REF, MANIFEST, MEDIA_OCI_MANIFEST)


def test_a_refused_tag_delete_says_that_push_is_not_allowed():
    # tags.delete_tag reaches the same wording through the public RegistryClient.write_error.
    script = Script({**PING_OPEN, **{("DELETE", "/v2/team/app/manifests/1.0"): [
        lambda: answer(403, b'{"errors": [{"code": "DENIED", "message": "requested access to the resource is '
                            b'denied"}]}')]}})
    with pytest.raises(RegistryError, match=r"no push permission on registry.example/team/app: the registry "
                                            r"refused the write for these credentials \(deleting tag "
                                            r"registry.example/team/app:1.0 failed"):
        client_with(script).delete_tag(REF, None)


@pytest.mark.parametrize("blob", [b"not json", b"[]", b"\xff\xfe"])
def test_an_image_config_that_is_not_a_json_object_is_manifest_invalid(blob):
    config_digest = sha256_digest(blob)
    script = Script({**PING_OPEN, **{("GET", "/v2/team/app/blobs/" + config_digest): [lambda: answer(200, blob)]}})
    with pytest.raises(RegistryError, match="image config %s of registry.example/team/app is not valid JSON"
                                            % config_digest) as raised:
        client_with(script).get_image_config(REF, {"config": {"digest": config_digest}})
    assert raised.value.code == "MANIFEST_INVALID" and raised.value.__cause__ is None


def test_an_image_config_is_read_verified_and_parsed():
    blob = json.dumps({"architecture": "s390x", "os": "linux"}).encode()
    config_digest = sha256_digest(blob)
    script = Script({**PING_OPEN, **{("GET", "/v2/team/app/blobs/" + config_digest): [lambda: answer(200, blob)]}})
    client = client_with(script)
    assert client.get_image_config(REF, {"config": {"digest": config_digest}}) == {"architecture": "s390x", "os": "linux"}
    with pytest.raises(RegistryError, match="manifest registry.example/team/app:1.0 has no config descriptor"):
        client.get_image_config(REF, {"layers": []})


def test_transport_gives_up_after_its_retries():
    transport = Transport(no_credentials, retries=1, sleep=lambda s: None)
    transport.adapter.inner = Script({("GET", "/v2/x"): [lambda: answer(503)]})
    response = transport.request(Request("GET", "https://r.example/v2/x", None, "probe"))
    assert response.status_code == 503 and transport.stats()["requests"] == {"GET probe": 2}


def test_error_wording():
    rate_limited = answer(429, b"You have reached your pull rate limit.", {"ratelimit-remaining": "0;w=21600"})
    assert str(response_error(rate_limited, "reading x", retries=3)) == (
        "reading x failed: the registry answered 429 TOOMANYREQUESTS (You have reached your pull rate limit.); "
        "retried 3 times, rate-limit headers: ratelimit-remaining=0;w=21600")
    unauthorized = answer(401, b"<html>nope</html>")
    assert str(response_error(unauthorized, "reading x", registry="r.example")).endswith(
        "no credentials were found for r.example (set username/password, registry_credentials or docker_config)")
    error = transport_error("GET", "https://r.example/v2/?x=1", 4, OSError("Connection reset by peer"))
    assert str(error) == "GET https://r.example/v2/ failed after 4 attempt(s): connection reset"
    assert describe_path(REF, "manifests/sha256:abc") == "registry.example/team/app@sha256:abc"
    assert describe_path(REF, "blobs/uploads/") == "blob upload to registry.example/team/app"


def test_jwt_granted_actions():
    import base64
    claims = {"access": [{"type": "repository", "name": "team/app", "actions": ["pull"]}]}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert jwt_granted_actions("h." + payload + ".s", "team/app") == {"pull"}
    assert jwt_granted_actions("h." + payload + ".s", "team/other") == set()
    assert jwt_granted_actions("opaque", "team/app") is None


@pytest.mark.parametrize("length", [None, "0"])
def test_a_head_without_a_usable_length_is_followed_by_a_get(length):
    headers = {"Docker-Content-Digest": DIGEST, "Content-Type": MEDIA_OCI_MANIFEST}
    if length is not None:
        headers["Content-Length"] = length
    script = Script({**PING_OPEN, **{
        ("HEAD", "/v2/team/app/manifests/1.0"): [lambda: answer(200, headers=headers)],
        ("GET", "/v2/team/app/manifests/1.0"): [lambda: answer(200, MANIFEST, {"Docker-Content-Digest": DIGEST})],
    }})
    head = client_with(script).head_manifest(REF)
    assert head.size == len(MANIFEST) and head.digest == DIGEST


def test_schema1_is_recognised_not_refused_as_a_digest_mismatch():
    schema1 = json.dumps({"schemaVersion": 1, "name": "team/app", "tag": "1.0", "architecture": "amd64",
                          "fsLayers": [], "history": [], "signatures": [{"header": {}}]}).encode()
    script = Script({**PING_OPEN, **{("GET", "/v2/team/app/manifests/1.0"): [
        lambda: answer(200, schema1, {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws",
                                      "Docker-Content-Digest": "sha256:" + "5" * 64})]}})
    manifest = client_with(script).get_manifest(REF)
    assert manifest.media_type == "application/vnd.docker.distribution.manifest.v1+prettyjws"
    assert manifest.digest == "sha256:" + "5" * 64


def test_registry_host_names_compare_case_insensitively():
    transport = Transport(no_credentials, insecure_registries=["Registry.Lan:5000"], sleep=lambda s: None)
    assert transport.is_insecure("registry.lan:5000") and transport.is_insecure("REGISTRY.LAN:5000")
    script = Script({("GET", "/v2/"): [requests.exceptions.SSLError("wrong version number"), lambda: answer(200)]})
    transport.adapter.inner = script
    # LOCALHOST is loopback: after the TLS attempt fails, plain HTTP is tried, as for localhost.
    endpoint = transport.endpoint("LOCALHOST:5000")
    assert endpoint.base_url == "http://localhost:5000" and transport.endpoint("localhost:5000") is endpoint


def test_tags_are_listed_across_link_pages():
    from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.tags import list_tags
    pages = {("GET", "/v2/team/app/tags/list"): [
        lambda: answer(200, b'{"name": "team/app", "tags": ["a", "b"]}',
                       {"Link": '</v2/team/app/tags/list?last=b&n=2>; rel="next"'}),
        lambda: answer(200, b'{"name": "team/app", "tags": ["c"]}')]}
    script = Script({**PING_OPEN, **pages})
    client = client_with(script)
    assert list_tags(client, REF, page_size=2) == ["a", "b", "c"]
    assert [s[1] for s in script.sent if s[1].endswith("tags/list")] == ["/v2/team/app/tags/list"] * 2
    assert list_tags(client_with(Script(PING_OPEN)), parse_reference("registry.example/none/x")) is None


def test_at_most_max_in_flight_requests_at_once_and_back_offs_hold_no_slot():
    import threading
    import time
    lock, state = threading.Lock(), {"now": 0, "most": 0, "calls": 0}
    backing_off, three_meanwhile = threading.Event(), threading.Event()

    def slow(method, url, **kwargs):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            state["calls"] += 1
            first = state["calls"] == 1
            if backing_off.is_set() and state["now"] == 3:
                three_meanwhile.set()
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return answer(503 if first else 200)

    def sleep(seconds):
        backing_off.set()
        three_meanwhile.wait(5)      # 3 others are sent while this one waits: it holds no slot

    transport = Transport(no_credentials, max_in_flight=3, sleep=sleep)
    transport.adapter.inner = Adapter(slow)
    threads = [threading.Thread(target=transport.request, args=(Request("GET", "http://r.example/v2/", None, "ping"),))
               for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert three_meanwhile.is_set() and state["calls"] == 13
    assert state["most"] == 3 and transport.most_in_flight == 3 and transport.in_flight == 0


def test_repository_exists_is_one_tag_list_request_and_only_a_404_says_no():
    script = Script({**PING_OPEN, ("GET", "/v2/team/app/tags/list"): [lambda: answer(200, b'{"tags": ["1.0"]}')],
                     ("GET", "/v2/team/gone/tags/list"): [lambda: answer(404, b'{"errors": [{"code": "NAME_UNKNOWN"}]}')],
                     ("GET", "/v2/team/odd/tags/list"): [lambda: answer(403, b"")]})
    client = client_with(script)
    assert client.repository_exists(REF) is True
    assert client.repository_exists(parse_reference("registry.example/team/gone:1")) is False
    assert client.repository_exists(parse_reference("registry.example/team/odd:1")) is True
    listed = [sent[1] for sent in script.sent if "tags" in sent[1]]
    assert listed == ["/v2/team/app/tags/list", "/v2/team/gone/tags/list", "/v2/team/odd/tags/list"]
