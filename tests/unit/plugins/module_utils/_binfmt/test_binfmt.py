"""Pure binfmt helpers: table, aliases, flags, register lines, read-back parsing, ELF."""
from __future__ import annotations

import glob
import struct

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import elf
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries as binfmt

AARCH64_READBACK = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""
DEBIAN_AARCH64_CONF = (
    r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
    r":\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
    r":/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF"
)


@pytest.mark.parametrize("name, target", [
    ("aarch64", "aarch64"), ("arm64", "aarch64"), ("linux/arm64", "aarch64"), ("linux/arm64/v8", "aarch64"),
    ("arm", "arm"), ("arm/v7", "arm"), ("linux/arm/v6", "arm"), ("armhf", "arm"), ("armel", "arm"),
    ("386", "i386"), ("linux/386", "i386"), ("amd64", "x86_64"), ("X86_64", "x86_64"),
    ("ppc64le", "ppc64le"), ("ppc64el", "ppc64le"), ("s390x", "s390x"), ("riscv64", "riscv64"),
    ("mips64le", "mips64el"), ("mips64el", "mips64el"), ("mipsle", "mipsel"), ("loong64", "loongarch64"),
])
def test_resolve_architecture(name, target):
    assert binfmt.resolve_architecture(name) == target


@pytest.mark.parametrize("name", ["", "sparc99", "arm/v9", "arm64/v7", "linux/", "/arm64",
                                  "windows/amd64/x/y", "arm 64", "linux/arm64/v8/extra"])
def test_resolve_architecture_rejects(name):
    with pytest.raises(binfmt.BinfmtError, match="^Unknown architecture"):
        binfmt.resolve_architecture(name)


def test_resolve_architectures_dedupes_aliases():
    targets, requested = binfmt.resolve_architectures(["arm64", "aarch64", "linux/arm/v7"])
    assert targets == ["aarch64", "arm"]
    assert requested == {"arm64": "aarch64", "aarch64": "aarch64", "linux/arm/v7": "arm"}


@pytest.mark.parametrize("machine, native", [
    ("x86_64", ["i386", "x86_64"]),
    ("aarch64", ["aarch64", "arm"]),
    ("armv7l", ["aarch64", "arm"]),
    ("ppc64le", ["ppc64le"]),
    ("s390x", ["s390x"]),
    ("riscv64", ["riscv32", "riscv64"]),
])
def test_native_targets(machine, native):
    assert binfmt.native_targets(machine) == native


@pytest.mark.parametrize("given, normal", [
    ("", ""), ("F", "F"), ("fp", "PF"), ("OPF", "POF"), ("FOP", "POF"), ("C", "OC"),
    ("flags: PF", "PF"), (" P F ", "PF"), (None, ""),
])
def test_normalize_flags(given, normal):
    assert binfmt.normalize_flags(given) == normal


@pytest.mark.parametrize("bad", ["PQ", "X", "-1", "P,F"])
def test_normalize_flags_rejects(bad):
    with pytest.raises(binfmt.BinfmtError, match="^Invalid binfmt_misc flags"):
        binfmt.normalize_flags(bad)


def test_unescape_mixes_literals_and_escapes():
    assert binfmt.unescape(r"\x7fELF\x02") == b"\x7fELF\x02"
    assert binfmt.escape(b"\x7fE:") == r"\x7f\x45\x3a"


def test_every_target_has_equal_length_magic_and_mask():
    for target in binfmt.QEMU_TARGETS:
        magic, mask = binfmt.target_magic(target)
        assert len(magic) == len(mask) and magic[:4] == b"\x7fELF", target
        # e_machine is never masked away: it is what tells the targets apart.
        assert mask[18:20] != b"\x00\x00", target


@pytest.mark.skipif(not glob.glob("/usr/lib/binfmt.d/qemu-*.conf"), reason="no Debian qemu-user-static")
def test_table_matches_the_installed_debian_registrations():
    for path in glob.glob("/usr/lib/binfmt.d/qemu-*.conf"):
        with open(path) as handle:
            entry = [e for e in map(binfmt.parse_register_line, handle) if e][0]
        target = entry["name"][len("qemu-"):]
        magic, mask = binfmt.target_magic(target)
        assert (magic.hex(), mask.hex()) == (entry["magic"], entry["mask"]), target


def test_parse_register_line_and_round_trip():
    entry = binfmt.parse_register_line(DEBIAN_AARCH64_CONF)
    assert entry["flags"] == "POF" and entry["offset"] == 0
    assert entry["magic"] == "7f454c460201010000000000000000000200b700"
    wanted = binfmt.desired_entry("aarch64", "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "OPF")
    assert binfmt.parse_register_line(binfmt.register_line(wanted)) == wanted
    assert binfmt.register_line(wanted).startswith(":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46")
    assert binfmt.register_line(wanted).endswith(":/usr/libexec/qemu-binfmt/aarch64-binfmt-P:POF")
    assert binfmt.parse_register_line("# comment") is None
    assert binfmt.parse_register_line(":jar:E::jar::/usr/bin/jexec:") is None


def test_register_line_rejects_bad_names_and_interpreters():
    wanted = binfmt.desired_entry("arm", "/usr/bin/qemu-arm-static", "F")
    with pytest.raises(binfmt.BinfmtError, match="entry name"):
        binfmt.register_line(dict(wanted, name="a/b"))
    with pytest.raises(binfmt.BinfmtError, match="absolute path"):
        binfmt.register_line(dict(wanted, interpreter="qemu-arm"))


def test_parse_entry_and_differences():
    current = binfmt.parse_entry("qemu-aarch64", AARCH64_READBACK)
    assert current["enabled"] and current["flags"] == "PF"
    wanted = binfmt.desired_entry("aarch64", "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "PF")
    assert binfmt.entry_differences(current, wanted) == []
    assert binfmt.entry_differences(current, dict(wanted, flags="POF")) == ["flags"]
    assert binfmt.entry_differences(current, dict(wanted, interpreter="/x")) == ["interpreter"]
    assert binfmt.entry_differences(dict(current, enabled=False), wanted) == ["enabled"]
    assert binfmt.entry_differences(None, wanted) == ["missing"]
    # A credentials entry reads back as "OC": same set as "C".
    assert binfmt.entry_differences(dict(current, flags="POCF"), dict(wanted, flags="PCF")) == []


def test_parse_entry_without_mask_compares_as_all_ones():
    current = binfmt.parse_entry("x", "enabled\ninterpreter /i\nflags: \noffset 0\nmagic 4243\n")
    wanted = {"interpreter": "/i", "offset": 0, "magic": "4243", "mask": "ffff", "flags": ""}
    assert binfmt.entry_differences(current, wanted) == []


def test_persistent_content_is_a_comment_and_the_register_line():
    wanted = binfmt.desired_entry("s390x", "/usr/bin/qemu-s390x-static", "F")
    lines = binfmt.persistent_content(wanted).splitlines()
    assert lines[0].startswith("#") and lines[1] == binfmt.register_line(wanted)


def _elf64(phdr_types):
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 9
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, len(phdr_types), 64, 0, 0)
    return header + b"".join(struct.pack("<IIQQQQQQ", t, 0, 0, 0, 0, 0, 0, 0) for t in phdr_types)


def test_elf_is_static():
    assert elf.elf_is_static(_elf64([1, 1])) is True
    assert elf.elf_is_static(_elf64([6, 3, 1])) is False  # PT_INTERP
    assert elf.elf_is_static(b"#!/bin/sh\n" + b"\x00" * 64) is None


@pytest.mark.parametrize("target", elf.probe_targets())
def test_probe_programs_match_their_own_registration(target):
    program = elf.probe_program(target)
    magic, mask = binfmt.target_magic(target)
    assert all(program[i] & mask[i] == magic[i] & mask[i] for i in range(len(magic)))
    assert elf.elf_is_static(program) is True
    assert target in binfmt.UNAME_MACHINE
    assert elf.probe_program("alpha") is None


# What Debian 12's qemu-user-static (1:7.2+dfsg-7) installs: /usr/bin/qemu-<target>-static, and for most of them
# /usr/lib/binfmt.d/qemu-<target>.conf (not aarch64_be, microblazeel, nios2, or1k; nor the amd64 host's own family,
# i386 and x86_64). Listed from the package on a Debian 12 amd64 machine (dpkg -L qemu-user-static).
DEBIAN_QEMU_USER_STATIC = (
    "aarch64 aarch64_be alpha arm armeb cris hexagon hppa i386 loongarch64 m68k microblaze microblazeel mips mips64 "
    "mips64el mipsel mipsn32 mipsn32el nios2 or1k ppc ppc64 ppc64le riscv32 riscv64 s390x sh4 sh4eb sparc "
    "sparc32plus sparc64 x86_64 xtensa xtensaeb").split()
# qemu_target_list of QEMU's scripts/qemu-binfmt-conf.sh (QEMU 7.2 to 9.x); its i486 runs qemu-i386.
QEMU_BINFMT_CONF_SH = (
    "i386 i486 alpha arm armeb sparc sparc32plus sparc64 ppc ppc64 ppc64le m68k mips mipsel mipsn32 mipsn32el mips64 "
    "mips64el sh4 sh4eb s390x aarch64 aarch64_be hppa riscv32 riscv64 xtensa xtensaeb microblaze microblazeel or1k "
    "x86_64 hexagon loongarch64").split()


def installed_debian_targets():
    """The targets of the qemu-user-static installed on this machine (empty without it)."""
    names = [p[len("/usr/bin/qemu-"):-len("-static")] for p in glob.glob("/usr/bin/qemu-*-static")]
    names += [p[len("/usr/lib/binfmt.d/qemu-"):-len(".conf")] for p in glob.glob("/usr/lib/binfmt.d/qemu-*.conf")]
    return sorted(set(names))


@pytest.mark.parametrize("name", sorted(set(DEBIAN_QEMU_USER_STATIC + QEMU_BINFMT_CONF_SH + installed_debian_targets())))
def test_every_target_debian_and_qemu_install_is_accepted_by_name(name):
    target = binfmt.resolve_architecture(name)
    assert target == ("i386" if name == "i486" else name)
    magic, mask = binfmt.target_magic(target)
    assert len(magic) == len(mask) >= 20


def test_the_installed_qemu_user_static_is_the_listed_one():
    installed = installed_debian_targets()
    if not installed:
        pytest.skip("no qemu-user-static on this machine")
    assert set(installed) <= set(DEBIAN_QEMU_USER_STATIC), installed


@pytest.mark.parametrize("target, machine, big_endian, bits", [
    ("aarch64_be", 183, True, 64), ("microblazeel", 0xBAAB, False, 32), ("or1k", 92, True, 32), ("nios2", 113, False, 32),
])
def test_the_targets_beyond_debian_binfmt_d_match_their_elf_machine(target, machine, big_endian, bits):
    """e_machine, class and byte order of the targets whose bytes come from qemu-binfmt-conf.sh or elf.h."""
    magic, mask = binfmt.target_magic(target)
    assert magic[4] == (2 if bits == 64 else 1) and magic[5] == (2 if big_endian else 1)
    assert struct.unpack(">H" if big_endian else "<H", magic[18:20])[0] == machine and mask[18:20] == b"\xff\xff"


def test_an_unknown_name_is_refused_with_every_allowed_target():
    with pytest.raises(binfmt.BinfmtError) as refused:
        binfmt.resolve_architecture("vax")
    message = str(refused.value)
    assert message.startswith("Unknown architecture 'vax': use a QEMU target (aarch64, aarch64_be, alpha, ")
    assert all(target in message for target in DEBIAN_QEMU_USER_STATIC)
