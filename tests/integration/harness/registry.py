"""Start a real registry (Debian's ``docker-registry``, CNCF distribution 2.8) for a test.

``binary=`` runs another build of distribution that takes the same config and ``serve`` command
(harness.goregistry.DistributionRegistry: distribution v3); subclasses whose command line differs
override :meth:`Registry._command` (harness.goregistry.GgcrRegistry).

Every instance listens on 127.0.0.1 on a free port, keeps its storage, config, keys and
log in its own temporary directory, and removes all of it on :meth:`Registry.stop`.
Variants::

    Registry()                              # open, plain HTTP
    Registry(auth="htpasswd")               # Basic auth (bcrypt htpasswd): .username/.password
    Registry(auth="token")                  # Bearer tokens from harness.tokenserver
    Registry(tls=True)                      # HTTPS with a throwaway CA: .ca_path
    Registry(tls=True, auth="htpasswd")     # any combination

The registry's own log (stdout+stderr) goes to ``.log_path``; it includes the access log
(one Apache-style line per request), which :meth:`Registry.access_log` parses so tests
can count requests by method and path.

Processes never outlive the test run: stop() is called by the context manager, by an
atexit hook, and the child asks the kernel to SIGTERM it when the thread that started it
ends (``PR_SET_PDEATHSIG``), which covers a pytest killed by a timeout. Hence: start a
Registry from a thread that outlives it (pytest's main thread does; a short-lived
worker thread does not).
"""
from __future__ import annotations

import atexit
import ctypes
import json
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from . import pki
from .images import HARNESS_USER_AGENT
from .tokenserver import Acl, TokenServer

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT = 20.0
PORT_ATTEMPTS = 5

# Apache combined log format, as written by distribution's gorilla access-log handler.
_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) \S+ '
                          r'"[^"]*" "(?P<agent>[^"]*)"')


_live: set[Registry] = set()


@dataclass(frozen=True)
class AccessEntry:
    method: str
    path: str
    status: int
    user_agent: str

    @property
    def from_harness(self) -> bool:
        return self.user_agent.startswith(HARNESS_USER_AGENT)


def read_access_log(log_path: Path, settle: float = 0.2) -> list[AccessEntry]:
    """The Apache combined-format access lines of ``log_path`` (distribution's, gunicorn's), in order, once the
    log has stopped growing for ``settle`` seconds (servers write the line after the answer is sent)."""
    size = -1
    while size != log_path.stat().st_size:
        size = log_path.stat().st_size
        time.sleep(settle)
    entries = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = _ACCESS_LINE.search(line)
        if match:
            entries.append(AccessEntry(match["method"], match["path"], int(match["status"]), match["agent"]))
    return entries


def free_port() -> int:
    """A port that was free a moment ago (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """preexec_fn: have the kernel SIGTERM the child when the parent thread exits."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM ``proc`` if it still runs, wait ``timeout`` seconds, then SIGKILL it and reap it. None is fine."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _htpasswd_line(user: str, password: str) -> str:
    # distribution only accepts bcrypt entries; apache2-utils' htpasswd makes them.
    out = subprocess.run(["htpasswd", "-nbB", user, password], check=True, capture_output=True, text=True)
    return out.stdout.strip() + "\n"


def base_config(storage: Path, port: int, *, delete_enabled: bool = True) -> dict:
    """distribution config for an open, plain-HTTP registry on 127.0.0.1:``port``.

    Text log at info level so the access log (method, path, status) is always written.
    Written out as JSON, which is YAML: no YAML library needed.
    """
    return {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": delete_enabled},
            "cache": {"blobdescriptor": "inmemory"},
            # No background upload purging: it only adds log noise.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"127.0.0.1:{port}",
            # A set secret silences distribution's warning about a random one.
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }


class Registry:
    """A running ``docker-registry``. See the module docstring for the variants.

    ``users`` maps usernames to passwords (default: one random user, exposed as
    ``.username``/``.password``). For ``auth="token"``, ``acl`` maps usernames to
    repository-glob ACLs (default: every user may pull and push everywhere) and
    ``anonymous_acl`` is passed to the token server (default pull-only; ``{}`` = nothing).
    """

    implementation = "distribution-2.8"

    def __init__(self, *, auth: str | None = None, tls: bool = False, client_certs: bool = False,
                 delete_enabled: bool = True, binary: str = REGISTRY_BINARY,
                 users: dict[str, str] | None = None, acl: dict[str, Acl] | None = None,
                 anonymous_acl: Acl | None = None, token_expires_in: int = 300,
                 refresh_tokens: dict[str, str] | None = None,
                 realm: str = "archfleet-test", start: bool = True):
        if auth not in (None, "htpasswd", "token"):
            raise ValueError(f"auth must be None, 'htpasswd' or 'token', not {auth!r}")
        self.auth = auth
        self.binary = binary
        self.tls = tls or client_certs
        self.client_certs = client_certs
        self.client_tls: pki.ClientTLS | None = None
        self.delete_enabled = delete_enabled
        self.realm = realm
        self.users = dict(users) if users else {"alice": secrets.token_urlsafe(12)}
        self.username, self.password = next(iter(self.users.items()))
        self.acl = acl if acl is not None else {user: {"*": ["pull", "push", "delete"]} for user in self.users}
        self.anonymous_acl = anonymous_acl
        self.token_expires_in = token_expires_in
        self.refresh_tokens = dict(refresh_tokens or {})

        self.dir: Path | None = None
        self.port: int | None = None
        self.ca_path: Path | None = None
        self.cert_dir: Path | None = None
        self.log_path: Path | None = None
        self.token_server: TokenServer | None = None
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        if start:
            self.start()

    # -- addresses ----------------------------------------------------------------------
    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def auth_tuple(self) -> tuple[str, str] | None:
        """(username, password) when the registry needs credentials, else None."""
        return (self.username, self.password) if self.auth else None

    @property
    def verify(self) -> str | bool:
        """What to pass as ``requests``' ``verify=`` for this registry."""
        return str(self.ca_path) if self.tls else True

    @property
    def version(self) -> str:
        """The last word of ``<binary> --version`` (``2.8.2+ds1`` for Debian's docker-registry)."""
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False)
        return (out.stdout.split() or ["unknown"])[-1]

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Registry:
        if self._proc is not None:
            return self
        self.dir = Path(tempfile.mkdtemp(prefix="af-registry-"))
        _live.add(self)
        try:
            self._prepare_files()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill the registry and the token service and remove the temporary directory. Idempotent."""
        if self._proc is not None:
            stop_process(self._proc, timeout=5)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = self.ca_path = self.cert_dir = None
        _live.discard(self)

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} auth={self.auth} tls={self.tls}>"

    # -- access log ---------------------------------------------------------------------
    def access_log(self, settle: float = 0.2) -> list[AccessEntry]:
        """Every request the registry logged so far, in order.

        distribution writes the access line after the response has been sent, so a client
        can see its answer before the line exists: wait until the log stops growing for
        ``settle`` seconds before parsing.
        """
        assert self.log_path is not None, "registry not started"
        return read_access_log(self.log_path, settle)

    # -- internals ----------------------------------------------------------------------
    def _prepare_files(self) -> None:
        assert self.dir is not None
        (self.dir / "storage").mkdir()
        self.log_path = self.dir / "registry.log"
        if self.tls:
            tls_files = pki.make_server_tls(self.dir / "tls")
            self.ca_path = tls_files.ca_path
            # containers-style certs dir (skopeo --cert-dir): any *.crt in it is a trusted CA.
            self.cert_dir = self.dir / "certs"
            self.cert_dir.mkdir()
            shutil.copyfile(self.ca_path, self.cert_dir / "ca.crt")
        if self.client_certs:
            # mTLS: the registry requires and verifies a client certificate signed by this CA.
            self.client_tls = pki.make_client_tls(self.dir / "client")
        if self.auth == "htpasswd":
            (self.dir / "htpasswd").write_text(
                "".join(_htpasswd_line(user, pw) for user, pw in self.users.items()))
        elif self.auth == "token":
            signer = pki.make_token_signer(self.dir / "token")
            self.token_server = TokenServer(
                signing_key_path=signer.key_path, signing_cert_path=signer.cert_path,
                users=self.users, acl=self.acl, anonymous_acl=self.anonymous_acl,
                expires_in=self.token_expires_in, refresh_tokens=self.refresh_tokens,
                tls=(self.dir / "tls" / "server.pem", self.dir / "tls" / "server-key.pem") if self.tls else None)

    def _config(self, port: int) -> dict:
        assert self.dir is not None
        config = base_config(self.dir / "storage", port, delete_enabled=self.delete_enabled)
        if self.tls:
            config["http"]["tls"] = {"certificate": str(self.dir / "tls" / "server.pem"),
                                     "key": str(self.dir / "tls" / "server-key.pem")}
            if self.client_tls is not None:
                config["http"]["tls"]["clientcas"] = [str(self.client_tls.ca_path)]
        if self.auth == "htpasswd":
            config["auth"] = {"htpasswd": {"realm": self.realm, "path": str(self.dir / "htpasswd")}}
        elif self.auth == "token":
            assert self.token_server is not None
            config["auth"] = {"token": {"realm": self.token_server.realm,
                                        "service": self.token_server.service,
                                        "issuer": self.token_server.issuer,
                                        "rootcertbundle": str(self.dir / "token" / "token.pem")}}
        return config

    def _launch(self) -> None:
        """Start on a free port; if another process took the port first, try another."""
        assert self.dir is not None and self.log_path is not None
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        last_error = ""
        for _attempt in range(PORT_ATTEMPTS):
            port = free_port()
            self.port = port
            self._proc = subprocess.Popen(
                self._command(port),
                stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
                cwd=self.dir, preexec_fn=_die_with_parent)
            if self._wait_ready():
                return
            last_error = self._tail_log()
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
            if "address already in use" not in last_error:
                break
        raise RuntimeError(f"{self.binary} did not start; log tail:\n{last_error}")

    def _command(self, port: int) -> list[str]:
        """The command line that serves on ``port``: writes the config, returns ``[binary, serve, config]``."""
        assert self.dir is not None
        config_path = self.dir / "config.yml"
        config_path.write_text(json.dumps(self._config(port), indent=2))
        return [self.binary, "serve", str(config_path)]

    def _wait_ready(self) -> bool:
        """True once GET /v2/ answers (200, or 401 for auth variants)."""
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                cert = (str(self.client_tls.cert_path), str(self.client_tls.key_path)) if self.client_tls else None
                response = requests.get(f"{self.url}/v2/", verify=self.verify, timeout=2, cert=cert,
                                        headers={"User-Agent": HARNESS_USER_AGENT})
                if response.status_code in (200, 401):
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

    def _tail_log(self, lines: int = 20) -> str:
        assert self.log_path is not None
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@atexit.register
def _stop_all() -> None:
    for registry in list(_live):
        registry.stop()
