"""qemu_binfmt's transactions, host facts and boot configuration on a stand-in kernel.

``KernelDir`` gives the stand-in binfmt_misc directory the kernel's behaviour (a line written to
``register`` makes an entry file; ``-1``/``0``/``1`` remove, disable, enable), and the test
program's exit code is chosen per target, so a failed verification can be forced. The real kernel
runs the same paths in tests/integration/test_qemu_binfmt.py.
"""
import os

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import elf
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries as binfmt
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import hosts
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import persist
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt.manager import BinfmtTaskError, QemuBinfmt

from test_binfmt_manager import FakeModule

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="QemuBinfmt refuses to plan without root")


class KernelDir(QemuBinfmt):
    """QemuBinfmt over a directory that behaves like binfmt_misc."""

    probe_rc = {}

    def write_proc(self, name, text):
        path = os.path.join(self.proc_dir, name)
        if name == "register":
            entry = binfmt.parse_register_line(text)
            with open(os.path.join(self.proc_dir, entry["name"]), "w") as handle:
                handle.write("enabled\ninterpreter %s\nflags: %s\noffset %d\nmagic %s\nmask %s\n" % (
                    entry["interpreter"], entry["flags"], entry["offset"], entry["magic"], entry["mask"]))
        elif text == "-1":
            os.unlink(path)
        else:
            with open(path) as handle:
                lines = handle.read().splitlines()
            lines[0] = "enabled" if text == "1" else "disabled"
            with open(path, "w") as handle:
                handle.write("\n".join(lines) + "\n")

    def run_probe(self, target):
        return self.probe_rc.get(target, elf.PROBE_EXIT_CODE), "probe output"


@pytest.fixture
def host(binfmt_host, static_elf):
    (binfmt_host / "bin").mkdir()
    for target in ("aarch64", "s390x", "arm", "x86_64", "i386"):
        emulator = binfmt_host / "bin" / ("qemu-%s-static" % target)
        emulator.write_bytes(static_elf)
        emulator.chmod(0o755)
    (binfmt_host / "vendor").mkdir()
    (binfmt_host / "binfmts").mkdir()
    return binfmt_host


def manager(host, machine="x86_64", probe_rc=None, check_mode=False, **params):
    module = FakeModule(host, check_mode=check_mode, **params)
    mgr = KernelDir(module, proc_dir=str(host / "binfmt_misc"), conf_dir=str(host / "binfmt.d"))
    mgr.boot.vendor_dirs = (str(host / "vendor"),)
    mgr.boot.binfmt_support_dir = str(host / "binfmts")
    mgr.machine = machine
    mgr.probe_rc = probe_rc or {}
    return mgr, module


def kernel(host, name):
    path = host / "binfmt_misc" / name
    return path.read_text() if path.exists() else None


def register_old(host, target="aarch64", flags="P"):
    mgr, _module = manager(host, architectures=[target], flags=flags, persistent=False)
    mgr.run()
    return kernel(host, "qemu-" + target)


def test_failed_verification_restores_the_replaced_entry(host):
    before = register_old(host)
    mgr, _module = manager(host, verify=True, probe_rc={"aarch64": 1})
    with pytest.raises(BinfmtTaskError) as failed:
        mgr.run()
    assert kernel(host, "qemu-aarch64") == before
    assert "Rolled back: qemu-aarch64: restored the previous entry" in str(failed.value)
    assert not (host / "binfmt.d").exists()  # the persistent file is written only after verification


def test_failed_verification_removes_a_new_entry_and_undoes_the_others(host):
    mgr, _module = manager(host, architectures=["aarch64", "s390x"], verify=True, probe_rc={"s390x": 139})
    with pytest.raises(BinfmtTaskError) as failed:
        mgr.run()
    assert kernel(host, "qemu-aarch64") is None and kernel(host, "qemu-s390x") is None
    msg = str(failed.value)
    assert msg.startswith("Emulation of s390x does not work")
    assert "qemu-s390x: removed the new entry" in msg and "qemu-aarch64: removed the new entry" in msg


def test_a_disabled_entry_comes_back_disabled(host):
    register_old(host)
    manager(host, architectures=["aarch64"], flags="P", persistent=False)[0].write_proc("qemu-aarch64", "0")
    before = kernel(host, "qemu-aarch64")
    mgr, _module = manager(host, verify=True, probe_rc={"aarch64": 1})
    with pytest.raises(BinfmtTaskError):
        mgr.run()
    assert kernel(host, "qemu-aarch64") == before and before.startswith("disabled")


def test_verified_run_writes_the_persistent_file(host):
    mgr, _module = manager(host, verify=True)
    result = mgr.run()
    assert result["rolled_back"] == [] and result["entries"]["aarch64"]["verified"] is True
    assert (host / "binfmt.d" / "qemu-aarch64.conf").read_text().startswith("# Managed by Ansible")


def test_conflict_fail_changes_nothing_even_after_other_targets(host):
    register_old(host, "s390x")
    before = kernel(host, "qemu-s390x")
    mgr, _module = manager(host, architectures=["aarch64", "s390x"], conflict="fail")
    with pytest.raises(BinfmtTaskError) as failed:
        mgr.run()
    assert "Nothing was changed" in str(failed.value)
    assert kernel(host, "qemu-aarch64") is None and kernel(host, "qemu-s390x") == before


@pytest.mark.parametrize("machine, name, target", [
    ("x86_64", "amd64", "x86_64"), ("x86_64", "linux/386", "i386"), ("i686", "386", "i386"),
    ("aarch64", "linux/arm64", "aarch64"), ("armv7l", "linux/arm/v7", "arm"),
    ("ppc64le", "ppc64el", "ppc64le"), ("ppc64el", "linux/ppc64le", "ppc64le"),
])
def test_native_architectures_are_skipped_with_the_reason(host, machine, name, target):
    mgr, _module = manager(host, machine=machine, architectures=[name, "s390x"])
    result = mgr.run()
    assert set(result["entries"]) == {"s390x"}
    assert "runs natively" in result["native"][name] or "natively" in result["native"][name]
    assert kernel(host, "qemu-" + target) is None


def test_aarch64_with_32bit_arm_skips_arm_and_without_registers_it(host):
    # Simulated aarch64 hosts: the arm test program's exit code stands for the CPU's AArch32 support.
    with_aarch32, _module = manager(host, machine="aarch64", architectures=["linux/arm64", "linux/arm/v7", "s390x"])
    result = with_aarch32.run()
    assert sorted(result["native"]) == ["linux/arm/v7", "linux/arm64"] and set(result["entries"]) == {"s390x"}
    assert "aarch64 host runs arm binaries natively" in result["native"]["linux/arm/v7"]
    without, _module = manager(host, machine="aarch64", architectures=["linux/arm/v7"], probe_rc={"arm": -1})
    result = without.run()
    assert result["native"] == {} and result["entries"]["arm"]["changes"] == ["missing"]


def test_armv7_host_emulates_arm64(host):
    mgr, _module = manager(host, machine="armv7l", architectures=["linux/arm64", "linux/arm/v7"])
    result = mgr.run()
    assert set(result["entries"]) == {"aarch64"} and list(result["native"]) == ["linux/arm/v7"]


def test_host_facts_map_to_targets():
    assert hosts.host_target("armv7l") == "arm" and hosts.host_target("i686") == "i386"
    assert hosts.host_target("ppc64el") == "ppc64le" and hosts.host_target("sparc99") is None
    assert hosts.native_targets("x86_64") == ["x86_64", "i386"]
    assert hosts.native_targets("aarch64") == ["aarch64", "arm"]


def test_absent_persistent_masks_the_distribution_file(host):
    (host / "vendor" / "qemu-aarch64.conf").write_text(":qemu-aarch64:M::\\x7f:\\xff:/x:F\n")
    manager(host)[0].run()
    mgr, module = manager(host, state="absent")
    result = mgr.run()
    item = result["entries"]["aarch64"]
    conf = host / "binfmt.d" / "qemu-aarch64.conf"
    assert os.readlink(str(conf)) == persist.MASK_TARGET and item["masked"] and item["returns_at_boot"] == []
    assert result["diff"][-1]["after"] == "-> /dev/null" and module.warnings == []
    again, _module = manager(host, state="absent")
    assert again.run()["changed"] is False
    # Registering again replaces the mask by the managed file.
    result = manager(host)[0].run()
    assert result["changed"] and not os.path.islink(str(conf)) and result["entries"]["aarch64"]["persistent"]


def test_absent_reports_what_comes_back_at_boot(host):
    (host / "vendor" / "qemu-aarch64.conf").write_text(":qemu-aarch64:M::\\x7f:\\xff:/x:F\n")
    (host / "binfmts" / "qemu-s390x").write_text("qemu-user-static\n")
    mgr, module = manager(host, architectures=["aarch64", "s390x"], state="absent", persistent=False)
    result = mgr.run()
    assert result["entries"]["aarch64"]["returns_at_boot"] == [str(host / "vendor" / "qemu-aarch64.conf")]
    assert result["entries"]["s390x"]["returns_at_boot"] == [str(host / "binfmts" / "qemu-s390x")]
    assert len(module.warnings) == 2 and "register" in module.warnings[0]
    persistent, module = manager(host, architectures=["s390x"], state="absent")
    item = persistent.run()["entries"]["s390x"]
    assert item["returns_at_boot"] == [str(host / "binfmts" / "qemu-s390x")] and not item["masked"]
    assert "binfmt-support" in module.warnings[0]


def test_check_mode_masks_nothing(host):
    (host / "vendor" / "qemu-aarch64.conf").write_text(":qemu-aarch64:M::\\x7f:\\xff:/x:F\n")
    result = manager(host, state="absent", check_mode=True)[0].run()
    assert result["changed"] and result["entries"]["aarch64"]["masked"]
    assert not os.path.lexists(str(host / "binfmt.d" / "qemu-aarch64.conf"))
