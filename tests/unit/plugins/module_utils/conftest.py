"""Fixtures the module_utils unit tests share.

The binfmt tests (test_binfmt_manager, test_binfmt_transactions, test_binfmt_usable) run on a
stand-in host: ``binfmt_host`` is ``tmp_path`` with a ``binfmt_misc`` directory as the kernel mounts
it, and ``static_elf`` the bytes of an emulator that passes for statically linked. Each test file
adds the emulators and directories it needs.
"""
import pytest


@pytest.fixture
def static_elf():
    """An ELF header with no program headers: static as far as elf_is_static can tell (bytes)."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1
    return bytes(header)


@pytest.fixture
def binfmt_host(tmp_path):
    """``tmp_path`` holding ``binfmt_misc/`` (plain files): an empty ``register`` and ``status`` enabled."""
    proc = tmp_path / "binfmt_misc"
    proc.mkdir()
    (proc / "register").write_text("")
    (proc / "status").write_text("enabled\n")
    return tmp_path
