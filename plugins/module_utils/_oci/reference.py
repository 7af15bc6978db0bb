# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references, parsed exactly as Docker's ``distribution/reference`` does.

Pure code (no I/O): shared by the modules and the ``image_ref`` filter.

Grammar (distribution/reference/regexp.go)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain '/'] remote-name
    domain     := host [':' port-number]
    host       := domain-name | IPv4address | '[' IPv6address ']'
    remote-name:= path-component ['/' path-component]*
    path-component := [a-z0-9]+ (separator [a-z0-9]+)*
    separator  := [_.] | __ | [-]+
    tag        := [\\w][\\w.-]{0,127}
    digest     := algorithm ":" hex
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")"
_DOMAIN = _HOST + r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN + r"/)?" + _REMOTE_NAME

_REFERENCE_RE = re.compile(
    r"^(?P<name>" + _NAME + r")(?::(?P<tag>" + _TAG + r"))?(?:@(?P<digest>" + _DIGEST + r"))?\Z",
    re.ASCII,
)
_DOMAIN_RE = re.compile(r"^" + _DOMAIN + r"\Z", re.ASCII)
_REMOTE_NAME_RE = re.compile(r"^" + _REMOTE_NAME + r"\Z", re.ASCII)
_TAG_RE = re.compile(r"^" + _TAG + r"\Z", re.ASCII)
_ANCHORED_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}\Z")

# Digest algorithms the OCI image spec registers, with the exact encoded form each requires.
_DIGEST_ENCODINGS = {
    "sha256": re.compile(r"^[a-f0-9]{64}\Z"),
    "sha512": re.compile(r"^[a-f0-9]{128}\Z"),
}

_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class InvalidReferenceError(ValueError):
    """An image reference or one of its parts is invalid; the message says why."""


def builtin_type_name(value):
    """The name of the built-in type behind ``value`` (Ansible wraps values in subclasses of them)."""
    for cls in type(value).__mro__:
        if cls.__module__ == "builtins" and cls is not object:
            return cls.__name__
    return type(value).__name__


def validate_digest(digest, what="digest"):
    """Return ``digest`` if it is a valid ``algorithm:hex`` digest, else raise InvalidReferenceError."""
    if not isinstance(digest, str) or ":" not in digest:
        raise InvalidReferenceError("invalid %s %r: expected 'sha256:' followed by 64 lowercase hex digits" % (what, digest))
    algorithm, encoded = digest.split(":", 1)
    pattern = _DIGEST_ENCODINGS.get(algorithm)
    if pattern is None:
        raise InvalidReferenceError("invalid %s %r: unsupported digest algorithm %r (allowed: %s)"
                                    % (what, digest, algorithm, ", ".join(sorted(_DIGEST_ENCODINGS))))
    if not pattern.match(encoded):
        length = 64 if algorithm == "sha256" else 128
        raise InvalidReferenceError("invalid %s %r: %s needs exactly %d lowercase hex digits"
                                    % (what, digest, algorithm, length))
    return digest


def validate_tag(tag):
    """Return ``tag`` if Docker accepts it as a tag, else raise InvalidReferenceError."""
    if not isinstance(tag, str) or not _TAG_RE.match(tag):
        raise InvalidReferenceError("invalid tag %r: a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', "
                                    "not starting with '.' or '-'" % (tag,))
    return tag


def is_valid_tag(text):
    """Whether ``text`` (any value) is a tag distribution/reference accepts (``[\\w][\\w.-]{0,127}``, ASCII)."""
    return isinstance(text, str) and _TAG_RE.match(text) is not None


def is_valid_repository(text):
    """Whether ``text`` is a repository path (lower-case components joined by ``/``, at most 255 characters)."""
    return isinstance(text, str) and len(text) <= NAME_TOTAL_LENGTH_MAX and _REMOTE_NAME_RE.match(text) is not None


def split_docker_domain(name):
    """Split a name into (domain, remainder) and normalise Docker Hub, like Docker does."""
    index = name.find("/")
    first = name[:index] if index != -1 else ""
    if index == -1 or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[index + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


class ImageReference:
    """A normalised image reference: registry (domain), repository, optional tag and digest."""

    __slots__ = ("registry", "repository", "tag", "digest", "original")

    def __init__(self, registry, repository, tag=None, digest=None, original=None):
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
        self.original = original

    # --- derived names -------------------------------------------------------------
    @property
    def name(self):
        return self.registry + "/" + self.repository

    @property
    def api_host(self):
        return registry_api_host(self.registry)

    @property
    def familiar_name(self):
        if self.registry != DEFAULT_DOMAIN:
            return self.name
        repository = self.repository
        if repository.startswith(OFFICIAL_REPO_PREFIX) and "/" not in repository[len(OFFICIAL_REPO_PREFIX):]:
            repository = repository[len(OFFICIAL_REPO_PREFIX):]
        return repository

    def _suffix(self):
        suffix = ""
        if self.tag is not None:
            suffix += ":" + self.tag
        if self.digest is not None:
            suffix += "@" + self.digest
        return suffix

    @property
    def familiar(self):
        return self.familiar_name + self._suffix()

    @property
    def canonical(self):
        return self.name + self._suffix()

    @property
    def manifest_reference(self):
        """What goes after ``/manifests/`` in the API: the digest wins over the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag):
        return ImageReference(self.registry, self.repository, validate_tag(tag), None)

    def with_digest(self, digest):
        return ImageReference(self.registry, self.repository, None, validate_digest(digest))

    def is_loopback(self):
        return is_loopback_registry(self.registry)

    def to_dict(self):
        return {
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "name": self.name,
            "familiar": self.familiar,
            "canonical": self.canonical,
        }

    def __eq__(self, other):
        return isinstance(other, ImageReference) and self.canonical == other.canonical

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.canonical)

    def __repr__(self):
        return "ImageReference(%r)" % self.canonical

    def __str__(self):
        return self.canonical


def registry_api_host(registry):
    """Host (and port) that serves a registry's API: Docker Hub (docker.io) is served by registry-1."""
    return DOCKER_HUB_API_HOST if registry.lower() == DEFAULT_DOMAIN else registry


def registry_key(registry):
    """How registry domains compare: host names are case-insensitive (RFC 4343), ports are not names."""
    return registry.lower()


def same_repository(ref, registry, repository):
    """Whether ImageReference ``ref`` names ``repository`` of ``registry`` (domains compared by registry_key)."""
    return registry_key(ref.registry) == registry_key(registry) and ref.repository == repository


def is_loopback_registry(registry):
    """Whether a registry domain is on this machine (localhost, 127.0.0.0/8, [::1]), as Docker decides."""
    host = registry_hostname(registry)
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def registry_hostname(registry):
    """The host part of a registry domain (without port, lower case), keeping IPv6 brackets."""
    registry = registry.lower()
    if registry.startswith("["):
        return registry[:registry.index("]") + 1]
    return registry.split(":", 1)[0]


def parse_reference(text):
    """Parse ``text`` as Docker's ``ParseNormalizedNamed`` does and return an ImageReference.

    Raises InvalidReferenceError with a sentence that names the value and what is wrong.
    """
    if not isinstance(text, str):
        raise InvalidReferenceError("invalid image reference %r: expected a string, got %s" % (text, builtin_type_name(text)))
    if text == "":
        raise InvalidReferenceError("invalid image reference '': the reference is empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReferenceError("invalid image reference %r: whitespace is not allowed" % (text,))
    if _ANCHORED_IDENTIFIER_RE.match(text):
        raise InvalidReferenceError("invalid image reference %r: a 64-character hexadecimal string is an image ID, "
                                    "not a repository name" % (text,))

    domain, remainder = split_docker_domain(text)
    # Split the remote name from tag and digest to give the lowercase error Docker gives.
    remote_name = remainder
    at = remote_name.find("@")
    if at != -1:
        remote_name = remote_name[:at]
    colon = remote_name.find(":")
    if colon != -1:
        remote_name = remote_name[:colon]
    if remote_name.lower() != remote_name:
        raise InvalidReferenceError("invalid image reference %r: repository name must be lowercase "
                                    "(uppercase is allowed only in the registry host)" % (text,))

    match = _REFERENCE_RE.match(domain + "/" + remainder)
    if not match:
        raise InvalidReferenceError("invalid image reference %r: %s" % (text, _explain(domain, remainder)))
    name, tag, digest = match.group("name"), match.group("tag"), match.group("digest")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReferenceError("invalid image reference %r: repository name is longer than %d characters"
                                    % (text, NAME_TOTAL_LENGTH_MAX))
    if digest is not None:
        try:
            validate_digest(digest)
        except InvalidReferenceError as exc:
            raise InvalidReferenceError("invalid image reference %r: %s" % (text, exc))
    repository = name[len(domain) + 1:]
    return ImageReference(domain, repository, tag, digest, original=text)


def _explain(domain, remainder):
    """Best-effort reason why a reference did not match the grammar."""
    if not _DOMAIN_RE.match(domain):
        return "registry host %r is not a valid host name, IPv4 address or [IPv6] address with optional port" % domain
    name, tag, digest = remainder, None, None
    if "@" in name:
        name, digest = name.split("@", 1)
        if digest == "":
            return "empty digest after '@'"
    if ":" in name:
        name, tag = name.rsplit(":", 1)
        if tag == "":
            return "empty tag after ':'"
        if not _TAG_RE.match(tag):
            return ("tag %r is not valid: up to 128 letters, digits, '_', '.' and '-', "
                    "not starting with '.' or '-'" % tag)
    if digest is not None and not re.match(r"^" + _DIGEST + r"\Z", digest, re.ASCII):
        return "digest %r is not of the form 'sha256:<64 hex digits>'" % digest
    if name == "" or name.endswith("/") or "//" in name:
        return "repository name %r has an empty path component" % name
    return ("repository name %r is not valid: path components are lowercase letters and digits, "
            "separated by '/', with '.', '_', '__' or '-' inside a component" % name)
