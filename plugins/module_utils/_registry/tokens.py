# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry authorization: Basic credentials and Bearer tokens (Docker token authentication spec).

Bearer tokens are requested for many ``repository:<name>:<actions>`` scopes at once (``scope`` repeated,
as the distribution token spec allows), cached per ``(registry, repository)`` until shortly before
``expires_in`` runs out, and requested with the OAuth2 refresh-token grant when docker's config holds
an ``identitytoken``. Every request goes through :meth:`Transport.send` (its retry loop and counts).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json
import threading
import time

from urllib.parse import urlencode

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import registry_key
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.credentials import (
    basic_auth_value,
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


class TokenStore:
    """Authorization headers for requests against a repository, with Bearer tokens cached per scope."""

    def __init__(self, transport, clock=time.time):
        self.transport = transport
        self._clock = clock
        self._tokens = {}  # (registry, repository) -> (token, expires, frozenset of granted actions)
        self._lock = threading.Lock()

    def secrets(self):
        return [token for token, _expires, _actions in list(self._tokens.values())]

    def authorize(self, endpoint, scopes):
        """Fetch tokens for many ``(repository, actions)`` scopes in few token requests.

        A no-op for open and Basic-auth registries. Scopes already covered by a live token are skipped.
        """
        if not endpoint.realm or endpoint.realm == "basic":
            return
        wanted = [(repo, tuple(actions)) for repo, actions in scopes
                  if self.cached(endpoint.registry, repo, actions) is None]
        for start in range(0, len(wanted), TOKEN_SCOPES_PER_REQUEST):
            self.fetch(endpoint, wanted[start:start + TOKEN_SCOPES_PER_REQUEST])

    def cached(self, registry, repository, actions):
        entry = self._tokens.get((registry_key(registry), repository))
        if entry is None:
            return None
        token, expires, granted = entry
        if expires <= self._clock() or not set(actions) <= granted:
            return None
        return token

    def granted_actions(self, registry, repository):
        """Actions the cached Bearer token grants on ``repository``, when the token says (a JWT); else None."""
        entry = self._tokens.get((registry_key(registry), repository))
        if entry is None:
            return None
        return jwt_granted_actions(entry[0], repository)

    def drop(self, registry, repository):
        with self._lock:
            self._tokens.pop((registry_key(registry), repository), None)

    def headers(self, endpoint, repository, actions):
        """``{"Authorization": ...}`` for a request on ``repository`` needing ``actions``; {} when open."""
        if endpoint.realm is None:
            return {}
        if endpoint.realm == "basic":
            credentials = endpoint.credentials
            if credentials is not None and credentials.has_basic():
                return {"Authorization": "Basic " + basic_auth_value(credentials.username, credentials.password)}
            return {}
        token = self.cached(endpoint.registry, repository, actions)
        if token is None:
            with self._lock:
                token = self.cached(endpoint.registry, repository, actions)
            if token is None:
                token = self.fetch(endpoint, [(repository, tuple(actions))])
        return {"Authorization": "Bearer " + token}

    def fetch(self, endpoint, scopes):
        """Request one token for ``scopes`` from the realm; returns it and caches it for each scope."""
        credentials = endpoint.credentials
        headers, form = {}, None
        if credentials is not None and credentials.identity_token:
            # OAuth2: the refresh token (docker's identitytoken) is posted for an access token.
            method, url = "POST", endpoint.realm
            form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token,
                    "client_id": CLIENT_ID, "access_type": "offline",
                    "scope": " ".join(scope_string(repo, actions) for repo, actions in scopes)}
            if endpoint.service:
                form["service"] = endpoint.service
        else:
            params = [("service", endpoint.service)] if endpoint.service else []
            params += [("scope", scope_string(repo, actions)) for repo, actions in scopes]
            method = "GET"
            url = endpoint.realm + ("&" if "?" in endpoint.realm else "?") + urlencode(params)
            if credentials is not None and credentials.has_basic():
                headers["Authorization"] = "Basic " + basic_auth_value(credentials.username, credentials.password)
        try:
            response = self.transport.send(method, url, endpoint.registry, "token", headers=headers,
                                           verify=self._realm_verify(endpoint), cert=endpoint.cert, data=form)
        except RegistryError as exc:
            raise RegistryError("cannot reach the token service %s of registry %s: %s"
                                % (endpoint.realm.split("?")[0], endpoint.registry, exc.detail), code=exc.code)
        if response.status_code in (401, 403):
            who = ("as %r (credentials from %s)" % (credentials.username, credentials.source)
                   if credentials is not None and credentials.username else "anonymously")
            raise RegistryError("the token service of registry %s refused to authenticate %s: %d %s"
                                % (endpoint.registry, who, response.status_code, "UNAUTHORIZED"),
                                code="UNAUTHORIZED", status=response.status_code)
        if response.status_code >= 400:
            raise response_error(response, "requesting a token from registry %s" % endpoint.registry,
                                 retries=self.transport.max_retries)
        token, lifetime = _token_from(response)
        if not token:
            raise RegistryError("the token service of registry %s answered without a token" % endpoint.registry,
                                code="UNAUTHORIZED")
        expires = self._clock() + max(lifetime - TOKEN_EXPIRY_MARGIN, 1)
        with self._lock:
            for repo, actions in scopes:
                self._tokens[(registry_key(endpoint.registry), repo)] = (token, expires, frozenset(actions))
        return token

    def _realm_verify(self, endpoint):
        if self.transport.is_insecure(endpoint.registry):
            return False
        return endpoint.verify if endpoint.realm.startswith("https://") else True


def _token_from(response):
    """``(token or None, lifetime in seconds)`` of a token service answer (``token`` or ``access_token``)."""
    try:
        answer = response.json()
        token = answer.get("token") or answer.get("access_token")
    except (ValueError, AttributeError):
        return None, DEFAULT_TOKEN_LIFETIME
    try:
        lifetime = int(answer.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
    except (TypeError, ValueError):
        lifetime = DEFAULT_TOKEN_LIFETIME
    return token, lifetime
