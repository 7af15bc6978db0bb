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

_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_.-]+$", re.ASCII)
_OS_RE = re.compile(r"^(?P<os>[A-Za-z0-9_-]+)(?:\((?P<version>[A-Za-z0-9_.-]*)(?P<features>(?:\+[A-Za-z0-9_.-]+)*)\))?$",
                    re.ASCII)
_MAX_LENGTH = 256

# Attestation entries written by buildx carry this platform; they are not platforms.
UNKNOWN_PLATFORM = ("unknown", "unknown")


class PlatformError(ValueError):
    """A platform string is invalid; the message says why and what is allowed."""


def normalize_os(os_name):
    os_name = (os_name or "").lower()
    return "darwin" if os_name == "macos" else os_name


def normalize_arch(arch, variant):
    """containerd's normalizeArch: aliases to GOARCH names, arm variants to ``vN``."""
    arch, variant = (arch or "").lower(), (variant or "").lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", ("" if variant == "v1" else variant)
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        elif re.match(r"^[89]\.[0-9]$", variant):
            variant = "v" + variant
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
        return "arm", variant
    return arch, variant


def host_platform():
    """The platform of the machine running this code (containerd's DefaultSpec)."""
    arch, variant = normalize_arch(_host_platform.machine(), "")
    if arch == "arm" and variant == "v7":
        variant = ""
    return {"os": normalize_os(_host_platform.system()) or "linux", "architecture": arch, "variant": variant or None,
            "os_version": None, "os_features": []}


def _platform(os_name, arch, variant, os_version=None, os_features=None):
    return {
        "os": os_name,
        "architecture": arch,
        "variant": variant or None,
        "os_version": os_version or None,
        "os_features": list(os_features or []),
    }


def parse_platform(text):
    """Parse a platform specifier into a dict with os, architecture, variant, os_version, os_features.

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
        if arch == "arm64" and variant == "":
            variant = "v8"
    return _platform(os_name, arch, variant, os_version, os_features)


def match_key(platform):
    """A hashable key under which equivalent platforms compare equal.

    ``arm64`` == ``arm64/v8``; ``arm`` == ``arm/v7``; ``amd64/v1`` == ``amd64``; OS and
    architecture aliases are resolved. ``platform`` is a dict (index ``platform`` object or
    the result of parse_platform) or a string.
    """
    if isinstance(platform, str):
        platform = parse_platform(platform)
    os_name = normalize_os(platform.get("os"))
    arch, variant = normalize_arch(platform.get("architecture"), platform.get("variant"))
    if arch == "arm64" and variant == "v8":
        variant = ""
    return (os_name, arch, variant)


def format_platform(platform):
    """``os/arch[/variant]`` from a platform dict, as written (no normalisation)."""
    text = "%s/%s" % (platform.get("os") or "unknown", platform.get("architecture") or "unknown")
    if platform.get("variant"):
        text += "/" + platform["variant"]
    return text


def format_key(key):
    os_name, arch, variant = key
    return "%s/%s/%s" % (os_name, arch, variant) if variant else "%s/%s" % (os_name, arch)


def oci_platform(platform):
    """A platform dict in the OCI ``platform`` object form (only the keys that are set)."""
    result = {"architecture": platform["architecture"], "os": platform["os"]}
    if platform.get("os_version"):
        result["os.version"] = platform["os_version"]
    if platform.get("os_features"):
        result["os.features"] = list(platform["os_features"])
    if platform.get("variant"):
        result["variant"] = platform["variant"]
    return result


def from_oci(platform):
    """The dict form used by this collection from an OCI/Docker ``platform`` object."""
    platform = platform or {}
    return _platform(platform.get("os"), platform.get("architecture"), platform.get("variant"),
                     platform.get("os.version"), platform.get("os.features"))


def is_unknown(platform):
    platform = platform or {}
    return (platform.get("os"), platform.get("architecture")) == UNKNOWN_PLATFORM
