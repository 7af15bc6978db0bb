"""A counting, delaying, fault-injecting HTTP proxy in front of a test registry.

Clients talk to the proxy as if it were the registry (``proxy.host`` in image
references); it forwards every request to the registry over keep-alive HTTP/1.1
connections, streaming bodies both ways (Content-Length or chunked), and:

* counts requests by ``(method, kind)`` with kind one of ``manifest``, ``blob``, ``upload``,
  ``token`` or ``other`` (``counts``, ``writes``, ``count()``, ``reset()``, ``log``, ``most_in_flight``);
* sleeps ``delay`` seconds before forwarding each request, to model a remote registry;
* rewrites absolute ``Location`` headers that point at the registry so they point at the
  proxy (distribution sends absolute upload URLs);
* asks ``fault(request)`` before forwarding: None passes the request on, a :class:`Fault`
  answers with a status, resets the connection (before forwarding, or part-way through the
  response body), stalls, truncates the response body, or replaces it (e.g. bytes that do not
  match the digest asked for), or forwards it and adds headers to the registry's answer
  (``Fault.add_headers``: what a newer registry would say, e.g. ``OCI-Subject``).

Token requests: the token realm is fixed in the registry's config, so a client would go
straight to the token service and the proxy would never see it. When the registry has a
token service, the proxy rewrites the ``realm`` in ``WWW-Authenticate`` to its own
``/token`` and forwards that path to the token service, so token requests are delayed and
counted (kind ``token``) like the rest. ``registry.token_server.requests`` counts them too,
including any that bypass the proxy.

The client side is always plain HTTP. The upstream may be HTTPS (verified with the
registry's ``ca_path``), which also gives clients that refuse TLS on loopback (the docker
CLI's ``manifest push``) a way to reach a TLS registry.
"""
from __future__ import annotations

import http.client
import re
import socket
import ssl
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator
from urllib.parse import urlsplit

from .tokenserver import TOKEN_PATH

WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})
# Hop-by-hop headers (RFC 9110 7.6.1) are per connection and never forwarded.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade", "proxy-connection"})
CHUNK = 64 * 1024
TLS_HANDSHAKE_BYTE = b"\x16"    # first byte of a TLS record carrying a ClientHello
UPSTREAM_TIMEOUT = 60

_UPLOAD = re.compile(r"^/v2/.+/blobs/uploads(/|$)")
_BLOB = re.compile(r"^/v2/.+/blobs/")
_MANIFEST = re.compile(r"^/v2/.+/manifests/")


def path_kind(path: str) -> str:
    """``manifest``, ``blob``, ``upload``, ``token`` or ``other`` for a request path."""
    path = path.split("?", 1)[0]
    if path == TOKEN_PATH:
        return "token"
    if _UPLOAD.match(path):
        return "upload"
    if _BLOB.match(path):
        return "blob"
    if _MANIFEST.match(path):
        return "manifest"
    return "other"


@dataclass(frozen=True)
class ProxyRequest:
    """What a fault hook sees: the request line, its headers and its sequence number."""

    method: str
    path: str
    kind: str
    headers: Message
    number: int          # 1 for the first request since the proxy started or was reset


@dataclass(frozen=True)
class Fault:
    """A fault hook's decision. Build with the class methods."""

    action: str                  # respond | reset | reset_after | stall | truncate | replace_body | add_headers
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    after_bytes: int = 0
    transform: Callable[[bytes], bytes] | None = None
    extra_headers: Callable[[int, dict[str, str]], dict[str, str]] | None = None

    @classmethod
    def respond(cls, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Fault:
        """Answer with this status instead of forwarding (e.g. 429 with Retry-After, 503)."""
        return cls("respond", status=status, headers=dict(headers or {}), body=body)

    @classmethod
    def reset(cls) -> Fault:
        """Drop the client connection with a TCP RST, without an answer."""
        return cls("reset")

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Wait ``seconds`` (longer than the client's timeout, usually), then forward."""
        return cls("stall", seconds=seconds)

    @classmethod
    def truncate(cls, after_bytes: int) -> Fault:
        """Forward, but close the connection after ``after_bytes`` bytes of the response body."""
        return cls("truncate", after_bytes=after_bytes)

    @classmethod
    def reset_after(cls, after_bytes: int) -> Fault:
        """Forward, send the headers and ``after_bytes`` bytes of the response body, then reset (RST)."""
        return cls("reset_after", after_bytes=after_bytes)

    @classmethod
    def replace_body(cls, transform: Callable[[bytes], bytes]) -> Fault:
        """Forward, then answer with the registry's status and headers but ``transform(body)`` as the body."""
        return cls("replace_body", transform=transform)

    @classmethod
    def add_headers(cls, compute: Callable[[int, dict[str, str]], dict[str, str]]) -> Fault:
        """Forward, then add ``compute(status, registry's headers)`` to the answer's headers."""
        return cls("add_headers", extra_headers=compute)


FaultHook = Callable[[ProxyRequest], "Fault | None"]


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    kind: str
    status: int          # 0 when the proxy reset the connection


@dataclass(frozen=True)
class _Upstream:
    scheme: str
    host: str
    port: int
    ssl_context: ssl.SSLContext | None

    @classmethod
    def from_url(cls, url: str, ca_path: str | None) -> _Upstream:
        parts = urlsplit(url)
        context = ssl.create_default_context(cafile=ca_path) if parts.scheme == "https" else None
        return cls(parts.scheme, parts.hostname or "127.0.0.1", parts.port or 80, context)

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def connect(self) -> http.client.HTTPConnection:
        if self.ssl_context is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=UPSTREAM_TIMEOUT,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=UPSTREAM_TIMEOUT)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs when a benchmark opens many connections
    # at once, and each drop costs a 1 s retransmit that would be charged to the client.
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:
        # Clients that give up (timeouts, injected faults) are expected; anything else is a bug.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class Proxy:
    """Proxy for ``registry`` (a harness Registry, or anything with ``url``, ``ca_path``
    and ``token_server``) on 127.0.0.1, free port. Context manager, or call stop()."""

    def __init__(self, registry, *, delay: float = 0.0, fault: FaultHook | None = None):
        self.delay = delay
        self.fault = fault
        ca_path = str(registry.ca_path) if getattr(registry, "ca_path", None) else None
        self._registry = _Upstream.from_url(registry.url, ca_path)
        token_server = getattr(registry, "token_server", None)
        self._token = _Upstream.from_url(token_server.realm, ca_path) if token_server else None
        self._token_realm = token_server.realm if token_server else None
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.log: list[LoggedRequest] = []
        self.in_flight = 0           # requests being handled now (from arrival, through the delay, to the answer)
        self.most_in_flight = 0      # the most at once since the last reset()
        self._sequence = 0
        self._connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="registry-proxy", daemon=True)
        self._thread.start()

    # -- public ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def writes(self) -> int:
        """PUT, POST, PATCH and DELETE requests seen."""
        with self._lock:
            return sum(n for (method, _kind), n in self.counts.items() if method in WRITE_METHODS)

    def count(self, method: str | None = None, kind: str | None = None) -> int:
        """Requests seen, optionally only of one method and/or kind."""
        with self._lock:
            return sum(n for (m, k), n in self.counts.items()
                       if (method is None or m == method) and (kind is None or k == kind))

    def reset(self) -> None:
        """Forget the counts and the log (e.g. between a first and a second run)."""
        with self._lock:
            self.counts.clear()
            self.log.clear()
            self._sequence = 0
            self.most_in_flight = self.in_flight

    def stop(self) -> None:
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:      # wake handler threads parked on idle keep-alive reads
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------
    def _next_number(self) -> int:
        with self._lock:
            self._sequence += 1
            return self._sequence

    def _record(self, method: str, path: str, kind: str, status: int) -> None:
        with self._lock:
            self.counts[(method, kind)] += 1
            self.log.append(LoggedRequest(method, path, kind, status))

    def _rewrite_header(self, name: str, value: str, upstream: _Upstream) -> str:
        lower = name.lower()
        if lower == "location" and value.startswith(upstream.base):
            return self.url + value[len(upstream.base):]
        if lower == "www-authenticate" and self._token_realm:
            return value.replace(f'realm="{self._token_realm}"', f'realm="{self.url}{TOKEN_PATH}"')
        return value

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # keep-alive with clients
            # Headers and body go out as separate small writes; with Nagle's algorithm on, the
            # client's delayed ACK would hold every body back about 40 ms.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                self._upstream_conns: dict[_Upstream, http.client.HTTPConnection] = {}
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    for conn in self._upstream_conns.values():
                        conn.close()
                    with proxy._lock:
                        proxy._connections.discard(self.connection)

            def handle(self) -> None:
                # A client that tries TLS first (the docker CLI does, on any registry) must be
                # told it reached plain HTTP, or it will not fall back. Answer as Go's server
                # does: Go clients recognise an "HTTP/" reply to their ClientHello.
                if self.connection.recv(1, socket.MSG_PEEK) == TLS_HANDSHAKE_BYTE:
                    self.wfile.write(b"HTTP/1.0 400 Bad Request\r\n\r\n"
                                     b"Client sent an HTTPS request to an HTTP server.\n")
                    return
                super().handle()

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                self._forward()

            do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET  # noqa: N815

            # -- one request ------------------------------------------------------------
            def _forward(self) -> None:
                with proxy._lock:
                    proxy.in_flight += 1
                    proxy.most_in_flight = max(proxy.most_in_flight, proxy.in_flight)
                self._counted = True
                try:
                    self._forward_one()
                finally:
                    self._answered()

            def _answered(self) -> None:
                """The request stops counting as in flight: called just before the last bytes of the answer
                are written (once the client has them it may send its next request at once, before this
                thread runs again), or at the end."""
                if getattr(self, "_counted", False):
                    self._counted = False
                    with proxy._lock:
                        proxy.in_flight -= 1

            def _forward_one(self) -> None:
                kind = path_kind(self.path)
                upstream = proxy._token if kind == "token" and proxy._token else proxy._registry
                request = ProxyRequest(self.command, self.path, kind, self.headers, proxy._next_number())
                fault = proxy.fault(request) if proxy.fault else None
                if proxy.delay:
                    time.sleep(proxy.delay)
                if fault is not None and fault.action == "reset":
                    proxy._record(self.command, self.path, kind, 0)
                    self._reset_connection()
                    return
                if fault is not None and fault.action == "respond":
                    for _chunk in self._request_body():   # drain, so the connection stays usable
                        pass
                    # Logged before the client sees the answer, so the log is in request order.
                    proxy._record(self.command, self.path, kind, fault.status)
                    self._send_fault(fault)
                    return
                if fault is not None and fault.action == "stall":
                    time.sleep(fault.seconds)
                response = self._send_upstream(upstream)
                proxy._record(self.command, self.path, kind, response.status)
                if fault is not None and fault.action == "replace_body":
                    self._relay_replaced(response, upstream, fault.transform)
                    return
                cut = fault is not None and fault.action in ("truncate", "reset_after")
                extra = {}
                if fault is not None and fault.action == "add_headers":
                    extra = fault.extra_headers(response.status, dict(response.getheaders())) or {}
                self._relay(response, upstream, fault.after_bytes if cut else None,
                            reset=cut and fault.action == "reset_after", extra=extra)

            def _send_upstream(self, upstream: _Upstream) -> http.client.HTTPResponse:
                chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
                has_body = chunked or int(self.headers.get("Content-Length") or 0) > 0
                # A kept-alive upstream connection may have been closed by the registry while
                # idle; resending is safe only when no body has been consumed yet.
                for attempt in (1, 2):
                    conn = self._upstream_conns.get(upstream)
                    fresh = conn is None
                    if fresh:
                        conn = self._upstream_conns[upstream] = upstream.connect()
                    try:
                        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                        conn.putheader("Host", f"{upstream.host}:{upstream.port}")
                        # items() keeps repeated headers (the docker CLI sends one Accept per type).
                        for name, value in self.headers.items():
                            if name.lower() not in HOP_BY_HOP and name.lower() != "host":
                                conn.putheader(name, value)
                        if chunked:
                            conn.putheader("Transfer-Encoding", "chunked")
                        conn.endheaders()
                        for data in self._request_body() if has_body else ():
                            conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                        if chunked:
                            conn.send(b"0\r\n\r\n")
                        return conn.getresponse()
                    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                        conn.close()
                        del self._upstream_conns[upstream]
                        if fresh or has_body or attempt == 2:
                            raise
                raise AssertionError("unreachable")

            def _request_body(self) -> Iterator[bytes]:
                """Stream the client's request body, decoding chunked transfer encoding."""
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass                 # trailers
                            return
                        yield self.rfile.read(size)
                        self.rfile.readline()        # CRLF after each chunk
                remaining = int(self.headers.get("Content-Length") or 0)
                while remaining > 0:
                    data = self.rfile.read(min(CHUNK, remaining))
                    if not data:
                        return
                    remaining -= len(data)
                    yield data

            def _relay(self, response: http.client.HTTPResponse, upstream: _Upstream,
                       truncate_after: int | None, reset: bool = False, extra: dict | None = None) -> None:
                self.send_response_only(response.status, response.reason)
                length = response.getheader("Content-Length")
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, proxy._rewrite_header(name, value, upstream))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                bodyless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
                rechunk = not bodyless and length is None
                size = int(length) if length is not None and length.strip().isdigit() else None
                if rechunk:
                    self.send_header("Transfer-Encoding", "chunked")
                if bodyless or size == 0:
                    self._answered()
                self.end_headers()
                sent = 0
                if bodyless:
                    response.read()   # b"", but marks the response done so the connection is reusable
                while not bodyless:
                    data = response.read(CHUNK)
                    if not data:
                        break
                    if size is not None and sent + len(data) >= size and truncate_after is None:
                        self._answered()
                    if truncate_after is not None and sent + len(data) >= truncate_after:
                        self.wfile.write(data[:truncate_after - sent])
                        self.wfile.flush()
                        response.close()
                        self._upstream_conns.pop(upstream).close()
                        if reset:
                            self._reset_connection()
                        self.close_connection = True
                        return
                    sent += len(data)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if rechunk else data)
                if rechunk:
                    self._answered()
                    self.wfile.write(b"0\r\n\r\n")
                if response.will_close:
                    # The registry closed its side; the next request needs a new connection.
                    self._upstream_conns.pop(upstream).close()

            def _relay_replaced(self, response: http.client.HTTPResponse, upstream: _Upstream,
                                transform: Callable[[bytes], bytes]) -> None:
                body = transform(response.read())
                self.send_response_only(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, proxy._rewrite_header(name, value, upstream))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                if response.will_close:
                    self._upstream_conns.pop(upstream).close()

            def _send_fault(self, fault: Fault) -> None:
                self.send_response(fault.status)
                for name, value in fault.headers.items():
                    self.send_header(name, value)
                if "content-length" not in {k.lower() for k in fault.headers}:
                    self.send_header("Content-Length", str(len(fault.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(fault.body)

            def _reset_connection(self) -> None:
                # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def log_message(self, format, *args) -> None:  # noqa: A002 - keep pytest output clean
                pass

        return Handler
