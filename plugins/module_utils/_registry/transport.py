# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP transport to registries: the one request path, scheme and TLS discovery, and the one retry loop.

Every request of the collection (manifests, blobs, uploads, tags, catalog, referrers, token requests and
the ``/v2/`` ping) is a :class:`Request` value sent by :meth:`Transport.request`, through one
``requests.Session`` shared by every thread of a task (connection reuse) and one transport adapter
that counts what reaches the wire and refuses anything that did not come this way. Authorization is
``auth.RegistryAuth`` (any 401 challenge answered once per host); retries happen only in :meth:`Transport.request`
(429/502/503/504, transport errors, bodies broken mid-stream; backoff and ``Retry-After``, RFC 9110 10.2.3).
Discovery (``discovery.py``: scheme, TLS, the ``/v2/`` ping, the first challenge) runs once per registry.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import threading
import time
import traceback

from email.utils import parsedate_to_datetime

try:
    import requests
    from requests.adapters import BaseAdapter, TimeoutSauce
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
    TRANSPORT_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        requests.exceptions.ChunkedEncodingError)
    # Answers no retry mends: a redirect loop, a URL requests cannot send (a scheme it has no adapter for).
    REFUSED_ANSWERS = (requests.exceptions.TooManyRedirects, requests.exceptions.InvalidSchema,
                       requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)
except ImportError:  # pragma: no cover - reported by the modules through missing_required_lib
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
    TRANSPORT_ERRORS = REFUSED_ANSWERS = ()

from ansible_collections.archfleet.multiarch.plugins.module_utils._backoff import BackoffIterator
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import registry_key
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.auth import (
    Authenticator,
    RegistryAuth,
    host_of,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.bodies import MAX_REDIRECTS, guard, safe_url
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.discovery import Discovery, Endpoint
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import (
    RATE_LIMIT_HEADERS,
    BrokenBodyError,
    RegistryError,
    short_connection_reason,
    transport_error,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.session import HTTPAdapter, Session


class _Retry:
    """What Transport._attempt returns when the request is to be sent again (after a back-off)."""

    __slots__ = ("headers",)

    def __init__(self, headers):
        self.headers = headers     # the answer's headers (for Retry-After), or None


RETRY_STATUSES = frozenset((429, 502, 503, 504))
MAX_RETRY_DELAY = 60.0
USER_AGENT = "archfleet.multiarch (ansible; python-requests)"


def retry_delay(attempt, headers=None, base=0.5, cap=MAX_RETRY_DELAY, jitter=random.random):
    """Seconds (float) to wait before retry number ``attempt`` (1-based).

    ``Retry-After`` (seconds or an HTTP date) wins when present; otherwise the collection's back-off
    schedule (``_backoff.BackoffIterator``): ``base * 2**(attempt-1)`` with up to 25 % added jitter. Never
    more than ``cap``.
    """
    value = None
    if headers:
        value = headers.get("Retry-After") or headers.get("retry-after")
    if value:
        seconds = parse_retry_after(value)
        if seconds is not None:
            return min(max(seconds, 0.0), cap)
    return BackoffIterator(base, cap, jitter=0.25, random=jitter).delay_for(attempt - 1)


def parse_retry_after(value, now=None):
    """``Retry-After`` as seconds (float): an integer, or an HTTP date. None when unparsable."""
    value = value.strip()
    try:
        return float(int(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(when.timestamp() - now, 0.0)


def should_retry(status):
    """Whether an HTTP status is worth retrying (rate limits and gateways, not server bugs)."""
    return status in RETRY_STATUSES


class Request:
    """One request, as every request to a registry or token service is described before it is sent.

    ``method`` and ``url`` (absolute); ``registry`` whose endpoint (scheme, TLS, credentials) it uses, or
    None for a token service; ``kind`` (``manifest``, ``blob``, ``upload``, ``tags``, ``catalog``,
    ``referrers``, ``token``, ``ping``) for the request counts; ``scope`` ``(repository, actions)`` for
    Bearer tokens, or None; ``headers``, ``data`` (bytes, a form dict or an iterator of chunks), ``stream``,
    ``read_body`` (see :meth:`Transport.request`), ``retry`` and ``allow_redirects``; ``verify`` and ``cert``
    when not the endpoint's (None: the endpoint's); ``answer_challenges`` false only for the ping and token
    requests; ``timeout`` (seconds) when not the task's; ``limit`` (bytes) of a successful answer's body when
    not its kind's (``bodies.LIMITS``; a blob copy's descriptor size).
    """

    __slots__ = ("method", "url", "registry", "kind", "scope", "headers", "data", "stream", "read_body", "retry",
                 "allow_redirects", "verify", "cert", "answer_challenges", "timeout", "limit")

    def __init__(self, method, url, registry, kind, scope=None, headers=None, data=None, stream=False, read_body=None,
                 retry=True, allow_redirects=True, verify=None, cert=None, answer_challenges=True, timeout=None,
                 limit=None):
        self.timeout, self.limit = timeout, limit
        self.method = method
        self.url = url
        self.registry = registry
        self.kind = kind
        self.scope = scope
        self.headers = headers
        self.data = data
        self.stream = stream
        self.read_body = read_body
        self.retry = retry
        self.allow_redirects = allow_redirects
        self.verify, self.cert = verify, cert
        self.answer_challenges = answer_challenges


class Transport:
    """Send requests to registries for one task; thread-safe. :meth:`request` is the only way out.

    ``credentials_for(registry, strict=False)``: the Credentials (or None) of a registry (``strict``: only
    sources that name that host, for a host reached by a redirect).
    """

    def __init__(self, credentials_for, validate_certs=True, ca_path=None, insecure_registries=None, timeout=30,
                 retries=3, pool_size=10, sleep=time.sleep, client_cert=None, client_key=None, certs_dir=None,
                 max_in_flight=None):
        if not HAS_REQUESTS:
            raise RegistryError("the Python library 'requests' is required")
        self.discovery = Discovery(self, validate_certs=validate_certs, ca_path=ca_path,
                                   insecure_registries=insecure_registries, client_cert=client_cert,
                                   client_key=client_key, certs_dir=certs_dir)
        self.timeout = timeout
        self._timeout = TimeoutSauce(connect=timeout, read=timeout)   # what requests makes of it per request
        self.max_retries = retries
        self._sleep = sleep
        self._local = threading.local()
        self.auth = Authenticator(self, credentials_for)
        self.session = Session(self._local)
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.max_redirects = MAX_REDIRECTS
        size = max(pool_size, 4)
        self.adapter = _WireAdapter(self, HTTPAdapter(pool_connections=size, pool_maxsize=size, max_retries=0))
        self.session.mount("https://", self.adapter)
        self.session.mount("http://", self.adapter)
        self._endpoints = {}
        self._hosts = {}   # API host -> registry as named in references
        self._lock = threading.Lock()
        # At most this many requests (with their bodies, when read_body reads them) at once, whatever
        # the number of threads: work waiting on the network never leaves a slot idle.
        self._slots = threading.BoundedSemaphore(max_in_flight) if max_in_flight else None
        self.in_flight = 0
        self.most_in_flight = 0
        self.request_counts = {}
        self.retries = 0
        self.rate_limits = {}

    def close(self):
        self.session.close()
        self.discovery.close()

    def endpoints(self):
        return list(self._endpoints.values())

    def scheme_of(self, host):
        """``"http"`` or ``"https"``: how the registry whose API ``host`` serves is reached; None for other hosts."""
        registry = self._hosts.get(host)
        endpoint = self._endpoints.get(registry_key(registry)) if registry is not None else None
        return endpoint.base_url.split(":", 1)[0] if endpoint is not None and endpoint.base_url else None

    def registry_of(self, host):
        """The registry (as named in references) whose API ``host`` serves, or None for any other host."""
        return self._hosts.get(host)

    # ------------------------------------------------------------------ bookkeeping
    def count(self, method, kind):
        """Count one request on the wire (called by the adapter, so redirects and resends count too)."""
        key = "%s %s" % (method, kind)
        with self._lock:
            self.request_counts[key] = self.request_counts.get(key, 0) + 1

    def stats(self):
        """Requests made (by ``"<METHOD> <kind>"``), retries, and the rate-limit headers seen per registry."""
        with self._lock:
            return {
                "requests": dict(sorted(self.request_counts.items())),
                "total_requests": sum(self.request_counts.values()),
                "retries": self.retries,
                "rate_limits": dict(self.rate_limits),
            }

    def _backoff(self, attempt, headers):
        with self._lock:
            self.retries += 1
        self._sleep(retry_delay(attempt, headers))

    def _note_rate_limits(self, registry, response):
        seen = {}
        for name in RATE_LIMIT_HEADERS:
            value = response.headers.get(name)
            if value is not None:
                seen[name] = value
        if seen:
            with self._lock:
                self.rate_limits.setdefault(registry or host_of(response.url or ""), {}).update(seen)

    # ------------------------------------------------------------------ the one request path
    def request(self, req, wrap_errors=True):
        """Send the :class:`Request` ``req``: the only way any request of the collection reaches the wire.

        Discovery first (the registry's scheme and TLS), authorization by :class:`auth.RegistryAuth` (any
        401 challenge answered once per host), then the one retry loop: 429/502/503/504 answers, transport
        errors and bodies that break while they stream in are retried up to ``max_retries`` times with
        exponential backoff and ``Retry-After`` (RFC 9110, 10.2.3).

        Returns the ``requests.Response`` (its ``registry_auth`` says what authorization was sent), or
        with ``req.read_body(response) -> bytes`` the pair ``(response, body)``, body None unless the
        status is 200; then BrokenBodyError when every attempt broke. Transport errors that outlast the
        retries are a RegistryError naming the request, unless ``wrap_errors`` is false (discovery).
        With ``max_in_flight`` set, each attempt holds one of that many slots (not a nested token request,
        not a back-off, not a streamed body read after the call).
        """
        if req.registry is not None and req.verify is None:   # TLS as discovery found it (the ping sets its own)
            endpoint = self.endpoint(req.registry)
            req.verify, req.cert = endpoint.verify, endpoint.cert
        auth = RegistryAuth(self.auth, req.scope, req.answer_challenges)
        attempt = 0
        while True:
            attempt += 1
            nested = self._take_slot()
            try:
                outcome = self._attempt(req, auth, attempt, wrap_errors)
            finally:
                self._give_slot(nested)
            if isinstance(outcome, _Retry):
                self._backoff(attempt, outcome.headers)    # outside the slot: waiting is not a request
                continue
            return outcome

    def token_request(self, method, url, registry, headers, form):
        """A token service request (``kind`` token) through :meth:`request`, with the registry's TLS settings."""
        endpoint = self._endpoints.get(registry_key(registry))
        if endpoint is not None and self.is_insecure(registry):
            verify = False
        elif endpoint is not None and url.startswith("https://"):
            verify = endpoint.verify
        else:
            verify = True
        return self.request(Request(method, url, None, "token", headers=headers, data=form, verify=verify,
                                    cert=endpoint.cert if endpoint is not None else None, answer_challenges=False))

    def _attempt(self, req, auth, attempt, wrap_errors):
        """One attempt of :meth:`request`: its return value, or a ``_Retry`` when it is to be sent again."""
        previous = getattr(self._local, "state", None)
        self._local.state = (req.kind, auth, req.limit)
        try:
            response = self.session.request(req.method, req.url, headers=req.headers, verify=req.verify, cert=req.cert,
                                            stream=req.stream, data=req.data, timeout=req.timeout or self._timeout,
                                            allow_redirects=req.allow_redirects, auth=auth)
        except TRANSPORT_ERRORS as exc:
            tls = isinstance(exc, requests.exceptions.SSLError)
            if tls or not req.retry or attempt > self.max_retries:
                if not wrap_errors:
                    raise
                raise transport_error(req.method, req.url, attempt, exc, tls=tls)
            return _Retry(None)
        except REFUSED_ANSWERS as exc:
            raise RegistryError("%s %s failed: %s" % (req.method, safe_url(req.url), str(exc).split("?", maxsplit=1)[0][:200]),
                                code="REDIRECT_REFUSED" if "redirect" in str(exc).lower() else "UNSUPPORTED")
        finally:
            self._local.state = previous
        response.registry_auth = auth
        self._note_rate_limits(req.registry, response)
        if req.retry and should_retry(response.status_code) and attempt <= self.max_retries:
            response.close()
            return _Retry(response.headers)
        if req.read_body is None:
            return response
        if response.status_code != 200:
            return response, None
        try:
            return response, req.read_body(response)
        except TRANSPORT_ERRORS as exc:
            if not req.retry or attempt > self.max_retries:
                detail = "the connection broke while the body was read, %d time(s) (%s)" % (
                    attempt, short_connection_reason(exc))
                raise BrokenBodyError(detail, code="UNREACHABLE", detail=detail)
            return _Retry(None)
        finally:
            response.close()

    def _take_slot(self):
        """Take a slot unless this thread holds one (a token request inside a request); True when nested."""
        if getattr(self._local, "slot", False):
            return True
        if self._slots is not None:
            self._slots.acquire()
        self._local.slot = True
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        return False

    def _give_slot(self, nested):
        if nested:
            return
        self._local.slot = False
        with self._lock:
            self.in_flight -= 1
        if self._slots is not None:
            self._slots.release()

    # ------------------------------------------------------------------ registry discovery and TLS
    def is_insecure(self, registry):
        """Whether ``registry`` is listed in ``insecure_registries`` (see Discovery.is_insecure)."""
        return self.discovery.is_insecure(registry)

    def ping(self, url, registry, verify, cert, retry=True, timeout=None):
        """The ``/v2/`` ping of discovery (its own TLS settings; challenges learnt, not answered)."""
        return self.request(Request("GET", url, registry, "ping", verify=verify, cert=cert, answer_challenges=False,
                                    retry=retry, timeout=timeout), wrap_errors=False)

    def endpoint(self, registry):
        """The discovered Endpoint of ``registry``; the first call per registry pings ``/v2/``."""
        key = registry_key(registry)
        with self._lock:
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                endpoint = self._endpoints[key] = Endpoint(registry)
                self._hosts.setdefault(endpoint.api_host, registry)
        if endpoint.base_url is None:
            with endpoint.lock:
                if endpoint.base_url is None:
                    self.discovery.discover(endpoint)
        return endpoint


if HAS_REQUESTS:
    class _WireAdapter(BaseAdapter):
        """The transport adapter every request passes on its way to the wire (redirects and resends too).

        It counts each request under the kind :meth:`Transport.request` set, and refuses any request that
        did not come through :meth:`Transport.request`: there is no other way out.
        """

        def __init__(self, transport, inner):
            super().__init__()
            self.transport = transport
            self.inner = inner

        def send(self, request, **kwargs):
            state = getattr(self.transport._local, "state", None)
            if state is None:
                raise RuntimeError("a request reached the wire outside Transport.request: %s %s"
                                   % (request.method, request.url.split("?", 1)[0]))
            self.transport.count(request.method, state[0])
            response = self.inner.send(request, **kwargs)
            response.connection = self
            return guard(response, request.method, state[0], state[2], kwargs.get("timeout"))

        def close(self):
            self.inner.close()
