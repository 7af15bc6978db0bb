"""An object-storage stand-in for redirect tests: registries on S3/GCS answer blob GETs with a redirect
to another host, which must get the blob request without the registry's ``Authorization``.

``BlobStore(registry)`` serves ``GET /blobs/<digest>?repo=<name>`` with the bytes it reads from the
registry directly, and records the headers of every request it receives (``.requests``).
``redirect_blobs(store)`` is a proxy fault hook that answers blob GETs with ``307`` to the store.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests

from .proxy import Fault


class BlobStore:
    def __init__(self, registry, *, corrupt: bool = False):
        self.registry = registry
        self.corrupt = corrupt
        self.requests: list[dict] = []
        store = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                store.requests.append({"path": self.path, "headers": dict(self.headers.items())})
                url = urlsplit(self.path)
                digest = url.path.rsplit("/", 1)[-1]
                repo = parse_qs(url.query)["repo"][0]
                answer = requests.get(f"{registry.url}/v2/{repo}/blobs/{digest}", auth=registry.auth_tuple,
                                      verify=registry.verify, timeout=10)
                body = answer.content if not store.corrupt else answer.content + b"tampered"
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        # Another host name than the registry's 127.0.0.1, as object storage always is.
        return f"http://localhost:{self._server.server_address[1]}"

    def __enter__(self) -> BlobStore:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def redirect_blobs(store: BlobStore):
    """A proxy fault hook: every blob GET is answered with 307 to the store (as a registry on S3 does)."""
    def hook(request):
        if request.kind == "blob" and request.method == "GET":
            path = request.path.split("?", 1)[0]
            repo, digest = path[len("/v2/"):].split("/blobs/", 1)
            return Fault.respond(307, {"Location": f"{store.base}/blobs/{digest}?repo={repo}"})
        return None
    return hook
