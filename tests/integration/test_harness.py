"""Self-test of the integration harness: if these fail, no registry test can be trusted.

Checks that every registry variant starts and answers as configured, that the fixture
set lands with the exact digests the seeding reports (read back by skopeo and the docker
CLI, clients nobody here wrote), that the token service cuts scopes down like a real
one, and that the proxy counts, keeps connections alive, streams, and injects faults.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import time

import pytest
import requests

from harness.images import (ALL_MANIFEST_TYPES, IN_TOTO, MULTI_PLATFORMS, OCI_INDEX, PushClient, docker_cli_env,
                            push_image, seed_fixtures)
from harness.proxy import Fault, Proxy
from harness.registry import Registry
from harness.suite import skopeo_raw

DEBIAN_DOCKER = "/usr/bin/docker"
NEWER_DOCKER = "/usr/local/bin/docker"

VARIANTS = {
    "open": {},
    "htpasswd": {"auth": "htpasswd"},
    "token": {"auth": "token"},
    "tls": {"tls": True},
    "tls-htpasswd": {"tls": True, "auth": "htpasswd"},
    "tls-token": {"tls": True, "auth": "token"},
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_inspect(registry: Registry, ref: str, docker: str = DEBIAN_DOCKER) -> dict:
    with docker_cli_env(registry.host, registry.auth_tuple) as env:
        result = subprocess.run([docker, "manifest", "inspect", "--insecure", f"{registry.host}/{ref}"],
                                env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def seeded_open():
    """An open registry with the fixtures, for this module only (returns registry, seeding result)."""
    with Registry() as registry:
        yield registry, seed_fixtures(registry)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_starts_seeds_and_interoperates(variant):
    with Registry(**VARIANTS[variant]) as registry:
        anonymous = requests.get(f"{registry.url}/v2/", verify=registry.verify, timeout=10)
        assert anonymous.status_code == (401 if registry.auth else 200)
        if registry.auth == "htpasswd":
            assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        if registry.auth == "token":
            assert f'realm="{registry.token_server.realm}"' in anonymous.headers["WWW-Authenticate"]

        seeded = seed_fixtures(registry)

        raw_index = skopeo_raw(registry, f"{registry.host}/fixtures/multi:latest")
        assert sha256(raw_index) == seeded["multi"]["digest"]
        raw_list = skopeo_raw(registry, f"{registry.host}/fixtures/dockerlist:latest")
        assert sha256(raw_list) == seeded["dockerlist"]["digest"]

        listed = docker_inspect(registry, "fixtures/dockerlist:latest")
        assert {m["digest"] for m in listed["manifests"]} == set(seeded["dockerlist"]["platforms"].values())

        if registry.token_server:
            assert registry.token_server.requests > 0


def test_fixture_facts(seeded_open):
    registry, seeded = seeded_open
    with PushClient(registry.url) as client:
        index = client.get_manifest("fixtures/multi", "latest")
        assert index.headers["Content-Type"] == OCI_INDEX
        entries = index.json()["manifests"]
        platforms = [e for e in entries if e["platform"]["os"] != "unknown"]
        attestations = [e for e in entries if e["platform"]["os"] == "unknown"]
        assert [f"{e['platform']['os']}/{e['platform']['architecture']}"
                + (f"/{e['platform']['variant']}" if "variant" in e["platform"] else "")
                for e in platforms] == list(MULTI_PLATFORMS)
        assert [e["digest"] for e in platforms] == list(seeded["multi"]["platforms"].values())

        assert len(attestations) == 1
        amd64 = seeded["multi"]["platforms"]["linux/amd64"]
        assert attestations[0]["annotations"] == {"vnd.docker.reference.digest": amd64,
                                                  "vnd.docker.reference.type": "attestation-manifest"}
        assert seeded["multi"]["attestations"] == {amd64: attestations[0]["digest"]}
        attestation = client.get_manifest("fixtures/multi", attestations[0]["digest"]).json()
        assert attestation["layers"][0]["mediaType"] == IN_TOTO

        # The docker CLI re-put the Docker sources into the list's repository unchanged.
        assert seeded["dockerlist"]["platforms"] == {"linux/amd64": seeded["docker_single"]["digest"],
                                                     "linux/arm64": seeded["docker_single_arm64"]["digest"]}
        config = client.request("GET", f"/v2/fixtures/single/blobs/{seeded['single_arm64']['config_digest']}",
                                scope="repository:fixtures/single:pull").json()
        assert (config["architecture"], config["os"]) == ("arm64", "linux")
        assert len(config["rootfs"]["diff_ids"]) == 1

        for missing in (seeded["missing_tag"], seeded["missing_repo"]):
            repo, tag = missing.split("/", 1)[1].rsplit(":", 1)
            response = client.request("HEAD", f"/v2/{repo}/manifests/{tag}", scope=f"repository:{repo}:pull",
                                      headers={"Accept": ALL_MANIFEST_TYPES})
            assert response.status_code == 404


def test_seeding_is_deterministic_and_idempotent(seeded_open):
    registry, seeded = seeded_open
    before = len(registry.access_log())
    again = push_image(registry.url, "fixtures/single", "arm64", platform="linux/arm64",
                       labels={"org.opencontainers.image.source": "https://example.invalid/archfleet/fixtures"})
    assert again["digest"] == seeded["single_arm64"]["digest"]
    new = registry.access_log()[before:]
    # Blobs already there: HEADs only, then the two manifest PUTs (by digest, by tag).
    assert {(e.method, e.status) for e in new if "/blobs/" in e.path} == {("HEAD", 200)}
    assert all(e.from_harness for e in new)


def test_debian_docker_cli_cannot_read_oci_children(seeded_open):
    """Documents a limit of the Debian 20.10 CLI: it never accepts OCI manifests, so the OCI
    index (OCI children) is "no such manifest" to it. A newer CLI reads it."""
    registry, seeded = seeded_open
    with docker_cli_env(registry.host) as env:
        result = subprocess.run([DEBIAN_DOCKER, "manifest", "inspect", "--insecure",
                                 f"{registry.host}/fixtures/multi:latest"], env=env, capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "no such manifest" in result.stderr
    if not os.access(NEWER_DOCKER, os.X_OK):
        pytest.skip(f"{NEWER_DOCKER} not installed")
    index = docker_inspect(registry, "fixtures/multi:latest", docker=NEWER_DOCKER)
    assert [m["digest"] for m in index["manifests"]] == [m["digest"] for m in seeded["multi"]["manifests"]]


def test_token_server_grants_only_what_the_acl_allows():
    users = {"alice": "alice-pw", "reader": "reader-pw"}
    acl = {"alice": {"*": ["pull", "push"]}, "reader": {"*": ["pull"]}}
    with Registry(auth="token", users=users, acl=acl, token_expires_in=120) as registry:
        tokens = registry.token_server
        realm, service = tokens.realm, tokens.service

        def ask(scopes, auth=None):
            return requests.get(realm, params={"service": service, "scope": scopes}, auth=auth, timeout=10)

        granted = ask(["repository:fixtures/x:pull,push", "repository:other/y:pull"], ("reader", "reader-pw"))
        assert granted.status_code == 200
        body = granted.json()
        assert body["token"] == body["access_token"] and body["expires_in"] == 120 and body["issued_at"]
        assert tokens.log[-1].access == ({"type": "repository", "name": "fixtures/x", "actions": ["pull"]},
                                         {"type": "repository", "name": "other/y", "actions": ["pull"]})
        # The registry accepts the cut-down token for a pull and refuses it for a push.
        bearer = {"Authorization": f"Bearer {body['token']}"}
        pull = requests.get(f"{registry.url}/v2/fixtures/x/tags/list", headers=bearer, timeout=10)
        assert pull.status_code == 404                      # authorised; the repository is empty
        push = requests.post(f"{registry.url}/v2/fixtures/x/blobs/uploads/", headers=bearer, timeout=10)
        assert push.status_code == 401

        assert ask(["repository:fixtures/x:pull"], ("reader", "wrong")).status_code == 401
        anonymous = ask(["repository:fixtures/x:pull,push"])
        assert tokens.log[-1].account is None
        assert tokens.log[-1].access == ({"type": "repository", "name": "fixtures/x", "actions": ["pull"]},)
        assert anonymous.status_code == 200

        before = tokens.requests
        push_image(registry.url, "fixtures/x", "v1", auth=("alice", "alice-pw"))
        assert tokens.requests == before + 1                 # one token, reused for every request


def test_proxy_counts_streams_and_keeps_alive(seeded_open):
    registry, seeded = seeded_open
    with Proxy(registry, delay=0.01) as proxy:
        push_image(proxy.url, "proxied/image", "v1", layers=2)
        assert proxy.count("POST", "upload") == 2 + 1        # two layers and the config
        assert proxy.count("PUT", "upload") == 3
        assert proxy.count("PUT", "manifest") == 2
        assert proxy.writes == 3 + 3 + 2
        assert proxy.count("HEAD", "blob") == 3

        proxy.reset()
        # Chunked request body (a generator) through a PATCH upload, then finish the upload.
        blob = os.urandom(300_000)
        session = requests.Session()
        started = session.post(f"{proxy.url}/v2/proxied/image/blobs/uploads/", timeout=10)
        location = started.headers["Location"]
        assert location.startswith(proxy.url)                # absolute registry URL rewritten
        patched = session.patch(location, data=(blob[i:i + 65536] for i in range(0, len(blob), 65536)), timeout=10)
        assert patched.status_code == 202
        done = session.put(patched.headers["Location"], params={"digest": sha256(blob)}, timeout=10)
        assert done.status_code == 201
        assert session.get(f"{proxy.url}/v2/proxied/image/blobs/{sha256(blob)}", timeout=10).content == blob
        assert proxy.counts == {("POST", "upload"): 1, ("PATCH", "upload"): 1, ("PUT", "upload"): 1,
                                ("GET", "blob"): 1}

        # Several requests over one client connection (keep-alive), HEAD included.
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        for method in ("HEAD", "GET", "HEAD"):
            conn.request(method, "/v2/fixtures/multi/manifests/latest", headers={"Accept": ALL_MANIFEST_TYPES})
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200
            assert response.getheader("Docker-Content-Digest") == seeded["multi"]["digest"]
            assert (sha256(body) == seeded["multi"]["digest"]) if method == "GET" else body == b""
        conn.close()
        assert proxy.count(kind="manifest") == 3


def test_proxy_faults(seeded_open):
    registry, _fixtures = seeded_open
    faults = {}
    with Proxy(registry, fault=lambda request: faults.pop(request.number, None)) as proxy:
        url = f"{proxy.url}/v2/fixtures/multi/manifests/latest"
        headers = {"Accept": ALL_MANIFEST_TYPES}
        faults[1] = Fault.respond(429, {"Retry-After": "1"}, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}')
        limited = requests.get(url, headers=headers, timeout=10)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"

        faults[2] = Fault.reset()
        with pytest.raises(requests.ConnectionError):
            requests.get(url, headers=headers, timeout=10)

        faults[3] = Fault.truncate(10)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(url, headers=headers, timeout=10)

        assert requests.get(url, headers=headers, timeout=10).status_code == 200

        faults[5] = Fault.stall(0.5)
        with pytest.raises(requests.Timeout):
            requests.get(url, headers=headers, timeout=0.2)
        deadline = time.monotonic() + 5
        while len(proxy.log) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)                                 # the stalled request is still forwarded
        assert [entry.status for entry in proxy.log] == [429, 0, 200, 200, 200]


def test_proxy_fronts_the_token_service():
    with Registry(auth="token") as registry, Proxy(registry) as proxy:
        push_image(proxy.url, "fixtures/via-proxy", "v1", auth=registry.auth_tuple)
        assert proxy.count("GET", "token") == registry.token_server.requests == 1


def test_stop_leaves_nothing_behind():
    registry = Registry(auth="token", tls=True)
    process, directory = registry._proc, registry.dir
    registry.stop()
    assert process.poll() is not None
    assert not directory.exists()
    registry.stop()                                          # idempotent


@pytest.mark.skipif(os.geteuid() != 0, reason="the binfmt_misc lock lives in /run/lock")
def test_binfmt_captures_nest_in_one_process(binfmt_state):
    """A test may capture the binfmt_misc table while its module's fixture holds the lock: flock on a second open
    file would wait for this very process, so nested captures share the one hold (and only the last releases)."""
    import threading

    from harness import foreign_binaries as fb
    done = []

    def nested():
        inner = fb.BinfmtState.capture()
        innermost = fb.BinfmtState.capture()
        done.append(innermost.entries == inner.entries == binfmt_state.entries)
        innermost.restore()
        inner.restore()

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive() and done == [True]
    assert fb.binfmt_lock_depth() == 1  # the fixture's hold is still there
