# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can this host run a platform, natively or through a usable binfmt_misc entry? (qemu_binfmt_info)

Read-only: reads binfmt_misc entries and the head of their interpreters, and on aarch64 runs the
built-in 32-bit ARM test program to learn whether the CPU runs arm itself. A usable entry for
builds in containers is enabled, has flag F (the kernel opens the interpreter at registration, so
a container without the emulator in its file system can still use it) and a statically linked
interpreter; each missing property is named.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import platform as _host_platform
import shutil
import tempfile

from ansible.module_utils.common.text.converters import to_native

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
                self.run_probe(target)[0] == binfmt.PROBE_EXIT_CODE
        return self._native_checked[target]

    def run_probe(self, target):
        """(exit code, output) of the built-in test program of ``target`` run through the kernel."""
        program = binfmt.probe_program(target)
        if program is None:
            return None, ""
        workdir = tempfile.mkdtemp(prefix="qemu-binfmt-probe-", dir=self.module.tmpdir)
        try:
            path = os.path.join(workdir, "probe-" + target)
            with open(path, "wb") as handle:
                handle.write(program)
            os.chmod(path, 0o755)
            try:
                rc, out, err = self.module.run_command([path], handle_exceptions=False)
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
                static = binfmt.elf_is_static(handle.read(65536))
        except (IOError, OSError) as exc:
            return ["its interpreter %s cannot be read (%s)" % (interpreter, exc)]
        if static is False:
            return ["its interpreter %s is dynamically linked, so it cannot run inside a container "
                    "(install %s)" % (interpreter, binfmt.EMULATOR_PACKAGE)]
        return []

    def entry_problems(self, name, containers):
        if not os.path.exists(os.path.join(self.proc_dir, "register")):
            return ["binfmt_misc is not mounted on %s" % self.proc_dir]
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

    def platform_report(self, platform, containers):
        report = {"platform": platform, "target": None, "native": False, "native_reason": None,
                  "entry": None, "problems": []}
        try:
            target = binfmt.resolve_architecture(platform)
        except binfmt.BinfmtError:
            report["problems"] = ["no QEMU emulator exists for %s" % platform]
            report["usable"] = False
            return report
        report["target"] = target
        if self.runs_natively(target):
            report.update(native=True, native_reason=hosts.native_reason(self.machine, target), usable=True)
            return report
        report["entry"] = self.params["name_prefix"] + target
        report["problems"] = self.entry_problems(report["entry"], containers)
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
