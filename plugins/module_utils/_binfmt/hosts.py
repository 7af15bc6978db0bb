# -*- coding: utf-8 -*-
# Copyright: archfleet maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host runs natively, from its ``uname -m`` (pure: no I/O).

A build host never needs an emulator for its own architecture, nor for what its CPU runs in a
compatibility mode (x86-64 runs 386; most aarch64 CPUs run 32-bit ARM). Host spellings such as
``armv7l``, ``i686`` and ``ppc64el`` go through the same aliases as platform names
(``entries.ARCH_ALIASES``), so there is no second table of architectures here.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries

# QEMU target of the host -> targets its CPU also runs without an emulator. 32-bit ARM on aarch64
# is optional in the architecture (Neoverse V2/N2, Ampere One and Apple cores lack it): the
# module confirms it on the host by running the arm test program (see ``needs_confirmation``).
COMPAT_TARGETS = {
    "x86_64": ("i386",),
    "aarch64": ("arm",),
    "ppc64": ("ppc",),
    "sparc64": ("sparc", "sparc32plus"),
    "mips64": ("mips", "mipsn32"),
    "mips64el": ("mipsel", "mipsn32el"),
}
# Compatibility modes the CPU may lack: confirm by running a test program without an emulator.
OPTIONAL_COMPAT = {("aarch64", "arm")}


def host_target(machine):
    """QEMU target of a host's ``uname -m`` (``armv7l`` -> ``arm``), or None when unknown."""
    try:
        return entries.resolve_architecture(machine)
    except entries.BinfmtError:
        return None


def native_targets(machine):
    """QEMU targets this host's CPU can run without an emulator (its own and its compat modes)."""
    own = host_target(machine)
    if own is None:
        return []
    return [own] + list(COMPAT_TARGETS.get(own, ()))


def needs_confirmation(machine, target):
    """True when ``target`` is native on this host only if the CPU has the optional compat mode."""
    return (host_target(machine), target) in OPTIONAL_COMPAT


def native_reason(machine, target):
    """One sentence saying why no emulator is registered for ``target`` on this host."""
    own = host_target(machine)
    if target == own:
        return "this is the host's own architecture (%s): it runs natively, no emulator is needed." % machine
    return ("this %s host runs %s binaries natively (a compatibility mode of its CPU): no emulator "
            "is needed." % (machine, target))


def elf_target(data):
    """QEMU target whose binfmt_misc magic and mask match the start of an ELF file, as the kernel matches.

    ``data`` is the file's first bytes (64 are plenty); returns None for a file no target matches.
    """
    data = bytearray(data or b"")
    for target in sorted(entries.QEMU_TARGETS):
        magic, mask = entries.target_magic(target)
        if len(data) >= len(magic) and all(data[i] & mask[i] == magic[i] & mask[i] for i in range(len(magic))):
            return target
    return None
