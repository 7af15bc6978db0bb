# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one registry client every module uses (OCI distribution API over HTTP).

One ``requests.Session`` per task (connection reuse), safe to share between threads.
It owns: scheme selection (HTTPS, plain HTTP for insecure and loopback registries), auth
(anonymous, Basic, Bearer token flow with several scopes per token and reuse until expiry),
retries with backoff and ``Retry-After``, digest verification of every body it reads, the
4 MiB manifest limit, and turning registry errors into one sentence.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import json
import random
import threading
import time
import traceback

from urllib.parse import urlencode, urljoin

try:
    import requests
    from requests.adapters import HTTPAdapter
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by the modules through missing_required_lib
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.archfleet.multiarch.plugins.module_utils.auth import (
    CredentialError,
    Credentials,
    DockerConfig,
    basic_auth_value,
    parse_www_authenticate,
    scope_string,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils.reference import (
    is_loopback_registry,
    registry_api_host,
    registry_hostname,
)

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_MEDIA_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST)
IMAGE_MEDIA_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_CONFIG_SIZE = 8 * 1024 * 1024
RETRY_STATUSES = frozenset((429, 502, 503, 504))
RATE_LIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "docker-ratelimit-source",
                      "x-ratelimit-limit", "x-ratelimit-remaining", "retry-after")
MAX_RETRY_DELAY = 60.0
TOKEN_SCOPES_PER_REQUEST = 25
TOKEN_EXPIRY_MARGIN = 10
DEFAULT_TOKEN_LIFETIME = 60
USER_AGENT = "archfleet.multiarch (ansible; python-requests)"


class RegistryError(Exception):
    """A registry operation failed. ``str()`` is one sentence naming the reference and the error code."""

    def __init__(self, message, code=None, status=None, detail=None):
        super(RegistryError, self).__init__(message)
        self.code = code
        self.status = status
        self.detail = detail or message


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_digest(data, digest, what):
    """Raise RegistryError unless ``data`` hashes to ``digest`` (sha256 / sha512 over the exact bytes)."""
    algorithm = digest.split(":", 1)[0]
    if algorithm not in ("sha256", "sha512"):
        raise RegistryError("%s: unsupported digest algorithm in %s" % (what, digest), code="DIGEST_INVALID")
    actual = algorithm + ":" + hashlib.new(algorithm, data).hexdigest()
    if actual != digest:
        raise RegistryError("%s: the registry sent bytes whose digest is %s, not the %s that was asked for; "
                            "refusing the content" % (what, actual, digest), code="DIGEST_MISMATCH")


def retry_delay(attempt, headers=None, base=0.5, cap=MAX_RETRY_DELAY, jitter=random.random):
    """Seconds to wait before retry number ``attempt`` (1-based).

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
    """``Retry-After`` as seconds: an integer, or an HTTP date. None when unparsable."""
    value = value.strip()
    try:
        return float(int(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(when.timestamp() - now, 0.0)


def should_retry(status):
    return status in RETRY_STATUSES


def parse_error_body(body, content_type=""):
    """``(code, message)`` from a registry error body (JSON ``errors`` list or plain text)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return first.get("code") or None, (first.get("message") or "").strip() or None
        if data.get("details") or data.get("message"):
            return None, (data.get("details") or data.get("message"))
    text = " ".join(text.split())
    if "<html" in text.lower():
        text = ""
    return None, (text[:200] or None)


_STATUS_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND", 405: "UNSUPPORTED", 429: "TOOMANYREQUESTS"}


class _RegistryState:
    """What the client learned about one registry: base URL, TLS verification and auth challenge."""

    __slots__ = ("registry", "base_url", "verify", "scheme", "realm", "service", "credentials", "lock")

    def __init__(self, registry):
        self.registry = registry
        self.base_url = None
        self.verify = True
        self.scheme = None
        self.realm = None
        self.service = None
        self.credentials = None
        self.lock = threading.Lock()


class ManifestResponse:
    """A manifest read from a registry. ``body`` is None after a HEAD."""

    __slots__ = ("digest", "media_type", "size", "body")

    def __init__(self, digest, media_type, size, body=None):
        self.digest = digest
        self.media_type = media_type
        self.size = size
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))


class RegistryClient:
    """Talk to one or more registries for one task."""

    def __init__(self, username=None, password=None, docker_config=None, validate_certs=True, ca_path=None,
                 insecure_registries=None, timeout=30, retries=3, pool_size=10, sleep=time.sleep,
                 docker_config_required=False):
        if not HAS_REQUESTS:
            raise RegistryError("the Python library 'requests' is required")
        self.username = username
        self.password = password
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.insecure_registries = set(insecure_registries or ())
        self.timeout = timeout
        self.max_retries = retries
        self._sleep = sleep
        self._docker_config_path = docker_config
        self._docker_config_required = docker_config_required
        self._docker_config = None
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=max(pool_size, 4), pool_maxsize=max(pool_size, 4), max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._states = {}
        self._tokens = {}
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()
        self.request_counts = {}
        self.retries = 0
        self.rate_limits = {}

    # ------------------------------------------------------------------ bookkeeping
    def close(self):
        self.session.close()

    def _count(self, method, kind):
        key = "%s %s" % (method, kind)
        with self._lock:
            self.request_counts[key] = self.request_counts.get(key, 0) + 1

    def stats(self):
        """Requests made (by method and kind), retries, and the rate-limit headers seen per registry."""
        with self._lock:
            return {
                "requests": dict(sorted(self.request_counts.items())),
                "total_requests": sum(self.request_counts.values()),
                "retries": self.retries,
                "rate_limits": dict(self.rate_limits),
            }

    def secrets(self):
        """Every secret this client holds, so callers can scrub text before showing it."""
        values = []
        if self.password:
            values.append(self.password)
        for state in list(self._states.values()):
            if state.credentials is not None:
                values.extend(state.credentials.secrets())
        for token, _expires, _actions in list(self._tokens.values()):
            values.append(token)
        return values

    # ------------------------------------------------------------------ HTTP with retries
    def _send(self, method, url, registry, kind, headers=None, verify=True, stream=False, data=None,
              allow_redirects=True, retry=True, wrap_errors=True):
        """One request, retried on 429/502/503/504 and transport errors up to ``max_retries`` times.

        Transport errors that outlast the retries become a RegistryError naming the request, unless
        ``wrap_errors`` is false (registry discovery inspects them to choose HTTPS or HTTP).
        """
        attempt = 0
        while True:
            attempt += 1
            self._count(method, kind)
            try:
                response = self.session.request(method, url, headers=headers, verify=verify, stream=stream,
                                                data=data, timeout=self.timeout, allow_redirects=allow_redirects)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                if isinstance(exc, requests.exceptions.SSLError) or not retry or attempt > self.max_retries:
                    if not wrap_errors:
                        raise
                    raise transport_error(method, url, attempt, exc)
                self._backoff(attempt, None)
                continue
            self._note_rate_limits(registry, response)
            if retry and should_retry(response.status_code) and attempt <= self.max_retries:
                response.close()
                self._backoff(attempt, response.headers)
                continue
            return response

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

    # ------------------------------------------------------------------ registry discovery
    def docker_config(self):
        if self._docker_config is None:
            self._docker_config = DockerConfig.load(self._docker_config_path, required=self._docker_config_required)
        return self._docker_config

    def _credentials(self, registry):
        if self.username:
            return Credentials(self.username, self.password or "", source="the username/password options")
        try:
            return self.docker_config().credentials_for(registry)
        except CredentialError as exc:
            raise RegistryError(str(exc), code="CREDENTIALS")

    def _is_insecure(self, registry):
        host = registry_hostname(registry)
        return registry in self.insecure_registries or host in self.insecure_registries

    def _state(self, registry):
        with self._lock:
            state = self._states.get(registry)
            if state is None:
                state = self._states[registry] = _RegistryState(registry)
        if state.base_url is None:
            with state.lock:
                if state.base_url is None:
                    self._discover(state)
        return state

    def _discover(self, state):
        """Ping ``/v2/`` to learn scheme, TLS verification and the auth challenge."""
        registry = state.registry
        api_host = registry_api_host(registry)
        explicit_insecure = self._is_insecure(registry)
        loopback = is_loopback_registry(registry)
        verify = self.ca_path if (self.ca_path and self.validate_certs) else bool(self.validate_certs)
        attempts = [("https", False if explicit_insecure else verify)]
        if explicit_insecure or loopback:
            attempts.append(("http", False))
        last_error = None
        response = None
        for scheme, scheme_verify in attempts:
            url = "%s://%s/v2/" % (scheme, api_host)
            try:
                response = self._send("GET", url, registry, "ping", verify=scheme_verify, wrap_errors=False)
            except requests.exceptions.SSLError as exc:
                if _is_cert_error(exc) and not explicit_insecure:
                    raise RegistryError(
                        "TLS certificate of registry %s could not be verified (%s); set ca_path to the CA that signed "
                        "it, or list the registry in insecure_registries" % (registry, _short_ssl_reason(exc)),
                        code="TLS")
                last_error = exc
                continue
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                last_error = exc
                continue
            state.scheme, state.verify = scheme, scheme_verify
            break
        if response is None:
            raise RegistryError("cannot reach registry %s: %s%s" % (
                registry, _short_connection_reason(last_error),
                "" if (explicit_insecure or loopback) else
                " (plain HTTP is tried only for loopback hosts and hosts listed in insecure_registries)"),
                code="UNREACHABLE")
        state.base_url = "%s://%s" % (state.scheme, api_host)
        state.credentials = self._credentials(registry)
        if response.status_code == 401:
            scheme, params = parse_www_authenticate(response.headers.get("WWW-Authenticate"))
            if scheme == "bearer" and params.get("realm"):
                state.realm, state.service = params["realm"], params.get("service")
            elif scheme != "basic":
                raise RegistryError("registry %s asks for an unsupported authentication scheme %r"
                                    % (registry, scheme), code="UNSUPPORTED")
            else:
                state.realm = "basic"
        elif response.status_code >= 400:
            raise self._error(response, "contacting registry %s" % registry)
        response.close()

    # ------------------------------------------------------------------ auth
    def authorize(self, registry, scopes):
        """Fetch Bearer tokens for many ``(repository, actions)`` scopes in few token requests.

        A no-op for open and Basic-auth registries. Scopes already covered by a live token are skipped.
        """
        state = self._state(registry)
        if not state.realm or state.realm == "basic":
            return
        wanted = [(repo, tuple(actions)) for repo, actions in scopes if self._cached_token(registry, repo, actions)
                  is None]
        for start in range(0, len(wanted), TOKEN_SCOPES_PER_REQUEST):
            self._fetch_token(state, wanted[start:start + TOKEN_SCOPES_PER_REQUEST])

    def _cached_token(self, registry, repository, actions):
        entry = self._tokens.get((registry, repository))
        if entry is None:
            return None
        token, expires, granted = entry
        if expires <= time.time() or not set(actions) <= granted:
            return None
        return token

    def _fetch_token(self, state, scopes):
        credentials = state.credentials
        headers, form = {}, None
        if credentials is not None and credentials.identity_token:
            # OAuth2: the refresh token (docker's identitytoken) is posted for an access token.
            method, url = "POST", state.realm
            form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token,
                    "client_id": "archfleet.multiarch", "access_type": "offline",
                    "scope": " ".join(scope_string(repo, actions) for repo, actions in scopes)}
            if state.service:
                form["service"] = state.service
        else:
            params = [("service", state.service)] if state.service else []
            params += [("scope", scope_string(repo, actions)) for repo, actions in scopes]
            method = "GET"
            url = state.realm + ("&" if "?" in state.realm else "?") + urlencode(params)
            if credentials is not None and credentials.has_basic():
                headers["Authorization"] = "Basic " + basic_auth_value(credentials.username, credentials.password)
        try:
            response = self._send(method, url, state.registry, "token", headers=headers,
                                  verify=self._realm_verify(state), data=form)
        except RegistryError as exc:
            raise RegistryError("cannot reach the token service %s of registry %s: %s"
                                % (state.realm.split("?")[0], state.registry, exc.detail), code=exc.code)
        if response.status_code in (401, 403):
            who = ("as %r (credentials from %s)" % (credentials.username, credentials.source)
                   if credentials is not None and credentials.username else "anonymously")
            raise RegistryError("the token service of registry %s refused to authenticate %s: %d %s"
                                % (state.registry, who, response.status_code, "UNAUTHORIZED"),
                                code="UNAUTHORIZED", status=response.status_code)
        if response.status_code >= 400:
            raise self._error(response, "requesting a token from registry %s" % state.registry)
        try:
            answer = response.json()
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise RegistryError("the token service of registry %s answered without a token" % state.registry,
                                code="UNAUTHORIZED")
        lifetime = answer.get("expires_in") or DEFAULT_TOKEN_LIFETIME
        try:
            lifetime = int(lifetime)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        expires = time.time() + max(lifetime - TOKEN_EXPIRY_MARGIN, 1)
        with self._token_lock:
            for repo, actions in scopes:
                self._tokens[(state.registry, repo)] = (token, expires, frozenset(actions))
        return token

    def _realm_verify(self, state):
        if self._is_insecure(state.registry):
            return False
        return state.verify if state.realm.startswith("https://") else True

    def _auth_headers(self, state, repository, actions):
        if state.realm is None:
            return {}
        if state.realm == "basic":
            credentials = state.credentials
            if credentials is not None and credentials.has_basic():
                return {"Authorization": "Basic " + basic_auth_value(credentials.username, credentials.password)}
            return {}
        token = self._cached_token(state.registry, repository, actions)
        if token is None:
            with self._token_lock:
                token = self._cached_token(state.registry, repository, actions)
            if token is None:
                token = self._fetch_token(state, [(repository, tuple(actions))])
        return {"Authorization": "Bearer " + token}

    def _drop_token(self, registry, repository):
        with self._token_lock:
            self._tokens.pop((registry, repository), None)

    # ------------------------------------------------------------------ requests against a repository
    def request(self, method, ref, path, kind, actions=("pull",), headers=None, stream=False, data=None,
                allow_redirects=True):
        """Send ``method`` to ``/v2/<repository>/<path>`` with auth; retries once with a fresh token on 401."""
        state = self._state(ref.registry)
        url = "%s/v2/%s/%s" % (state.base_url, ref.repository, path)
        for fresh_token in (False, True):
            all_headers = dict(headers or {})
            all_headers.update(self._auth_headers(state, ref.repository, actions))
            try:
                response = self._send(method, url, ref.registry, kind, headers=all_headers, verify=state.verify,
                                      stream=stream, data=data, allow_redirects=allow_redirects)
            except RegistryError as exc:
                # A transport failure: name what was asked for rather than the URL.
                raise RegistryError("%s %s: %s" % (method, describe_path(ref, path), exc.detail),
                                    code=exc.code, status=exc.status)
            if response.status_code == 401 and state.realm not in (None, "basic") and not fresh_token:
                response.close()
                self._drop_token(ref.registry, ref.repository)
                continue
            return response
        return response

    def get_manifest(self, ref, what="reading manifest"):
        """GET the manifest ``ref`` points at; None when the tag or repository does not exist."""
        label = "%s of %s" % (what, ref.canonical)
        found = self._get_body(ref, "manifests/" + ref.manifest_reference, "manifest", label, MAX_MANIFEST_SIZE,
                               "%s: the manifest is larger than the 4 MiB limit" % label,
                               headers={"Accept": ACCEPT_MANIFESTS}, missing_ok=True)
        if found is None:
            return None
        response, body = found
        return self._manifest_from(ref, response, body, what)

    def _get_body(self, ref, path, kind, label, limit, too_large, headers=None, missing_ok=False):
        """``(response, body)`` of a GET, or None on 404 when ``missing_ok``.

        A connection that breaks while the body streams in (reset, truncation) is retried like a
        failed request; when the retries run out the error names ``label``.
        """
        attempt = 0
        while True:
            attempt += 1
            response = self.request("GET", ref, path, kind, headers=headers, stream=True)
            try:
                if response.status_code == 404 and missing_ok:
                    return None
                if response.status_code != 200:
                    raise self._error(response, label, ref.registry)
                return response, _read_limited(response, limit, too_large)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                if attempt > self.max_retries:
                    raise RegistryError("%s failed: the connection broke while the body was read, %d time(s) (%s)"
                                        % (label, attempt, _short_connection_reason(exc)), code="UNREACHABLE")
                self._backoff(attempt, None)
            finally:
                response.close()

    def head_manifest(self, ref, what="checking manifest"):
        """HEAD the manifest: digest, media type and size without a body (GET fallback on 405 or no digest)."""
        response = self.request("HEAD", ref, "manifests/" + ref.manifest_reference, "manifest",
                                headers={"Accept": ACCEPT_MANIFESTS})
        response.close()
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if response.status_code == 405 or (response.status_code == 200 and not digest):
            return self.get_manifest(ref, what)
        if response.status_code != 200:
            raise self._error(response, "%s of %s" % (what, ref.canonical), ref.registry)
        if ref.digest and digest != ref.digest:
            raise RegistryError("%s of %s: the registry reports digest %s for it" % (what, ref.canonical, digest),
                                code="DIGEST_MISMATCH")
        size = response.headers.get("Content-Length")
        return ManifestResponse(digest, _media_type(response.headers.get("Content-Type")),
                                int(size) if size and size.isdigit() else None)

    def _manifest_from(self, ref, response, body, what):
        label = "%s of %s" % (what, ref.canonical)
        if ref.digest:
            verify_digest(body, ref.digest, label)
            digest = ref.digest
        else:
            digest = sha256_digest(body)
            announced = response.headers.get("Docker-Content-Digest")
            if announced and announced.startswith("sha256:") and announced != digest:
                raise RegistryError("%s: the registry announced digest %s but the bytes it sent hash to %s; "
                                    "refusing the content" % (label, announced, digest), code="DIGEST_MISMATCH")
        media_type = None
        try:
            document = json.loads(body.decode("utf-8"))
            if isinstance(document, dict):
                media_type = document.get("mediaType")
        except ValueError:
            raise RegistryError("%s: the manifest is not valid JSON" % label, code="MANIFEST_INVALID")
        media_type = media_type or _media_type(response.headers.get("Content-Type"))
        return ManifestResponse(digest, media_type, len(body), body)

    def get_blob(self, ref, digest, max_size=MAX_CONFIG_SIZE, what="reading blob"):
        """GET a (small) blob into memory, verified against its digest."""
        label = "%s %s of %s" % (what, digest, ref.name)
        response, body = self._get_body(ref, "blobs/" + digest, "blob", label, max_size,
                                        "%s: larger than %d bytes" % (label, max_size))
        verify_digest(body, digest, label)
        return body

    # ------------------------------------------------------------------ writes
    def granted_actions(self, registry, repository):
        """Actions the cached Bearer token grants on ``repository``, when the token says (a JWT); else None."""
        entry = self._tokens.get((registry, repository))
        if entry is None:
            return None
        return jwt_granted_actions(entry[0], repository)

    def put_manifest(self, ref, body, media_type, what="writing manifest"):
        """PUT manifest bytes unchanged at ``ref`` (tag or digest); returns the digest the registry reports."""
        label = "%s %s" % (what, ref.canonical)
        response = self.request("PUT", ref, "manifests/" + ref.manifest_reference, "manifest",
                                actions=("pull", "push"), headers={"Content-Type": media_type}, data=body)
        response.close()
        if response.status_code not in (200, 201, 202):
            raise self._write_error(response, label, ref)
        expected = sha256_digest(body)
        reported = response.headers.get("Docker-Content-Digest")
        if reported and reported != expected:
            raise RegistryError("%s: the registry stored digest %s but the bytes sent hash to %s"
                                % (label, reported, expected), code="DIGEST_MISMATCH")
        return expected

    def blob_exists(self, ref, digest):
        response = self.request("HEAD", ref, "blobs/" + digest, "blob", actions=("pull", "push"))
        response.close()
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._error(response, "checking blob %s in %s" % (digest, ref.name), ref.registry)

    def mount_blob(self, target, digest, source_repository):
        """Cross-repository mount. True when mounted; False when the registry opened an upload instead."""
        response = self.request("POST", target, "blobs/uploads/?mount=%s&from=%s" % (digest, source_repository),
                                "upload", actions=("pull", "push"), allow_redirects=False)
        response.close()
        if response.status_code == 201:
            return True
        if response.status_code == 202:
            self._cancel_upload(target, response)
            return False
        what = "mounting blob %s from %s into %s" % (digest, source_repository, target.name)
        raise self._write_error(response, what, target)

    def copy_blob(self, source, target, digest):
        """Stream a blob from ``source`` (any registry) into ``target``; never holds it whole in memory."""
        label = "copying blob %s from %s to %s" % (digest, source.name, target.name)
        download = self.request("GET", source, "blobs/" + digest, "blob", stream=True)
        try:
            if download.status_code != 200:
                raise self._error(download, label, source.registry)
            start = self.request("POST", target, "blobs/uploads/", "upload", actions=("pull", "push"),
                                 allow_redirects=False)
            start.close()
            if start.status_code != 202:
                raise self._write_error(start, label, target)
            location = self._location(target, start)
            hasher = _Hasher(digest)
            state = self._state(target.registry)
            headers = {"Content-Type": "application/octet-stream"}
            headers.update(self._auth_headers(state, target.repository, ("pull", "push")))
            patch = self._send("PATCH", location, target.registry, "upload", headers=headers, verify=state.verify,
                               data=hasher.wrap(download.iter_content(1024 * 1024)), retry=False)
            patch.close()
            if patch.status_code not in (202, 204):
                raise self._write_error(patch, label, target)
            hasher.check(label)
            location = self._location(target, patch)
            separator = "&" if "?" in location else "?"
            headers = dict(self._auth_headers(state, target.repository, ("pull", "push")))
            headers["Content-Length"] = "0"
            done = self._send("PUT", location + separator + "digest=" + digest, target.registry, "upload",
                              headers=headers, verify=state.verify)
            done.close()
            if done.status_code != 201:
                raise self._write_error(done, label, target)
        finally:
            download.close()

    def _location(self, ref, response):
        location = response.headers.get("Location")
        if not location:
            raise RegistryError("the registry opened an upload in %s without a Location header" % ref.name,
                                code="BLOB_UPLOAD_INVALID")
        return urljoin(self._state(ref.registry).base_url + "/", location)

    def _cancel_upload(self, ref, response):
        location = response.headers.get("Location")
        if not location:
            return
        state = self._state(ref.registry)
        try:
            self._send("DELETE", urljoin(state.base_url + "/", location), ref.registry, "upload",
                       headers=self._auth_headers(state, ref.repository, ("pull", "push")), verify=state.verify,
                       retry=False).close()
        except requests.exceptions.RequestException:
            pass  # an abandoned upload session expires on the registry by itself

    def delete_manifest(self, ref, digest):
        """DELETE a manifest by digest. Returns False when it was already gone."""
        target = ref.with_digest(digest)
        response = self.request("DELETE", target, "manifests/" + digest, "manifest", actions=("pull", "push"))
        response.close()
        if response.status_code in (200, 202):
            return True
        if response.status_code == 404:
            return False
        if response.status_code == 405 or _error_code(response) == "UNSUPPORTED":
            raise RegistryError("deleting %s failed: registry %s does not allow deletes (answered %d UNSUPPORTED; "
                                "for the distribution registry set storage.delete.enabled)"
                                % (ref.canonical, ref.registry, response.status_code), code="UNSUPPORTED",
                                status=response.status_code)
        raise self._write_error(response, "deleting %s" % ref.canonical, ref)

    def _write_error(self, response, what, ref):
        """A failed write; permission problems say plainly that push is not allowed and why."""
        error = self._error(response, what, ref.registry)
        if response.status_code in (401, 403) or error.code in ("DENIED", "UNAUTHORIZED"):
            granted = self.granted_actions(ref.registry, ref.repository)
            if granted is not None and "push" not in granted:
                why = "the token service granted only %s, not push" % (
                    ",".join(sorted(granted)) or "no access")
            elif self._state(ref.registry).realm in (None, "basic"):
                why = "the registry refused the write for these credentials"
            else:
                why = "the token service did not grant push"
            return RegistryError("no push permission on %s: %s (%s)" % (ref.name, why, error),
                                 code=error.code, status=response.status_code)
        return error

    # ------------------------------------------------------------------ errors
    def _error(self, response, what, registry=None):
        """One sentence: what failed, the HTTP status and the registry's error code and message."""
        try:
            body = response.content[:4096]
        except (requests.exceptions.RequestException, RuntimeError):  # a body we cannot read adds nothing
            body = b""
        code, message = parse_error_body(body, response.headers.get("Content-Type", ""))
        code = code or _STATUS_CODES.get(response.status_code) or "HTTP_%d" % response.status_code
        text = "%s failed: the registry answered %d %s" % (what, response.status_code, code)
        if message and message.lower() != code.lower().replace("_", " "):
            text += " (%s)" % message
        if response.status_code == 401 and registry is not None:
            state = self._states.get(registry)
            credentials = state.credentials if state is not None else None
            if credentials is not None and credentials.username:
                text += "; the credentials of %r (from %s) were not accepted" % (
                    credentials.username, credentials.source)
            else:
                text += "; no credentials were found for %s (set username/password or docker_config)" % registry
        if code == "TOOMANYREQUESTS" or response.status_code == 429:
            text += "; retried %d times, rate-limit headers: %s" % (
                self.max_retries, _rate_limit_summary(response.headers))
        return RegistryError(text, code=code, status=response.status_code)


class _Hasher:
    """Hash a stream while it passes through, to check a copied blob against its digest."""

    def __init__(self, digest):
        self.digest = digest
        self.algorithm = digest.split(":", 1)[0]
        self._hash = hashlib.new(self.algorithm)

    def wrap(self, chunks):
        for chunk in chunks:
            self._hash.update(chunk)
            yield chunk

    def check(self, what):
        actual = self.algorithm + ":" + self._hash.hexdigest()
        if actual != self.digest:
            raise RegistryError("%s: the source sent bytes whose digest is %s; refusing them" % (what, actual),
                                code="DIGEST_MISMATCH")


def jwt_granted_actions(token, repository):
    """Actions a registry JWT's ``access`` claim grants on ``repository``; None when the token is opaque."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")).decode("utf-8"))
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("access"), list):
        return None
    granted = set()
    for entry in claims["access"]:
        if isinstance(entry, dict) and entry.get("type") == "repository" and entry.get("name") == repository:
            granted.update(a for a in entry.get("actions") or [] if isinstance(a, str))
    return granted


def _error_code(response):
    try:
        return parse_error_body(response.content[:4096])[0]
    except (requests.exceptions.RequestException, RuntimeError):
        return None


def transport_error(method, url, attempts, exc):
    """A RegistryError for a request that never got an answer (connection refused, reset, timeout).

    ``detail`` is the part without the request, for callers that name the request better.
    """
    where = url.split("?", 1)[0]
    if isinstance(exc, requests.exceptions.SSLError):
        detail = "failed: TLS error (%s)" % _short_ssl_reason(exc)
        code = "TLS"
    else:
        detail = "failed after %d attempt(s): %s" % (attempts, _short_connection_reason(exc))
        code = "UNREACHABLE"
    return RegistryError("%s %s %s" % (method, where, detail), code=code, detail=detail)


def describe_path(ref, path):
    """What an API path of ``ref``'s repository is, in reference terms (``name:tag``, ``name@digest``)."""
    if path.startswith("manifests/"):
        reference = path[len("manifests/"):]
        return ref.name + ("@" if ":" in reference else ":") + reference
    if path.startswith("blobs/uploads"):
        return "blob upload to " + ref.name
    if path.startswith("blobs/"):
        return "blob %s of %s" % (path[len("blobs/"):], ref.name)
    return "%s/%s" % (ref.name, path)


def _read_limited(response, limit, message):
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        raise RegistryError(message, code="SIZE_INVALID")
    chunks = []
    total = 0
    for chunk in response.iter_content(65536):
        total += len(chunk)
        if total > limit:
            raise RegistryError(message, code="SIZE_INVALID")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(content_type):
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip() or None


def _is_cert_error(exc):
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text or "hostname" in text.lower()


def _short_ssl_reason(exc):
    text = str(exc)
    for marker in ("certificate verify failed: ", "CERTIFICATE_VERIFY_FAILED"):
        if marker in text:
            tail = text.split(marker, 1)[1]
            return ("certificate verify failed: " + tail.split("(_ssl")[0].strip(" )'\"")).strip(": ")
    return text[:160]


def _short_connection_reason(exc):
    if exc is None:
        return "no answer"
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "Temporary failure in name resolution", "Connection reset", "Connection aborted"):
        if marker.lower() in text.lower():
            return marker.lower()
    if "IncompleteRead" in text or "Connection broken" in text:
        return "the body was cut short"
    return text[:200]


def _rate_limit_summary(headers):
    seen = ["%s=%s" % (name, headers.get(name)) for name in RATE_LIMIT_HEADERS if headers.get(name) is not None]
    return ", ".join(seen) or "none"
