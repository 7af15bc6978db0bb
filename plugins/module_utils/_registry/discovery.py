# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry discovery and TLS set-up, in one place: scheme, certificates, client pairs and the ``/v2/`` ping.

:class:`Discovery` answers, once per registry, how to talk to it (distribution-spec, "Determining
support"): HTTPS, or plain HTTP for loopback and ``insecure_registries`` hosts that do not speak TLS;
which CA verifies it (``ca_path``, Docker's ``certs.d/<host[:port]>/*.crt``, the system store) and
which client pair to present (``client_cert``/``client_key`` or ``certs.d``'s ``name.cert``/``name.key``);
and the first authentication challenge, which it hands to the authenticator. Its ping goes through
``Transport.request`` like every other request. A TLS failure is one sentence saying what to change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import tempfile
import threading

from urllib.parse import urlsplit

try:
    import requests
except ImportError:  # pragma: no cover - reported by the modules through missing_required_lib
    requests = None

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import (
    is_loopback_registry,
    registry_api_host,
    registry_hostname,
    registry_key,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.auth import host_of
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import (
    RegistryError,
    is_cert_error,
    response_error,
    short_connection_reason,
    short_ssl_reason,
)

DEFAULT_CERTS_DIR = "/etc/docker/certs.d"
TLS_PROBE_TIMEOUT = {False: 10, True: 5}     # seconds, by whether the registry is on this machine
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


class Endpoint:
    """What discovery learned about one registry: base URL, scheme, TLS verification and client pair.

    ``verify`` is a CA bundle path, True (system store) or False; ``cert`` a ``(cert, key)`` pair or None;
    ``head_misses`` is True once the registry answered a manifest HEAD with 404 for a manifest its GET
    returned (some Nexus and Harbor set-ups): then HEAD is not asked again; ``head_known`` once a HEAD
    answer was checked (until then one HEAD at a time is sent, under ``head_lock``, so the habit is
    learnt by one request, not by every request of a concurrent batch).
    """

    __slots__ = ("registry", "api_host", "base_url", "verify", "cert", "scheme", "head_misses", "head_known",
                 "head_lock", "lock")

    def __init__(self, registry):
        self.registry = registry
        self.api_host = registry_api_host(registry).lower()
        self.base_url = None
        self.verify = True
        self.cert = None
        self.scheme = None
        self.head_misses = False
        self.head_known = False
        self.head_lock = threading.Lock()
        self.lock = threading.Lock()


class Discovery:
    """How to reach each registry of a task: TLS settings from the options and ``certs.d``, and the ping."""

    def __init__(self, transport, validate_certs=True, ca_path=None, insecure_registries=None, client_cert=None,
                 client_key=None, certs_dir=None):
        self.transport = transport
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.client_pair = (client_cert, client_key) if client_cert else None
        self.certs_dir = certs_dir
        self.insecure_registries = set(registry_key(entry) for entry in insecure_registries or ())
        self._bundles = []

    def close(self):
        for path in self._bundles:
            try:
                os.unlink(path)
            except OSError:
                pass

    def is_insecure(self, registry):
        """Whether ``registry`` (host[:port]) is listed in ``insecure_registries`` (with or without its port)."""
        host = registry_hostname(registry)
        return registry_key(registry) in self.insecure_registries or host in self.insecure_registries

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

    def discover(self, endpoint):
        """Ping ``/v2/`` (distribution-spec, "Determining support") for scheme, TLS and the first challenge.

        Plain HTTP is tried only for loopback and insecure registries, and only when the HTTPS attempt got
        no TLS at all (the server answered in plain HTTP) or no connection. A 401 challenge is remembered
        (so the first real request carries its authorization); a registry whose ping is open may still
        challenge any later request, which is then answered.
        """
        registry = endpoint.registry
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
            url = "%s://%s/v2/" % (scheme, endpoint.api_host)
            try:
                # An HTTPS probe with a plain-HTTP fallback is tried once, with a short handshake timeout: a
                # plain-HTTP server that never answers a ClientHello (Pulp's gunicorn) would otherwise hold
                # discovery for every retry of the task's timeout (docker's TLS handshake timeout is 10 s;
                # a server on this machine answers a handshake in far less than 5 s).
                probe = scheme == "https" and len(attempts) > 1
                wait = min(TLS_PROBE_TIMEOUT[loopback], self.transport.timeout) if probe else None
                response = self.transport.ping(url, registry, scheme_verify, cert, retry=not probe, timeout=wait)
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
        try:
            self._read_ping(endpoint, response)
        finally:
            response.close()
        endpoint.base_url = "%s://%s" % (endpoint.scheme, endpoint.api_host)
        # The registry's credentials are looked up now, as docker does before it pulls: a broken source (a
        # credential helper that fails, a config.json that is not JSON) is one error before any write,
        # even where the registry turns out not to ask for credentials.
        self.transport.auth.credentials(endpoint.api_host)

    def _read_ping(self, endpoint, response):
        """The ping's answer: a 401 challenge is learnt; 200 is open (for now); anything else an error."""
        if response.status_code == 401:
            header = response.headers.get("WWW-Authenticate")
            # The host that answered: a ping redirected to another host (lscr.io to ghcr.io) is its challenge.
            if self.transport.auth.learn(host_of(response.url or endpoint.base_url), header,
                                         urlsplit(response.url or endpoint.base_url).scheme) is None:
                scheme = (header or "").strip().split(" ", 1)[0] or "none"
                raise RegistryError("registry %s asks for an unsupported authentication scheme %r"
                                    % (endpoint.registry, scheme.lower()), code="UNSUPPORTED")
        elif response.status_code >= 400:
            raise response_error(response, "contacting registry %s" % endpoint.registry, retries=self.transport.max_retries)


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
