# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry credentials and auth challenges.

- ``parse_www_authenticate``: the ``WWW-Authenticate`` challenge of a registry (Basic or Bearer).
- ``DockerConfig``: credentials from ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``
  (``auths``, ``credHelpers``, ``credsStore`` and ``identitytoken``), the way the docker CLI finds them.

Secrets handled here (passwords, identity tokens, the base64 ``auth`` string) are never put
into exception messages.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json
import os
import re
import subprocess

DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
IDENTITY_TOKEN_USERNAME = "<token>"

_CHALLENGE_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


class CredentialError(Exception):
    """Credentials could not be read; the message never contains a secret."""


class Credentials:
    """Username and secret for one registry. ``identity_token`` is an OAuth2 refresh token."""

    __slots__ = ("username", "password", "identity_token", "source")

    def __init__(self, username=None, password=None, identity_token=None, source=None):
        self.username = username
        self.password = password
        self.identity_token = identity_token
        self.source = source

    def has_basic(self):
        return bool(self.username) and self.password is not None

    def secrets(self):
        """Every secret string these credentials hold, for scrubbing output."""
        values = [self.password, self.identity_token]
        if self.has_basic():
            values.append(basic_auth_value(self.username, self.password))
        return [v for v in values if v]

    def __repr__(self):
        return "Credentials(username=%r, source=%r, secret=<hidden>)" % (self.username, self.source)


def basic_auth_value(username, password):
    raw = ("%s:%s" % (username, password)).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def parse_www_authenticate(header):
    """Parse a ``WWW-Authenticate`` header into ``(scheme, params)``.

    ``scheme`` is lower-case (``bearer`` or ``basic``); params keys are lower-case.
    Returns ``(None, {})`` for an empty or unparsable header.
    """
    if not header:
        return None, {}
    header = header.strip()
    scheme, _space, rest = header.partition(" ")
    params = {}
    position = 0
    while position < len(rest):
        match = _CHALLENGE_PARAM_RE.match(rest, position)
        if not match or match.end() == position:
            break
        key = match.group(1).lower()
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[key] = re.sub(r"\\(.)", r"\1", value)
        position = match.end()
    return scheme.lower(), params


CATALOG = "registry:catalog"


def scope_string(repository, actions):
    """``repository:<name>:<actions>`` as the token service expects it (``registry:catalog:*`` for CATALOG)."""
    if repository == CATALOG:
        return "registry:catalog:*"
    return "repository:%s:%s" % (repository, ",".join(actions))


def normalize_config_key(key):
    """The registry host a config.json ``auths`` key refers to (scheme and path stripped)."""
    key = key.strip()
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    key = key.split("/", 1)[0].lower()  # host names are case-insensitive (RFC 4343)
    if key in _DOCKER_HUB_ALIASES:
        return "docker.io"
    return key


def config_server_url(registry):
    """The server URL docker uses as config.json key / credential helper input for a registry."""
    return DOCKER_HUB_CONFIG_KEY if registry in _DOCKER_HUB_ALIASES else registry


def default_config_path(environ=None):
    environ = os.environ if environ is None else environ
    base = environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def containers_auth_paths(environ=None, uid=None):
    """Where Podman, Buildah and skopeo keep credentials (containers-auth.json(5)), in lookup order.

    ``REGISTRY_AUTH_FILE`` alone when set; otherwise ``$XDG_RUNTIME_DIR/containers/auth.json`` (or
    ``/run/containers/<uid>/auth.json``) and then ``${XDG_CONFIG_HOME:-~/.config}/containers/auth.json``.
    """
    environ = os.environ if environ is None else environ
    if environ.get("REGISTRY_AUTH_FILE"):
        return [environ["REGISTRY_AUTH_FILE"]]
    uid = os.getuid() if uid is None else uid
    if environ.get("XDG_RUNTIME_DIR"):
        runtime = os.path.join(environ["XDG_RUNTIME_DIR"], "containers", "auth.json")
    else:
        runtime = "/run/containers/%d/auth.json" % uid
    config_home = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return [runtime, os.path.join(config_home, "containers", "auth.json")]


class DockerConfig:
    """Read-only view of a docker ``config.json``; credentials looked up per registry host."""

    def __init__(self, data, path=None, helper_runner=None):
        self.data = data or {}
        self.path = path
        self._run_helper = helper_runner or run_credential_helper
        self._cache = {}

    @classmethod
    def load(cls, path=None, required=False, helper_runner=None):
        """Load ``path`` (or the default location). A missing default file is simply empty.

        ``required``: the path was given explicitly, so a missing file is an error.
        """
        explicit = path is not None
        path = os.path.expanduser(path) if explicit else default_config_path()
        if not os.path.exists(path):
            if explicit and required:
                raise CredentialError("docker_config %s does not exist" % path)
            return cls({}, path, helper_runner)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except (IOError, OSError) as exc:
            raise CredentialError("cannot read docker config %s: %s" % (path, exc.strerror or exc))
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            # The JSON error position is safe to show; the content (which may hold secrets) is not.
            raise CredentialError("docker config %s is not valid JSON (%s)" % (path, _json_error_position(exc)))
        if not isinstance(data, dict):
            raise CredentialError("docker config %s must hold a JSON object, not %s" % (path, type(data).__name__))
        return cls(data, path, helper_runner)

    def _section(self, name):
        value = self.data.get(name) or {}
        if not isinstance(value, dict):
            raise CredentialError("docker config %s: %r must be an object" % (self.path, name))
        return value

    def credentials_for(self, registry):
        """Credentials for a registry domain (as in ImageReference.registry), or None."""
        host = normalize_config_key(registry)
        if host not in self._cache:
            self._cache[host] = self._lookup(host)
        return self._cache[host]

    def _lookup(self, host):
        helpers = self._section("credHelpers")
        for key, helper in helpers.items():
            if normalize_config_key(key) == host:
                return self._from_helper(helper, host)
        store = self.data.get("credsStore")
        if store:
            return self._from_helper(store, host)
        for key, entry in self._section("auths").items():
            if normalize_config_key(key) == host:
                return self._from_auth_entry(key, entry)
        return None

    def _from_helper(self, helper, host):
        answer = self._run_helper(helper, config_server_url(host))
        if answer is None:
            return None
        username, secret = answer.get("Username"), answer.get("Secret")
        source = "credential helper docker-credential-%s" % helper
        if username == IDENTITY_TOKEN_USERNAME:
            return Credentials(identity_token=secret, source=source)
        return Credentials(username=username, password=secret, source=source)

    def _from_auth_entry(self, key, entry):
        if not isinstance(entry, dict):
            raise CredentialError("docker config %s: auths entry %r must be an object" % (self.path, key))
        source = "docker config %s (auths %s)" % (self.path, key)
        username, password = entry.get("username"), entry.get("password")
        encoded = entry.get("auth")
        if encoded:
            try:
                decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                raise CredentialError("docker config %s: the auth string of %r is not valid base64 of "
                                      "'user:password'" % (self.path, key))
            if ":" not in decoded:
                raise CredentialError("docker config %s: the auth string of %r does not decode to "
                                      "'user:password'" % (self.path, key))
            username, password = decoded.split(":", 1)
        identity = entry.get("identitytoken")
        if identity:
            return Credentials(username=username, identity_token=identity, source=source)
        if username:
            return Credentials(username=username, password=password or "", source=source)
        return None


def _json_error_position(exc):
    if hasattr(exc, "lineno"):
        return "line %d, column %d" % (exc.lineno, exc.colno)
    return "not UTF-8 text"


def run_credential_helper(helper, server_url, timeout=30):
    """Run ``docker-credential-<helper> get`` and return its JSON answer, None if it has no entry.

    Raises CredentialError (without the helper's output, which may hold a secret) on failure.
    """
    if not re.match(r"^[A-Za-z0-9_.-]+$", helper or ""):
        raise CredentialError("invalid credential helper name %r in docker config" % (helper,))
    program = "docker-credential-" + helper
    try:
        proc = subprocess.run([program, "get"], input=server_url.encode("utf-8"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout, check=False)
    except (IOError, OSError):
        raise CredentialError("credential helper %s is not installed or not executable (looked up in PATH) "
                              "for registry %s" % (program, server_url))
    except subprocess.TimeoutExpired:
        raise CredentialError("credential helper %s did not answer within %d seconds for registry %s"
                              % (program, timeout, server_url))
    output = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        message = (output or proc.stderr.decode("utf-8", "replace")).strip()
        if "credentials not found" in message.lower():
            return None
        raise CredentialError("credential helper %s exited with status %d for registry %s"
                              % (program, proc.returncode, server_url))
    try:
        answer = json.loads(output)
    except ValueError:
        raise CredentialError("credential helper %s answered with something that is not JSON for registry %s"
                              % (program, server_url))
    if not isinstance(answer, dict) or "Secret" not in answer:
        raise CredentialError("credential helper %s answered without a 'Secret' for registry %s"
                              % (program, server_url))
    return answer
