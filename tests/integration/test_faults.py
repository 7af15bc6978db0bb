"""Fault injection: the registry modules under 429s, 5xx, resets, stalls, truncated and wrong bodies, thin tokens.

A real token registry sits behind the harness proxy; real ansible-playbook runs go through the
proxy while it injects one fault on chosen requests. For every case the module either succeeds
within its bounded retries (``registry_stats.retries`` says how many) or fails with one clear
sentence; and afterwards the registry, read directly (not through the proxy), holds at the tag
either the old index or the complete new one, with every child present.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from harness.ansible_run import play, run_playbook, task
from harness.images import ALL_MANIFEST_TYPES, PushClient, push_image, push_index, sha256_digest
from harness.proxy import Fault, Proxy, ProxyRequest
from harness.suite import unique

TAG = "1"
RETRIES = 2              # module option: at most two retries per request
TIMEOUT = 2              # module option: seconds per request; stalls last longer
STALL = TIMEOUT + 2
ALWAYS = None            # Inject.on: every matching request

DOCKER_HUB_429_BODY = (b"You have reached your pull rate limit. You may increase the limit by authenticating "
                       b"and upgrading: https://www.docker.com/increase-rate-limit")
DOCKER_HUB_429_HEADERS = {"Content-Type": "text/plain; charset=utf-8", "ratelimit-limit": "100;w=21600",
                          "ratelimit-remaining": "0;w=21600", "docker-ratelimit-source": "203.0.113.7"}
TOO_MANY_REQUESTS = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}).encode()
NEW_SOURCES = ("fixtures/single:amd64", "fixtures/single:arm64")
S390X_SOURCE = "fixtures/docker-single:arm64"      # published as linux/s390x (force_platform: its config says arm64)


def flip_last_byte(body: bytes) -> bytes:
    """Same length, other bytes: what a corrupting cache or a malicious mirror would serve."""
    return body[:-1] + bytes([body[-1] ^ 0x01])


def error_body(status: int, code: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": f"injected {status}"}]}).encode()


# --- choosing requests to break -------------------------------------------------------------
@dataclass(frozen=True)
class Inject:
    """Break the ``on``-th (1-based) requests matching method, kind and target; ``on=ALWAYS`` breaks all.

    ``target``: ``tag`` (manifest at the tag under test), ``digest`` (manifest by digest) or ``any``.
    ``fault`` is a Fault, or a function of the request returning one (for answers built from it).
    """

    method: str
    kind: str
    fault: Fault | Callable[[ProxyRequest, object], Fault]
    target: str = "any"
    on: frozenset | None = frozenset({1})

    def matches(self, request: ProxyRequest) -> bool:
        if request.method != self.method or request.kind != self.kind:
            return False
        path = request.path.split("?", 1)[0]
        if self.target == "tag":
            return path.endswith(f"/manifests/{TAG}")
        if self.target == "digest":
            return "/manifests/sha256:" in path
        return True


class FaultHook:
    """The proxy's fault hook for one Inject; thread-safe, counts the requests it broke."""

    def __init__(self, inject: Inject | None, registry):
        self.inject = inject
        self.registry = registry
        self.seen = 0
        self.broken = 0
        self._lock = threading.Lock()

    def __call__(self, request: ProxyRequest) -> Fault | None:
        if self.inject is None or not self.inject.matches(request):
            return None
        with self._lock:
            self.seen += 1
            if self.inject.on is not ALWAYS and self.seen not in self.inject.on:
                return None
            self.broken += 1
        fault = self.inject.fault
        return fault if isinstance(fault, Fault) else fault(request, self.registry)


def pull_only_token(request: ProxyRequest, registry) -> Fault:
    """A real, signed token for the asked scopes with push taken out: a token service granting less."""
    scopes = [s for value in parse_qs(urlsplit(request.path).query).get("scope", []) for s in value.split(" ")]
    access = [dict(entry, actions=[a for a in entry["actions"] if a != "push"])
              for entry in registry.token_server.grant(registry.username, scopes)]
    body = json.dumps(registry.token_server.issue(registry.username, access)).encode()
    return Fault.respond(200, {"Content-Type": "application/json"}, body)


# --- the cases ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    inject: Inject | None
    retries: int                    # registry_stats.retries expected
    fails_with: tuple = ()          # key words of the one message; empty = the task succeeds
    rate_limits: tuple = ()         # headers registry_stats.rate_limits must show
    user: str = "alice"
    settle: float = 0.0             # seconds stalled requests may still be in flight after the run
    image_error: tuple = ()         # docker_manifest_info: key words of the second image's error fact


CREATE_CASES = {
    "429 Retry-After on the index PUT": Case(
        Inject("PUT", "manifest", Fault.respond(429, {"Retry-After": "1"}, TOO_MANY_REQUESTS), "tag"),
        retries=1, rate_limits=("retry-after",)),
    "429 without Retry-After on the 2nd child PUT": Case(
        Inject("PUT", "manifest", Fault.respond(429, {}, TOO_MANY_REQUESTS), "digest", frozenset({2})), retries=1),
    "Docker Hub 429 on every blob GET": Case(
        Inject("GET", "blob", Fault.respond(429, DOCKER_HUB_429_HEADERS, DOCKER_HUB_429_BODY), on=ALWAYS),
        retries=RETRIES, fails_with=("429", "TOOMANYREQUESTS", "pull rate limit", "ratelimit-remaining=0"),
        rate_limits=("ratelimit-limit", "ratelimit-remaining")),
    "500 on the current index GET": Case(
        Inject("GET", "manifest", Fault.respond(500, {}, error_body(500, "UNKNOWN")), "tag", ALWAYS),
        retries=0, fails_with=("reading the current index of {target} failed", "500")),
    "500 on the index PUT": Case(
        Inject("PUT", "manifest", Fault.respond(500, {}, error_body(500, "UNKNOWN")), "tag", ALWAYS),
        retries=0, fails_with=("writing index", "{target}", "500")),
    "502 on the first child PUT": Case(
        Inject("PUT", "manifest", Fault.respond(502, {}, b"<html>bad gateway</html>"), "digest"), retries=1),
    "503 on every index PUT": Case(
        Inject("PUT", "manifest", Fault.respond(503, {}, error_body(503, "UNAVAILABLE")), "tag", ALWAYS),
        retries=RETRIES, fails_with=("writing index", "{target}", "503")),
    "503 from the token service": Case(
        Inject("GET", "token", Fault.respond(503, {}, b"token service down")), retries=1),
    "reset instead of an answer to the index PUT": Case(Inject("PUT", "manifest", Fault.reset(), "tag"), retries=1),
    "reset mid-body of the current index": Case(Inject("GET", "manifest", Fault.reset_after(40), "tag"), retries=1),
    "reset mid-body of an image config": Case(Inject("GET", "blob", Fault.reset_after(40)), retries=1),
    "truncated current index": Case(Inject("GET", "manifest", Fault.truncate(40), "tag"), retries=1),
    "stall past the timeout on the current index": Case(
        Inject("GET", "manifest", Fault.stall(STALL), "tag"), retries=1, settle=STALL),
    "stall past the timeout on every index PUT": Case(
        Inject("PUT", "manifest", Fault.stall(STALL), "tag", ALWAYS), retries=RETRIES,
        fails_with=("{target}", "timed out"), settle=STALL),
    "source manifest bytes do not match its digest": Case(
        Inject("GET", "manifest", Fault.replace_body(flip_last_byte), "digest"),
        retries=0, fails_with=("digest", "fixtures/single@sha256:", "refusing")),
    "image config bytes do not match its digest": Case(
        Inject("GET", "blob", Fault.replace_body(flip_last_byte)),
        retries=0, fails_with=("digest", "fixtures/single", "refusing")),
    "token service grants pull but not push": Case(
        Inject("GET", "token", pull_only_token), retries=0,
        fails_with=("no push permission", "{repository}", "granted only pull")),
    "user whose ACL allows pull only": Case(
        None, retries=0, user="reader", fails_with=("no push permission", "{repository}", "granted only pull")),
}

INFO_CASES = {
    "429 Retry-After on the index GET": Case(
        Inject("GET", "manifest", Fault.respond(429, {"Retry-After": "1"}, TOO_MANY_REQUESTS)),
        retries=1, rate_limits=("retry-after",)),
    # Both images are tried (a registry's refusal of one image is that image's fact), then, as no image
    # could be read, the task fails with the first sentence.
    "Docker Hub 429 on every manifest GET": Case(
        Inject("GET", "manifest", Fault.respond(429, DOCKER_HUB_429_HEADERS, DOCKER_HUB_429_BODY), on=ALWAYS),
        retries=2 * RETRIES, fails_with=("fixtures/multi:latest", "429", "pull rate limit"),
        rate_limits=("ratelimit-limit", "ratelimit-remaining", "docker-ratelimit-source")),
    "503 on the index GET": Case(Inject("GET", "manifest", Fault.respond(503, {}, b"")), retries=1),
    "reset mid-body of the index": Case(Inject("GET", "manifest", Fault.reset_after(40)), retries=1),
    "truncated index": Case(Inject("GET", "manifest", Fault.truncate(40)), retries=1),
    "stall past the timeout on the index GET": Case(Inject("GET", "manifest", Fault.stall(STALL)), retries=1),
    # One image the registry sends wrong bytes for is a fact about that image, not a failed task.
    "manifest bytes do not match the digest asked for": Case(
        Inject("GET", "manifest", Fault.replace_body(flip_last_byte), "digest"),
        retries=0, image_error=("DIGEST_MISMATCH", "digest", "fixtures/single@sha256:", "refusing")),
}


def cases(table):
    return [pytest.param(name, case, id=name) for name, case in table.items()]


# --- looking at the registry directly ----------------------------------------------------------
def index_at_tag(registry, repository: str) -> tuple[str, list[str]]:
    """(digest of what the tag holds, children that are missing), read without the proxy."""
    with PushClient(registry.url, auth=registry.auth_tuple, verify=registry.verify) as client:
        response = client.get_manifest(repository, TAG)
        document = response.json()
        missing = []
        for child in document.get("manifests") or []:
            head = client.request("HEAD", f"/v2/{repository}/manifests/{child['digest']}",
                                  scope=f"repository:{repository}:pull", headers={"Accept": ALL_MANIFEST_TYPES})
            if head.status_code != 200:
                missing.append(child["digest"])
    return sha256_digest(response.content), missing


def publish_old_index(registry, repository: str) -> str:
    """The release the faulted run replaces: an index over one image of its own, at the tag."""
    common = {"auth": registry.auth_tuple, "verify": registry.verify}
    child = push_image(registry.url, repository, platform="linux/amd64", payload=b"the previous release\n", **common)
    return push_index(registry.url, repository, TAG, [child], **common)["digest"]


def module_options(registry, user):
    return {"username": user, "password": registry.users[user], "retries": RETRIES, "timeout": TIMEOUT,
            "concurrency": 1}


def new_sources(host):
    return [*(f"{host}/{source}" for source in NEW_SOURCES), {"image": f"{host}/{S390X_SOURCE}", "platform": "linux/s390x"}]


@pytest.fixture(scope="module")
def new_index_digest(token_registry):
    """Digest of the index the faulted runs publish (the same sources give the same bytes in any repository)."""
    target = f"{token_registry.host}/{unique('faults/prediction')}:{TAG}"
    predict = task("predict", "docker_manifest_create", name=target, sources=new_sources(token_registry.host),
                   force_platform=True, **module_options(token_registry, "alice"))
    run = run_playbook(play({**predict, "check_mode": True}))
    assert run.rc == 0, run.output
    return run.result("predict")["digest"]


def wait_for_stalled(seconds: float) -> None:
    """A stalled request is still forwarded after the client gave up on it; let it land before inspecting."""
    if seconds:
        time.sleep(seconds + 0.5)


def check_outcome(result: dict, case: Case, proxy: Proxy, words: dict) -> None:
    stats = result.get("registry_stats")
    if case.fails_with:
        assert result["failed"] is True, result
        message = result["msg"]
        assert "\n" not in message.strip(), message
        for word in case.fails_with:
            assert word.format(**words) in message, (word, message)
        assert "unexpected error" not in message, message
        assert stats is not None, f"no registry_stats with the failure: {message}"
    else:
        assert not result.get("failed"), result.get("msg")
    assert stats["retries"] == case.retries, stats
    seen = stats["rate_limits"].get(proxy.host, {})
    for header in case.rate_limits:
        assert header in seen, stats["rate_limits"]


# --- the tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, case", cases(CREATE_CASES))
def test_publish_over_an_existing_index_under_faults(playbook, token_registry, new_index_digest, name, case):
    repository = unique("faults/app")
    old_digest = publish_old_index(token_registry, repository)
    hook = FaultHook(case.inject, token_registry)
    with Proxy(token_registry, fault=hook) as proxy:
        target = f"{proxy.host}/{repository}:{TAG}"
        run = playbook(play(task("publish", "docker_manifest_create", ignore_errors=True, name=target,
                                 sources=new_sources(proxy.host), force_platform=True,
                                 **module_options(token_registry, case.user))))
        wait_for_stalled(case.settle)
        assert case.inject is None or hook.broken, \
            f"{name}: no request matched the fault; the task said: {run.result('publish').get('msg')}"

    # The registry first, read directly: whatever the module says, no broken index may be published.
    result = run.result("publish")
    digest, missing_children = index_at_tag(token_registry, repository)
    assert missing_children == [], f"{name}: the index at the tag lacks children {missing_children}"
    if result.get("failed"):
        assert digest in (old_digest, new_index_digest), f"{name}: the tag holds an unknown index {digest}"
    else:
        assert digest == new_index_digest == result["digest"]
    check_outcome(result, case, proxy, {"target": target, "repository": f"{proxy.host}/{repository}"})


@pytest.mark.parametrize("name, case", cases(INFO_CASES))
def test_inspect_under_faults(playbook, token_registry, name, case):
    fixtures = token_registry.fixtures
    hook = FaultHook(case.inject, token_registry)
    with Proxy(token_registry, fault=hook) as proxy:
        images = [f"{proxy.host}/fixtures/multi:latest",
                  f"{proxy.host}/fixtures/single@{fixtures['single_arm64']['digest']}"]
        options = module_options(token_registry, "alice")
        run = playbook(play(task("inspect", "docker_manifest_info", ignore_errors=True, images=images, **options)))
        wait_for_stalled(case.settle)
        assert hook.broken, f"{name}: no request matched the fault; the task said: {run.result('inspect').get('msg')}"
        result = run.result("inspect")
        check_outcome(result, case, proxy, {})
    if case.image_error:
        first, second = result["images"]
        assert first["digest"] == fixtures["multi"]["digest"] and "error" not in first
        assert second["exists"] is None and second["digest"] is None
        for word in case.image_error:
            assert word in second["error"]["code"] + " " + second["error"]["message"], (word, second["error"])
    elif not case.fails_with:
        assert [image["digest"] for image in result["images"]] == [fixtures["multi"]["digest"],
                                                                   fixtures["single_arm64"]["digest"]]


def test_proxy_body_faults(token_registry):
    """The proxy's two body faults used above do what they say (authenticated manifest requests only)."""
    index = f"/v2/fixtures/multi/manifests/{token_registry.fixtures['multi']['digest']}"
    answers = iter([Fault.reset_after(10), Fault.replace_body(flip_last_byte)])

    def hook(request):
        return next(answers) if request.kind == "manifest" and request.headers.get("Authorization") else None

    with Proxy(token_registry, fault=hook) as proxy:
        with PushClient(proxy.url, auth=token_registry.auth_tuple) as client:
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                client.request("GET", index, scope="repository:fixtures/multi:pull",
                               headers={"Accept": ALL_MANIFEST_TYPES})
            replaced = client.request("GET", index, scope="repository:fixtures/multi:pull",
                                      headers={"Accept": ALL_MANIFEST_TYPES})
    assert replaced.status_code == 200
    assert replaced.headers["Docker-Content-Digest"] == token_registry.fixtures["multi"]["digest"]
    assert sha256_digest(replaced.content) != token_registry.fixtures["multi"]["digest"]
    assert len(replaced.content) == token_registry.fixtures["multi"]["size"]
