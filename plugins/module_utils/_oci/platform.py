# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Platform strings, parsed and normalised as containerd's ``platforms.Parse`` does.

Pure code (no I/O): shared by the modules and the ``platform`` filter.

Grammar: ``os[(osversion[+feature]...)]/arch[/variant]``, or a bare OS or architecture.
Normalise for comparing and matching only; when writing an index, write what the user or
the image config states (rewriting ``arm64/v8`` to ``arm64`` changes a digest).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import platform as _host_platform
import re
from collections.abc import Mapping

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import builtin_type_name

KNOWN_OS = frozenset((
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
    "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
))
KNOWN_ARCH = frozenset((
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips", "mipsle",
    "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le", "riscv", "riscv64",
    "s390", "s390x", "sparc", "sparc64", "wasm",
))

_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z", re.ASCII)
_OS_RE = re.compile(r"^(?P<os>[A-Za-z0-9_-]+)(?:\((?P<version>[A-Za-z0-9_.-]*)(?P<features>(?:\+[A-Za-z0-9_.-]+)*)\))?\Z",
                    re.ASCII)
_MAX_LENGTH = 256

# Attestation entries written by buildx carry this platform; they are not platforms.
UNKNOWN_PLATFORM = ("unknown", "unknown")


class PlatformError(ValueError):
    """A platform string is invalid; the message says why and what is allowed."""


class Platform(Mapping):
    """A platform, frozen: ``os``, ``architecture``, ``variant`` (str or None), ``os_version`` (str or None) and
    ``os_features`` (a tuple of str), as written (``platform_key`` normalises for comparing).

    The one form of a platform inside the collection. Two edges convert: ``oci()`` and ``Platform.from_oci``
    to and from the OCI ``platform`` object of an index entry or image config (OCI image-spec image-index.md:
    ``os.version``, ``os.features``, keys left out when unset); and reading it as a mapping, the facts form the
    modules and the ``platform`` filter return (keys ``os``, ``architecture``, ``variant``, ``os_version``,
    ``os_features``, the features as a list): ``dict(platform)`` or ``as_dict()``. Equal to another Platform
    or to such a dict with the same fields; hashable.
    """

    __slots__ = ("os", "architecture", "variant", "os_version", "os_features")

    def __init__(self, os, architecture, variant=None, os_version=None, os_features=()):  # pylint: disable=redefined-outer-name
        for name, value in (("os", os), ("architecture", architecture), ("variant", variant or None),
                            ("os_version", os_version or None), ("os_features", tuple(os_features or ()))):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("a Platform cannot be changed (%s)" % name)

    @classmethod
    def from_oci(cls, platform):
        """The Platform of an OCI/Docker ``platform`` object (a dict; None or {} give an empty platform)."""
        platform = platform or {}
        return cls(platform.get("os"), platform.get("architecture"), platform.get("variant"),
                   platform.get("os.version"), platform.get("os.features"))

    def oci(self):
        """The OCI ``platform`` object (a new dict, only the keys that are set)."""
        return oci_platform(self)

    def key(self):
        """``platform_key(self)``: the normalised identity."""
        return platform_key(self)

    def as_dict(self):
        """The facts form: a new dict with os, architecture, variant, os_version and os_features (a list)."""
        return dict(self)

    def __getitem__(self, name):
        if name not in self.__slots__:
            raise KeyError(name)
        value = getattr(self, name)
        return list(value) if name == "os_features" else value

    def __iter__(self):
        return iter(self.__slots__)

    def __len__(self):
        return len(self.__slots__)

    def __hash__(self):
        return hash(tuple(getattr(self, name) for name in self.__slots__))

    def __eq__(self, other):
        if isinstance(other, Platform):
            return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)
        return Mapping.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    def __str__(self):
        return format_platform(self)

    def __repr__(self):
        return "Platform(%r)" % format_platform(self)


def normalize_os(os_name):
    os_name = (os_name or "").lower()
    return "darwin" if os_name == "macos" else os_name


# Aliases that name an architecture (and, for 32-bit ARM, a variant): GOARCH names as containerd's
# normalizeArch, plus what `uname -m`, Debian (dpkg) and other tools print for the same CPUs.
_ARCH_ALIASES = {
    "x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "amd64": ("amd64", ""),
    "i386": ("386", ""), "i486": ("386", ""), "i586": ("386", ""), "i686": ("386", ""), "x86": ("386", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"), "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"), "armv8l": ("arm", "v8"),
    "armel": ("arm", "v6"), "armv6l": ("arm", "v6"), "armv6": ("arm", "v6"),
    "armv5l": ("arm", "v5"), "armv5tel": ("arm", "v5"), "armv5": ("arm", "v5"),
    "ppc64el": ("ppc64le", ""), "powerpc64le": ("ppc64le", ""), "powerpc64": ("ppc64", ""),
    "loongarch64": ("loong64", ""), "mips64el": ("mips64le", ""), "mipsel": ("mipsle", ""),
}

# The variants each architecture has (after normalisation; "" is the architecture without one).
# amd64: x86-64 micro-architecture levels; arm: ARM architecture versions (GOARM); arm64: ARMv8.x
# and ARMv9.x; riscv64: RVA profiles (GORISCV64); ppc64/ppc64le: POWER levels (GOPPC64).
# Architectures not listed have no variants.
VARIANTS = {
    "amd64": ("", "v2", "v3", "v4"),
    "arm": ("v5", "v6", "v7", "v8"),
    "arm64": ("", "v8.1", "v8.2", "v8.3", "v8.4", "v8.5", "v8.6", "v8.7", "v8.8", "v8.9",
              "v9", "v9.1", "v9.2", "v9.3", "v9.4", "v9.5"),
    "riscv64": ("", "rva20u64", "rva22u64", "rva23u64"),
    "ppc64le": ("", "power8", "power9", "power10"),
    "ppc64": ("", "power8", "power9", "power10"),
}
_VARIANT_SPELLINGS = {"amd64": ("v1", "v2", "v3", "v4"), "arm": ("v5", "v6", "v7", "v8"),
                      "arm64": ("v8", "v8.1", "...", "v8.9", "v9", "v9.1", "...", "v9.5")}


def normalize_arch(arch, variant):
    """containerd's normalizeArch: aliases to GOARCH names, arm variants to ``vN``.

    Returns ``(architecture, variant)``, both lower case; the variant is "" when the architecture
    has none (or its default: ``amd64/v1``, ``arm64/v8``).
    """
    arch, variant = (arch or "").lower(), (variant or "").lower()
    arch, implied = _ARCH_ALIASES.get(arch, (arch, ""))
    variant = variant or implied
    if arch == "amd64":
        return arch, ("" if variant == "v1" else variant)
    if arch == "arm64":
        if variant in ("8", "v8", "v8.0", "8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        elif re.match(r"^[89]\.[0-9]\Z", variant):
            variant = "v" + variant
        return arch, variant
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
        return arch, variant
    return arch, variant


def check_variant(arch, variant, text):
    """Raise PlatformError unless the normalised ``variant`` exists for ``arch`` (see VARIANTS)."""
    allowed = VARIANTS.get(arch, ("",))
    if variant in allowed:
        return
    if allowed == ("",):
        raise PlatformError("invalid platform %r: architecture %s has no variants (write it without one, "
                            "e.g. 'linux/%s')" % (text, arch, arch))
    spelled = _VARIANT_SPELLINGS.get(arch) or [v for v in allowed if v]
    raise PlatformError("invalid platform %r: architecture %s has no variant %s (valid: %s)"
                        % (text, arch, variant, ", ".join(spelled)))


def host_platform():
    """The platform of the machine running this code (containerd's DefaultSpec)."""
    arch, variant = normalize_arch(_host_platform.machine(), "")
    if arch == "arm" and variant == "v7":
        variant = ""
    return Platform(normalize_os(_host_platform.system()) or "linux", arch, variant)


def _platform(os_name, arch, variant, os_version=None, os_features=None):
    return Platform(os_name, arch, variant, os_version, os_features)


def parse_platform(text):
    """Parse a platform specifier into a :class:`Platform`. Raises PlatformError naming the text and what is allowed.

    Mirrors containerd ``platforms.Parse``: a single component is an OS (the architecture then
    defaults to the host's) or an architecture (the OS is ``linux``); ``arm`` means ``arm/v7``
    and is written without variant, ``os/arm64/v8`` keeps its variant.

    Stricter than containerd in one way: an unknown OS or architecture (a typo such as
    ``linux/arm46`` or ``arm/v7`` for ``linux/arm/v7``) is an error, not a new platform.
    """
    if not isinstance(text, str):
        raise PlatformError("invalid platform %r: expected a string such as 'linux/arm64', got %s"
                            % (text, builtin_type_name(text)))
    if text == "":
        raise PlatformError("invalid platform '': the platform is empty (expected e.g. 'linux/arm64' or 'arm/v7')")
    if len(text) > _MAX_LENGTH:
        raise PlatformError("invalid platform %r: longer than %d characters" % (text[:40] + "...", _MAX_LENGTH))
    if "*" in text:
        raise PlatformError("invalid platform %r: wildcards are not supported" % (text,))
    parts = text.split("/")
    if len(parts) > 3:
        raise PlatformError("invalid platform %r: at most three components are allowed (os/architecture/variant)"
                            % (text,))
    os_part = parts[0]
    os_version, os_features = None, []
    match = _OS_RE.match(os_part)
    if match and match.group("version") is not None:
        os_part = match.group("os")
        os_version = match.group("version")
        os_features = [f for f in match.group("features").split("+") if f]
    for index, part in enumerate([os_part] + parts[1:]):
        if part == "":
            raise PlatformError("invalid platform %r: empty component (leading, trailing or double '/')" % (text,))
        if not _COMPONENT_RE.match(part):
            raise PlatformError("invalid platform %r: component %r may contain only letters, digits, '_', '.' and '-'"
                                % (text, part))

    if len(parts) == 1:
        os_name = normalize_os(os_part)
        if os_name in KNOWN_OS:
            default = host_platform()
            return _platform(os_name, default["architecture"], default["variant"], os_version, os_features)
        arch, variant = normalize_arch(parts[0], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        if arch in KNOWN_ARCH:
            return _platform("linux", arch, variant)
        raise PlatformError("invalid platform %r: unknown operating system or architecture (architectures: %s)"
                            % (text, ", ".join(sorted(KNOWN_ARCH))))

    os_name = normalize_os(os_part)
    if os_name not in KNOWN_OS:
        hint = ""
        if normalize_arch(os_part, "")[0] in KNOWN_ARCH:
            hint = "; did you mean 'linux/%s'?" % text
        raise PlatformError("invalid platform %r: unknown operating system %r (expected e.g. 'linux/arm64')%s"
                            % (text, os_part, hint))
    if normalize_arch(parts[1], "")[0] not in KNOWN_ARCH:
        raise PlatformError("invalid platform %r: unknown architecture %r (known: %s)"
                            % (text, parts[1], ", ".join(sorted(KNOWN_ARCH))))
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
    else:
        arch, variant = normalize_arch(parts[1], parts[2])
        check_variant(arch, variant, text)
        if arch == "arm64" and variant == "":
            variant = "v8"
    return _platform(os_name, arch, variant, os_version, os_features)


def platform_key(platform):
    """The identity of a platform: ``(os, architecture, variant, os_version, os_features)``, normalised.

    Two index entries are the same platform when their keys are equal: ``arm64`` == ``arm64/v8``,
    ``arm`` == ``arm/v7``, ``amd64/v1`` == ``amd64``, aliases resolved; ``os.version`` and
    ``os.features`` (OCI image-spec, image-index.md) are part of the identity, so Windows images
    of two OS versions are two platforms. ``platform`` is anything :func:`as_platform` takes.
    """
    platform = as_platform(platform)
    arch, variant = normalize_arch(platform.architecture, platform.variant)
    return (normalize_os(platform.os), arch, variant, platform.os_version or "", tuple(sorted(platform.os_features)))


def as_platform(value):
    """``value`` as a :class:`Platform`: a Platform, a platform string (parse_platform, may raise PlatformError),
    an OCI ``platform`` object, or a dict in the facts form (``os_version``/``os_features`` keys)."""
    if isinstance(value, Platform):
        return value
    if isinstance(value, str):
        return parse_platform(value)
    value = value or {}
    if "os_version" in value or "os_features" in value:
        return Platform(value.get("os"), value.get("architecture"), value.get("variant"), value.get("os_version"),
                        value.get("os_features"))
    return Platform.from_oci(value)


def platform_matches(required, platform):
    """Whether ``platform`` satisfies the requirement ``required`` (dicts, strings or keys), as containerd matches.

    OS, architecture and variant must be equal (normalised); a required ``os.version`` is a prefix
    on a dot boundary (``10.0.20348`` matches ``10.0.20348.2340``), none matches any version; the
    required ``os.features`` must all be present.
    """
    want = required if isinstance(required, tuple) else platform_key(required)
    have = platform if isinstance(platform, tuple) else platform_key(platform)
    if want[:3] != have[:3]:
        return False
    if want[3] and not (have[3] == want[3] or have[3].startswith(want[3] + ".")):
        return False
    return set(want[4]) <= set(have[4])


def _os_text(os_name, version, features):
    if not version and not features:
        return os_name
    return "%s(%s%s)" % (os_name, version or "", "".join("+" + f for f in features or ()))


def format_platform(platform):
    """``os[(os.version[+feature...])]/arch[/variant]`` of a platform (anything :func:`as_platform` takes), as
    written (not normalised).

    The OS version and features are written as containerd's ``FormatAll`` writes them, so the text
    parses back (parse_platform) to the same platform.
    """
    platform = as_platform(platform)
    text = "%s/%s" % (_os_text(platform.os or "unknown", platform.os_version, platform.os_features),
                      platform.architecture or "unknown")
    if platform.variant:
        text += "/" + platform.variant
    return text


def format_key(key):
    """The text of a platform_key (normalised names)."""
    os_name, arch, variant = key[:3]
    text = "%s/%s" % (_os_text(os_name, key[3] if len(key) > 3 else "", key[4] if len(key) > 4 else ()), arch)
    return text + "/" + variant if variant else text


def oci_platform(platform):
    """The OCI ``platform`` object of a platform (anything :func:`as_platform` takes): a new dict with only the
    keys that are set (OCI image-spec image-index.md)."""
    platform = as_platform(platform)
    result = {"architecture": platform.architecture, "os": platform.os}
    if platform.os_version:
        result["os.version"] = platform.os_version
    if platform.os_features:
        result["os.features"] = list(platform.os_features)
    if platform.variant:
        result["variant"] = platform.variant
    return result


def from_oci(platform):
    """The :class:`Platform` of an OCI/Docker ``platform`` object (``Platform.from_oci``)."""
    return Platform.from_oci(platform)


def is_unknown(platform):
    platform = platform or {}
    return (platform.get("os"), platform.get("architecture")) == UNKNOWN_PLATFORM


def stated_contradicts_config(stated, config_platform):
    """Whether a platform stated for an image (``sources[].platform``) contradicts the one its config states.

    ``stated`` is a Platform (parse_platform), ``config_platform`` the Platform of platform_from_config. The OS and the
    architecture must agree (normalised: ``aarch64`` is ``arm64``); the variant only when the config states
    one, since stating the variant a config leaves out (``arm/v7`` for a config that says ``arm``) is what a
    platform override is for. A config that states no OS or architecture contradicts nothing.
    """
    config_platform = config_platform or {}
    if not config_platform.get("os") or not config_platform.get("architecture"):
        return False
    if normalize_os(stated.get("os")) != normalize_os(config_platform.get("os")):
        return True
    stated_arch, stated_variant = normalize_arch(stated.get("architecture"), stated.get("variant"))
    config_arch, config_variant = normalize_arch(config_platform.get("architecture"), config_platform.get("variant"))
    if stated_arch != config_arch:
        return True
    return bool(config_platform.get("variant")) and stated_variant != config_variant
