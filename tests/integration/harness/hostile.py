"""A registry that misbehaves on purpose: a small threaded HTTP(S) server on loopback (real sockets).

It serves the distribution API from memory (manifests by tag and digest, blobs, tag lists, the catalog,
uploads, an optional Bearer token service and Basic auth), and any request can be answered by a script
instead (:meth:`Hostile.on`): oversize, endless or stalling bodies, lying digests, odd headers, redirects.
Every request is logged (method, path, headers, when), so a test can check what was written and which
credentials reached which host. Nothing here is a model of a product: it is the adversary of issue 21.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MIB = 1024 * 1024


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return "%s:%s" % (algorithm, hashlib.new(algorithm, data).hexdigest())


def canonical(document) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True).encode()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    host: str
    at: float = field(default_factory=time.monotonic)

    @property
    def authorization(self):
        return {k.lower(): v for k, v in self.headers.items()}.get("authorization")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile/1"

    def log_message(self, *args):   # quiet
        pass

    # ------------------------------------------------------------------ answers scripts may use
    def answer(self, status, body=b"", headers=None, content_type="application/json"):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", content_type)
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def answer_error(self, status, code, message=""):
        self.answer(status, json.dumps({"errors": [{"code": code, "message": message}]}).encode())

    def stream_chunked(self, status, chunks, headers=None, content_type="application/json"):
        """A chunked body from the iterable ``chunks`` (may be endless); ends when the client goes away."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def stream_sized(self, status, length, chunks, headers=None, content_type="application/json"):
        """A body announced as ``length`` bytes, sent from ``chunks`` (which may be slow)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        self.close_connection = True

    # ------------------------------------------------------------------ dispatch
    def _handle(self):
        registry = self.server.registry
        length = int(self.headers.get("Content-Length") or 0)
        self.body = b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.body = _read_chunked(self.rfile)
        elif length:
            self.body = self.rfile.read(length)
        registry.log.append(Seen(self.command, self.path, dict(self.headers.items()), registry.host))
        for method, pattern, script in list(registry.scripts):
            if method in (self.command, "*") and re.fullmatch(pattern, self.path.split("?", 1)[0]):
                if script(self) is not False:
                    return
        registry.serve(self)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


def _read_chunked(rfile) -> bytes:
    data = b""
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            rfile.readline()
            return data
        data += rfile.read(size)
        rfile.readline()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class Hostile:
    """A registry on ``127.0.0.1:<free port>``; ``tls`` (harness.pki.ServerTLS) makes it HTTPS.

    ``auth``: None (anonymous), ``"basic"`` or ``"bearer"`` (its own token service at ``/token``, or the
    ``realm`` given); ``challenge`` replaces the WWW-Authenticate header sent. Content: :meth:`put_manifest`,
    :meth:`put_blob`, :meth:`add_image`, :meth:`add_index`. Scripts: :meth:`on`.
    """

    def __init__(self, tls=None, auth=None, username="hostile", password="s3cret-hostile", realm=None,
                 challenge=None, token="good-token"):
        self.tls = tls
        self.auth = auth
        self.username, self.password = username, password
        self.token = token
        self.challenge = challenge
        self._realm = realm
        self.manifests = {}   # (repository, tag or digest) -> (media type, bytes)
        self.blobs = {}       # (repository, digest) -> bytes
        self.tags = {}        # repository -> [tag]
        self.uploads = {}
        self.scripts = []
        self.log = []
        self.server = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self):
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.registry = self
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls.cert_path), str(self.tls.key_path))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "%s://%s" % ("https" if self.tls else "http", self.host)

    @property
    def realm(self):
        return self._realm or self.url + "/token"

    # ------------------------------------------------------------------ content
    def put_blob(self, repository, data, algorithm="sha256"):
        digest = digest_of(data, algorithm)
        self.blobs[(repository, digest)] = data
        return {"mediaType": OCI_LAYER, "digest": digest, "size": len(data)}

    def put_manifest(self, repository, body, media_type, tag=None, algorithm="sha256", digest=None):
        digest = digest or digest_of(body, algorithm)
        self.manifests[(repository, digest)] = (media_type, body)
        if tag is not None:
            self.manifests[(repository, tag)] = (media_type, body)
            self.tags.setdefault(repository, [])
            if tag not in self.tags[repository]:
                self.tags[repository].append(tag)
        return {"mediaType": media_type, "digest": digest, "size": len(body)}

    def add_image(self, repository, tag=None, architecture="amd64", algorithm="sha256", config_extra=None):
        config = {"architecture": architecture, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        config.update(config_extra or {})
        config_body = canonical(config)
        config_descriptor = dict(self.put_blob(repository, config_body, algorithm), mediaType=OCI_CONFIG)
        layer = self.put_blob(repository, ("layer of %s %s" % (repository, architecture)).encode(), algorithm)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor, "layers": [layer]}
        descriptor = self.put_manifest(repository, canonical(manifest), OCI_MANIFEST, tag, algorithm)
        descriptor["platform"] = {"architecture": architecture, "os": "linux"}
        return descriptor

    def add_index(self, repository, children, tag=None, algorithm="sha256"):
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(children)}
        return self.put_manifest(repository, canonical(index), OCI_INDEX, tag, algorithm)

    # ------------------------------------------------------------------ scripts and logs
    def on(self, method, path_pattern, script):
        """Answer ``method`` (or ``"*"``) on paths matching ``path_pattern`` (regex, no query) with
        ``script(handler)``; a script returning False lets the registry answer after all."""
        self.scripts.append((method, path_pattern, script))

    def writes(self):
        return [s for s in self.log if s.method in ("PUT", "POST", "PATCH", "DELETE")]

    def seen(self, pattern=".*", method=None):
        return [s for s in self.log if re.fullmatch(pattern, s.path.split("?", 1)[0])
                and (method is None or s.method == method)]

    # ------------------------------------------------------------------ the registry itself
    def _authorized(self, h):
        if self.auth is None:
            return True
        value = h.headers.get("Authorization") or ""
        if self.auth == "bearer":
            if value == "Bearer " + self.token:
                return True
            challenge = self.challenge or 'Bearer realm="%s",service="hostile"' % self.realm
        else:
            expected = "Basic " + base64.b64encode(("%s:%s" % (self.username, self.password)).encode()).decode()
            if value == expected:
                return True
            challenge = self.challenge or 'Basic realm="hostile"'
        h.answer(401, json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
                 .encode(), {"WWW-Authenticate": challenge})
        return False

    def serve(self, h):
        path, _mark, query = h.path.partition("?")
        if path == "/token":
            h.answer(200, json.dumps({"token": self.token, "expires_in": 300}).encode())
            return
        if not path.startswith("/v2/"):
            h.answer_error(404, "NOT_FOUND")
            return
        if not self._authorized(h):
            return
        if path == "/v2/":
            h.answer(200, b"{}")
            return
        if path == "/v2/_catalog":
            repositories = sorted(set(key[0] for key in self.manifests))
            h.answer(200, json.dumps({"repositories": repositories}).encode())
            return
        match = re.fullmatch(r"/v2/(.+)/(manifests|blobs|tags)/(.*)", path)
        if not match:
            h.answer_error(404, "NOT_FOUND")
            return
        repository, kind, rest = match.groups()
        if kind == "tags":
            if repository not in self.tags:
                h.answer_error(404, "NAME_UNKNOWN")
            else:
                h.answer(200, json.dumps({"name": repository, "tags": self.tags[repository]}).encode())
            return
        if kind == "manifests":
            self._manifest(h, repository, rest)
        elif rest.startswith("uploads"):
            self._upload(h, repository, rest, query)
        else:
            data = self.blobs.get((repository, rest))
            if data is None:
                h.answer_error(404, "BLOB_UNKNOWN")
            else:
                h.answer(200, data, {"Docker-Content-Digest": rest}, "application/octet-stream")

    def _manifest(self, h, repository, reference):
        if h.command == "PUT":
            media_type = h.headers.get("Content-Type")
            digest = reference if ":" in reference else digest_of(h.body)
            if digest != digest_of(h.body, digest.split(":", 1)[0]):
                h.answer_error(400, "DIGEST_INVALID")
                return
            self.put_manifest(repository, h.body, media_type, None if ":" in reference else reference, digest=digest)
            location = "/v2/%s/manifests/%s" % (repository, digest)
            h.answer(201, b"", {"Docker-Content-Digest": digest, "Location": location})
            return
        found = self.manifests.get((repository, reference))
        if found is None:
            h.answer_error(404, "MANIFEST_UNKNOWN")
            return
        media_type, body = found
        digest = reference if ":" in reference else digest_of(body)
        h.answer(200, body, {"Docker-Content-Digest": digest}, media_type)

    def _upload(self, h, repository, rest, query):
        if h.command == "POST":
            session = "u%d" % len(self.uploads)
            self.uploads[session] = b""
            h.answer(202, b"", {"Location": "/v2/%s/blobs/uploads/%s" % (repository, session)})
            return
        session = rest.split("/", 1)[1] if "/" in rest else ""
        if h.command == "PATCH":
            self.uploads[session] = self.uploads.get(session, b"") + h.body
            h.answer(202, b"", {"Location": "/v2/%s/blobs/uploads/%s" % (repository, session)})
        elif h.command == "PUT":
            data = self.uploads.pop(session, b"") + h.body
            digest = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("digest", "")
            digest = digest.replace("%3A", ":")
            if digest_of(data, digest.split(":", 1)[0] if ":" in digest else "sha256") != digest:
                h.answer_error(400, "DIGEST_INVALID")
                return
            self.blobs[(repository, digest)] = data
            h.answer(201, b"", {"Docker-Content-Digest": digest})
        else:
            h.answer_error(405, "UNSUPPORTED")


# ---------------------------------------------------------------------- scripts used by the tests
def endless(chunk=b" " * 65536):
    while True:
        yield chunk


def trickle(data: bytes, delay: float):
    """``data`` one byte at a time, ``delay`` seconds apart."""
    for index in range(len(data)):
        time.sleep(delay)
        yield data[index:index + 1]


def zeros(total: int, chunk: int = MIB):
    sent = 0
    while sent < total:
        size = min(chunk, total - sent)
        sent += size
        yield b" " * size


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
