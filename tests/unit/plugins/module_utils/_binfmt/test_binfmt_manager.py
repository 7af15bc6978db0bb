"""qemu_binfmt's host logic on a stand-in binfmt_misc directory (plain files): plan, check mode, read-back.

The kernel's behaviour (an entry file appears when a line is written to ``register``) is not
simulated: a real write is therefore caught by the read-back check, which is what these tests use.
The real kernel is exercised by tests/integration/test_qemu_binfmt.py.
"""
import os

import pytest

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries as binfmt
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt.manager import BinfmtTaskError, QemuBinfmt
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt.usable import BinfmtHost

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="QemuBinfmt refuses to plan without root")


class FakeModule:
    def __init__(self, tmp_path, check_mode=False, **params):
        self.params = dict(architectures=["aarch64"], state="present", flags="F", persistent=True,
                           conflict="replace", emulator_dir=str(tmp_path / "bin"), name_prefix="qemu-",
                           verify=False)
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = True
        self.tmpdir = str(tmp_path)
        self.warnings = []

    # No fail_json: _binfmt raises BinfmtTaskError and only the module fails.

    def warn(self, text):
        self.warnings.append(text)

    def get_bin_path(self, name, required=False):
        return None

    def atomic_move(self, source, destination):
        os.rename(source, destination)


@pytest.fixture
def host(binfmt_host, static_elf):
    (binfmt_host / "bin").mkdir()
    emulator = binfmt_host / "bin" / "qemu-aarch64-static"
    emulator.write_bytes(static_elf)
    emulator.chmod(0o755)
    return binfmt_host


def manager(host, **options):
    module = FakeModule(host, **options)
    return QemuBinfmt(module, proc_dir=str(host / "binfmt_misc"), conf_dir=str(host / "binfmt.d")), module


def test_check_mode_plans_the_entry_and_writes_nothing(host):
    qemu, _module = manager(host, check_mode=True)
    result = qemu.run()
    assert result["changed"] is True
    entry = result["entries"]["aarch64"]
    assert entry["interpreter"] == str(host / "bin" / "qemu-aarch64-static") and entry["flags"] == "F"
    assert entry["changes"] and entry["persistent"] is True
    expected = ["binfmt_misc/qemu-aarch64", str(host / "binfmt.d" / "qemu-aarch64.conf")]
    assert [d["before_header"] for d in result["diff"]] == expected
    assert (host / "binfmt_misc" / "register").read_text() == ""
    assert not (host / "binfmt.d").exists()


def test_a_registration_the_kernel_did_not_keep_fails_before_anything_is_persisted(host):
    qemu, _module = manager(host)
    with pytest.raises(BinfmtTaskError, match="The kernel did not keep entry qemu-aarch64 as registered"):
        qemu.run()
    assert (host / "binfmt_misc" / "register").read_text() == binfmt.register_line(
        binfmt.desired_entry("aarch64", str(host / "bin" / "qemu-aarch64-static"), "F"))
    assert not (host / "binfmt.d").exists()


def test_an_entry_already_as_wanted_is_unchanged(host):
    wanted = binfmt.desired_entry("aarch64", str(host / "bin" / "qemu-aarch64-static"), "F")
    (host / "binfmt_misc" / "qemu-aarch64").write_text(
        "enabled\ninterpreter %s\nflags: F\noffset 0\nmagic %s\nmask %s\n"
        % (wanted["interpreter"], wanted["magic"], wanted["mask"]))
    (host / "binfmt.d").mkdir()
    (host / "binfmt.d" / "qemu-aarch64.conf").write_text(binfmt.persistent_content(wanted))
    qemu, _module = manager(host)
    result = qemu.run()
    assert result["changed"] is False and result["entries"]["aarch64"]["changes"] == []


def test_a_missing_emulator_is_refused_before_the_kernel_is_touched(host):
    (host / "bin" / "qemu-aarch64-static").unlink()
    qemu, _module = manager(host)
    with pytest.raises(binfmt.BinfmtError, match="The emulator for aarch64 is not installed"):
        qemu.wanted_entry("aarch64")
    with pytest.raises(BinfmtTaskError, match="The emulator for aarch64 is not installed"):
        qemu.run()
    assert (host / "binfmt_misc" / "register").read_text() == ""


def test_the_writer_extends_the_read_only_host_and_never_fails_the_module(host):
    """QemuBinfmt is BinfmtHost plus the writes; failures are BinfmtTaskError (FakeModule has no fail_json)."""
    assert issubclass(QemuBinfmt, BinfmtHost)
    assert not [name for name in vars(BinfmtHost) if name.startswith(("write", "apply", "sync", "rollback", "ensure"))]
    (host / "bin" / "qemu-aarch64-static").unlink()
    with pytest.raises(BinfmtTaskError) as failed:
        manager(host)[0].run()
    assert "The emulator for aarch64 is not installed" in str(failed.value) and failed.value.result == {}


@pytest.mark.parametrize("kind, words", [
    ("script", "is a script (#!/bin/sh): the kernel opens the script at registration, but its own interpreter /bin/sh, "
               "and what the script runs, are looked up inside each container, so it cannot run there."),
    ("dynamic", "is dynamically linked: the kernel opens it at registration, but its loader /lib"),
])
def test_an_emulator_containers_cannot_run_is_refused_with_flag_f(host, kind, words):
    emulator = host / "bin" / "qemu-aarch64-static"
    if kind == "script":
        emulator.write_text('#!/bin/sh\nexec /usr/bin/qemu-aarch64-static "$@"\n')
    else:
        emulator.write_bytes(open("/bin/true", "rb").read())
    with pytest.raises(BinfmtTaskError) as failed:
        manager(host, check_mode=True)[0].run()
    message = str(failed.value)
    assert message.startswith("The emulator for aarch64 cannot serve containers, which flag F is for: %s " % emulator)
    assert words in message and message.endswith("Install qemu-user-static (statically linked emulators), or leave F "
                                                 "out of flags.")
    # Without F the kernel looks the emulator up by path at each run: a script or a dynamic emulator works outside
    # containers, so it is registered, with the warning that containers cannot use it.
    qemu, module = manager(host, check_mode=True, flags="P")
    assert qemu.run()["entries"]["aarch64"]["flags"] == "P"
    assert len(module.warnings) == 1 and "qemu-aarch64 is registered without flag F" in module.warnings[0]


def test_entries_without_flag_f_get_one_warning_naming_them(host):
    for target in ("arm", "s390x"):
        (host / "bin" / ("qemu-%s-static" % target)).write_bytes((host / "bin" / "qemu-aarch64-static").read_bytes())
        (host / "bin" / ("qemu-%s-static" % target)).chmod(0o755)
    qemu, module = manager(host, check_mode=True, flags="", architectures=["aarch64", "arm", "s390x"])
    qemu.run()
    assert module.warnings == [
        "binfmt_misc entries qemu-aarch64, qemu-arm, qemu-s390x are registered without flag F (fix binary): the kernel "
        "looks for the emulator by its path inside each container and chroot, where it does not exist, so containers "
        "(docker run --platform, docker build) cannot use them; add F to flags for container builds."]
    qemu, module = manager(host, check_mode=True, flags="F")
    qemu.run()
    assert module.warnings == []
