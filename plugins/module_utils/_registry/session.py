# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``requests`` session and HTTP adapter under ``transport.Transport`` (its one request path), with their shortcuts.

Nothing here sends a request by itself: ``transport.Transport.request`` calls the session, whose adapter is
``transport._WireAdapter`` (counting) over :class:`HTTPAdapter` (pools). :class:`Session` also decides what a
redirect may do (``bodies.check_redirect``: no plain HTTP after HTTPS, no other scheme) and which credentials
follow it (only what the new host asked for).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from urllib.parse import urlsplit

try:
    import requests
    from requests.adapters import HTTPAdapter as _RequestsHTTPAdapter
    from requests.cookies import RequestsCookieJar
    from requests.structures import CaseInsensitiveDict
    from requests.utils import get_encoding_from_headers, select_proxy
    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - reported by the modules through missing_required_lib
    HAS_REQUESTS = False

from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.bodies import check_redirect

# A URL requests' prepare_url returns unchanged: lower-case scheme and host, a port in 1-65535 without leading
# zeros, a path of unreserved characters, sub-delimiters, ':' and '@' (nothing to quote), no query or fragment.
_PLAIN_URL = re.compile(r"https?://[a-z0-9][a-z0-9.-]*(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}"
                        r"|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?/[A-Za-z0-9._~!$&'()*+,;=:@/-]*\Z")

if HAS_REQUESTS:
    class HTTPAdapter(_RequestsHTTPAdapter):
        """requests' ``HTTPAdapter`` keeping its pools per scheme, host and TLS settings, and building a Response
        without a cookie pass (the second, after the session's) when the answer sets none (the same Response).
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pools = {}

        def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
            """requests' pool, looked up once per scheme, host, ``verify`` and ``cert`` (requests parses the URL
            and builds urllib3's pool key every time); again when closed (urllib3 1.x closes evicted pools) or proxied.
            """
            if proxies and select_proxy(request.url, proxies):
                return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
            parts = urlsplit(request.url)
            key = (parts.scheme, parts.netloc, verify, cert)
            pool = self._pools.get(key)
            if pool is None or pool.pool is None:
                pool = self._pools[key] = super().get_connection_with_tls_context(request, verify, proxies=proxies,
                                                                                  cert=cert)
            return pool

        def request_url(self, request, proxies):
            """The path (what requests sends without a proxy), without its proxy look-up and two URL parses."""
            return super().request_url(request, proxies) if proxies else request.path_url

        def close(self):
            self._pools.clear()
            super().close()

        def build_response(self, req, resp):
            headers = getattr(resp, "headers", None)
            if headers is None or "set-cookie" in headers or "set-cookie2" in headers:
                return super().build_response(req, resp)
            response = requests.Response()
            response.status_code = getattr(resp, "status", None)
            response.headers = CaseInsensitiveDict(headers)
            response.encoding = get_encoding_from_headers(response.headers)
            response.raw = resp
            response.reason = resp.reason
            response.url = req.url.decode("utf-8") if isinstance(req.url, bytes) else req.url
            response.request = req
            response.connection = self
            return response

    class CookieJar(RequestsCookieJar):
        """The session's jar: an answer without ``Set-Cookie`` (registries seldom set one) is not parsed."""

        def extract_cookies(self, response, request):
            headers = response.info()
            if "Set-Cookie" in headers or "Set-Cookie2" in headers:
                super().extract_cookies(response, request)

    class Session(requests.Session):
        """A ``requests.Session`` that reads the environment once per scheme and host, not once per request.

        With ``trust_env`` (kept: HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE apply) requests walks
        the environment for proxies on every request; the answer depends only on the scheme and host and the
        environment does not change during a task: kept per ``(scheme, host, stream, verify, cert)``.
        Requests given their own ``proxies`` are merged as requests always does. Shortcuts: prepare_request.
        """

        def __init__(self, local):
            super().__init__()
            self._environment = {}
            self._local = local
            self.cookies = CookieJar()

        def prepare_request(self, request):
            """requests' preparation without its merging (three cookie jars, ``to_key_val_list``'s Protocol checks,
            a ``.netrc`` look-up) when there is nothing to merge: no cookies, params, files, JSON or session hooks,
            and the request's own auth handler. Same PreparedRequest: session headers updated by the request's,
            its auth and hooks, an empty jar, no ``Cookie`` header. A URL of the client's shape (``_PLAIN_URL``,
            no dot segment) is already what ``prepare_url`` returns. Anything else takes requests' own path.
            """
            if (request.cookies or request.params or request.files or request.json is not None or request.auth is None
                    or self.params or self.auth is not None or self.hooks.get("response") or len(self.cookies)):
                return super().prepare_request(request)
            headers = CaseInsensitiveDict(self.headers)
            if request.headers:
                for name, value in request.headers.items():
                    if value is None:
                        headers.pop(name, None)
                    else:
                        headers[name] = value
            prepared = requests.PreparedRequest()
            prepared.prepare_method(request.method.upper())
            if _PLAIN_URL.match(request.url) and "/." not in request.url:
                prepared.url = request.url      # what prepare_url would make of it, character for character
            else:
                prepared.prepare_url(request.url, None)
            prepared.prepare_headers(headers)
            prepared._cookies = RequestsCookieJar()   # what prepare_cookies sets; an empty jar adds no header
            prepared.prepare_body(request.data, None, None)
            prepared.prepare_auth(request.auth, request.url)
            prepared.prepare_hooks(request.hooks)
            return prepared

        def rebuild_auth(self, prepared_request, response):
            """Strip credentials on a redirect to another host (requests' rule), then add only what that
            host itself asked for earlier (its own token or credentials), never the first host's."""
            check_redirect(response.url or response.request.url, prepared_request.url, prepared_request.method)
            super().rebuild_auth(prepared_request, response)
            state = getattr(self._local, "state", None)
            if state is not None and "Authorization" not in prepared_request.headers:
                state[1].apply(prepared_request)

        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            if proxies:
                return super().merge_environment_settings(url, proxies, stream, verify, cert)
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc, stream, verify, cert)
            settings = self._environment.get(key)
            if settings is None:
                settings = self._environment[key] = super().merge_environment_settings(url, {}, stream, verify, cert)
            return dict(settings, proxies=dict(settings["proxies"]))
else:  # pragma: no cover - without requests the modules report the missing library before any request
    HTTPAdapter = CookieJar = Session = None
