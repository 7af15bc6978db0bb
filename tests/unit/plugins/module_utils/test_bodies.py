"""Body limits by construction (issue 21): every answer read under a size limit and a deadline.

A real server on loopback (real sockets, the collection's whole request path), so urllib3, http.client and
the watchdog run for real. Memory is measured with tracemalloc while 100 MiB bodies are refused.
"""
import threading
import time
import tracemalloc

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry import bodies
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.session import Session
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.api import RegistryClient
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError

MIB = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        script = self.server.scripts.get(self.path.split("?")[0])
        if script is None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            return
        try:
            script(self)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass


def _sized(status, total, chunk=MIB, delay=0.0, headers=None):
    def script(h):
        h.send_response(status)
        h.send_header("Content-Length", str(total))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        sent = 0
        while sent < total:
            size = min(chunk, total - sent)
            if delay:
                time.sleep(delay)
            h.wfile.write(b" " * size)
            h.wfile.flush()
            sent += size
        h.close_connection = True
    return script


def _chunked_forever(h):
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    while True:
        h.wfile.write(b"10000\r\n" + b" " * 65536 + b"\r\n")


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.scripts = {}
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _client(timeout=5):
    return RegistryClient(timeout=timeout, retries=0, sleep=lambda s: None)


def _ref(httpd, text="app:1"):
    return parse_reference("127.0.0.1:%d/%s" % (httpd.server_address[1], text))


def _peak(function):
    """(result or exception, peak traced bytes) of ``function()``."""
    tracemalloc.start()
    try:
        try:
            outcome = function()
        except RegistryError as exc:
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_100_mib_error_body_is_cut_and_memory_stays_bounded(server):
    server.scripts["/v2/app/manifests/1"] = _sized(400, 100 * MIB)
    client = _client()
    ref = _ref(server)
    client.transport.endpoint(ref.registry)          # discovery outside the measurement
    started = time.monotonic()
    outcome, peak = _peak(lambda: client.get_manifest(ref))
    seconds = time.monotonic() - started
    assert isinstance(outcome, RegistryError) and "answered 400" in str(outcome)
    assert peak < 4 * MIB, peak          # the body is cut at ERROR_BODY_LIMIT, never held whole
    assert seconds < 10
    print("100 MiB error body: peak %.2f MiB, %.2f s" % (peak / MIB, seconds))


def test_a_100_mib_token_answer_is_refused_and_memory_stays_bounded(server):
    port = server.server_address[1]

    def challenge(h):
        h.send_response(401)
        h.send_header("WWW-Authenticate", 'Bearer realm="http://127.0.0.1:%d/token",service="s"' % port)
        h.send_header("Content-Length", "0")
        h.end_headers()
    server.scripts["/v2/"] = challenge
    server.scripts["/v2/app/manifests/1"] = challenge
    server.scripts["/token"] = _sized(200, 100 * MIB, headers={"Transfer-Encoding": "identity"})
    client = _client()
    ref = _ref(server)
    client.transport.endpoint(ref.registry)
    outcome, peak = _peak(lambda: client.get_manifest(ref))
    assert isinstance(outcome, RegistryError) and "1 MiB" in str(outcome) and outcome.code == "SIZE_INVALID"
    assert peak < 4 * MIB, peak
    print("100 MiB token answer: peak %.2f MiB" % (peak / MIB))


def test_an_endless_chunked_manifest_ends_at_the_4_mib_limit(server):
    server.scripts["/v2/app/manifests/1"] = _chunked_forever
    client = _client()
    ref = _ref(server)
    client.transport.endpoint(ref.registry)
    outcome, peak = _peak(lambda: client.get_manifest(ref))
    assert isinstance(outcome, RegistryError) and outcome.code == "SIZE_INVALID" and "4 MiB" in str(outcome)
    assert peak < 16 * MIB, peak


def test_a_body_that_stalls_byte_by_byte_ends_at_the_deadline_not_timeout_per_byte(server):
    server.scripts["/v2/app/manifests/1"] = _sized(200, 1000, chunk=1, delay=0.1)
    client = _client(timeout=1)
    ref = _ref(server)
    client.transport.endpoint(ref.registry)
    started = time.monotonic()
    with pytest.raises(RegistryError, match=r"did not arrive within 1 s") as caught:
        client.get_manifest(ref)
    seconds = time.monotonic() - started
    assert caught.value.code == "TIMEOUT"
    assert 0.9 < seconds < 3, seconds     # one deadline, not 1 s x 1,000 bytes
    print("stalling body refused after %.2f s (timeout 1 s)" % seconds)


def test_a_blob_copy_reads_no_more_than_its_descriptor_size():
    class Raw:
        headers = {}

        def __init__(self):
            self.closed = False

        def read(self, amt=None):
            return b"x" * (amt or 10)

        def close(self):
            self.closed = True

    raw = Raw()
    body = bodies.GuardedBody(raw, 200, "GET", "http://r/v2/a/blobs/sha256:x?sig=secret", "blob", 100, None)
    with pytest.raises(bodies.BodyLimitError, match=r"larger than 100 bytes, the limit for a blob") as caught:
        list(body.stream(30))
    assert raw.closed and "secret" not in str(caught.value)


def test_error_bodies_are_cut_not_refused():
    class Raw:
        headers = {"Content-Length": str(100 * MIB)}

        def read(self, amt=None):
            return b"e" * amt

        def close(self):
            pass

    body = bodies.GuardedBody(Raw(), 500, "GET", "http://r/v2/", "manifest", 4 * MIB, None)
    assert len(b"".join(body.stream(10000))) == bodies.ERROR_BODY_LIMIT


@pytest.mark.parametrize("old, new, allowed", [
    ("https://r/v2/a", "https://cdn.example/blob", True),
    ("http://r/v2/a", "http://other/blob", True),
    ("http://r/v2/a", "https://other/blob", True),
    ("https://r/v2/a", "http://other/blob", False),
    ("https://r/v2/a", "file:///etc/passwd", False),
    ("http://r/v2/a", "ftp://r/x", False),
    ("http://r/v2/a", "gopher://r/x", False),
])
def test_check_redirect(old, new, allowed):
    if allowed:
        bodies.check_redirect(old, new, "GET")
    else:
        with pytest.raises(bodies.RedirectError):
            bodies.check_redirect(old, new, "GET")


def test_safe_url_drops_signed_queries():
    assert bodies.safe_url("https://cdn/x?X-Amz-Signature=abc#f") == "https://cdn/x"


def test_the_session_module_is_the_transport_session():
    client = _client()
    assert isinstance(client.transport.session, Session)
    assert client.transport.session.max_redirects == bodies.MAX_REDIRECTS
