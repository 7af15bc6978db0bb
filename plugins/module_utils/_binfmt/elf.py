# -*- coding: utf-8 -*-
# Copyright: archfleet maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What kind of file an emulator is, and the built-in test programs (pure: bytes in, values out).

With flag F the kernel opens the interpreter once, at registration, and every later match runs that
open file, in any mount namespace, so containers and chroots without the emulator can use it. Only
the file itself is carried over: a dynamically linked interpreter still has its loader (``PT_INTERP``)
and libraries looked up in the file system of the process being run, and a script (``#!``) its own
interpreter; inside a container those are missing or are the container's. So only a statically
linked ELF interpreter works in containers (the ELF format: the System V gABI, "Program Header";
the ``#!`` rule: the kernel's ``fs/binfmt_script.c``).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

PT_INTERP = 3
STATIC, DYNAMIC, SCRIPT = "static", "dynamic", "script"


def _program_headers(data):
    """(endian, [(p_type, p_offset, p_filesz)]) of the ELF image in ``data``, or None if it is not ELF."""
    if len(data) < 52 or data[:4] != b"\x7fELF":
        return None
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 54)
    else:
        phoff, = struct.unpack_from(endian + "I", data, 28)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 42)
    headers = []
    for index in range(phnum):
        start = phoff + index * phentsize
        if start + (56 if is64 else 32) > len(data):
            if start + 4 <= len(data):
                headers.append((struct.unpack_from(endian + "I", data, start)[0], 0, 0))
            break
        if is64:
            p_type, dummy, p_offset = struct.unpack_from(endian + "IIQ", data, start)
            p_filesz, = struct.unpack_from(endian + "Q", data, start + 32)
        else:
            p_type, p_offset = struct.unpack_from(endian + "II", data, start)
            p_filesz, = struct.unpack_from(endian + "I", data, start + 16)
        headers.append((p_type, p_offset, p_filesz))
    return endian, headers


def elf_is_static(data):
    """True if the ELF image in ``data`` has no PT_INTERP (static or static-pie), False if it has one.

    ``data`` must hold the ELF header and program headers (the first 64 KiB is plenty). Returns None
    when ``data`` is not an ELF file.
    """
    parsed = _program_headers(data)
    if parsed is None:
        return None
    return not any(p_type == PT_INTERP for p_type, dummy, dummy2 in parsed[1])


def interpreter_kind(data):
    """(kind, what it needs at run time) of an interpreter file whose first bytes are ``data``.

    ``kind`` is ``"static"`` (an ELF file without PT_INTERP; needs nothing: ``None``), ``"dynamic"`` (an
    ELF file with PT_INTERP; its loader's path, such as ``/lib64/ld-linux-x86-64.so.2``, or ``None``
    when the path lies beyond ``data``), ``"script"`` (``#!``; the script's interpreter line, such as
    ``/bin/sh``) or None (neither, nothing known: ``(None, None)``).
    """
    if data[:2] == b"#!":
        line = data[2:].split(b"\n", 1)[0].strip()
        return SCRIPT, line.decode("utf-8", "replace") or None
    parsed = _program_headers(data)
    if parsed is None:
        return None, None
    for p_type, p_offset, p_filesz in parsed[1]:
        if p_type == PT_INTERP:
            raw = data[p_offset:p_offset + p_filesz] if p_filesz and p_offset + p_filesz <= len(data) else b""
            loader = raw.split(b"\x00", 1)[0].decode("utf-8", "replace")
            return DYNAMIC, loader or None
    return STATIC, None


def container_problem(path, data):
    """Why the interpreter at ``path`` (first bytes ``data``) cannot run inside a container even with flag F,
    as one clause, or None when it can (a static ELF file) or nothing is known (not ELF, not a script)."""
    kind, needs = interpreter_kind(data)
    if kind == DYNAMIC:
        return ("%s is dynamically linked: the kernel opens it at registration, but its loader %s and its "
                "libraries are looked up inside each container" % (path, needs or "(PT_INTERP)"))
    if kind == SCRIPT:
        return ("%s is a script (#!%s): the kernel opens the script at registration, but its own interpreter "
                "%s, and what the script runs, are looked up inside each container"
                % (path, needs or "", (needs or "").split(" ")[0] or "(none named)"))
    return None


# --- Probe programs ---------------------------------------------------------
# Tiny static programs that only call exit(PROBE_EXIT_CODE): running one
# through the kernel proves that the registration and the emulator work,
# without any download. (machine, class, endianness, e_flags, code)
PROBE_EXIT_CODE = 42
_PROBES = {
    # movz x0,#42; movz x8,#93 (exit); svc #0
    "aarch64": (183, 64, "<", 0, struct.pack("<3I", 0xD2800540, 0xD2800BA8, 0xD4000001)),
    # mov r0,#42; mov r7,#1 (exit); svc #0   (EABI5)
    "arm": (40, 32, "<", 0x05000000, struct.pack("<3I", 0xE3A0002A, 0xE3A07001, 0xEF000000)),
    # mov ebx,42; mov eax,1 (exit); int 0x80
    "i386": (3, 32, "<", 0, b"\xbb\x2a\x00\x00\x00\xb8\x01\x00\x00\x00\xcd\x80"),
    # mov edi,42; mov eax,60 (exit); syscall
    "x86_64": (62, 64, "<", 0, b"\xbf\x2a\x00\x00\x00\xb8\x3c\x00\x00\x00\x0f\x05"),
    # li r3,42; li r0,1 (exit); sc   (ELFv2 ABI, entry is code)
    "ppc64le": (21, 64, "<", 2, struct.pack("<3I", 0x3860002A, 0x38000001, 0x44000002)),
    # lghi %r2,42; svc 1 (exit)
    "s390x": (22, 64, ">", 0, b"\xa7\x29\x00\x2a\x0a\x01"),
    # li a0,42; li a7,93 (exit); ecall
    "riscv64": (243, 64, "<", 0x5, struct.pack("<3I", 0x02A00513, 0x05D00893, 0x00000073)),
}
_PROBE_BASE = 0x400000


def probe_targets():
    return sorted(_PROBES)


def probe_program(target):
    """Bytes of a static ELF executable for ``target`` that exits with PROBE_EXIT_CODE.

    Returns None for targets without a probe.
    """
    if target not in _PROBES:
        return None
    machine, bits, endian, e_flags, code = _PROBES[target]
    data_byte = 1 if endian == "<" else 2
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, data_byte, 1, 0]) + b"\x00" * 8
    if bits == 64:
        ehsize, phentsize = 64, 56
        entry = _PROBE_BASE + ehsize + phentsize
        size = ehsize + phentsize + len(code)
        header = ident + struct.pack(endian + "HHIQQQIHHHHHH", 2, machine, 1, entry, ehsize, 0,
                                     e_flags, ehsize, phentsize, 1, 64, 0, 0)
        phdr = struct.pack(endian + "IIQQQQQQ", 1, 5, 0, _PROBE_BASE, _PROBE_BASE, size, size, 0x1000)
    else:
        ehsize, phentsize = 52, 32
        entry = _PROBE_BASE + ehsize + phentsize
        size = ehsize + phentsize + len(code)
        header = ident + struct.pack(endian + "HHIIIIIHHHHHH", 2, machine, 1, entry, ehsize, 0,
                                     e_flags, ehsize, phentsize, 1, 40, 0, 0)
        phdr = struct.pack(endian + "IIIIIIII", 1, 0, _PROBE_BASE, _PROBE_BASE, size, size, 5, 0x1000)
    return header + phdr + code
