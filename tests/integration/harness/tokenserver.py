"""A small Docker token service (https://distribution.github.io/distribution/spec/auth/token/).

The registry answers 401 with ``WWW-Authenticate: Bearer realm=<this service>``; clients
then ``GET <realm>?service=...&scope=repository:NAME:pull,push`` (``scope`` may repeat),
with Basic credentials or anonymously, and retry with the JWT they get back.

Like real token services this one never refuses a request for *more* than a user may
do: it grants the intersection of what was asked and what the user's ACL allows,
silently. Only wrong credentials get a 401. That is exactly the behaviour the modules
must turn into a clear "no push permission" message.

The JWT is RS256 with the signing certificate in its ``x5c`` header; distribution checks
that certificate against ``auth.token.rootcertbundle`` and the claims ``iss``, ``aud``
(the service), ``exp``/``nbf``.

``requests`` counts every token request served, so tests can assert that a client
reuses its tokens instead of fetching one per call.
"""
from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

# ACL: repository-name glob -> actions allowed. Globs use fnmatch ("*", "team/*").
Acl = dict[str, list[str]]

TOKEN_PATH = "/token"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128     # concurrent clients must not hit the default backlog of 5


@dataclass(frozen=True)
class TokenRequest:
    """What one token request asked for and what it got (for assertions)."""

    account: str | None          # None for anonymous
    service: str
    scopes: tuple[str, ...]      # as asked
    access: tuple[dict, ...]     # as granted (the JWT's access claim)


class TokenServer:
    """Threaded HTTP token service on 127.0.0.1 (free port). Use as a context manager or call stop().

    ``users`` maps username to password. ``acl`` maps username to an :data:`Acl`;
    ``anonymous_acl`` applies when no credentials are sent (default: pull on everything;
    ``{}`` grants nothing, so anonymous clients get a token that the registry rejects).
    ``refresh_tokens`` maps an OAuth2 refresh token (docker's ``identitytoken``) to its username,
    for the POST ``grant_type=refresh_token`` flow.
    """

    def __init__(self, *, signing_key_path: Path | str, signing_cert_path: Path | str,
                 users: dict[str, str], acl: dict[str, Acl], anonymous_acl: Acl | None = None,
                 service: str = "archfleet-test-registry", issuer: str = "archfleet-test-issuer",
                 expires_in: int = 300, refresh_tokens: dict[str, str] | None = None,
                 tls: tuple[Path | str, Path | str] | None = None):
        """``tls``: ``(certificate, key)`` PEM files to serve HTTPS with (a TLS registry's token service is
        HTTPS, as Harbor's, GitLab's and Docker Hub's are; the collection refuses a plain-HTTP realm for an
        HTTPS registry)."""
        self.users = dict(users)
        self.refresh_tokens = dict(refresh_tokens or {})
        self.acl = {user: dict(rules) for user, rules in acl.items()}
        self.anonymous_acl = {"*": ["pull"]} if anonymous_acl is None else dict(anonymous_acl)
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self._key = serialization.load_pem_private_key(Path(signing_key_path).read_bytes(), None)
        cert = x509.load_pem_x509_certificate(Path(signing_cert_path).read_bytes())
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]
        self._lock = threading.Lock()
        self.log: list[TokenRequest] = []
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, name="tokenserver", daemon=True)
        self._thread.start()

    # -- public -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def realm(self) -> str:
        """The URL to configure as ``auth.token.realm``."""
        return f"{self.scheme}://127.0.0.1:{self.port}{TOKEN_PATH}"

    @property
    def requests(self) -> int:
        """Number of token requests answered with a token."""
        with self._lock:
            return len(self.log)

    def reset(self) -> None:
        with self._lock:
            self.log.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TokenServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- token logic ------------------------------------------------------------------
    def grant(self, account: str | None, scopes: list[str]) -> list[dict]:
        """The ``access`` claim for ``account``: each asked scope cut down to what its ACL allows."""
        rules = self.anonymous_acl if account is None else self.acl.get(account, {})
        access: list[dict] = []
        for scope in scopes:
            try:
                rtype, rest = scope.split(":", 1)
                name, actions = rest.rsplit(":", 1)
            except ValueError:
                continue                     # malformed scopes are ignored, as distribution's auth does
            if rtype != "repository":
                continue                     # registry:catalog:* etc. is never granted here
            allowed: set[str] = set()
            for pattern, acts in rules.items():
                if fnmatch.fnmatchcase(name, pattern):
                    allowed.update(acts)
            asked = [a for a in actions.split(",") if a]
            granted = [a for a in asked if a in allowed or "*" in allowed]
            if granted:
                access.append({"type": rtype, "name": name, "actions": granted})
        return access

    def issue(self, account: str | None, access: list[dict]) -> dict:
        """Sign a JWT and build the JSON body a token endpoint returns."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,
            "exp": now + self.expires_in,
            # Backdated: the registry rejects a token whose nbf is in its future.
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        token = signing_input + "." + _b64url(signature)
        issued_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {"token": token, "access_token": token, "expires_in": self.expires_in, "issued_at": issued_at}

    def _authenticate(self, authorization: str | None) -> tuple[bool, str | None]:
        """(ok, account). No header is anonymous; a wrong password is not ok."""
        if not authorization:
            return True, None
        scheme, _space, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _colon, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        if user in self.users and self.users[user] == password:
            return True, user
        return False, None

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                url = urlsplit(self.path)
                if url.path != TOKEN_PATH:
                    self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
                    return
                query = parse_qs(url.query)
                ok, account = server._authenticate(self.headers.get("Authorization"))
                if not ok:
                    self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                                {"WWW-Authenticate": 'Basic realm="archfleet-token"'})
                    return
                self._answer(account, query)

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                """OAuth2: a refresh token (docker's identitytoken) for an access token."""
                if urlsplit(self.path).path != TOKEN_PATH:
                    self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": self.path}]})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode("utf-8"))
                grant = (form.get("grant_type") or [""])[0]
                account = server.refresh_tokens.get((form.get("refresh_token") or [""])[0])
                if grant != "refresh_token" or account is None:
                    self._reply(401, {"error": "invalid_grant"})
                    return
                self._answer(account, form)

            def _answer(self, account: str | None, fields: dict) -> None:
                """Grant ``account`` what it may of the asked scopes, log it, answer with a token."""
                service = (fields.get("service") or [server.service])[0]
                scopes = [s for value in fields.get("scope", []) for s in value.split(" ") if s]
                access = server.grant(account, scopes)
                with server._lock:
                    server.log.append(TokenRequest(account, service, tuple(scopes), tuple(access)))
                self._reply(200, server.issue(account, access))

            def _reply(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args) -> None:  # noqa: A002 - keep pytest output clean
                pass

        return Handler
