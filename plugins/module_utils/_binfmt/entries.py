# -*- coding: utf-8 -*-
# Copyright: archfleet maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers for QEMU user-mode emulation through the kernel's binfmt_misc.

Nothing here touches the file system or the kernel: the module
``archfleet.multiarch.qemu_binfmt`` does the I/O and uses these helpers to
decide what to write. Everything must stay importable on Python 3.8.
"""
from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import PlatformError, parse_platform

BINFMT_MISC_DIR = "/proc/sys/fs/binfmt_misc"
PERSISTENT_DIR = "/etc/binfmt.d"
DEBIAN_BINFMT_D = "/usr/lib/binfmt.d"
DEBIAN_WRAPPER_DIR = "/usr/libexec/qemu-binfmt"
DEFAULT_EMULATOR_DIR = "/usr/bin"
DEFAULT_NAME_PREFIX = "qemu-"
EMULATOR_PACKAGE = "qemu-user-static"

# Flags in the order the kernel prints them when an entry is read back.
FLAG_ORDER = "POCF"

_ELF = "\\x7f\\x45\\x4c\\x46"
_HDR64_LE = _ELF + "\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
_HDR64_BE = _ELF + "\\x02\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
_HDR32_LE = _ELF + "\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
_HDR32_BE = _ELF + "\\x01\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
_MASK_LE = "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"
_MASK_BE = "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff"
_MASK_LE_FC = "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfc\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"
_MASK_BE_FC = "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfc\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff"
_MASK_X86 = "\\xff\\xff\\xff\\xff\\xff\\xfe\\xfe\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"
_MIPS_TAIL0 = "\\x00" * 20
_MIPS_MASK_TAIL = "\\x00" * 19 + "\\x20"

# QEMU target -> (magic, mask, family). The bytes are those of Debian's
# /usr/lib/binfmt.d/qemu-<target>.conf (qemu-user-static 7.2), which follow
# QEMU's scripts/qemu-binfmt-conf.sh; i386 and x86_64 (not shipped on amd64
# hosts), aarch64_be, microblazeel and or1k (Debian installs their emulators but
# no binfmt.d line) come from qemu-binfmt-conf.sh, in Debian's mask style. nios2
# (qemu-nios2-static, in no script) is EM_ALTERA_NIOS2 (113) of the ELF machine
# list (glibc's elf.h). qemu-binfmt-conf.sh's i486 is the alias i486 -> i386 below.
# ``family`` is QEMU's notion of "the same CPU family": a host never registers
# emulators of its own family.
QEMU_TARGETS = {
    "aarch64": (_HDR64_LE + "\\x02\\x00\\xb7\\x00", _MASK_LE, "arm"),
    "aarch64_be": (_HDR64_BE + "\\x00\\x02\\x00\\xb7", _MASK_BE, "armeb"),
    "alpha": (_HDR64_LE + "\\x02\\x00\\x26\\x90", _MASK_LE, "alpha"),
    "arm": (_HDR32_LE + "\\x02\\x00\\x28\\x00", _MASK_LE, "arm"),
    "armeb": (_HDR32_BE + "\\x00\\x02\\x00\\x28", _MASK_BE, "armeb"),
    "cris": (_HDR32_LE + "\\x02\\x00\\x4c\\x00", _MASK_LE, "cris"),
    "hexagon": (_HDR32_LE + "\\x02\\x00\\xa4\\x00", _MASK_LE, "hexagon"),
    "hppa": (_HDR32_BE + "\\x00\\x02\\x00\\x0f", _MASK_BE, "hppa"),
    "i386": (_HDR32_LE + "\\x02\\x00\\x03\\x00", _MASK_X86, "i386"),
    "loongarch64": (
        _HDR64_LE + "\\x02\\x00\\x02\\x01",
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfc\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff",
        "loongarch",
    ),
    "m68k": (_HDR32_BE + "\\x00\\x02\\x00\\x04", _MASK_BE, "m68k"),
    "microblaze": (_HDR32_BE + "\\x00\\x02\\xba\\xab", _MASK_BE, "microblaze"),
    "microblazeel": (_HDR32_LE + "\\x02\\x00\\xab\\xba", _MASK_LE, "microblazeel"),
    "mips": (
        _HDR32_BE + "\\x00\\x02\\x00\\x08" + _MIPS_TAIL0,
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xfe\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff"
        + _MIPS_MASK_TAIL,
        "mips",
    ),
    "mipsel": (
        _HDR32_LE + "\\x02\\x00\\x08\\x00" + "\\x00" * 17,
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xfe\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"
        + "\\x00" * 16 + "\\x20",
        "mips",
    ),
    "mipsn32": (
        _HDR32_BE + "\\x00\\x02\\x00\\x08" + "\\x00" * 19 + "\\x20",
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xfe\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff"
        + _MIPS_MASK_TAIL,
        "mips",
    ),
    "mipsn32el": (
        _HDR32_LE + "\\x02\\x00\\x08\\x00" + "\\x00" * 16 + "\\x20",
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xfe\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff"
        + "\\x00" * 16 + "\\x20",
        "mips",
    ),
    "mips64": (
        _HDR64_BE + "\\x00\\x02\\x00\\x08",
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xfe\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff",
        "mips",
    ),
    "mips64el": (
        _HDR64_LE + "\\x02\\x00\\x08\\x00",
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xfe\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff",
        "mips",
    ),
    "nios2": (_HDR32_LE + "\\x02\\x00\\x71\\x00", _MASK_LE, "nios2"),
    "or1k": (_HDR32_BE + "\\x00\\x02\\x00\\x5c", _MASK_BE, "or1k"),
    "ppc": (_HDR32_BE + "\\x00\\x02\\x00\\x14", _MASK_BE_FC, "ppc"),
    "ppc64": (_HDR64_BE + "\\x00\\x02\\x00\\x15", _MASK_BE_FC, "ppc"),
    "ppc64le": (
        _HDR64_LE + "\\x02\\x00\\x15\\x00",
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfc\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\x00",
        "ppcle",
    ),
    "riscv32": (_HDR32_LE + "\\x02\\x00\\xf3\\x00", _MASK_LE, "riscv"),
    "riscv64": (_HDR64_LE + "\\x02\\x00\\xf3\\x00", _MASK_LE, "riscv"),
    "s390x": (_HDR64_BE + "\\x00\\x02\\x00\\x16", _MASK_BE_FC, "s390x"),
    "sh4": (_HDR32_LE + "\\x02\\x00\\x2a\\x00", _MASK_LE_FC, "sh4"),
    "sh4eb": (_HDR32_BE + "\\x00\\x02\\x00\\x2a", _MASK_BE_FC, "sh4eb"),
    "sparc": (_HDR32_BE + "\\x00\\x02\\x00\\x02", _MASK_BE_FC, "sparc"),
    "sparc32plus": (_HDR32_BE + "\\x00\\x02\\x00\\x12", _MASK_BE_FC, "sparc"),
    "sparc64": (_HDR64_BE + "\\x00\\x02\\x00\\x2b", _MASK_BE_FC, "sparc"),
    "x86_64": (_HDR64_LE + "\\x02\\x00\\x3e\\x00", _MASK_X86, "i386"),
    "xtensa": (_HDR32_LE + "\\x02\\x00\\x5e\\x00", _MASK_LE, "xtensa"),
    "xtensaeb": (_HDR32_BE + "\\x00\\x02\\x00\\x5e", _MASK_BE, "xtensaeb"),
}

# What `uname -m` prints inside the emulator (QEMU's default CPU per target).
UNAME_MACHINE = {
    "aarch64": "aarch64",
    "arm": "armv7l",
    "i386": "i686",
    "mips64el": "mips64",
    "ppc64le": "ppc64le",
    "riscv64": "riscv64",
    "s390x": "s390x",
    "x86_64": "x86_64",
}

# Docker/OCI platform architectures (and Debian/kernel spellings) -> QEMU target.
# Variants only matter for 32-bit arm, and every arm variant runs on qemu-arm.
ARCH_ALIASES = {
    "amd64": "x86_64",
    "x86-64": "x86_64",
    "x64": "x86_64",
    "386": "i386",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "arm64": "aarch64",
    "armhf": "arm",
    "armel": "arm",
    "armv5l": "arm",
    "armv6l": "arm",
    "armv7l": "arm",
    "armv8l": "arm",
    "ppc64el": "ppc64le",
    "powerpc64le": "ppc64le",
    "powerpc64": "ppc64",
    "powerpc": "ppc",
    "mips64le": "mips64el",
    "mipsle": "mipsel",
    "loong64": "loongarch64",
}
_VARIANTS = {
    "aarch64": ("", "v8", "8", "v8.0"),
    "arm": ("", "v5", "5", "v6", "6", "v7", "7", "v8", "8"),
}

# Host `uname -m` -> QEMU family (as in qemu-binfmt-conf.sh's qemu_get_family).
_HOST_FAMILY_PATTERNS = (
    (r"^(amd64|i[3-6]86|i86pc|x86_64)$", "i386"),
    (r"^mips", "mips"),
    (r"^(ppc64|powerpc|ppc)$", "ppc"),
    (r"^(ppc64el|ppc64le)$", "ppcle"),
    (r"^(arm|armel|armhf|arm64|armv[4-9].*l|aarch64)$", "arm"),
    (r"^(armeb|armv[4-9].*b|aarch64_be)$", "armeb"),
    (r"^sparc", "sparc"),
    (r"^riscv", "riscv"),
    (r"^loongarch", "loongarch"),
)


class BinfmtError(ValueError):
    """A user error; the message is one sentence meant for the task result."""


def host_family(machine):
    """QEMU family of a host given its ``uname -m``."""
    machine = (machine or "").strip().lower()
    for pattern, family in _HOST_FAMILY_PATTERNS:
        if re.search(pattern, machine):
            return family
    return machine


def native_targets(machine):
    """QEMU targets the host runs natively and must therefore never register."""
    family = host_family(machine)
    return sorted(t for t, spec in QEMU_TARGETS.items() if spec[2] == family)


def resolve_architecture(name):
    """Map a QEMU target name or Docker platform (``linux/arm/v7``) to a QEMU target.

    Raises BinfmtError naming the value and what is accepted.
    """
    text = str(name).strip()
    lowered = text.lower()
    parts = lowered.split("/")
    if parts and parts[0] == "linux" and len(parts) > 1:
        parts = parts[1:]
    if not text or len(parts) > 2 or not all(parts) or not re.match(r"^[a-z0-9_./-]+$", lowered):
        raise BinfmtError(_unknown(text))
    arch, variant = parts[0], (parts[1] if len(parts) == 2 else "")
    target = arch if arch in QEMU_TARGETS else ARCH_ALIASES.get(arch)
    if target is None or (variant and variant not in _VARIANTS.get(target, ())):
        # Any platform the collection's platform model accepts (containerd's grammar, every alias
        # and variant it knows: linux/amd64/v3, linux/arm64/v8.2, linux/armv7l, i686, ...).
        target = _target_of_platform(text)
        if target is None:
            raise BinfmtError(_unknown(text))
    return target


def _target_of_platform(text):
    """The QEMU target of a Linux platform string, or None when it is not one."""
    try:
        platform = parse_platform(text if "/" in text else "linux/" + text)
    except PlatformError:
        return None
    if platform["os"] != "linux":
        return None
    arch = platform["architecture"]
    target = arch if arch in QEMU_TARGETS else ARCH_ALIASES.get(arch)
    return target if target in QEMU_TARGETS else None


def _unknown(text):
    return (
        "Unknown architecture %r: use a QEMU target (%s), a Docker platform such as "
        "linux/arm64, linux/arm/v7, 386, amd64, ppc64le, s390x, riscv64 or mips64le, or 'all'."
        % (text, ", ".join(sorted(QEMU_TARGETS)))
    )


def resolve_architectures(names):
    """Resolve a list of names; returns (ordered unique targets, {requested name: target})."""
    targets, requested = [], {}
    for name in names:
        target = resolve_architecture(name)
        requested[str(name)] = target
        if target not in targets:
            targets.append(target)
    return targets, requested


def normalize_flags(flags):
    """Canonical flag string in kernel order; ``C`` implies ``O`` as in the kernel.

    Raises BinfmtError on anything but P, O, C, F.
    """
    text = "".join(str(flags or "").split()).upper()
    if text.startswith("FLAGS:"):
        text = text[len("FLAGS:"):]
    bad = sorted(set(c for c in text if c not in FLAG_ORDER))
    if bad:
        raise BinfmtError(
            "Invalid binfmt_misc flags %r: only P (preserve argv[0]), O (open binary), "
            "C (credentials) and F (fix binary) are allowed." % str(flags)
        )
    chars = set(text)
    if "C" in chars:
        chars.add("O")
    return "".join(c for c in FLAG_ORDER if c in chars)


def unescape(text):
    """Decode a binfmt_misc magic/mask string (``\\xNN`` escapes mixed with literals)."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text.startswith("\\x", i) and i + 4 <= len(text):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        elif text.startswith("\\\\", i):
            out.append(0x5C)
            i += 2
        else:
            out.extend(text[i].encode("latin-1"))
            i += 1
    return bytes(out)


def escape(data):
    """Encode bytes as ``\\xNN`` for every byte (safe for ':' and newlines)."""
    return "".join("\\x%02x" % b for b in bytearray(data))


def target_magic(target):
    magic, mask, dummy = QEMU_TARGETS[target]
    return unescape(magic), unescape(mask)


def desired_entry(target, interpreter, flags, name_prefix=DEFAULT_NAME_PREFIX):
    """The entry we want for ``target``, in the same shape as parse_entry returns."""
    magic, mask = target_magic(target)
    return {
        "name": name_prefix + target,
        "enabled": True,
        "interpreter": interpreter,
        "flags": normalize_flags(flags),
        "offset": 0,
        "magic": magic.hex(),
        "mask": mask.hex(),
    }


def register_line(entry):
    """The ``:name:M:offset:magic:mask:interpreter:flags`` line for ``register``."""
    name = entry["name"]
    if not re.match(r"^[A-Za-z0-9_.+-]+$", name) or name in (".", ".."):
        raise BinfmtError("Invalid binfmt_misc entry name %r: use letters, digits and '._+-'." % name)
    if ":" in entry["interpreter"] or not entry["interpreter"].startswith("/"):
        raise BinfmtError(
            "Invalid interpreter %r: it must be an absolute path without ':'." % entry["interpreter"]
        )
    return ":%s:M:%s:%s:%s:%s:%s" % (
        name,
        entry.get("offset") or "",
        escape(bytes.fromhex(entry["magic"])),
        escape(bytes.fromhex(entry["mask"])) if entry.get("mask") else "",
        entry["interpreter"],
        normalize_flags(entry.get("flags")),
    )


def parse_register_line(line):
    """Parse a binfmt.d / register line (magic type only) into the parse_entry shape.

    Returns None for comments, blank lines and extension (``E``) entries.
    """
    line = line.strip()
    if not line or line[0] in "#;":
        return None
    sep = line[0]
    fields = line[1:].split(sep)
    if len(fields) < 6 or fields[1] != "M":
        return None
    fields += [""] * (7 - len(fields))
    name, dummy, offset, magic, mask, interpreter, flags = fields[:7]
    return {
        "name": name,
        "enabled": True,
        "interpreter": interpreter,
        "flags": normalize_flags(flags),
        "offset": int(offset or 0),
        "magic": unescape(magic).hex(),
        "mask": unescape(mask).hex() if mask else None,
    }


def parse_entry(name, text):
    """Parse what the kernel prints for ``/proc/sys/fs/binfmt_misc/<name>``."""
    entry = {"name": name, "enabled": False, "interpreter": None, "flags": "",
             "offset": 0, "magic": None, "mask": None, "extension": None}
    for raw in text.splitlines():
        line = raw.strip()
        if line in ("enabled", "disabled"):
            entry["enabled"] = line == "enabled"
        elif line.startswith("interpreter "):
            entry["interpreter"] = line[len("interpreter "):]
        elif line.startswith("flags:"):
            entry["flags"] = normalize_flags(line[len("flags:"):])
        elif line.startswith("offset "):
            entry["offset"] = int(line.split()[1])
        elif line.startswith("magic "):
            entry["magic"] = line.split()[1].lower()
        elif line.startswith("mask "):
            entry["mask"] = line.split()[1].lower()
        elif line.startswith("extension "):
            entry["extension"] = line[len("extension "):]
    return entry


def _effective_mask(entry):
    # No mask means "compare every byte": make that explicit so both spellings compare equal.
    if entry.get("mask"):
        return entry["mask"]
    return "ff" * (len(entry.get("magic") or "") // 2)


def entry_differences(current, wanted):
    """Names of the fields (interpreter, offset, magic, mask, flags, enabled) that differ."""
    if current is None:
        return ["missing"]
    diffs = []
    for key in ("interpreter", "offset", "magic"):
        if current.get(key) != wanted.get(key):
            diffs.append(key)
    if _effective_mask(current) != _effective_mask(wanted):
        diffs.append("mask")
    if normalize_flags(current.get("flags")) != normalize_flags(wanted.get("flags")):
        diffs.append("flags")
    if not current.get("enabled", True):
        diffs.append("enabled")
    return diffs


def persistent_content(entry):
    """Content of ``/etc/binfmt.d/<name>.conf`` for ``entry``."""
    return (
        "# Managed by Ansible (archfleet.multiarch.qemu_binfmt); applied at boot by systemd-binfmt.\n"
        + register_line(entry) + "\n"
    )


def describe(entry):
    """A short, reviewable text form of an entry for diff output."""
    if not entry:
        return ""
    return "".join("%s: %s\n" % (k, entry.get(k)) for k in
                   ("name", "enabled", "interpreter", "flags", "offset", "magic", "mask"))
