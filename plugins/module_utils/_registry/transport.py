# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP transport to registries: one ``requests.Session``, scheme discovery, and the one retry loop.

The session is shared by every thread of a task (connection reuse). :meth:`Transport.send` is the
only place a request is retried: 429/502/503/504 answers, transport errors and bodies that break
while they stream in, with exponential backoff and ``Retry-After`` (RFC 9110, section 10.2.3).
:meth:`Transport.endpoint` pings ``/v2/`` once per registry (distribution-spec, "Determining
support") to choose HTTPS or plain HTTP and to read the auth challenge.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import random
import tempfile
import threading
import time
import traceback

from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

try:
    import requests
    from requests.adapters import HTTPAdapter
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
    TRANSPORT_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        requests.exceptions.ChunkedEncodingError)
except ImportError:  # pragma: no cover - reported by the modules through missing_required_lib
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
    TRANSPORT_ERRORS = ()

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import (
    is_loopback_registry,
    registry_api_host,
    registry_hostname,
    registry_key,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.credentials import (
    parse_www_authenticate,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import (
    RATE_LIMIT_HEADERS,
    BrokenBodyError,
    RegistryError,
    is_cert_error,
    response_error,
    short_connection_reason,
    short_ssl_reason,
    transport_error,
)


class _Retry:
    """What Transport._attempt returns when the request is to be sent again (after a back-off)."""

    __slots__ = ("headers",)

    def __init__(self, headers):
        self.headers = headers     # the answer's headers (for Retry-After), or None


RETRY_STATUSES = frozenset((429, 502, 503, 504))
DEFAULT_CERTS_DIR = "/etc/docker/certs.d"
# What OpenSSL says when the other side answered a ClientHello with plain HTTP: only then is plain
# HTTP tried (for loopback and insecure registries). Any other TLS error means the server speaks TLS.
_PLAIN_HTTP_MARKERS = ("WRONG_VERSION_NUMBER", "wrong version number", "HTTP_REQUEST", "http request",
                       "UNKNOWN_PROTOCOL", "unknown protocol", "RECORD_LAYER_FAILURE", "record layer failure",
                       "PACKET_LENGTH_TOO_LONG", "packet length too long")
# The server closed the connection during (or right after) the handshake: TLS 1.3 servers that reject
# a client certificate often do that instead of sending an alert the client gets to read.
_TLS_DROP_MARKERS = ("UNEXPECTED_EOF", "EOF occurred in violation of protocol", "unexpected eof",
                     "Connection reset by peer", "ConnectionResetError")
_CLIENT_CERT_MARKERS = ("ALERT_BAD_CERTIFICATE", "alert bad certificate", "CERTIFICATE_REQUIRED",
                        "certificate required", "ALERT_UNKNOWN_CA", "alert unknown ca", "ALERT_HANDSHAKE_FAILURE",
                        "alert handshake failure", "ALERT_CERTIFICATE_UNKNOWN", "alert certificate unknown")
MAX_RETRY_DELAY = 60.0
USER_AGENT = "archfleet.multiarch (ansible; python-requests)"


def retry_delay(attempt, headers=None, base=0.5, cap=MAX_RETRY_DELAY, jitter=random.random):
    """Seconds (float) to wait before retry number ``attempt`` (1-based).

    ``Retry-After`` (seconds or an HTTP date) wins when present; otherwise exponential backoff
    ``base * 2**(attempt-1)`` with up to 25 % jitter. Never more than ``cap``.
    """
    value = None
    if headers:
        value = headers.get("Retry-After") or headers.get("retry-after")
    if value:
        seconds = parse_retry_after(value)
        if seconds is not None:
            return min(max(seconds, 0.0), cap)
    delay = base * (2 ** (attempt - 1))
    return min(delay * (1 + 0.25 * jitter()), cap)


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


class Endpoint:
    """What the transport learned about one registry: base URL, TLS verification, auth challenge.

    ``realm`` is None (open), ``"basic"``, or a Bearer token realm URL; ``credentials`` is a
    Credentials or None, filled in on discovery.
    """

    __slots__ = ("registry", "base_url", "verify", "cert", "scheme", "realm", "service", "credentials", "lock")

    def __init__(self, registry):
        self.registry = registry
        self.base_url = None
        self.verify = True
        self.cert = None
        self.scheme = None
        self.realm = None
        self.service = None
        self.credentials = None
        self.lock = threading.Lock()


class Transport:
    """Send requests to registries for one task; thread-safe.

    ``credentials_for(registry)`` returns the Credentials (or None) to use for a registry; it is
    called once, on discovery.
    """

    def __init__(self, credentials_for, validate_certs=True, ca_path=None, insecure_registries=None, timeout=30,
                 retries=3, pool_size=10, sleep=time.sleep, client_cert=None, client_key=None, certs_dir=None,
                 max_in_flight=None):
        if not HAS_REQUESTS:
            raise RegistryError("the Python library 'requests' is required")
        self.credentials_for = credentials_for
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.client_pair = (client_cert, client_key) if client_cert else None
        self.certs_dir = certs_dir
        self._bundles = []
        self.insecure_registries = set(registry_key(entry) for entry in insecure_registries or ())
        self.timeout = timeout
        self.max_retries = retries
        self._sleep = sleep
        self.session = _Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=max(pool_size, 4), pool_maxsize=max(pool_size, 4), max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._endpoints = {}
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
        for path in self._bundles:
            try:
                os.unlink(path)
            except OSError:
                pass

    def endpoints(self):
        return list(self._endpoints.values())

    # ------------------------------------------------------------------ bookkeeping
    def _count(self, method, kind):
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
                self.rate_limits.setdefault(registry, {}).update(seen)

    # ------------------------------------------------------------------ the retry loop
    def send(self, method, url, registry, kind, headers=None, verify=True, stream=False, data=None,
             allow_redirects=True, retry=True, wrap_errors=True, read_body=None, cert=None):
        """One request, retried on 429/502/503/504 and transport errors up to ``max_retries`` times.

        ``read_body(response) -> bytes``, when given, reads a 200 answer's body inside the loop, so a
        connection that breaks while the body streams in is retried like a failed request; the call
        then returns ``(response, body)`` (body None for other statuses) and raises BrokenBodyError
        when every attempt broke. Transport errors that outlast the retries become a RegistryError
        naming the request, unless ``wrap_errors`` is false (discovery inspects them).

        With ``max_in_flight`` set, each attempt holds one of that many slots for the request and,
        with ``read_body``, its body; back-offs hold none. A streamed body read after the call
        returns (``stream=True`` without ``read_body``) is read outside the slot.
        """
        attempt = 0
        while True:
            attempt += 1
            self._count(method, kind)
            self._take_slot()
            try:
                outcome = self._attempt(method, url, registry, headers, verify, cert, stream, data, allow_redirects,
                                        retry, wrap_errors, read_body, attempt)
            finally:
                self._give_slot()
            if isinstance(outcome, _Retry):
                self._backoff(attempt, outcome.headers)    # outside the slot: waiting is not a request
                continue
            return outcome

    def _attempt(self, method, url, registry, headers, verify, cert, stream, data, allow_redirects, retry,
                 wrap_errors, read_body, attempt):
        """One attempt of :meth:`send`: its return value, or a ``_Retry`` when it is to be sent again."""
        try:
            response = self.session.request(method, url, headers=headers, verify=verify, cert=cert, stream=stream,
                                            data=data, timeout=self.timeout, allow_redirects=allow_redirects)
        except TRANSPORT_ERRORS as exc:
            tls = isinstance(exc, requests.exceptions.SSLError)
            if tls or not retry or attempt > self.max_retries:
                if not wrap_errors:
                    raise
                raise transport_error(method, url, attempt, exc, tls=tls)
            return _Retry(None)
        self._note_rate_limits(registry, response)
        if retry and should_retry(response.status_code) and attempt <= self.max_retries:
            response.close()
            return _Retry(response.headers)
        if read_body is None:
            return response
        if response.status_code != 200:
            return response, None
        try:
            return response, read_body(response)
        except TRANSPORT_ERRORS as exc:
            if not retry or attempt > self.max_retries:
                detail = "the connection broke while the body was read, %d time(s) (%s)" % (
                    attempt, short_connection_reason(exc))
                raise BrokenBodyError(detail, code="UNREACHABLE", detail=detail)
            return _Retry(None)
        finally:
            response.close()

    def _take_slot(self):
        if self._slots is not None:
            self._slots.acquire()
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _give_slot(self):
        with self._lock:
            self.in_flight -= 1
        if self._slots is not None:
            self._slots.release()

    # ------------------------------------------------------------------ registry discovery
    def is_insecure(self, registry):
        """Whether ``registry`` (host[:port]) is listed in ``insecure_registries`` (with or without its port)."""
        host = registry_hostname(registry)
        return registry_key(registry) in self.insecure_registries or host in self.insecure_registries

    def endpoint(self, registry):
        """The discovered Endpoint of ``registry``; the first call per registry pings ``/v2/``."""
        key = registry_key(registry)
        with self._lock:
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                endpoint = self._endpoints[key] = Endpoint(registry)
        if endpoint.base_url is None:
            with endpoint.lock:
                if endpoint.base_url is None:
                    self._discover(endpoint)
        return endpoint

    def tls_for(self, registry):
        """``(verify, cert)`` for ``registry``: the options first, then Docker's ``certs.d/<host[:port]>/``.

        ``verify`` is a CA bundle path, True (system store) or False; ``cert`` a ``(cert, key)`` pair or None.
        """
        directory = None
        if self.certs_dir:
            for name in (registry, registry.lower()):
                if os.path.isdir(os.path.join(self.certs_dir, name)):
                    directory = os.path.join(self.certs_dir, name)
                    break
        verify = bool(self.validate_certs)
        if self.validate_certs:
            verify = self.ca_path or (self._ca_bundle(directory) if directory else None) or True
        cert = self.client_pair or (_client_pair(directory) if directory else None)
        return verify, cert

    def _ca_bundle(self, directory):
        """The ``*.crt`` CAs of a certs.d directory as one PEM file (a path), or None when there are none."""
        paths = sorted(glob.glob(os.path.join(directory, "*.crt")))
        if len(paths) <= 1:
            return paths[0] if paths else None
        handle, bundle = tempfile.mkstemp(prefix="archfleet-ca-", suffix=".pem")
        with os.fdopen(handle, "wb") as out:
            for path in paths:
                with open(path, "rb") as source:
                    out.write(source.read().rstrip(b"\n") + b"\n")
        self._bundles.append(bundle)
        return bundle

    def _discover(self, endpoint):
        """Ping ``/v2/`` to learn scheme, TLS verification and the auth challenge.

        Plain HTTP is tried only for loopback and insecure registries, and only when the HTTPS
        attempt got no TLS at all (the server answered in plain HTTP) or no connection.
        """
        registry = endpoint.registry
        api_host = registry_api_host(registry)
        explicit_insecure = self.is_insecure(registry)
        loopback = is_loopback_registry(registry)
        verify, cert = self.tls_for(registry)
        endpoint.cert = cert
        attempts = [("https", False if explicit_insecure else verify)]
        if explicit_insecure or loopback:
            attempts.append(("http", False))
        last_error = None
        response = None
        for scheme, scheme_verify in attempts:
            url = "%s://%s/v2/" % (scheme, api_host)
            try:
                response = self.send("GET", url, registry, "ping", verify=scheme_verify, cert=cert,
                                     wrap_errors=False)
            except requests.exceptions.SSLError as exc:
                if not _is_plain_http(exc):
                    raise tls_failure(registry, exc, cert, self.certs_dir, explicit_insecure)
                last_error = exc
                continue
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if scheme == "https" and any(marker in str(exc) for marker in _TLS_DROP_MARKERS):
                    # A plain-HTTP server answers a ClientHello (wrong version number); this one
                    # accepted the connection and dropped it in the handshake: it speaks TLS.
                    raise tls_failure(registry, exc, cert, self.certs_dir, explicit_insecure)
                last_error = exc
                continue
            endpoint.scheme, endpoint.verify = scheme, scheme_verify
            break
        if response is None:
            raise RegistryError("cannot reach registry %s: %s%s" % (
                registry, short_connection_reason(last_error),
                "" if (explicit_insecure or loopback) else
                " (plain HTTP is tried only for loopback hosts and hosts listed in insecure_registries)"),
                code="UNREACHABLE")
        endpoint.base_url = "%s://%s" % (endpoint.scheme, api_host)
        endpoint.credentials = self.credentials_for(registry)
        if response.status_code == 401:
            scheme, params = parse_www_authenticate(response.headers.get("WWW-Authenticate"))
            if scheme == "bearer" and params.get("realm"):
                endpoint.realm, endpoint.service = params["realm"], params.get("service")
            elif scheme != "basic":
                raise RegistryError("registry %s asks for an unsupported authentication scheme %r"
                                    % (registry, scheme), code="UNSUPPORTED")
            else:
                endpoint.realm = "basic"
        elif response.status_code >= 400:
            raise response_error(response, "contacting registry %s" % registry, retries=self.max_retries)
        response.close()


if HAS_REQUESTS:
    class _Session(requests.Session):
        """A ``requests.Session`` that reads the environment once per scheme and host, not once per request.

        With ``trust_env`` (kept: HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE still apply),
        requests walks the whole environment for proxies on every request, about an eighth of a HEAD's CPU
        time here. The answer depends only on the scheme and host (NO_PROXY matches host and port) and the
        environment does not change during a task, so it is kept per ``(scheme, host, stream, verify, cert)``.
        Requests given their own ``proxies`` are merged as requests always does.
        """

        def __init__(self):
            super().__init__()
            self._environment = {}

        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            if proxies:
                return super().merge_environment_settings(url, proxies, stream, verify, cert)
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc, stream, verify, cert)
            settings = self._environment.get(key)
            if settings is None:
                settings = self._environment[key] = super().merge_environment_settings(url, {}, stream, verify, cert)
            return dict(settings, proxies=dict(settings["proxies"]))


def _client_pair(directory):
    """The first ``name.cert`` with its ``name.key`` in a certs.d directory, as Docker pairs them."""
    for cert in sorted(glob.glob(os.path.join(directory, "*.cert"))):
        key = cert[:-len(".cert")] + ".key"
        if not os.path.isfile(key):
            raise RegistryError("certs.d: client certificate %s has no key %s next to it (Docker needs both)"
                                % (cert, os.path.basename(key)), code="TLS")
        return cert, key
    return None


def _is_plain_http(exc):
    text = str(exc)
    return any(marker in text for marker in _PLAIN_HTTP_MARKERS)


def tls_failure(registry, exc, cert, certs_dir, insecure):
    """One sentence for a TLS handshake that failed with a server that does speak TLS."""
    reason = short_ssl_reason(exc)
    text = str(exc)
    if any(marker in text for marker in _TLS_DROP_MARKERS):
        where = os.path.join(certs_dir or DEFAULT_CERTS_DIR, registry)
        if cert is not None:
            return RegistryError("registry %s rejected the client certificate %s (it closed the connection during "
                                 "the TLS handshake)" % (registry, cert[0]), code="TLS")
        return RegistryError("registry %s closed the connection during the TLS handshake; it probably requires a "
                             "client certificate (mutual TLS): set client_cert and client_key, or put a client pair "
                             "(name.cert, name.key) in %s/" % (registry, where), code="TLS")
    if any(marker in text for marker in _CLIENT_CERT_MARKERS):
        where = os.path.join(certs_dir or DEFAULT_CERTS_DIR, registry)
        if cert is None:
            message = ("registry %s requires a client certificate (mutual TLS) and none was given (%s); set "
                       "client_cert and client_key, or put a client pair (name.cert, name.key) in %s/"
                       % (registry, reason, where))
        else:
            message = "registry %s rejected the client certificate %s (%s)" % (registry, cert[0], reason)
        return RegistryError(message, code="TLS")
    if is_cert_error(exc) and not insecure:
        lowered = text.lower()
        if "mismatch" in lowered or "hostname" in lowered or "doesn't match" in lowered:
            why = "the certificate is not valid for this host name"
        elif "expired" in lowered:
            why = "the certificate has expired"
        else:
            why = "it is signed by an unknown CA"
        return RegistryError(
            "TLS certificate of registry %s could not be verified: %s (%s); set ca_path to the CA that signed it, "
            "put it in %s/ca.crt, or list the registry in insecure_registries"
            % (registry, why, reason, os.path.join(certs_dir or DEFAULT_CERTS_DIR, registry)), code="TLS")
    return RegistryError("TLS with registry %s failed: %s" % (registry, reason), code="TLS")
