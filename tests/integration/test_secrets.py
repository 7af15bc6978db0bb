"""No secret ever shows: the complete -vvv output and the results of real runs are scanned for them.

For a Basic (htpasswd) and a Bearer (token) registry, and credentials from each source the modules
read (the username/password options, a docker config.json ``auths`` entry, a credential helper on
PATH), one playbook runs docker_manifest_info and docker_manifest_create successfully and failing
(wrong password, push denied, registry unreachable, a source that cannot be read or answers
badly), and the image_digest lookup the same ways. Every password, every base64 ``user:password`` string and every bearer token the token
service issued (captured at the proxy from the requests' Authorization headers) is then looked
for in stdout+stderr and in every task result: none may appear.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from harness.ansible_run import play, task
from harness.images import push_image
from harness.proxy import Fault, Proxy, ProxyRequest
from harness.registry import Registry, free_port

PASSWORDS = {"alice": "alice-Pw-5ecret-Qx9", "reader": "reader-Pw-5ecret-Zk3"}
WRONG_PASSWORD = "wrong-Pw-5ecret-Xv7"
ACL = {"alice": {"*": ["pull", "push", "delete"]}, "reader": {"*": ["pull"]}}
SOURCE_IMAGE = "secrets/base:amd64"
DENIED = json.dumps({"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]})

_counter = itertools.count()


def basic_value(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


class AuthorizationRecorder:
    """Proxy fault hook: records every Authorization header; on the Basic registry, refuses reader's writes.

    distribution's htpasswd auth lets every user push, so the "push denied" of a Basic registry is the
    403 DENIED a registry with per-user permissions answers.
    """

    def __init__(self, deny_basic_writes_of: str):
        self.headers: set[str] = set()
        self._deny = "Basic " + basic_value(deny_basic_writes_of, PASSWORDS[deny_basic_writes_of])
        self._lock = threading.Lock()

    def __call__(self, request: ProxyRequest) -> Fault | None:
        authorization = request.headers.get("Authorization")
        if authorization:
            with self._lock:
                self.headers.add(authorization)
        if authorization == self._deny and request.method in ("PUT", "POST", "PATCH", "DELETE"):
            return Fault.respond(403, {"Content-Type": "application/json"}, DENIED.encode())
        return None

    def bearer_tokens(self) -> set[str]:
        with self._lock:
            return {value.split(" ", 1)[1] for value in self.headers if value.startswith("Bearer ")}


@pytest.fixture(scope="module", params=["basic", "bearer"])
def guarded(request):
    """(registry, proxy, recorder): a registry of the given auth with its source image, behind a recording proxy."""
    auth = "htpasswd" if request.param == "basic" else "token"
    with Registry(auth=auth, users=PASSWORDS, acl=ACL) as registry:
        push_image(registry.url, "secrets/base", "amd64", auth=("alice", PASSWORDS["alice"]))
        recorder = AuthorizationRecorder(deny_basic_writes_of="reader")
        with Proxy(registry, fault=recorder) as proxy:
            yield registry, proxy, recorder


# --- credential sources ---------------------------------------------------------------------------
class CredentialSource:
    """Module options that make a task use ``user``/``password`` from one kind of source."""

    def __init__(self, kind: str, directory: Path, hosts: list[str]):
        self.kind = kind
        self.directory = directory
        self.hosts = hosts
        self.bin = directory / "bin"
        self.bin.mkdir()

    def options(self, user: str, password: str) -> dict:
        if self.kind == "options":
            return {"username": user, "password": password}
        if self.kind == "config":
            auths = {host: {"auth": basic_value(user, password)} for host in self.hosts}
            return {"docker_config": str(self.config_file({"auths": auths}))}
        return self.helper_config(f'printf \'{{"Username":"%s","Secret":"%s"}}\' "{user}" "{password}"')

    def helper(self, script: str, executable: bool = True) -> str:
        """Install ``docker-credential-<name>`` running ``script`` for ``get``; return <name>."""
        name = f"af{next(_counter)}"
        path = self.bin / f"docker-credential-{name}"
        path.write_text(f"#!/bin/sh\ncat >/dev/null\n{script}\n")
        path.chmod(stat.S_IRWXU if executable else stat.S_IRUSR | stat.S_IWUSR)
        return name

    def helper_config(self, script: str, executable: bool = True) -> dict:
        helper = self.helper(script, executable)
        return {"docker_config": str(self.config_file({"credHelpers": {host: helper for host in self.hosts}}))}

    def config_file(self, document: dict | str) -> Path:
        path = self.directory / f"config-{next(_counter)}.json"
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        return path


def source_failures(source: CredentialSource) -> list[tuple[str, dict, str]]:
    """(title, options, key words of the message) of runs whose credential source cannot be used."""
    alice = PASSWORDS["alice"]
    if source.kind == "config":
        unreadable = source.directory / "config-is-a-directory"
        unreadable.mkdir()
        half_written = '{"auths": {"%s": {"auth": "%s"' % (source.hosts[0], basic_value("alice", alice))
        return [("unreadable docker config", {"docker_config": str(unreadable)}, "cannot read docker config"),
                ("docker config that is not JSON", {"docker_config": str(source.config_file(half_written))},
                 "is not valid JSON")]
    if source.kind == "helper":
        return [("helper failing with the secret in its output",
                 source.helper_config(f'echo "store error for alice:{alice}" >&2; echo "{alice}"; exit 3'),
                 "exited with status 3"),
                ("helper answering something that is not JSON",
                 source.helper_config(f'echo "Username=alice Secret={alice}"'), "not JSON"),
                ("helper that cannot be executed", source.helper_config("exit 0", executable=False),
                 "not installed or not executable")]
    return []


# --- the runs ---------------------------------------------------------------------------------------
def secret_runs(proxy: Proxy, source: CredentialSource, dead_host: str) -> tuple[list[dict], dict[str, str]]:
    """The tasks of one playbook and, per task title, a key word its failure message must hold ("" = succeeds)."""
    h = proxy.host
    alice = source.options("alice", PASSWORDS["alice"])
    wrong = source.options("alice", WRONG_PASSWORD)
    reader = source.options("reader", PASSWORDS["reader"])
    image = f"{h}/{SOURCE_IMAGE}"

    def info(title, options, images=(image,)):
        return task(title, "docker_manifest_info", ignore_errors=True, images=list(images), retries=0, **options)

    def create(title, options, name=None, sources=(image,)):
        name = name or f"{h}/secrets/published-{next(_counter)}:1"
        return task(title, "docker_manifest_create", ignore_errors=True, name=name, sources=list(sources),
                    retries=0, **options)

    def digest(title, options, reference=image):
        # Options reach the lookup through a variable, as a vaulted password would.
        return {"name": title, "ignore_errors": True, "vars": {"lookup_image": reference, "lookup_options": options},
                "ansible.builtin.debug": {"msg": "{{ lookup('archfleet.multiarch.image_digest', lookup_image, "
                                                 "retries=0, **lookup_options) }}"}}

    tasks = [
        (info("inspect", alice), ""),
        (digest("digest", alice), ""),
        (digest("digest with a wrong password", wrong), "alice"),
        (digest("digest from an unreachable registry", alice, f"{dead_host}/secrets/base:amd64"),
         "cannot reach registry"),
        (create("publish", alice), ""),
        (info("inspect with a wrong password", wrong), "alice"),
        (create("publish with a wrong password", wrong), "alice"),
        (create("publish without push permission", reader), "no push permission"),
        (info("inspect an unreachable registry", alice, [f"{dead_host}/secrets/base:amd64"]), "cannot reach registry"),
        (create("publish to an unreachable registry", alice, f"{dead_host}/secrets/app:1",
                [f"{dead_host}/secrets/base:amd64"]), "cannot reach registry"),
    ]
    for title, options, words in source_failures(source):
        tasks += [(info(f"inspect: {title}", options), words), (create(f"publish: {title}", options), words),
                  (digest(f"digest: {title}", options), words)]
    return [entry for entry, _words in tasks], {entry["name"]: words for entry, words in tasks}


@pytest.mark.parametrize("kind", ["options", "config", "helper"])
def test_no_secret_in_verbose_output_or_results(playbook, guarded, kind, tmp_path):
    registry, proxy, recorder = guarded
    dead_host = f"127.0.0.1:{free_port()}"
    source = CredentialSource(kind, tmp_path, [proxy.host, dead_host])
    tasks, expected = secret_runs(proxy, source, dead_host)
    run = playbook(play(*tasks), verbosity=3, env={"PATH": f"{source.bin}:{os.environ['PATH']}"})

    for title, words in expected.items():
        result = run.result(title)
        if words:
            assert result["failed"] is True and words in result["msg"], (title, result.get("msg"))
        else:
            assert not result.get("failed"), (title, result.get("msg"))

    secrets = {"password": set(PASSWORDS.values()) | {WRONG_PASSWORD}}
    secrets["base64 user:password"] = {basic_value(user, password) for user in PASSWORDS
                                       for password in (*PASSWORDS.values(), WRONG_PASSWORD)}
    if registry.auth == "token":
        tokens = recorder.bearer_tokens()
        assert tokens, "no bearer token was captured: the scan would prove nothing"
        secrets["bearer token"] = tokens | {token.rsplit(".", 1)[1] for token in tokens}   # and each signature
    output = run.stdout + run.stderr
    results = json.dumps(run.tasks)
    assert "ESTABLISH LOCAL CONNECTION" in output, "not a -vvv run"
    leaks = [(what, where) for what, values in secrets.items() for value in values
             for where, text in (("output", output), ("results", results)) if value in text]
    assert leaks == [], f"secrets leaked: {leaks}"
