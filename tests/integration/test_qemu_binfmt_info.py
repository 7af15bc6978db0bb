"""The emulation checks against the real kernel: what they read, what runs, and what they refuse (issue 22, item 5).

* binfmt_misc not mounted in the task's mount namespace (the module run under ``unshare --mount`` with
  /proc/sys/fs/binfmt_misc unmounted): the kernel's entries still run, so qemu_binfmt_info decides by running the
  test program, through the kernel and chrooted into an empty directory (what a container without the emulator
  sees), and says so; only when nothing runs is the platform refused.
* An emulator that is a wrapper script, registered with F: the kernel opens the script, but its own interpreter is
  looked up inside the container, so it cannot run there. qemu_binfmt refuses to register it with F;
  qemu_binfmt_info reports it, and the run in an empty root shows it for real.
* Registering without F warns once, naming the entries; the chroot run shows containers cannot use them.
* Every target Debian's qemu-user-static installs is accepted by name (check mode: nothing written).

A dynamically linked qemu-user is not installed here (Debian's qemu-user package is not among the test packages):
that case is unit-tested against /bin/true (tests/unit/plugins/module_utils/_binfmt/test_binfmt_usable.py).
Needs root, binfmt_misc and Debian's qemu-user-static; holds the binfmt_misc lock and restores the table.
"""
from __future__ import annotations

import glob
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from harness import foreign_binaries as fb

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="binfmt_misc registration and chroot need root"),
    pytest.mark.skipif(not Path("/usr/bin/qemu-s390x-static").exists(),
                       reason="Debian package qemu-user-static is not installed"),
    pytest.mark.usefixtures("binfmt_state"),  # conftest: holds the binfmt_misc lock, restores the kernel's table
]

BINFMT = Path("/proc/sys/fs/binfmt_misc")
S390X_LINE = next(x for x in Path("/usr/lib/binfmt.d/qemu-s390x.conf").read_text().splitlines()
                  if x.startswith(":")) if Path("/usr/lib/binfmt.d/qemu-s390x.conf").exists() else None


def play(module: str, args: dict) -> str:
    return f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: check
      archfleet.multiarch.{module}: {json.dumps(args)}
"""


def unmounted_here(tmp_path: Path) -> dict:
    """Extra vars that run the module in a mount namespace of its own where binfmt_misc is unmounted (pipelining
    feeds the module on stdin, so the interpreter wrapper may change namespaces)."""
    wrapper = tmp_path / "python-unshared"
    wrapper.write_text("#!/bin/sh\n"
                       f"exec unshare --mount --propagation private sh -c 'umount {BINFMT} && test ! -e "
                       f"{BINFMT}/register && exec \"$@\"' sh {sys.executable} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return {"ansible_python_interpreter": str(wrapper)}


def info(playbook, tmp_path, platforms, unmounted=False) -> dict:
    run = playbook(play("qemu_binfmt_info", {"platforms": platforms}),
                   extra_vars=unmounted_here(tmp_path) if unmounted else None,
                   env={"ANSIBLE_PIPELINING": "true"})
    assert run.rc == 0, run.output
    return run.result("check")


def set_s390x(line_or_none) -> None:
    fb.remove_entry("qemu-s390x")
    if line_or_none:
        fb.register(line_or_none)


@pytest.fixture
def s390x_restored():
    yield
    set_s390x(None)
    fb.ensure_emulators(["s390x"])


def test_not_mounted_here_but_the_emulator_runs(playbook, tmp_path, s390x_restored):
    fb.ensure_emulators(["s390x"])
    result = info(playbook, tmp_path, ["linux/s390x", "linux/amd64"], unmounted=True)
    s390x, amd64 = result["platforms"]
    assert result["usable"] and result["problems"] == [], result
    assert (s390x["source"], s390x["ran"], s390x["ran_in_empty_root"]) == ("test_program", True, True), s390x
    assert s390x["evidence"] == (
        "binfmt_misc is not mounted on /proc/sys/fs/binfmt_misc in this task's mount namespace, so entry qemu-s390x "
        "cannot be read; a s390x test program ran through the kernel (exit 42), also in an empty root (as in a "
        "container without the emulator)")
    assert amd64["source"] == "cpu" and amd64["native"]
    # Where it is mounted the same entry is read, and the test program confirms it.
    mounted = info(playbook, tmp_path, ["linux/s390x"])["platforms"][0]
    assert (mounted["source"], mounted["ran"], mounted["ran_in_empty_root"], mounted["usable"]) == \
        ("binfmt_misc", True, True, True), mounted


def test_not_mounted_here_and_nothing_runs(playbook, tmp_path, s390x_restored):
    set_s390x(None)
    result = info(playbook, tmp_path, ["linux/s390x"], unmounted=True)
    s390x = result["platforms"][0]
    assert not result["usable"] and s390x["ran"] is False and s390x["source"] == "test_program", s390x
    assert s390x["problems"][0].startswith(
        "binfmt_misc is not mounted on /proc/sys/fs/binfmt_misc in this task's mount namespace, so entry qemu-s390x "
        "cannot be read, and a s390x test program does not run here ([Errno 8] Exec format error"), s390x
    # Mounted, the same state is simply read: there is no entry.
    mounted = info(playbook, tmp_path, ["linux/s390x"])["platforms"][0]
    assert mounted["problems"] == ["there is no binfmt_misc entry /proc/sys/fs/binfmt_misc/qemu-s390x"], mounted


def wrapper_script(tmp_path: Path, target: str) -> Path:
    script = tmp_path / f"qemu-{target}-static"
    script.write_text(f'#!/bin/sh\nexec /usr/bin/qemu-{target}-static "$@"\n')
    script.chmod(0o755)
    tmp_path.chmod(0o755)
    return script


def test_a_wrapper_script_registered_with_f_cannot_run_in_containers(playbook, tmp_path, s390x_restored):
    script = wrapper_script(tmp_path, "s390x")
    # Registered by hand (qemu_binfmt refuses it, below): it runs on the host, where /bin/sh is.
    set_s390x(S390X_LINE.rsplit(":", 2)[0] + f":{script}:F")
    result = info(playbook, tmp_path, ["linux/s390x"])
    assert result["problems"] == [
        f"linux/s390x: its interpreter {script} is a script (#!/bin/sh): the kernel opens the script at registration, "
        "but its own interpreter /bin/sh, and what the script runs, are looked up inside each container, so it cannot "
        "run there (register a statically linked emulator: install qemu-user-static)"], result
    # What runs says the same where nothing can be read: fine on the host, not in an empty root.
    unmounted = info(playbook, tmp_path, ["linux/s390x"], unmounted=True)["platforms"][0]
    assert (unmounted["ran"], unmounted["ran_in_empty_root"], unmounted["usable"]) == (True, False, False), unmounted
    assert "runs through the kernel here, but not in an empty root, as in a container without the emulator" in \
        unmounted["problems"][0] and "the entry lacks flag F, or its interpreter is not a statically linked ELF" in \
        unmounted["problems"][0], unmounted
    # qemu_binfmt refuses to register it with F, and changes nothing.
    before = (BINFMT / "qemu-s390x").read_text()
    run = playbook(play("qemu_binfmt", {"architectures": ["s390x"], "emulator_dir": str(tmp_path), "flags": "F"}))
    assert run.rc != 0 and run.result("check")["msg"] == (
        f"The emulator for s390x cannot serve containers, which flag F is for: {script} is a script (#!/bin/sh): the "
        "kernel opens the script at registration, but its own interpreter /bin/sh, and what the script runs, are "
        "looked up inside each container, so it cannot run there. Install qemu-user-static (statically linked "
        "emulators), or leave F out of flags."), run.output
    assert (BINFMT / "qemu-s390x").read_text() == before


def warnings_about_flag_f(run) -> list:
    """The task's warnings about flag F, as Ansible printed them (one line each once re-joined)."""
    text = " ".join(run.output.split())
    return ["binfmt_misc " + part.split(" [WARNING]")[0].split(" PLAY RECAP")[0].split(" TASK [")[0].strip()
            for part in text.split("[WARNING]: binfmt_misc ")[1:] if "without flag F" in part]


def test_registering_without_f_warns_once_naming_the_entries(playbook, tmp_path, s390x_restored):
    set_s390x(None)
    fb.remove_entry("qemu-riscv64")
    try:
        run = playbook(play("qemu_binfmt", {"architectures": ["s390x", "riscv64"], "flags": "P", "verify": True}))
        assert run.rc == 0, run.output
        assert warnings_about_flag_f(run) == [
            "binfmt_misc entries qemu-s390x, qemu-riscv64 are registered without flag F (fix binary): the kernel looks "
            "for the emulator by its path inside each container and chroot, where it does not exist, so containers "
            "(docker run --platform, docker build) cannot use them; add F to flags for container builds."], run.output
        # And that is what runs: the test program runs on the host (verify: true passed), not in an empty root.
        found = info(playbook, tmp_path, ["linux/s390x"], unmounted=True)["platforms"][0]
        assert (found["ran"], found["ran_in_empty_root"]) == (True, False), found
        assert "entry qemu-s390x lacks flag F" in info(playbook, tmp_path, ["linux/s390x"])["problems"][0]
        again = playbook(play("qemu_binfmt", {"architectures": ["s390x"], "flags": "PF"}))
        assert again.rc == 0 and warnings_about_flag_f(again) == [], again.output
    finally:
        fb.remove_entry("qemu-riscv64")


def test_every_target_debian_installs_is_accepted_by_name(playbook):
    names = sorted({p[len("/usr/bin/qemu-"):-len("-static")] for p in glob.glob("/usr/bin/qemu-*-static")}
                   | {p[len("/usr/lib/binfmt.d/qemu-"):-len(".conf")] for p in glob.glob("/usr/lib/binfmt.d/qemu-*.conf")})
    assert len(names) >= 30, names
    run = playbook(play("qemu_binfmt", {"architectures": names}), check=True)
    assert run.rc == 0, run.output
    result = run.result("check")
    assert result["requested"] == {name: name for name in names}
    # The host's own family is not registered, with the reason; every other target is planned.
    assert sorted(result["native"]) == ["i386", "x86_64"] and sorted(result["entries"]) == \
        sorted(set(names) - {"i386", "x86_64"})
    refused = playbook(play("qemu_binfmt", {"architectures": ["vax"]}), check=True)
    msg = refused.result("check")["msg"]
    assert msg.startswith("Unknown architecture 'vax': use a QEMU target (aarch64, aarch64_be, alpha, ") and \
        all(name in msg for name in names), msg
