"""What kind of file an emulator is (static ELF, dynamic ELF, script), read from its first bytes as the kernel would."""
from __future__ import annotations

import glob
import os
import struct

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import elf


def elf64(segments):
    """An ELF64 header and program headers; ``segments`` are (p_type, payload) with the payloads after them."""
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 9
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, len(segments), 64, 0, 0)
    offset = 64 + 56 * len(segments)
    phdrs, payloads = b"", b""
    for p_type, payload in segments:
        phdrs += struct.pack("<IIQQQQQQ", p_type, 0, offset + len(payloads), 0, 0, len(payload), len(payload), 0)
        payloads += payload
    return header + phdrs + payloads


def test_static_dynamic_and_script():
    assert elf.interpreter_kind(elf64([(1, b"")])) == ("static", None)
    assert elf.interpreter_kind(elf64([(6, b""), (3, b"/lib/ld-musl-x86_64.so.1\x00")])) == \
        ("dynamic", "/lib/ld-musl-x86_64.so.1")
    assert elf.interpreter_kind(b'#!/bin/sh -e\nexec qemu-aarch64 "$@"\n') == ("script", "/bin/sh -e")
    assert elf.interpreter_kind(b"MZ\x90\x00" + b"\x00" * 60) == (None, None)
    assert elf.elf_is_static(elf64([(1, b"")])) is True and elf.elf_is_static(elf64([(3, b"/x\x00")])) is False


def test_the_container_problem_names_what_is_looked_up_inside_the_container():
    assert elf.container_problem("/q", elf64([(1, b"")])) is None
    assert elf.container_problem("/q", b"\x00\x01") is None
    assert elf.container_problem("/q", elf64([(3, b"/lib64/ld-linux-x86-64.so.2\x00")])) == (
        "/q is dynamically linked: the kernel opens it at registration, but its loader /lib64/ld-linux-x86-64.so.2 "
        "and its libraries are looked up inside each container")
    assert elf.container_problem("/q", b"#!/usr/bin/env bash\n") == (
        "/q is a script (#!/usr/bin/env bash): the kernel opens the script at registration, but its own interpreter "
        "/usr/bin/env, and what the script runs, are looked up inside each container")


@pytest.mark.skipif(not os.path.exists("/usr/bin/qemu-aarch64-static"), reason="no qemu-user-static")
def test_the_files_on_this_machine():
    """Debian's static emulators (static-pie) and their -binfmt-P links are static; /bin/true is dynamic."""
    for path in glob.glob("/usr/bin/qemu-*-static") + glob.glob("/usr/libexec/qemu-binfmt/*-binfmt-P"):
        with open(path, "rb") as handle:
            assert elf.interpreter_kind(handle.read(65536)) == ("static", None), path
    with open("/bin/true", "rb") as handle:
        kind, loader = elf.interpreter_kind(handle.read(65536))
    assert kind == "dynamic" and loader.startswith("/lib")
