"""The one request path: challenges per host, redirects, HEAD that lies, refusals that are facts.

Every case is a kind of registry behaviour seen in the field, named with its public source; the
registries are scripted at the transport adapter, so ``requests`` (redirects, auth hooks) runs for real.
"""
import ast
import json
from pathlib import Path

import pytest

from scripted_registry import DIGEST, MANIFEST, PING_OPEN, REF, Script, answer, client_with, no_credentials

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.auth import Challenge, parse_scope
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.discovery import Discovery
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.referrers import Referrers
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.transport import Transport

PLUGINS = Path(__file__).resolve().parents[5] / "plugins"
BEARER = 'Bearer realm="https://auth.example/token",service="registry.example"'
MANIFEST_HEADERS = {"Content-Type": MEDIA_OCI_MANIFEST, "Docker-Content-Digest": DIGEST}


def token(value):
    return lambda: answer(200, json.dumps({"token": value, "expires_in": 300}).encode())


# --- Docker Hub: a missing repository is 401 insufficient_scope after an anonymous token --------------
def test_a_repository_refused_after_a_granted_token_is_denied_not_a_credentials_failure():
    """distribution/distribution#1291, jupyterhub/binderhub#1664: Docker Hub grants an anonymous pull token
    for any name, then answers a missing or private repository with 401 error="insufficient_scope"."""
    scope_error = {"WWW-Authenticate": BEARER + ',scope="repository:team/typo:pull",error="insufficient_scope"'}
    script = Script({
        ("GET", "/v2/"): [lambda: answer(401, headers={"WWW-Authenticate": BEARER})],
        ("GET", "/token"): [token("anon")],
        ("GET", "/v2/team/typo/manifests/1.0"): [lambda: answer(401, b'{"errors": [{"code": "UNAUTHORIZED", '
                                                                b'"message": "authentication required"}]}',
                                                                scope_error)],
    })
    with pytest.raises(RegistryError) as raised:
        client_with(script).get_manifest(parse_reference("registry.example/team/typo:1.0"))
    assert raised.value.code == "DENIED"
    assert "registry.example/team/typo does not exist or no pull access" in str(raised.value)
    assert "insufficient_scope" in str(raised.value) and "were not accepted" not in str(raised.value)
    assert "no credentials were found for registry.example" in str(raised.value)
    # one fresh token was asked for after the first refusal, then the answer was believed
    assert [s[1] for s in script.sent].count("/token") == 2
    assert [s[1] for s in script.sent].count("/v2/team/typo/manifests/1.0") == 2


def test_head_of_a_refused_repository_is_denied_too():
    scope_error = {"WWW-Authenticate": BEARER + ',error="insufficient_scope"'}
    script = Script({("GET", "/v2/"): [lambda: answer(401, headers={"WWW-Authenticate": BEARER})],
                     ("GET", "/token"): [token("anon")],
                     ("HEAD", "/v2/team/typo/manifests/1.0"): [lambda: answer(401, headers=scope_error)]})
    with pytest.raises(RegistryError, match="does not exist or no pull access") as raised:
        client_with(script).head_manifest(parse_reference("registry.example/team/typo:1.0"))
    assert raised.value.code == "DENIED"


# --- Nexus, some Harbor set-ups: HEAD 404 for a manifest GET returns --------------------------------
def test_a_head_404_is_confirmed_by_one_get_and_the_habit_is_learnt_once():
    """andrey-pohilko/registry-cli#43, crossplane/crossplane#3223: HEAD 404 while GET answers 200."""
    script = Script({**PING_OPEN,
                     ("HEAD", "/v2/team/app/manifests/1.0"): [lambda: answer(404)],
                     ("HEAD", "/v2/team/app/manifests/2.0"): [lambda: answer(404)],
                     ("GET", "/v2/team/app/manifests/1.0"): [lambda: answer(200, MANIFEST, MANIFEST_HEADERS)],
                     ("GET", "/v2/team/app/manifests/2.0"): [lambda: answer(200, MANIFEST, MANIFEST_HEADERS)]})
    client = client_with(script)
    assert client.head_manifest(REF).digest == DIGEST
    assert client.head_manifest(parse_reference("registry.example/team/app:2.0")).digest == DIGEST
    heads = [s[1] for s in script.sent if s[0] == "HEAD"]
    assert heads == ["/v2/team/app/manifests/1.0"]      # the second reference went straight to GET


def test_a_head_404_confirmed_by_a_get_404_is_missing():
    script = Script({**PING_OPEN, ("HEAD", "/v2/team/app/manifests/1.0"): [lambda: answer(404)]})
    client = client_with(script)
    assert client.head_manifest(REF) is None
    assert client.head_manifest(REF) is None
    assert [s[0] for s in script.sent if "manifests" in s[1]] == ["HEAD", "GET", "HEAD", "GET"]


# --- a redirect to another host with its own challenge ---------------------------------------------
def test_a_redirect_to_another_host_answers_that_hosts_challenge_with_its_own_token_only():
    """lscr.io redirects to ghcr.io, which challenges for its own token (google/go-containerregistry#2333,
    #2359). The first host's credentials never reach the second; the second's token never the first."""
    ghcr_challenge = 'Bearer realm="https://ghcr.example/token",service="ghcr.example",scope="repository:team/app:pull"'
    script = Script({
        ("GET", "/v2/"): [lambda: answer(401, headers={"WWW-Authenticate": 'Basic realm="lscr"'})],
        ("GET", "/v2/team/app/manifests/1.0"): [
            lambda: answer(307, headers={"Location": "https://ghcr.example/v2/team/app/manifests/1.0"}),
            lambda: answer(401, headers={"WWW-Authenticate": ghcr_challenge}),
            lambda: answer(200, MANIFEST, MANIFEST_HEADERS),
            lambda: answer(307, headers={"Location": "https://ghcr.example/v2/team/app/manifests/1.0"}),
            lambda: answer(200, MANIFEST, MANIFEST_HEADERS)],
        ("GET", "/token"): [token("ghcr-token")],
    })
    client = client_with(script, username="lscr-user", password="lscr-Secret-1")
    assert client.get_manifest(REF).digest == DIGEST
    assert client.get_manifest(REF).digest == DIGEST
    sent = list(zip(script.hosts, [(s[0], s[1], s[2].get("Authorization")) for s in script.sent]))
    for host, (_method, path, authorization) in sent:
        if host == "ghcr.example":
            assert authorization in (None, "Bearer ghcr-token"), (path, authorization)
        else:
            assert authorization is None or authorization.startswith("Basic "), (path, authorization)
    assert not any(host == "ghcr.example" and (auth or "").startswith("Basic ") for host, (_m, _p, auth) in sent)
    # the second read carried the cached ghcr token across the redirect: no second 401, no second token
    assert [s[1] for s in script.sent].count("/token") == 1
    assert sent[-1] == ("ghcr.example", ("GET", "/v2/team/app/manifests/1.0", "Bearer ghcr-token"))


def test_credentials_of_a_redirect_host_come_only_from_sources_naming_it():
    seen = []
    transport = Transport(lambda registry, strict=False: seen.append((registry, strict)), sleep=lambda s: None)
    transport.adapter.inner = Script(PING_OPEN)
    transport.endpoint("registry.example")
    transport.auth.credentials("registry.example")
    transport.auth.credentials("cdn.example:8443")
    assert seen == [("registry.example", False), ("cdn.example:8443", True)]


# --- an open ping, challenged writes ------------------------------------------------------------------
def test_a_write_challenged_after_an_open_ping_is_answered_with_the_credentials():
    """moby/moby#12972: a registry whose /v2/ is open asks for credentials only when a write comes."""
    script = Script({**PING_OPEN, ("PUT", "/v2/team/app/manifests/1.0"): [
        lambda: answer(401, headers={"WWW-Authenticate": 'Basic realm="nexus"'}),
        lambda: answer(201, headers={"Docker-Content-Digest": DIGEST})]})
    client = client_with(script, username="ci", password="ci-Secret-77")
    assert client.put_manifest(REF, MANIFEST, MEDIA_OCI_MANIFEST) == DIGEST
    puts = [s[2].get("Authorization") for s in script.sent if s[0] == "PUT"]
    assert puts[0] is None and puts[1].startswith("Basic ")


@pytest.mark.parametrize("username, expected, unexpected", [
    ("ci", "the credentials of 'ci' (from the username/password options) were not accepted", "no credentials"),
    (None, "no credentials were found for registry.example", "were not accepted"),
])
def test_a_refused_write_blames_only_credentials_that_were_sent(username, expected, unexpected):
    script = Script({**PING_OPEN, ("PUT", "/v2/team/app/manifests/1.0"): [
        lambda: answer(401, headers={"WWW-Authenticate": 'Basic realm="nexus"'})]})
    options = {"username": username, "password": "wrong-Secret-9"} if username else {}
    with pytest.raises(RegistryError) as raised:
        client_with(script, **options).put_manifest(REF, MANIFEST, MEDIA_OCI_MANIFEST)
    assert expected in str(raised.value) and unexpected not in str(raised.value)
    assert len([s for s in script.sent if s[0] == "PUT"]) == (2 if username else 1)


# --- referrers endpoints of registries without the API -----------------------------------------------
@pytest.mark.parametrize("status", [400, 404, 405, 406, 500, 501])
def test_a_referrers_endpoint_without_the_api_falls_back_to_the_tag_schema(status):
    subject = "sha256:" + "a" * 64
    index = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": [
        {"mediaType": MEDIA_OCI_MANIFEST, "digest": "sha256:" + "b" * 64, "size": 10,
         "artifactType": "application/spdx+json"}]}).encode()
    script = Script({**PING_OPEN,
                     ("GET", "/v2/team/app/referrers/" + subject): [lambda: answer(status, b"no such route")],
                     ("GET", "/v2/team/app/tags/list"): [lambda: answer(200, b'{"tags": ["sha256-' + b"a" * 64 + b'"]}')],
                     ("GET", "/v2/team/app/manifests/sha256-" + "a" * 64): [lambda: answer(200, index)]})
    reader = Referrers(client_with(script, retries=0))
    facts = reader.list(REF, subject)
    assert [fact["digest"] for fact in facts] == ["sha256:" + "b" * 64]
    assert reader.supports_api("registry.example") is False


# --- pagination -------------------------------------------------------------------------------------
def test_pages_follow_absolute_and_relative_links_with_unquoted_rel():
    """Link without quotes around rel (Artifactory) and absolute links are followed from the page's URL."""
    script = Script({**PING_OPEN, ("GET", "/v2/team/app/tags/list"): [
        lambda: answer(200, b'{"tags": ["a"]}', {"Link": "</v2/team/app/tags/list?last=a&n=1>; rel=next"}),
        lambda: answer(200, b'{"tags": ["b"]}',
                       {"Link": '<https://registry.example/v2/team/app/tags/list?last=b&n=1>; rel="next"'}),
        lambda: answer(200, b'{"tags": ["c"]}')]})
    assert client_with(script).list_tags(REF) == ["a", "b", "c"]


# --- one way to the wire -------------------------------------------------------------------------------
def test_nothing_reaches_the_wire_outside_transport_request():
    """docs/architecture.md: "Every request reaches the wire through `Transport.request`." """
    transport = Transport(no_credentials, sleep=lambda s: None)
    transport.adapter.inner = Script(PING_OPEN)
    with pytest.raises(RuntimeError, match="outside Transport.request"):
        transport.session.get("https://registry.example/v2/")


def _calls(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node.func.attr, ast.unparse(node.func.value)


def test_no_module_sends_a_request_another_way():
    """docs/architecture.md: "Only `transport.py` calls the session." Nothing else calls requests' senders."""
    senders = {"request", "get", "head", "post", "put", "patch", "delete", "send", "urlopen"}
    for path in sorted(PLUGINS.rglob("*.py")):
        for attr, owner in _calls(path):
            if attr in senders and ("session" in owner or owner in ("requests", "urllib.request", "http.client")):
                assert path.name == "transport.py" and owner == "self.session" and attr == "request", (path, owner, attr)


def test_challenge_and_scope_parsing():
    challenge = Challenge.parse('Bearer realm="https://a/token",service="s",scope="repository:x/y:pull",'
                                'error="insufficient_scope"')
    assert (challenge.scheme, challenge.realm, challenge.service, challenge.error) == (
        "bearer", "https://a/token", "s", "insufficient_scope")
    assert Challenge.parse("Negotiate abc") is None and Challenge.parse(None) is None
    assert parse_scope("repository:team/app:pull,push") == ("team/app", ("pull", "push"))
    assert parse_scope("repository:host:5000/x:pull") == ("host:5000/x", ("pull",))
    assert parse_scope("registry:catalog:*") is None


def test_discovery_reads_insecure_registries_with_or_without_port():
    discovery = Discovery(None, insecure_registries=["mirror.lan"])
    assert discovery.is_insecure("mirror.lan:5000") and not discovery.is_insecure("other.lan")


def test_a_next_link_naming_another_path_keeps_the_page_path():
    """Artifactory's tag-list Link drops the repository's first path component (JFrog RTFACT-18971;
    renovatebot/renovate#20745): the next page keeps the request's own path and takes the link's query."""
    from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.tags import next_page_url
    page = "https://art.example/v2/docker-local/app/tags/list?n=2"
    assert next_page_url(page, "/v2/app/tags/list?last=b&n=2") == \
        "https://art.example/v2/docker-local/app/tags/list?last=b&n=2"
    assert next_page_url(page, "/v2/docker-local/app/tags/list?last=b&n=2") == \
        "https://art.example/v2/docker-local/app/tags/list?last=b&n=2"
    assert next_page_url(page, "https://elsewhere.example/v2/docker-local/app/tags/list?last=b") == \
        "https://art.example/v2/docker-local/app/tags/list?last=b"


def test_a_token_service_refusing_the_credentials_says_they_were_not_accepted():
    script = Script({("GET", "/v2/"): [lambda: answer(401, headers={"WWW-Authenticate": BEARER})],
                     ("GET", "/token"): [lambda: answer(401, b"")]})
    with pytest.raises(RegistryError) as raised:
        client_with(script, username="ci", password="bad-Secret-1").get_manifest(REF)
    assert raised.value.code == "UNAUTHORIZED"
    assert "the credentials of 'ci' (from the username/password options) were not accepted" in str(raised.value)


def test_a_referrer_listed_with_the_empty_config_type_gets_its_own_artifact_type():
    """go-containerregistry v0.22.1's Referrers API lists the config's media type as artifactType; an OCI 1.1
    cosign signature (empty config) is then read back from its manifest, one GET, and counted as a signature."""
    subject = "sha256:" + "a" * 64
    signature = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
                            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                       "digest": "sha256:" + "4" * 64, "size": 2}, "layers": []}).encode()
    from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import sha256_digest
    digest = sha256_digest(signature)
    listing = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": [
        {"mediaType": MEDIA_OCI_MANIFEST, "digest": digest, "size": len(signature),
         "artifactType": "application/vnd.oci.empty.v1+json"}]}).encode()
    script = Script({**PING_OPEN, ("GET", "/v2/team/app/referrers/" + subject): [lambda: answer(200, listing)],
                     ("GET", "/v2/team/app/manifests/" + digest): [lambda: answer(200, signature)],
                     ("GET", "/v2/team/app/tags/list"): [lambda: answer(200, b'{"tags": []}')]})
    facts = Referrers(client_with(script)).list(REF, subject)
    assert [(f["artifact_type"], f["category"]) for f in facts] == [
        ("application/vnd.dev.cosign.artifact.sig.v1+json", "signature")]


def test_a_referrers_404_for_an_unknown_repository_is_no_referrers_not_no_api():
    """go-containerregistry's registry answers NAME_UNKNOWN for a repository not written yet: that says
    nothing about the API, which the next repository's request (200) then shows."""
    subject = "sha256:" + "a" * 64
    empty = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": []}).encode()
    script = Script({**PING_OPEN,
                     ("GET", "/v2/new/repo/referrers/" + subject): [
                         lambda: answer(404, b'{"errors": [{"code": "NAME_UNKNOWN", "message": "unknown name"}]}')],
                     ("GET", "/v2/team/app/referrers/" + subject): [lambda: answer(200, empty)],
                     ("GET", "/v2/new/repo/tags/list"): [lambda: answer(404, b"")],
                     ("GET", "/v2/team/app/tags/list"): [lambda: answer(200, b'{"tags": []}')]})
    reader = Referrers(client_with(script))
    assert reader.list(parse_reference("registry.example/new/repo:1"), subject) == []
    assert reader.supports_api("registry.example") is None
    assert reader.list(REF, subject) == [] and reader.supports_api("registry.example") is True
