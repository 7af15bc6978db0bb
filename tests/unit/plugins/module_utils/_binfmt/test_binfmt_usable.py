"""qemu_binfmt_info's report on a stand-in binfmt_misc directory: native, usable, and what is missing."""
import platform

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries as binfmt
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt.usable import BinfmtHost

from test_binfmt_manager import FakeModule


class Report(BinfmtHost):
    arm_rc = binfmt.PROBE_EXIT_CODE

    def run_probe(self, target):
        return self.arm_rc, ""


def entry_text(interpreter, flags="POF", enabled=True):
    return "%s\ninterpreter %s\nflags: %s\noffset 0\nmagic 7f454c46\nmask ffffffff\n" % (
        "enabled" if enabled else "disabled", interpreter, flags)


@pytest.fixture
def host(binfmt_host, static_elf):
    (binfmt_host / "qemu-static").write_bytes(static_elf)
    return binfmt_host


def report(host, platforms, machine="x86_64", arm_rc=binfmt.PROBE_EXIT_CODE, containers=True):
    module = FakeModule(host, platforms=platforms, containers=containers)
    reporter = Report(module, proc_dir=str(host / "binfmt_misc"))
    reporter.machine, reporter.arm_rc = machine, arm_rc
    return reporter.report()


def test_native_and_usable(host):
    (host / "binfmt_misc" / "qemu-s390x").write_text(entry_text(host / "qemu-static"))
    result = report(host, ["linux/amd64", "linux/386", "linux/s390x"])
    assert result["usable"] and result["problems"] == []
    native = [r["native"] for r in result["platforms"]]
    assert native == [True, True, False] and result["platforms"][2]["entry"] == "qemu-s390x"


@pytest.mark.parametrize("text, words", [
    (None, "there is no binfmt_misc entry"),
    ("disabled", "binfmt_misc entry qemu-s390x is disabled"),
    ("P", "entry qemu-s390x lacks flag F (fix binary)"),
    ("missing-interpreter", "does not exist"),
    ("dynamic", "is dynamically linked, so it cannot run inside a container"),
])
def test_each_missing_property_is_named(host, text, words):
    interpreter = host / "qemu-static"
    if text == "dynamic":
        interpreter = host / "dynamic"
        interpreter.write_bytes(open("/bin/true", "rb").read())
    if text is not None:
        (host / "binfmt_misc" / "qemu-s390x").write_text(entry_text(
            host / "nope" if text == "missing-interpreter" else interpreter,
            flags="P" if text == "P" else "POF", enabled=text != "disabled"))
    result = report(host, ["linux/s390x"])
    assert not result["usable"] and words in result["problems"][0] and result["problems"][0].startswith("linux/s390x: ")


def test_without_containers_flag_f_is_not_required(host):
    (host / "binfmt_misc" / "qemu-s390x").write_text(entry_text(host / "qemu-static", flags="P"))
    assert report(host, ["s390x"], containers=False)["usable"]


def test_simulated_aarch64_hosts(host):
    # No aarch64 machine is available: the host's uname -m and its CPU's AArch32 support are simulated.
    result = report(host, ["linux/arm64", "linux/arm/v7"], machine="aarch64")
    assert [r["native"] for r in result["platforms"]] == [True, True] and result["usable"]
    result = report(host, ["linux/arm/v7"], machine="aarch64", arm_rc=-1)
    assert not result["usable"] and "there is no binfmt_misc entry" in result["problems"][0]


@pytest.mark.parametrize("machine", ["armv7l", "i686", "ppc64el"])
def test_host_facts_as_the_kernel_reports_them(host, machine):
    platform = {"armv7l": "linux/arm/v7", "i686": "linux/386", "ppc64el": "linux/ppc64le"}[machine]
    assert report(host, [platform], machine=machine)["platforms"][0]["native"] is True


def test_unbuildable_and_unmounted(host):
    assert "no QEMU emulator exists for linux/wasm" in report(host, ["linux/wasm"])["problems"][0]
    (host / "binfmt_misc" / "register").unlink()
    assert "binfmt_misc is not mounted" in report(host, ["linux/s390x"])["problems"][0]


def test_binaries_are_matched_as_the_kernel_matches_them(host):
    from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import hosts
    for target in binfmt.probe_targets():
        assert hosts.elf_target(binfmt.probe_program(target)) == target
    if platform.machine() == "x86_64":
        assert hosts.elf_target(open("/bin/true", "rb").read(64)) == "x86_64"
    assert hosts.elf_target(b"#!/bin/sh\n") is None
    probe = host / "probe"
    probe.write_bytes(binfmt.probe_program("s390x"))
    module = FakeModule(host, platforms=[], containers=True, binaries=[str(probe), str(host / "none")])
    result = Report(module, proc_dir=str(host / "binfmt_misc")).report()
    assert result["binaries"] == {str(probe): "s390x", str(host / "none"): None}
