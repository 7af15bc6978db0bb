"""A scripted registry for the registry-client tests: a ``requests`` adapter that answers from a script.

``Script({(method, url-suffix): [answers]})`` replaces the transport adapter's inner adapter; everything above it
(``requests``' session, redirects, the auth handler's hooks, the retry loop) runs for real. ``answer()`` makes one
response, ``client_with(script)`` a RegistryClient over it. Shared by test_registry_client, test_request_path,
test_referrers and test_mirror (defined once here rather than imported from one of them).
"""
import io
import json

import requests

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_OCI_MANIFEST, sha256_digest
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import parse_reference
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.api import RegistryClient

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST, "config": {}, "layers": []}).encode()
DIGEST = sha256_digest(MANIFEST)


def answer(status=200, body=b"", headers=None, broken=False):
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    if broken:
        class Broken(io.BytesIO):
            def read(self, *args, **kwargs):
                raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")
        response.raw = Broken(body)
    else:
        response.raw = io.BytesIO(body)
    return response


class Adapter(requests.adapters.BaseAdapter):
    """A ``requests`` transport adapter answering with ``respond(method, url, headers, data, **kwargs)``."""

    def __init__(self, respond=None):
        super().__init__()
        self.respond = respond or self

    def send(self, request, **kwargs):
        response = self.respond(request.method, request.url, headers=request.headers, data=request.body, **kwargs)
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass


class Script(Adapter):
    """Answers per ``(METHOD, path)``; each call pops the next answer (the last one repeats).

    ``sent`` records ``(method, path, headers)``; ``hosts`` the ``host[:port]`` of each request.
    """

    def __init__(self, answers):
        super().__init__()
        self.answers = {key: list(value) for key, value in answers.items()}
        self.sent = []
        self.hosts = []

    def __call__(self, method, url, headers=None, data=None, **kwargs):
        host, path = url.split("://", 1)[1].split("/", 1)
        path = "/" + path
        self.sent.append((method, path.split("?")[0], dict(headers or {})))
        self.hosts.append(host)
        queue = self.answers.get((method, path.split("?")[0]))
        if queue is None:
            return answer(404, b'{"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}')
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item() if callable(item) else item


def no_credentials(registry, strict=False):
    return None


def client_with(script, **options):
    client = RegistryClient(sleep=lambda seconds: None, **options)
    client.transport.adapter.inner = script
    return client


PING_OPEN = {("GET", "/v2/"): [lambda: answer(200)]}
REF = parse_reference("registry.example/team/app:1.0")
