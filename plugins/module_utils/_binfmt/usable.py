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

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries as binfmt
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import hosts
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt.manager import QemuBinfmt


class BinfmtReport(QemuBinfmt):
    """One report per platform: native, or the entry that emulates it and what it lacks."""

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
