"""qemu_binfmt against the real kernel: registrations, foreign busybox, errors.

Needs root, binfmt_misc and Debian's qemu-user-static. The binfmt_misc entries and
/etc/binfmt.d files found at the start are restored at the end of the module.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness import foreign_binaries as fb

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="binfmt_misc registration needs root"),
    pytest.mark.skipif(not Path("/usr/bin/qemu-aarch64-static").exists(),
                       reason="Debian package qemu-user-static is not installed"),
    pytest.mark.usefixtures("binfmt_state"),  # conftest: holds the binfmt_misc lock, restores the kernel's table
]

TARGETS = ("aarch64", "arm", "s390x", "ppc64le")
BINFMT = Path("/proc/sys/fs/binfmt_misc")


@pytest.fixture(scope="module")
def busyboxes():
    return fb.fetch_busybox(TARGETS)


def play(args: dict, name="binfmt", become=False) -> str:
    # JSON is YAML: the module arguments go in verbatim, no templating involved.
    return f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: {name}
      archfleet.multiarch.qemu_binfmt: {json.dumps(args)}
"""


def run_busybox(path: Path, *args):
    """(rc, output) of running a foreign busybox through the kernel; rc None = not executable."""
    try:
        proc = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return None, str(exc)
    return proc.returncode, proc.stdout + proc.stderr


def entry(name: str):
    path = BINFMT / name
    return path.read_text() if path.exists() else None


def failure_msg(run, task="binfmt") -> str:
    assert run.rc != 0, run.output
    return run.result(task)["msg"]


def test_register_run_busybox_then_remove(playbook, busyboxes):
    for target in TARGETS:
        fb.remove_entry("qemu-" + target)
        assert run_busybox(busyboxes[target], "true")[0] is None
    args = {"architectures": ["linux/arm64", "arm/v7", "s390x", "ppc64le"], "persistent": True}

    first = playbook(play(args), diff=True)
    assert first.rc == 0, first.output
    result = first.result("binfmt")
    assert result["changed"]
    assert result["requested"] == {"linux/arm64": "aarch64", "arm/v7": "arm",
                                   "s390x": "s390x", "ppc64le": "ppc64le"}
    for target in TARGETS:
        item = result["entries"][target]
        assert item["state"] == "present" and item["enabled"] and item["persistent"]
        assert item["changes"] == ["missing"]
        assert "F" in item["flags"]
        rc, out = run_busybox(busyboxes[target], "uname", "-m")
        assert (rc, out.strip()) == (0, fb.uname_of(target)), out
        # The kernel's own view matches what the module reports.
        text = entry("qemu-" + target)
        assert f"interpreter {item['interpreter']}" in text and f"magic {item['magic']}" in text
        conf = Path(f"/etc/binfmt.d/qemu-{target}.conf").read_text()
        assert f":qemu-{target}:M::" in conf and conf.rstrip().endswith(":" + item["flags"])
    assert "binfmt_misc/qemu-aarch64" in first.output  # diff output names the entry

    second = playbook(play(args))
    assert second.rc == 0 and second.changed_total() == 0, second.output

    removed = playbook(play(dict(args, state="absent")))
    assert removed.rc == 0 and removed.result("binfmt")["changed"], removed.output
    for target in TARGETS:
        assert entry("qemu-" + target) is None
        # Debian's /usr/lib/binfmt.d/qemu-<target>.conf is masked, so the removal outlasts a boot.
        assert os.readlink(f"/etc/binfmt.d/qemu-{target}.conf") == "/dev/null"
        assert removed.result("binfmt")["entries"][target]["masked"]
        rc, out = run_busybox(busyboxes[target], "uname", "-m")
        assert rc is None and "Exec format error" in out, out
    again = playbook(play(dict(args, state="absent")))
    assert again.rc == 0 and again.changed_total() == 0, again.output


def test_check_mode_registers_nothing(playbook):
    fb.remove_entry("qemu-s390x")
    Path("/etc/binfmt.d/qemu-s390x.conf").unlink(missing_ok=True)  # a mask left by an earlier test
    run = playbook(play({"architectures": ["s390x"], "persistent": True}), check=True, diff=True)
    assert run.rc == 0, run.output
    result = run.result("binfmt")
    assert result["changed"] and result["entries"]["s390x"]["changes"] == ["missing"]
    assert entry("qemu-s390x") is None
    assert not Path("/etc/binfmt.d/qemu-s390x.conf").exists()
    assert "+interpreter: /usr/libexec/qemu-binfmt/s390x-binfmt-P" in run.output


def test_only_differences_are_changed_and_others_untouched(playbook):
    playbook(play({"architectures": ["aarch64", "riscv64"]}))
    others = {p.name: p.read_text() for p in BINFMT.iterdir()
              if p.name not in ("register", "status", "qemu-aarch64", "qemu-riscv64")}
    (BINFMT / "qemu-riscv64").write_text("0")  # disabled: only needs enabling
    run = playbook(play({"architectures": ["aarch64", "riscv64"], "flags": "FOP"}))
    assert run.rc == 0, run.output
    entries = run.result("binfmt")["entries"]
    assert entries["aarch64"]["changes"] == [] and entries["riscv64"]["changes"] == ["enabled"]
    assert entry("qemu-riscv64").startswith("enabled")
    assert others == {p.name: p.read_text() for p in BINFMT.iterdir()
                      if p.name not in ("register", "status", "qemu-aarch64", "qemu-riscv64")}
    assert (BINFMT / "status").read_text().strip() == "enabled"


def test_conflict_fail_and_replace(playbook):
    magic = r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
    mask = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
    fb.remove_entry("qemu-aarch64")
    fb.register(f":qemu-aarch64:M::{magic}:{mask}:/usr/bin/qemu-aarch64-static:F")
    before = entry("qemu-aarch64")

    run = playbook(play({"architectures": ["arm64"], "conflict": "fail"}))
    msg = failure_msg(run)
    assert "qemu-aarch64 already exists with a different interpreter" in msg and "conflict=replace" in msg
    assert entry("qemu-aarch64") == before

    run = playbook(play({"architectures": ["arm64"]}), diff=True)
    assert run.rc == 0, run.output
    item = run.result("binfmt")["entries"]["aarch64"]
    assert item["changes"] == ["interpreter", "flags"]
    assert item["interpreter"] == "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    assert "interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P" in entry("qemu-aarch64")
    assert "-interpreter: /usr/bin/qemu-aarch64-static" in run.output


def test_emulator_dir_with_custom_flags_and_verify(playbook, tmp_path):
    (tmp_path / "qemu-riscv64-static").symlink_to("/usr/bin/qemu-riscv64-static")
    args = {"architectures": ["riscv64"], "emulator_dir": str(tmp_path), "flags": "F", "verify": True}
    run = playbook(play(args))
    assert run.rc == 0, run.output
    item = run.result("binfmt")["entries"]["riscv64"]
    assert item["interpreter"] == str(tmp_path / "qemu-riscv64-static")
    assert item["flags"] == "F" and item["verified"] is True
    assert "flags: F" in entry("qemu-riscv64")
    assert playbook(play(args)).changed_total() == 0


def test_all_skips_the_host_family(playbook):
    run = playbook(play({"architectures": ["all"]}), check=True)
    assert run.rc == 0, run.output
    targets = set(run.result("binfmt")["entries"])
    assert {"aarch64", "arm", "s390x", "ppc64le", "riscv64", "mips64el"} <= targets
    assert not targets & {"x86_64", "i386"}


@pytest.mark.parametrize("arch", ["amd64", "x86_64", "linux/386"])
def test_skips_the_native_architecture_with_the_reason(playbook, arch):
    # The host's own architecture and what its CPU runs (386 on x86-64) are skipped, not refused:
    # build hosts of every architecture work with the same list of platforms.
    # The entries are listed, not captured: capture() would wait for the lock the binfmt_state fixture holds.
    before = {path.name for path in BINFMT.iterdir()}
    run = playbook(play({"architectures": [arch, "s390x"]}))
    assert run.rc == 0, run.output
    result = run.result("binfmt")
    assert set(result["entries"]) == {"s390x"}
    assert "natively" in result["native"][arch] and "no emulator is needed" in result["native"][arch]
    assert not {path.name for path in BINFMT.iterdir()} & {"qemu-x86_64", "qemu-i386"} - before


def test_i686_host_skips_386_and_emulates_amd64(playbook, tmp_path):
    # A real 32-bit personality: `setarch i686` makes uname -m (and so the module) report i686.
    extra = interpreter_wrapper(tmp_path, f'exec setarch i686 {sys.executable} "$@"')
    fb.remove_entry("qemu-x86_64")
    run = playbook(play({"architectures": ["linux/386", "linux/amd64"]}), extra_vars=extra,
                   env={"ANSIBLE_PIPELINING": "true"}, check=True)
    assert run.rc == 0, run.output
    result = run.result("binfmt")
    assert list(result["native"]) == ["linux/386"] and "i686" in result["native"]["linux/386"]
    assert result["entries"]["x86_64"]["changes"] == ["missing"]


def test_dynamic_emulator_refused_with_flag_f(playbook, tmp_path):
    dynamic = tmp_path / "qemu-aarch64"
    dynamic.write_bytes(Path("/bin/true").read_bytes())
    dynamic.chmod(0o755)
    msg = failure_msg(playbook(play({"architectures": ["aarch64"], "emulator_dir": str(tmp_path)})))
    assert msg.startswith(f"The emulator for aarch64 cannot serve containers, which flag F is for: {dynamic} is "
                          "dynamically linked: the kernel opens it at registration, but its loader /lib"), msg


def interpreter_wrapper(tmp_path: Path, script: str) -> dict:
    """Extra vars that run the module through ``script`` (sh; "$@" is the python command).

    Pipelining feeds the module on stdin, so the wrapper may change user or namespaces.
    """
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text("#!/bin/sh\n" + script + "\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    tmp_path.chmod(0o755)
    return {"ansible_python_interpreter": str(wrapper)}


def test_not_root(playbook, tmp_path):
    # /usr/bin/python3 is readable by nobody; the payload carries ansible itself.
    extra = interpreter_wrapper(
        tmp_path, 'exec setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 "$@"')
    run = playbook(play({"architectures": ["aarch64"]}), extra_vars=extra,
                   env={"ANSIBLE_PIPELINING": "true"})
    msg = failure_msg(run)
    assert msg.startswith("qemu_binfmt must run as root (use become: true)") and "uid 65534" in msg


def test_mounts_binfmt_misc_when_unmounted(playbook, tmp_path):
    playbook(play({"architectures": ["aarch64"]}))
    extra = interpreter_wrapper(
        tmp_path, f'exec unshare --mount --propagation private sh -c '
                  f'\'umount {BINFMT} && test ! -e {BINFMT}/register && exec "$@"\' sh {sys.executable} "$@"')
    run = playbook(play({"architectures": ["aarch64"]}), extra_vars=extra,
                   env={"ANSIBLE_PIPELINING": "true"})
    assert run.rc == 0, run.output
    # Only the mount was missing: the entry itself already matched.
    result = run.result("binfmt")
    assert result["changed"] and result["entries"]["aarch64"]["changes"] == []


def test_binfmt_misc_unavailable(playbook, tmp_path):
    extra = interpreter_wrapper(
        tmp_path, f'exec unshare --mount --propagation private sh -c '
                  f'\'mount -t tmpfs none /proc/sys/fs && exec "$@"\' sh {sys.executable} "$@"')
    run = playbook(play({"architectures": ["aarch64"]}), extra_vars=extra,
                   env={"ANSIBLE_PIPELINING": "true"})
    msg = failure_msg(run)
    assert msg.startswith("binfmt_misc is unavailable: /proc/sys/fs/binfmt_misc does not exist"), msg


def test_verify_fails_clearly_when_the_emulator_does_not_emulate(playbook, tmp_path):
    # A static binary that is not QEMU: registration works, emulation does not.
    (tmp_path / "qemu-riscv64-static").symlink_to("/bin/busybox")
    args = {"architectures": ["riscv64"], "emulator_dir": str(tmp_path), "flags": "F", "verify": True}
    msg = failure_msg(playbook(play(args)))
    assert msg.startswith("Emulation of riscv64 does not work: a riscv64 test program run through "
                          "binfmt_misc entry qemu-riscv64 ended with"), msg


def broken_emulator(tmp_path: Path, target: str) -> dict:
    """Module options that register a static binary that is not QEMU as the emulator of ``target``."""
    (tmp_path / f"qemu-{target}-static").symlink_to("/bin/busybox")
    return {"architectures": [target], "emulator_dir": str(tmp_path), "flags": "F", "verify": True,
            "persistent": True}


def test_failed_verification_restores_the_working_entry(playbook, tmp_path, busyboxes):
    fb.remove_entry("qemu-aarch64")
    assert playbook(play({"architectures": ["aarch64"], "persistent": True})).rc == 0
    before, conf = entry("qemu-aarch64"), Path("/etc/binfmt.d/qemu-aarch64.conf").read_text()
    assert run_busybox(busyboxes["aarch64"], "true")[0] == 0

    msg = failure_msg(playbook(play(broken_emulator(tmp_path, "aarch64"))))
    assert msg.startswith("Emulation of aarch64 does not work"), msg
    assert "Rolled back: qemu-aarch64: restored the previous entry (interpreter " \
           "/usr/libexec/qemu-binfmt/aarch64-binfmt-P, flags POF)" in msg
    # The working state is what it was: the kernel entry, its persistence file, and emulation itself.
    assert entry("qemu-aarch64") == before
    assert Path("/etc/binfmt.d/qemu-aarch64.conf").read_text() == conf
    rc, out = run_busybox(busyboxes["aarch64"], "uname", "-m")
    assert (rc, out.strip()) == (0, "aarch64"), out


def test_failed_verification_removes_a_new_entry_and_writes_no_file(playbook, tmp_path):
    fb.remove_entry("qemu-riscv64")
    Path("/etc/binfmt.d/qemu-riscv64.conf").unlink(missing_ok=True)
    run = playbook(play(broken_emulator(tmp_path, "riscv64")))
    assert "Rolled back: qemu-riscv64: removed the new entry" in failure_msg(run)
    assert run.result("binfmt")["rolled_back"] == ["qemu-riscv64: removed the new entry"]
    assert entry("qemu-riscv64") is None
    assert not Path("/etc/binfmt.d/qemu-riscv64.conf").exists()


def boot(name: str) -> None:
    """What the next boot registers for ``name``, after the reboot cleared the kernel's entries: the real
    systemd-binfmt applies ``name``.conf as found in /etc, /run, /usr/local/lib and /usr/lib/binfmt.d (the
    first wins; a symlink to /dev/null masks it). Without systemd (a minimal container) the same lookup
    is replayed here."""
    fb.remove_entry(name)
    if Path("/lib/systemd/systemd-binfmt").exists():
        subprocess.run(["/lib/systemd/systemd-binfmt", f"{name}.conf"], check=True)
        return
    for directory in ("/etc/binfmt.d", "/run/binfmt.d", "/usr/local/lib/binfmt.d", "/usr/lib/binfmt.d"):
        path = Path(directory) / f"{name}.conf"
        if path.is_symlink() or path.exists():
            for line in ([] if path.resolve() == Path("/dev/null") else path.read_text().splitlines()):
                if line.startswith(":"):
                    fb.register(line)
            return


def test_persistent_removal_stays_removed_after_boot(playbook, busyboxes):
    assert Path("/usr/lib/binfmt.d/qemu-aarch64.conf").exists()
    args = {"architectures": ["arm64"], "persistent": True}
    assert playbook(play(args)).rc == 0

    # Without persistence the distribution's file brings the entry back, and the result says so.
    run = playbook(play({"architectures": ["arm64"], "state": "absent"}))
    assert run.rc == 0, run.output
    item = run.result("binfmt")["entries"]["aarch64"]
    assert "/usr/lib/binfmt.d/qemu-aarch64.conf" in item["returns_at_boot"] and not item["masked"]
    assert "register it again at boot" in run.output or "registers it again at boot" in run.output
    boot("qemu-aarch64")
    assert entry("qemu-aarch64") is not None

    run = playbook(play(dict(args, state="absent")), diff=True)
    assert run.rc == 0, run.output
    item = run.result("binfmt")["entries"]["aarch64"]
    assert item["masked"] and entry("qemu-aarch64") is None
    assert os.readlink("/etc/binfmt.d/qemu-aarch64.conf") == "/dev/null"
    boot("qemu-aarch64")
    assert entry("qemu-aarch64") is None
    assert run_busybox(busyboxes["aarch64"], "true")[0] is None
    assert playbook(play(dict(args, state="absent"))).changed_total() == 0
    # binfmt-support's list cannot be masked from binfmt.d: the result names it, and its boot step
    # (update-binfmts --enable, after systemd-binfmt) does bring the entry back.
    support = Path("/var/lib/binfmts/qemu-aarch64")
    assert item["returns_at_boot"] == ([str(support)] if support.exists() else [])
    if support.exists() and Path("/usr/sbin/update-binfmts").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)
        assert entry("qemu-aarch64") is not None
        fb.remove_entry("qemu-aarch64")

    # Registering again replaces the mask by the managed file, which the boot applies.
    run = playbook(play(args))
    assert run.rc == 0 and run.result("binfmt")["entries"]["aarch64"]["persistent"], run.output
    assert not Path("/etc/binfmt.d/qemu-aarch64.conf").is_symlink()
    boot("qemu-aarch64")
    assert "interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P" in entry("qemu-aarch64")
