# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry authentication: any ``401`` challenge answered, per host, as a ``requests`` auth handler.

Docker's token authentication (distribution "Token Authentication Specification") and RFC 7617 Basic:
a registry says how to authenticate in the ``WWW-Authenticate`` header of a 401 answer, on any request
(the ``/v2/`` ping, a read, or only on writes), and a registry may redirect to another host that asks in
its own way (lscr.io to ghcr.io, blob redirects to a CDN or a content app). So:

- :class:`Authenticator` keeps what each host asked for (its :class:`Challenge`: Basic, or Bearer with
  realm and service) and the Bearer tokens it issued, per ``(host, realm, service, repository)``, until
  shortly before ``expires_in`` runs out. Tokens for many repositories are asked for at once
  (``scope`` repeated, as the token spec allows), with the OAuth2 refresh-token grant when the
  credentials are an ``identitytoken``.
- :class:`RegistryAuth` is the ``requests.auth.AuthBase`` of one request: it adds the header a host is
  known to want, and answers a 401 challenge once (a fresh token, or Basic credentials) by resending the
  request. Credentials are those of the host that challenged, looked up by that host's name: the
  credentials of one registry never follow a redirect to another host, and a token goes only to the
  host whose challenge asked for it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json
import re
import threading
import time

from urllib.parse import urlencode, urlsplit

try:
    from requests.auth import AuthBase
    from requests.cookies import extract_cookies_to_jar
except ImportError:  # pragma: no cover - the modules report the missing library first
    AuthBase = object
    extract_cookies_to_jar = None

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.jsondoc import loads_strict
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.credentials import (
    CATALOG,
    basic_auth_value,
    parse_www_authenticate,
    scope_string,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import (
    RegistryError,
    response_error,
)

TOKEN_SCOPES_PER_REQUEST = 25
TOKEN_EXPIRY_MARGIN = 10
DEFAULT_TOKEN_LIFETIME = 60
CLIENT_ID = "archfleet.multiarch"
# A token as it may go into an Authorization header: visible ASCII (RFC 9110 VCHAR), at most 64 KiB; never a CR,
# LF, space or anything a header could be split at.
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,65536}\Z")


def host_of(url):
    """The ``host[:port]`` of a URL, lower case: what challenges, tokens and credentials are kept by."""
    return urlsplit(url).netloc.lower()


def jwt_granted_actions(token, repository):
    """Actions (a set of str) a registry JWT's ``access`` claim grants on ``repository``; None when opaque."""
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


def parse_scope(text):
    """``(repository, actions)`` of a token scope (``repository:<name>:<a,b>``); None for other resources."""
    parts = (text or "").split(":")
    if len(parts) < 3 or parts[0] != "repository":
        return None
    return ":".join(parts[1:-1]), tuple(a for a in parts[-1].split(",") if a)


class Challenge:
    """What a host's 401 asked for: ``scheme`` ``"basic"`` or ``"bearer"``, with ``realm`` and ``service``.

    ``error`` and ``scope`` are the challenge's own (Bearer ``error="insufficient_scope"``, RFC 6750 3.1).
    """

    __slots__ = ("scheme", "realm", "service", "error", "scope")

    def __init__(self, scheme, realm=None, service=None, error=None, scope=None):
        self.scheme = scheme
        self.realm = realm
        self.service = service
        self.error = error
        self.scope = scope

    @classmethod
    def parse(cls, header):
        """The Challenge of a ``WWW-Authenticate`` header; None when absent or of an unsupported scheme."""
        scheme, params = parse_www_authenticate(header)
        if scheme == "bearer" and params.get("realm"):
            return cls("bearer", params["realm"], params.get("service"), params.get("error"), params.get("scope"))
        if scheme == "basic":
            return cls("basic", params.get("realm"))
        return None


class Authenticator:
    """Challenges and Bearer tokens per host for one task (thread-safe).

    ``transport`` sends the token requests (its ``request``); ``credentials_for(registry, strict)``
    returns the Credentials of a registry (``strict``: only sources naming that host, for hosts reached
    by a redirect); ``registry_of(host)`` maps an API host back to the registry named in a reference.
    """

    def __init__(self, transport, credentials_for, clock=time.time):
        self.transport = transport
        self._credentials_for = credentials_for
        self._clock = clock
        self._challenges = {}   # host -> Challenge
        self._schemes = {}      # host -> "http" or "https": how the challenging request reached it
        self._tokens = {}       # (host, realm, service, repository) -> (token, expires, frozenset of actions)
        self._credentials = {}  # host -> Credentials or None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ what hosts asked for
    def learn(self, host, header, scheme=None):
        """Remember the challenge of a 401 answer from ``host`` (reached over ``scheme``); returns it (None when
        unsupported)."""
        challenge = Challenge.parse(header)
        if challenge is not None:
            with self._lock:
                self._challenges[host] = challenge
                if scheme:
                    self._schemes[host] = scheme.lower()
        return challenge

    def challenge(self, host):
        return self._challenges.get(host)

    def credentials(self, host):
        """The Credentials for ``host`` (looked up once per task), or None."""
        if host not in self._credentials:
            registry = self.transport.registry_of(host)
            found = self._credentials_for(registry or host, strict=registry is None)
            with self._lock:
                self._credentials.setdefault(host, found)
        return self._credentials[host]

    def secrets(self):
        return [token for token, _expires, _actions in list(self._tokens.values())]

    # ------------------------------------------------------------------ headers
    def header(self, host, scope):
        """The ``Authorization`` value ``host`` is known to want for ``scope``, or None.

        Only for a host that challenged earlier: credentials are never offered unasked.
        """
        challenge = self._challenges.get(host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            credentials = self.credentials(host)
            if credentials is not None and credentials.has_basic():
                return "Basic " + basic_auth_value(credentials.username, credentials.password)
            return None
        if scope is None:
            return None
        token = self.cached(host, challenge, scope[0], scope[1])
        if token is None:
            token = self.fetch(host, challenge, [scope])
        return "Bearer " + token

    def cached(self, host, challenge, repository, actions):
        entry = self._tokens.get((host, challenge.realm, challenge.service, repository))
        if entry is None:
            return None
        token, expires, granted = entry
        if expires <= self._clock() or not set(actions) <= granted:
            return None
        return token

    def drop(self, host, challenge, repository):
        with self._lock:
            self._tokens.pop((host, challenge.realm, challenge.service, repository), None)

    def granted_actions(self, host, repository):
        """Actions the cached Bearer token grants on ``repository`` at ``host``, when it says (a JWT); else None."""
        challenge = self._challenges.get(host)
        if challenge is None or challenge.scheme != "bearer":
            return None
        entry = self._tokens.get((host, challenge.realm, challenge.service, repository))
        return jwt_granted_actions(entry[0], repository) if entry is not None else None

    # ------------------------------------------------------------------ tokens
    def authorize(self, host, scopes):
        """Fetch tokens for many ``(repository, actions)`` scopes of a Bearer host in few token requests.

        A no-op for hosts that have not asked for a Bearer token. Scopes a live token covers are skipped.
        """
        challenge = self._challenges.get(host)
        if challenge is None or challenge.scheme != "bearer":
            return
        wanted = [(repo, tuple(actions)) for repo, actions in scopes
                  if self.cached(host, challenge, repo, actions) is None]
        for start in range(0, len(wanted), TOKEN_SCOPES_PER_REQUEST):
            self.fetch(host, challenge, wanted[start:start + TOKEN_SCOPES_PER_REQUEST])

    def fetch(self, host, challenge, scopes):
        """Ask ``challenge.realm`` for one token covering ``scopes``; cache it for each, and return it.

        Raises RegistryError ``UNAUTHORIZED`` when the token service refuses the credentials.
        """
        credentials = self.credentials(host)
        registry = self.transport.registry_of(host) or host
        self._check_realm(host, registry, challenge.realm)
        method, url, headers, form = self._token_request(challenge, credentials, scopes)
        try:
            response = self.transport.token_request(method, url, registry, headers, form)
        except RegistryError as exc:
            raise RegistryError("cannot reach the token service %s of registry %s: %s"
                                % (challenge.realm.split("?")[0], registry, exc.detail), code=exc.code)
        try:
            if response.status_code in (401, 403):
                if credentials is not None:
                    who = "; the credentials of %r (from %s) were not accepted" % (
                        credentials.username or "<identity token>", credentials.source)
                else:
                    who = " an anonymous request; no credentials were found for %s" % registry
                raise RegistryError("the token service of registry %s refused%s (%d %s)"
                                    % (registry, who, response.status_code, "UNAUTHORIZED"),
                                    code="UNAUTHORIZED", status=response.status_code)
            if response.status_code >= 400:
                raise response_error(response, "requesting a token from registry %s" % registry,
                                     retries=self.transport.max_retries)
            token, lifetime = _token_from(response)
        finally:
            response.close()
        if not token:
            raise RegistryError("the token service of registry %s answered without a token" % registry,
                                code="UNAUTHORIZED")
        expires = self._clock() + max(lifetime - TOKEN_EXPIRY_MARGIN, 1)
        with self._lock:
            for repo, actions in scopes:
                self._tokens[(host, challenge.realm, challenge.service, repo)] = (token, expires, frozenset(actions))
        return token

    def _check_realm(self, host, registry, realm):
        """Refuse a realm that is not an http(s) URL, or plain HTTP while the registry itself is reached over HTTPS
        (credentials and tokens would cross the network in clear): RegistryError ``UNAUTHORIZED``, nothing sent."""
        parts = urlsplit(realm)
        scheme = parts.scheme.lower()
        # A host reached by a redirect was never discovered: the scheme of the request it challenged counts.
        registry_scheme = self.transport.scheme_of(host) or self._schemes.get(host)
        if scheme not in ("http", "https") or not parts.netloc:
            why = "is not an http(s) URL"
        elif scheme == "http" and registry_scheme == "https":
            why = "is plain HTTP while the registry is reached over HTTPS; credentials and tokens would travel in clear"
        else:
            return
        raise RegistryError("registry %s asked for a token from realm %r, which %s; refused, nothing was sent there"
                            % (registry, realm.split("?", 1)[0][:200], why), code="UNAUTHORIZED")

    @staticmethod
    def _token_request(challenge, credentials, scopes):
        """``(method, url, headers, form)`` of a token request (GET, or the OAuth2 POST for a refresh token)."""
        if credentials is not None and credentials.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token,
                    "client_id": CLIENT_ID, "access_type": "offline",
                    "scope": " ".join(scope_string(repo, actions) for repo, actions in scopes)}
            if challenge.service:
                form["service"] = challenge.service
            return "POST", challenge.realm, {}, form
        params = [("service", challenge.service)] if challenge.service else []
        params += [("scope", scope_string(repo, actions)) for repo, actions in scopes]
        url = challenge.realm + (("&" if "?" in challenge.realm else "?") + urlencode(params) if params else "")
        headers = {}
        if credentials is not None and credentials.has_basic():
            headers["Authorization"] = "Basic " + basic_auth_value(credentials.username, credentials.password)
        return "GET", url, headers, None


class RegistryAuth(AuthBase):
    """The ``requests`` auth handler of one request for ``scope`` (``(repository, actions)`` or None).

    On the way out it adds the header the URL's host is known to want. A 401 answer (from that host or
    one a redirect led to) is answered once per host: its challenge is learnt, a fresh token fetched
    (or the host's Basic credentials taken) and the request resent; the last answer is returned either
    way. Afterwards ``credentials_sent`` (the Credentials used, or None), ``token_granted`` and
    ``challenge`` (of the last 401) say what happened, for the error sentence.
    """

    def __init__(self, authenticator, scope, answer_challenges=True):
        self.authenticator = authenticator
        self.scope = scope
        self.answer_challenges = answer_challenges
        self.credentials_sent = None
        self.token_granted = False
        self.challenge = None
        self._answered = set()

    def __call__(self, request):
        self.apply(request)
        request.register_hook("response", self.handle_401)
        return request

    def apply(self, request):
        """Add the header the request's host is known to want (also after a redirect to another host)."""
        host = host_of(request.url)
        value = self.authenticator.header(host, self.scope) if self.answer_challenges else None
        if value is not None:
            request.headers["Authorization"] = value
            self._note(host, value)

    def _note(self, host, value):
        if value.startswith("Bearer "):
            self.token_granted = True
        credentials = self.authenticator.credentials(host)
        if credentials is not None and (value.startswith("Basic ") or self.token_granted):
            self.credentials_sent = credentials

    def handle_401(self, response, **kwargs):
        """Response hook: answer a 401 challenge once per host by resending with fresh authorization."""
        if response.status_code != 401:
            return response
        host = host_of(response.url or response.request.url)
        # A 401 without a (usable) challenge from a host that challenged before: its known challenge.
        challenge = (self.authenticator.learn(host, response.headers.get("WWW-Authenticate"),
                                              urlsplit(response.url or response.request.url).scheme)
                     or self.authenticator.challenge(host))
        self.challenge = challenge
        if challenge is None or not self.answer_challenges or host in self._answered:
            return response
        if not _replayable(response.request.body):
            return response
        self._answered.add(host)
        value = self._fresh_header(host, challenge)
        if value is None:
            return response
        return self._resend(response, value, host, kwargs)

    def _fresh_header(self, host, challenge):
        if challenge.scheme == "basic":
            return self.authenticator.header(host, self.scope)
        scopes = []
        asked = parse_scope(challenge.scope)
        if asked is not None:
            scopes.append(asked)
        if self.scope is not None and self.scope[0] != CATALOG and (asked is None or asked[0] != self.scope[0]):
            scopes.append((self.scope[0], tuple(self.scope[1])))
        elif self.scope is not None and self.scope[0] == CATALOG:
            scopes.append((CATALOG, ("*",)))
        if not scopes:
            return None
        for repository, _actions in scopes:
            self.authenticator.drop(host, challenge, repository)
        return "Bearer " + self.authenticator.fetch(host, challenge, scopes)

    def _resend(self, response, value, host, kwargs):
        response.content  # noqa: B018 - read the 401's body so the connection can be reused
        response.close()
        prepared = response.request.copy()
        if extract_cookies_to_jar is not None:
            extract_cookies_to_jar(prepared._cookies, response.request, response.raw)
            prepared.prepare_cookies(prepared._cookies)
        prepared.headers["Authorization"] = value
        self._note(host, value)
        again = response.connection.send(prepared, **kwargs)
        again.history.append(response)
        again.request = prepared
        return again


def _replayable(body):
    """Whether a request body can be sent again (bytes, text or none; not a stream already read)."""
    return body is None or isinstance(body, (bytes, str))


def _token_from(response):
    """``(token or None, lifetime in seconds)`` of a token service answer (``token`` or ``access_token``)."""
    try:
        answer = loads_strict(response.content, "the token answer")   # at most bodies.LIMITS["token"] bytes
        token = answer.get("token") or answer.get("access_token")
    except (ValueError, AttributeError):
        return None, DEFAULT_TOKEN_LIFETIME
    if not isinstance(token, str) or not _TOKEN_RE.match(token):
        return None, DEFAULT_TOKEN_LIFETIME
    try:
        lifetime = int(answer.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
    except (TypeError, ValueError):
        lifetime = DEFAULT_TOKEN_LIFETIME
    return token, lifetime
