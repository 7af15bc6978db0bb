"""Pulp (pulpcore + pulp-container, the registry of Satellite and Private Automation Hub) as a real registry.

One Pulp per session (harness.pulp.PulpRegistry: PostgreSQL, API server, content app, one worker),
seeded with the standard fixtures by harness.images.seed_fixtures. The tests read the seeded index
with plain HTTP and with one real ansible-playbook run of docker_manifest_info, and pin down what
Pulp answers to each registry operation the collection uses (the table in harness/pulp.py's
docstring): when Pulp changes its answers, test_registry_operations_as_documented says which.
"""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import requests

from harness.suite import registry_options
from harness.ansible_run import play, task
from harness.images import (ALL_MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST, PushClient, encode_json, push_image,
                            seed_fixtures, sha256_digest)
from harness.pulp import PulpRegistry


@pytest.fixture(scope="session")
def pulp():
    """A Pulp registry (Bearer tokens from Pulp's /token/, user admin) seeded with the standard fixtures."""
    with PulpRegistry() as registry:
        registry.variant = "pulp"
        began = time.monotonic()
        registry.fixtures = seed_fixtures(registry)
        registry.timings["seed"] = time.monotonic() - began
        yield registry


def token(registry, *scopes: str, auth=True) -> str:
    response = requests.get(f"{registry.url}/token/", params=[("service", registry.host)] +
                            [("scope", s) for s in scopes], auth=registry.auth_tuple if auth else None, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    return body["token"]


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


def test_v2_answers_with_a_bearer_challenge_naming_pulps_token_server(pulp):
    response = requests.get(f"{pulp.url}/v2/", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="{pulp.url}/token/",service="{pulp.host}"')
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    answer = requests.get(f"{pulp.url}/v2/", headers=bearer(token(pulp)), timeout=10)
    assert answer.status_code == 200 and answer.json() == {}


def test_the_seeded_index_reads_back_over_plain_http(pulp):
    fx = pulp.fixtures["multi"]
    headers = {**bearer(token(pulp, "repository:fixtures/multi:pull")), "Accept": ALL_MANIFEST_TYPES}
    head = requests.head(f"{pulp.url}/v2/fixtures/multi/manifests/latest", headers=headers, timeout=10)
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == fx["digest"]
    assert head.headers["Content-Type"] == OCI_INDEX
    assert int(head.headers["Content-Length"]) == fx["size"]

    got = requests.get(f"{pulp.url}/v2/fixtures/multi/manifests/latest", headers=headers, timeout=10)
    assert got.status_code == 200 and sha256_digest(got.content) == fx["digest"]   # the bytes as pushed
    index = got.json()
    assert index["manifests"] == fx["manifests"]
    assert index["annotations"] == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}

    # Every child by digest; a child's config blob by the content app's redirect.
    for entry in index["manifests"]:
        child = requests.get(f"{pulp.url}/v2/fixtures/multi/manifests/{entry['digest']}", headers=headers, timeout=10)
        assert child.status_code == 200 and sha256_digest(child.content) == entry["digest"]
    config = requests.get(f"{pulp.url}/v2/fixtures/multi/manifests/{index['manifests'][0]['digest']}",
                          headers=headers, timeout=10).json()["config"]
    blob = requests.get(f"{pulp.url}/v2/fixtures/multi/blobs/{config['digest']}", headers=headers, timeout=10,
                        allow_redirects=False)
    assert blob.status_code == 302
    location = urlsplit(blob.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == pulp.content_url != pulp.url
    assert location.path == f"/pulp/container/fixtures/multi/blobs/{config['digest']}"
    content = requests.get(blob.headers["Location"], timeout=10)   # no credentials: the URL is signed
    assert content.status_code == 200 and sha256_digest(content.content) == config["digest"]

    tags = requests.get(f"{pulp.url}/v2/fixtures/multi/tags/list", headers=bearer(headers["Authorization"][7:]),
                        timeout=10)
    assert tags.json() == {"name": "fixtures/multi", "tags": ["latest"]}
    # A client that sends its manifest Accept header on every request is refused a tag list.
    refused = requests.get(f"{pulp.url}/v2/fixtures/multi/tags/list", headers=headers, timeout=10)
    assert refused.status_code == 406
    assert refused.json()["errors"][0] == {"code": "UNSUPPORTED", "detail": {},
                                           "message": "Could not satisfy the request Accept header."}


def test_an_anonymous_token_pulls_pushed_repositories(pulp):
    """Repositories created by a push are public: an anonymous token may pull (not push)."""
    anonymous = token(pulp, "repository:fixtures/multi:pull,push", auth=False)
    response = requests.head(f"{pulp.url}/v2/fixtures/multi/manifests/latest",
                             headers={**bearer(anonymous), "Accept": ALL_MANIFEST_TYPES}, timeout=10)
    assert response.status_code == 200
    upload = requests.post(f"{pulp.url}/v2/fixtures/multi/blobs/uploads/", headers=bearer(anonymous), timeout=10)
    assert upload.status_code == 401


def test_with_token_auth_disabled_pulls_are_anonymous_and_pushes_take_basic_credentials():
    """Pulp's other configuration (TOKEN_AUTH_DISABLED): Basic challenges, no token server."""
    with PulpRegistry(auth="basic") as basic:
        anonymous = requests.get(f"{basic.url}/v2/", timeout=10)
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == 'Basic realm="api"'
        assert requests.get(f"{basic.url}/v2/", auth=basic.auth_tuple, timeout=10).status_code == 200
        denied = requests.post(f"{basic.url}/v2/basic/app/blobs/uploads/", timeout=10)
        assert denied.status_code == 401 and denied.headers["WWW-Authenticate"] == 'Basic realm="api"'
        image = push_image(basic.url, "basic/app", "1", auth=basic.auth_tuple)   # PushClient answers Basic
        pulled = requests.get(f"{basic.url}/v2/basic/app/manifests/1", headers={"Accept": OCI_MANIFEST}, timeout=10)
        assert pulled.status_code == 200 and sha256_digest(pulled.content) == image["digest"]
        catalog = requests.get(f"{basic.url}/v2/_catalog", timeout=10)
        assert catalog.status_code == 200 and catalog.json() == {"repositories": ["basic/app"]}


def test_docker_manifest_info_reads_the_seeded_index(playbook, pulp):
    fx, h = pulp.fixtures, pulp.host
    refs = [f"{h}/fixtures/multi:latest", f"{h}/fixtures/dockerlist:latest", f"{h}/fixtures/single:amd64",
            fx["missing_tag"], fx["missing_repo"]]
    run = playbook(play(task("inspect", "docker_manifest_info", images=refs,
                             require_platforms=["linux/arm64", "linux/arm/v7"], **registry_options(pulp))),
                   timeout=300)
    assert run.rc == 0, run.output
    result = run.result("inspect")
    multi, dockerlist, single, missing_tag, missing_repo = result["images"]
    assert multi["exists"] and multi["kind"] == "index"
    assert multi["digest"] == fx["multi"]["digest"]
    assert multi["media_type"] == OCI_INDEX
    assert multi["platforms"] == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le", "linux/s390x"]
    assert {m["platform_string"]: m["digest"] for m in multi["manifests"]} == fx["multi"]["platforms"]
    assert [a["reference_digest"] for a in multi["attestations"]] == [fx["multi"]["platforms"]["linux/amd64"]]
    assert multi["missing_platforms"] == []
    assert dockerlist["digest"] == fx["dockerlist"]["digest"]
    assert dockerlist["missing_platforms"] == ["linux/arm/v7"]
    # A single-platform image reads its config blob: through Pulp's redirect to the content app.
    assert single["kind"] == "image" and single["platforms"] == ["linux/amd64"]
    assert single["digest"] == fx["single_amd64"]["digest"]
    for missing in (missing_tag, missing_repo):
        assert missing["exists"] is False and missing["digest"] is None


# -- what Pulp answers (the table in harness/pulp.py) ---------------------------------------
def test_registry_operations_as_documented(pulp):
    """Each operation of the table in harness/pulp.py's docstring, on repositories of its own."""
    client = PushClient(pulp.url, auth=pulp.auth_tuple)
    base = push_image(pulp.url, "probe/src", "base", platform="linux/amd64", auth=pulp.auth_tuple)
    arm = push_image(pulp.url, "probe/src", platform="linux/arm64", auth=pulp.auth_tuple)
    pull, write = "repository:probe/src:pull", "repository:probe/src:pull,push,delete"

    def call(method, path, scope=pull, **kwargs):
        return client.request(method, path, scope=scope, timeout=30, **kwargs)

    # Manifest HEAD/GET of a missing tag and repository: 404 with the distribution error codes.
    missing = call("GET", "/v2/probe/src/manifests/nope", headers={"Accept": ALL_MANIFEST_TYPES})
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert call("HEAD", "/v2/probe/src/manifests/nope").status_code == 404
    no_repo = client.request("GET", "/v2/probe/none/manifests/latest", scope="repository:probe/none:pull")
    assert no_repo.status_code == 404 and no_repo.json()["errors"][0]["code"] == "NAME_UNKNOWN"

    # PUT of an OCI index: 201, the digest of the bytes, a relative Location.
    entries = [{"mediaType": OCI_MANIFEST, "digest": c["digest"], "size": c["size"], "platform": c["platform"]}
               for c in (base, arm)]
    body = encode_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    put = call("PUT", "/v2/probe/src/manifests/both", scope=write, data=body, headers={"Content-Type": OCI_INDEX})
    assert put.status_code == 201
    assert put.headers["Docker-Content-Digest"] == sha256_digest(body)
    assert put.headers["Location"] == f"/v2/probe/src/manifests/{sha256_digest(body)}"
    # Pulp does not check that an index's children exist (distribution answers 400 MANIFEST_BLOB_UNKNOWN).
    ghost = encode_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 10,
         "platform": {"architecture": "amd64", "os": "linux"}}]})
    assert call("PUT", "/v2/probe/src/manifests/ghost", scope=write, data=ghost,
                headers={"Content-Type": OCI_INDEX}).status_code == 201

    # tags/list and _catalog, both paginated with a Link header; _catalog wants registry:catalog:*.
    page = call("GET", "/v2/probe/src/tags/list?n=1")
    assert page.status_code == 200 and page.json() == {"name": "probe/src", "tags": ["base"]}
    assert page.headers["Link"] == f'<{pulp.url}/v2/probe/src/tags/list?n=1&last=base>; rel="next"'
    assert call("GET", "/v2/probe/src/tags/list").json()["tags"] == ["base", "both", "ghost"]
    denied = requests.get(f"{pulp.url}/v2/_catalog", headers=bearer(token(pulp, pull)), timeout=10)
    assert denied.status_code == 401
    assert 'scope="registry:catalog:*",error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    catalog = client.request("GET", "/v2/_catalog", scope="registry:catalog:*")
    assert catalog.status_code == 200 and "probe/src" in catalog.json()["repositories"]

    # Referrers API: no such route in pulp-container; Django's HTML 404 page (not an OCI error body).
    referrers = call("GET", f"/v2/probe/src/referrers/{base['digest']}")
    assert referrers.status_code == 404
    assert referrers.headers["Content-Type"].startswith("text/html")

    # Cross-repository mount: 201 with a token for both repositories; a token for the target
    # only gets a 401 whose challenge carries two scope parameters.
    config = base["config_digest"]
    narrow = requests.post(f"{pulp.url}/v2/probe/dst/blobs/uploads/?mount={config}&from=probe/src",
                           headers=bearer(token(pulp, "repository:probe/dst:pull,push")), timeout=10)
    assert narrow.status_code == 401
    assert ('scope="repository:probe/dst:push",scope="repository:probe/src:pull"'
            in narrow.headers["WWW-Authenticate"])
    both = bearer(token(pulp, "repository:probe/dst:pull,push", pull))
    mounted = requests.post(f"{pulp.url}/v2/probe/dst/blobs/uploads/?mount={config}&from=probe/src",
                            headers=both, timeout=10)
    assert mounted.status_code == 201
    assert mounted.headers["Location"] == f"/v2/probe/dst/blobs/{config}"
    unknown = requests.post(f"{pulp.url}/v2/probe/dst/blobs/uploads/?mount=sha256:{'2' * 64}&from=probe/src",
                            headers=both, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    # HEAD of a blob is a redirect too.
    head_blob = requests.head(f"{pulp.url}/v2/probe/dst/blobs/{config}", headers=both, timeout=10)
    assert head_blob.status_code == 302 and head_blob.headers["Location"].startswith(pulp.content_url)

    # Single-request upload (POST with ?digest= and the body) and DELETE of a blob.
    data = b"archfleet single-request upload\n"
    single = requests.post(f"{pulp.url}/v2/probe/dst/blobs/uploads/?digest={sha256_digest(data)}", data=data,
                           headers={**both, "Content-Type": "application/octet-stream"}, timeout=10)
    assert single.status_code == 201
    assert single.headers["Location"] == f"/v2/probe/dst/blobs/{sha256_digest(data)}"
    dropped = client.request("DELETE", f"/v2/probe/dst/blobs/{sha256_digest(data)}",
                             scope="repository:probe/dst:pull,push,delete")
    assert dropped.status_code == 202 and dropped.text == "None"

    # DELETE by tag is refused; by digest it is accepted (202, body "None"), and the tags go with it.
    by_tag = call("DELETE", "/v2/probe/src/manifests/both", scope=write)
    assert by_tag.status_code == 400
    assert by_tag.json()["errors"][0] == {"code": "INVALID_REQUEST",
                                          "message": "A manifest can only be deleted by digest.", "detail": {}}
    by_digest = call("DELETE", f"/v2/probe/src/manifests/{sha256_digest(body)}", scope=write)
    assert by_digest.status_code == 202 and by_digest.text == "None"
    # 202 is honest: a task of the worker removes it, and until then the manifest is still served.
    deadline = time.monotonic() + 30
    while call("HEAD", "/v2/probe/src/manifests/both").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert call("HEAD", "/v2/probe/src/manifests/both").status_code == 404
    assert call("GET", "/v2/probe/src/tags/list").json()["tags"] == ["base", "ghost"]
    client.close()


def test_timings_and_memory(pulp):
    """Not an assertion on speed: records start time and memory in the report (pytest -rP shows it)."""
    rss, pss = pulp.memory_rss(), pulp.memory_pss()
    print(f"pulp timings (s): {pulp.timings}; RSS (MiB): "
          f"{ {name: kib // 1024 for name, kib in rss.items()} } total {sum(rss.values()) // 1024}; "
          f"PSS (MiB): { {name: kib // 1024 for name, kib in pss.items()} } total {sum(pss.values()) // 1024}")
    assert pulp.timings["ready"] < 120
