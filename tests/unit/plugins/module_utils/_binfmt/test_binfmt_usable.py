"""qemu_binfmt_info's report on a stand-in binfmt_misc directory: native, usable, and what is missing.

What the kernel does with the test programs is simulated here (``Report.run_probe``: an exit code for the run
through the kernel and one for the run in an empty root); tests/integration/test_qemu_binfmt_info.py runs them
for real.
"""
import platform

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import elf
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt.usable import BinfmtHost

from test_binfmt_manager import FakeModule


class Report(BinfmtHost):
    arm_rc = elf.PROBE_EXIT_CODE
    root_rc = elf.PROBE_EXIT_CODE

    def run_probe(self, target, empty_root=False):
        if elf.probe_program(target) is None:
            return None, ""
        if empty_root:
            return self.root_rc, "chroot: failed to run command '/probe-%s': No such file or directory" % target
        return self.arm_rc, "[Errno 8] Exec format error" if self.arm_rc == -1 else ""


def entry_text(interpreter, flags="POF", enabled=True):
    return "%s\ninterpreter %s\nflags: %s\noffset 0\nmagic 7f454c46\nmask ffffffff\n" % (
        "enabled" if enabled else "disabled", interpreter, flags)


@pytest.fixture(autouse=True)
def as_root(monkeypatch):
    """The report runs the empty-root test only as root: these tests are root unless one says otherwise, whoever runs
    them (make test-unit needs no root)."""
    monkeypatch.setattr("os.geteuid", lambda: 0)


@pytest.fixture
def host(binfmt_host, static_elf):
    (binfmt_host / "qemu-static").write_bytes(static_elf)
    return binfmt_host


def report(host, platforms, machine="x86_64", arm_rc=elf.PROBE_EXIT_CODE, containers=True,
           root_rc=elf.PROBE_EXIT_CODE):
    module = FakeModule(host, platforms=platforms, containers=containers)
    reporter = Report(module, proc_dir=str(host / "binfmt_misc"))
    reporter.machine, reporter.arm_rc, reporter.root_rc = machine, arm_rc, root_rc
    return reporter.report()


def test_native_and_usable(host):
    (host / "binfmt_misc" / "qemu-s390x").write_text(entry_text(host / "qemu-static"))
    result = report(host, ["linux/amd64", "linux/386", "linux/s390x"])
    assert result["usable"] and result["problems"] == []
    native = [r["native"] for r in result["platforms"]]
    assert native == [True, True, False] and result["platforms"][2]["entry"] == "qemu-s390x"
    assert [r["source"] for r in result["platforms"]] == ["cpu", "cpu", "binfmt_misc"]
    assert result["platforms"][2]["evidence"] == ("read from %s/qemu-s390x; a s390x test program ran through it (exit "
                                                  "42), also in an empty root" % (host / "binfmt_misc"))


@pytest.mark.parametrize("text, words", [
    (None, "there is no binfmt_misc entry"),
    ("disabled", "binfmt_misc entry qemu-s390x is disabled"),
    ("P", "entry qemu-s390x lacks flag F (fix binary)"),
    ("missing-interpreter", "does not exist"),
    ("dynamic", "is dynamically linked: the kernel opens it at registration, but its loader /lib"),
    ("script", "is a script (#!/bin/sh): the kernel opens the script at registration, but its own interpreter "
               "/bin/sh, and what the script runs, are looked up inside each container, so it cannot run there"),
])
def test_each_missing_property_is_named(host, text, words):
    interpreter = host / "qemu-static"
    if text == "dynamic":
        interpreter = host / "dynamic"
        interpreter.write_bytes(open("/bin/true", "rb").read())
    if text == "script":
        interpreter = host / "wrapper"
        interpreter.write_text('#!/bin/sh\nexec /usr/bin/qemu-s390x-static "$@"\n')
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


def test_unbuildable(host):
    assert "no QEMU emulator exists for linux/wasm" in report(host, ["linux/wasm"])["problems"][0]


def test_an_entry_that_reads_usable_but_does_not_run_is_refused(host):
    (host / "binfmt_misc" / "qemu-s390x").write_text(entry_text(host / "qemu-static"))
    found = report(host, ["linux/s390x"], arm_rc=1)["platforms"][0]
    assert found["problems"] == ["entry qemu-s390x reads as usable, but a s390x test program run through it ended "
                                 "with 1 instead of exiting with 42 ()"] and found["ran"] is False
    found = report(host, ["linux/s390x"], root_rc=127)["platforms"][0]
    assert "does not run in an empty root, as in a container" in found["problems"][0]
    assert (found["ran"], found["ran_in_empty_root"], found["source"]) == (True, False, "binfmt_misc")


# binfmt_misc not mounted on binfmt_dir (unshare -m, some containers): the kernel's entries still run, so what runs
# decides. (host run exit code, empty-root exit code, platform) -> (usable, source, words)
NOT_MOUNTED = {
    "runs-also-in-containers": ((42, 42, "linux/s390x"), (True, "test_program", "ran through the kernel (exit 42), "
                                "also in an empty root (as in a container without the emulator)")),
    "runs-but-not-in-containers": ((42, 127, "linux/s390x"), (False, "test_program", "runs through the kernel here, "
                                   "but not in an empty root, as in a container without the emulator (chroot: failed")),
    "nothing-runs": ((-1, 42, "linux/s390x"), (False, "test_program", "and a s390x test program does not run here "
                     "([Errno 8] Exec format error): no emulator for s390x is registered in this host's kernel")),
    "no-test-program": ((42, 42, "linux/mips64le"), (False, "none", "and there is no built-in test program for "
                        "mips64el to run instead")),
}


@pytest.mark.parametrize("case", sorted(NOT_MOUNTED))
def test_not_mounted_here_is_decided_by_what_runs(host, case):
    (host_rc, root_rc, platform), (usable, source, words) = NOT_MOUNTED[case]
    (host / "binfmt_misc" / "register").unlink()
    result = report(host, [platform], arm_rc=host_rc, root_rc=root_rc)
    found = result["platforms"][0]
    assert (result["usable"], found["source"]) == (usable, source), found
    assert found["evidence"].startswith("binfmt_misc is not mounted on %s in this task's mount namespace, so entry "
                                        % (host / "binfmt_misc")), found
    assert words in (found["evidence"] if usable else found["problems"][0]), found
    assert "binfmt_misc is not mounted" not in "".join(found["problems"]) or not usable


def test_binaries_are_matched_as_the_kernel_matches_them(host):
    from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import hosts
    for target in elf.probe_targets():
        assert hosts.elf_target(elf.probe_program(target)) == target
    if platform.machine() == "x86_64":
        assert hosts.elf_target(open("/bin/true", "rb").read(64)) == "x86_64"
    assert hosts.elf_target(b"#!/bin/sh\n") is None
    probe = host / "probe"
    probe.write_bytes(elf.probe_program("s390x"))
    module = FakeModule(host, platforms=[], containers=True, binaries=[str(probe), str(host / "none")])
    result = Report(module, proc_dir=str(host / "binfmt_misc")).report()
    assert result["binaries"] == {str(probe): "s390x", str(host / "none"): None}


def test_not_mounted_and_not_root_says_the_container_test_was_not_made(host, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    (host / "binfmt_misc" / "register").unlink()
    found = report(host, ["linux/s390x"])["platforms"][0]
    assert (found["usable"], found["ran"], found["ran_in_empty_root"]) == (True, True, None), found
    assert found["evidence"].endswith("; whether it runs in containers (flag F, a static interpreter) is unchecked: "
                                      "that test needs root"), found
