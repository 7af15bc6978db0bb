# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can this host run a platform, natively or through a usable binfmt_misc entry? (qemu_binfmt_info)

Read-only. It reads binfmt_misc entries and the head of their interpreters, and it runs the built-in test
program of each emulated platform (``_binfmt.elf``): through the kernel as the task runs, and, as root, chrooted
into a directory that holds nothing but that program, which is what a container without the emulator sees.
A usable entry for builds in containers is enabled, has flag F (the kernel opens the interpreter at
registration, so a container without the emulator in its file system can still use it) and a statically linked
ELF interpreter (not a dynamic one, not a script); each missing property is named. Where binfmt_misc is not
mounted in the task's mount namespace (``unshare -m``, some containers) the entries cannot be read, but the
kernel still runs them: then what runs decides, and the report says so (``source``, ``evidence``). On aarch64 the
arm test program, run without an emulator, tells whether the CPU runs 32-bit arm itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import platform as _host_platform
import shutil
import tempfile

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import elf
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries as binfmt
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import hosts


class BinfmtHost(object):
    """This host's binfmt_misc entries and what its CPU runs natively; writes nothing.

    ``module`` gives ``params`` (``name_prefix``; for :meth:`report` also ``platforms``, ``containers``,
    ``binaries``), ``run_command`` and ``tmpdir`` (the probe program); ``proc_dir`` is where binfmt_misc is
    mounted. qemu_binfmt_info reports with it; qemu_binfmt's QemuBinfmt extends it with the writes.
    """

    def __init__(self, module, proc_dir=binfmt.BINFMT_MISC_DIR):
        self.module = module
        self.params = module.params
        self.proc_dir = proc_dir
        self.machine = _host_platform.machine()
        self._native_checked = {}

    def read_entry(self, name):
        """The parsed binfmt_misc entry ``name`` (entries.parse_entry), or None when there is none."""
        path = os.path.join(self.proc_dir, name)
        try:
            with open(path) as handle:
                return binfmt.parse_entry(name, handle.read())
        except (IOError, OSError):
            return None

    def runs_natively(self, target):
        """Whether this host's CPU runs ``target`` itself, so registering an emulator would hijack it."""
        if target not in hosts.native_targets(self.machine):
            return False
        if not hosts.needs_confirmation(self.machine, target):
            return True
        if target not in self._native_checked:
            # An enabled entry means an emulator already runs these binaries: keep managing it.
            entry = self.read_entry(self.params["name_prefix"] + target)
            self._native_checked[target] = not (entry and entry["enabled"]) and \
                self.run_probe(target)[0] == elf.PROBE_EXIT_CODE
        return self._native_checked[target]

    def run_probe(self, target, empty_root=False):
        """(exit code, output) of the built-in test program of ``target`` run through the kernel, or (None, "")
        when there is none. With ``empty_root`` it runs chrooted into a directory that holds only the program (the
        ``chroot`` command; needs root): what a container without the emulator sees."""
        program = elf.probe_program(target)
        if program is None:
            return None, ""
        workdir = tempfile.mkdtemp(prefix="qemu-binfmt-probe-", dir=self.module.tmpdir)
        try:
            name = "probe-" + target
            path = os.path.join(workdir, name)
            with open(path, "wb") as handle:
                handle.write(program)
            os.chmod(path, 0o755)
            argv = [path]
            if empty_root:
                argv = [self.module.get_bin_path("chroot") or "chroot", workdir, "/" + name]
            try:
                rc, out, err = self.module.run_command(argv, handle_exceptions=False)
            except OSError as exc:
                # ENOEXEC: no entry matched; EACCES: the temporary directory is noexec.
                rc, out, err = -1, "", to_native(exc)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return rc, (err or out).strip() or "no output"

    # --- qemu_binfmt_info's report: one per platform, native or the entry that emulates it and what it lacks

    def interpreter_problems(self, interpreter, containers):
        if not interpreter or not os.path.isfile(interpreter):
            return ["its interpreter %s does not exist" % interpreter]
        if not containers:
            return []
        try:
            with open(interpreter, "rb") as handle:
                problem = elf.container_problem(interpreter, handle.read(65536))
        except (IOError, OSError) as exc:
            return ["its interpreter %s cannot be read (%s)" % (interpreter, exc)]
        if problem:
            return ["its interpreter %s, so it cannot run there (register a statically linked emulator: install %s)"
                    % (problem, binfmt.EMULATOR_PACKAGE)]
        return []

    def mounted(self):
        return os.path.exists(os.path.join(self.proc_dir, "register"))

    def entry_problems(self, name, containers):
        """What the entry ``name`` read from binfmt_misc lacks (binfmt_misc must be mounted on proc_dir)."""
        entry = self.read_entry(name)
        if entry is None:
            return ["there is no binfmt_misc entry %s/%s" % (self.proc_dir, name)]
        problems = [] if entry["enabled"] else ["binfmt_misc entry %s is disabled" % name]
        if containers and "F" not in (entry["flags"] or ""):
            problems.append(
                "entry %s lacks flag F (fix binary), so the kernel looks for %s inside each container "
                "and builds fail with 'no such file or directory'" % (name, entry["interpreter"]))
        status = binfmt_status(self.proc_dir)
        if status == "disabled":
            problems.append("binfmt_misc is disabled host-wide (%s/status)" % self.proc_dir)
        return problems + self.interpreter_problems(entry["interpreter"], containers and "F" in entry["flags"])

    def run_test_program(self, target, containers):
        """What the test program of ``target`` does here: {ran, ran_in_empty_root, output}; None where not run."""
        rc, output = self.run_probe(target)
        found = {"ran": None if rc is None else rc == elf.PROBE_EXIT_CODE, "ran_in_empty_root": None,
                 "output": output, "rc": rc}
        if found["ran"] and containers and os.geteuid() == 0:
            rc, output = self.run_probe(target, empty_root=True)
            found.update(ran_in_empty_root=rc == elf.PROBE_EXIT_CODE, output=output, rc=rc)
        return found

    def emulation(self, target, name, containers):
        """The report keys of an emulated platform: problems, source, evidence, ran, ran_in_empty_root."""
        if self.mounted():
            problems = self.entry_problems(name, containers)
            found = {"ran": None, "ran_in_empty_root": None} if problems else self.run_test_program(target, containers)
            evidence = "read from %s/%s" % (self.proc_dir, name)
            if found["ran"]:
                evidence += "; a %s test program ran through it (exit %d)%s" % (
                    target, elf.PROBE_EXIT_CODE, ", also in an empty root" if found["ran_in_empty_root"] else "")
            if found["ran"] is False:
                problems = ["entry %s reads as usable, but a %s test program run through it ended with %s instead of "
                            "exiting with %d (%s)" % (name, target, found["rc"], elf.PROBE_EXIT_CODE, found["output"])]
            elif found["ran_in_empty_root"] is False:
                problems = ["entry %s reads as usable, but a %s test program does not run in an empty root, as in a "
                            "container without the emulator (%s)" % (name, target, found["output"])]
            return self._emulation(problems, "binfmt_misc", evidence, found)
        where = ("binfmt_misc is not mounted on %s in this task's mount namespace, so entry %s cannot be read"
                 % (self.proc_dir, name))
        found = self.run_test_program(target, containers)
        if found["ran"] is None:
            return self._emulation(["%s, and there is no built-in test program for %s to run instead (mount binfmt_misc "
                                    "there, or set binfmt_dir to where it is mounted)" % (where, target)],
                                   "none", where, found)
        if not found["ran"]:
            return self._emulation(["%s, and a %s test program does not run here (%s): no emulator for %s is "
                                    "registered in this host's kernel" % (where, target, found["output"], target)],
                                   "test_program", where, found)
        evidence = "%s; a %s test program ran through the kernel (exit %d)" % (where, target, elf.PROBE_EXIT_CODE)
        problems = []
        if found["ran_in_empty_root"]:
            evidence += ", also in an empty root (as in a container without the emulator)"
        elif found["ran_in_empty_root"] is False:
            problems = ["%s; a %s test program runs through the kernel here, but not in an empty root, as in a "
                        "container without the emulator (%s): the entry lacks flag F, or its interpreter is not a "
                        "statically linked ELF file" % (where, target, found["output"])]
        elif containers:
            evidence += "; whether it runs in containers (flag F, a static interpreter) is unchecked: that test needs root"
        return self._emulation(problems, "test_program", evidence, found)

    @staticmethod
    def _emulation(problems, source, evidence, found):
        return {"problems": problems, "source": source, "evidence": evidence, "ran": found["ran"],
                "ran_in_empty_root": found["ran_in_empty_root"]}

    def platform_report(self, platform, containers):
        report = {"platform": platform, "target": None, "native": False, "native_reason": None,
                  "entry": None, "problems": [], "source": None, "evidence": None, "ran": None,
                  "ran_in_empty_root": None}
        try:
            target = binfmt.resolve_architecture(platform)
        except binfmt.BinfmtError:
            report["problems"] = ["no QEMU emulator exists for %s" % platform]
            report["usable"] = False
            return report
        report["target"] = target
        if self.runs_natively(target):
            report.update(native=True, native_reason=hosts.native_reason(self.machine, target), usable=True,
                          source="cpu", evidence=hosts.native_reason(self.machine, target))
            return report
        report["entry"] = self.params["name_prefix"] + target
        report.update(self.emulation(target, report["entry"], containers))
        report["usable"] = not report["problems"]
        return report

    @staticmethod
    def binary_target(path):
        """The QEMU target of an ELF file (the architecture its code is for), or None."""
        try:
            with open(path, "rb") as handle:
                return hosts.elf_target(handle.read(64))
        except (IOError, OSError):
            return None

    def report(self):
        """qemu_binfmt_info's result: ``machine``, ``platforms`` (one report each), ``binaries``, ``usable``,
        ``problems``."""
        containers = self.params["containers"]
        reports = [self.platform_report(str(p), containers) for p in self.params["platforms"]]
        binaries = dict((path, self.binary_target(path)) for path in self.params.get("binaries") or [])
        return {"changed": False, "machine": self.machine, "platforms": reports, "binaries": binaries,
                "usable": all(r["usable"] for r in reports),
                "problems": ["%s: %s" % (r["platform"], "; ".join(r["problems"])) for r in reports if r["problems"]]}


def binfmt_status(proc_dir):
    try:
        with open(os.path.join(proc_dir, "status")) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None
