# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""binfmt_misc on this host for the qemu_binfmt module: plan, register, persist, verify.

Reads and writes the kernel's binfmt_misc (``/proc/sys/fs/binfmt_misc``, see the kernel's
``admin-guide/binfmt-misc.rst``) and ``/etc/binfmt.d`` (systemd's ``binfmt.d(5)``). Every interpreter
is resolved and checked before the kernel is touched, so a bad option changes nothing. The line
formats and targets are pure code in ``_binfmt.entries``, the ELF checks and test programs in ``_binfmt.elf``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import elf
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries as binfmt
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import hosts, persist
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt.usable import BinfmtHost


class BinfmtTaskError(Exception):
    """qemu_binfmt cannot do what it was asked; ``result`` holds the keys the failed task returns besides
    its message (``rolled_back``, ``changed``). The module turns it into its one failure."""

    def __init__(self, msg, **result):
        super(BinfmtTaskError, self).__init__(msg)
        self.result = result


class QemuBinfmt(BinfmtHost):
    """Plan and apply binfmt_misc registrations; every kernel write goes through here (the reading side,
    entries and what the CPU runs natively, is BinfmtHost's). Raises BinfmtTaskError; never fails the module."""

    def __init__(self, module, proc_dir=binfmt.BINFMT_MISC_DIR, conf_dir=binfmt.PERSISTENT_DIR):
        super(QemuBinfmt, self).__init__(module, proc_dir=proc_dir)
        self.conf_dir = conf_dir
        self.boot = persist.BootConfig(module, conf_dir)
        self.changed = False
        self.diffs = []
        self.journal = []  # (entry name, entry before this run or None) for each kernel change

    # --- preconditions --------------------------------------------------
    def ensure_root(self):
        if os.geteuid() != 0:
            raise BinfmtTaskError(
                "qemu_binfmt must run as root (use become: true): binfmt_misc and "
                "/etc/binfmt.d are writable only by root, and this task runs as uid %d." % os.geteuid())

    def ensure_mounted(self):
        if os.path.exists(os.path.join(self.proc_dir, "register")):
            return True
        if not os.path.isdir(self.proc_dir):
            modprobe = self.module.get_bin_path("modprobe")
            if modprobe:
                self.module.run_command([modprobe, "binfmt_misc"])
        if not os.path.isdir(self.proc_dir):
            raise BinfmtTaskError(
                "binfmt_misc is unavailable: %s does not exist (a kernel without "
                "CONFIG_BINFMT_MISC, or a container without access to /proc/sys)." % self.proc_dir)
        self.changed = True
        if self.module.check_mode:
            return False
        rc, out, err = self.module.run_command(
            [self.module.get_bin_path("mount", required=True), "-t", "binfmt_misc", "binfmt_misc",
             self.proc_dir])
        if rc != 0 or not os.path.exists(os.path.join(self.proc_dir, "register")):
            raise BinfmtTaskError(
                "binfmt_misc is unavailable: mounting it on %s failed (%s)."
                % (self.proc_dir, (err or out).strip() or "rc=%d" % rc))
        return True

    # --- planning -------------------------------------------------------
    def targets(self):
        """(targets to manage, {requested name: target}, {requested name: reason} for those run natively)."""
        names = self.params["architectures"]
        if not names:
            raise binfmt.BinfmtError("architectures must name at least one architecture, or 'all'.")
        explicit = [n for n in names if str(n).strip().lower() != "all"]
        resolved, requested = binfmt.resolve_architectures(explicit)
        native, targets = {}, []
        present = self.params["state"] == "present"
        for target in resolved:
            if present and self.runs_natively(target):
                for name in [n for n, t in requested.items() if t == target]:
                    native[name] = hosts.native_reason(self.machine, target)
            else:
                targets.append(target)
        if len(explicit) != len(names):
            for target in sorted(binfmt.QEMU_TARGETS):
                if target in targets or target in resolved or (present and self.runs_natively(target)):
                    continue
                if not present:
                    found = self.read_entry(self.params["name_prefix"] + target) is not None
                else:
                    found = self.find_interpreter(target, self.default_flags(target)[0]) is not None
                if found:
                    targets.append(target)
        return targets, requested, native

    def vendor_line(self, target):
        """The emulator package's own registration (Debian/Ubuntu /usr/lib/binfmt.d)."""
        if self.params["emulator_dir"]:
            return None
        text = persist.read_text(os.path.join(binfmt.DEBIAN_BINFMT_D, "qemu-%s.conf" % target))
        for line in (text or "").splitlines():
            entry = binfmt.parse_register_line(line)
            if entry:
                return entry
        return None

    def default_flags(self, target):
        """(flags, interpreter or None) following the installed emulator's conventions."""
        if self.params["flags"] is not None:
            return binfmt.normalize_flags(self.params["flags"]), None
        vendor = self.vendor_line(target)
        if vendor and os.path.exists(vendor["interpreter"]):
            return binfmt.normalize_flags(vendor["flags"] + "F"), vendor["interpreter"]
        return "F", None

    def find_interpreter(self, target, flags):
        candidates = []
        directory = self.params["emulator_dir"]
        if "P" in flags:
            candidates.append(os.path.join(directory or binfmt.DEBIAN_WRAPPER_DIR, "%s-binfmt-P" % target))
        directory = directory or binfmt.DEFAULT_EMULATOR_DIR
        candidates += [os.path.join(directory, "qemu-%s-static" % target),
                       os.path.join(directory, "qemu-%s" % target)]
        for candidate in candidates:
            if os.path.exists(candidate):
                return candidate
        return None

    def check_interpreter(self, target, interpreter, flags):
        if not os.access(interpreter, os.X_OK) or not os.path.isfile(interpreter):
            raise binfmt.BinfmtError(
                "The emulator %s for %s is not an executable file." % (interpreter, target))
        if "F" in flags:
            with open(interpreter, "rb") as handle:
                problem = elf.container_problem(interpreter, handle.read(65536))
            if problem:
                raise binfmt.BinfmtError(
                    "The emulator for %s cannot serve containers, which flag F is for: %s, so it cannot run there. "
                    "Install %s (statically linked emulators), or leave F out of flags."
                    % (target, problem, binfmt.EMULATOR_PACKAGE))

    def wanted_entry(self, target):
        flags, interpreter = self.default_flags(target)
        interpreter = interpreter or self.find_interpreter(target, flags)
        if interpreter is None:
            where = self.params["emulator_dir"] or binfmt.DEFAULT_EMULATOR_DIR
            raise binfmt.BinfmtError(
                "The emulator for %s is not installed: there is no qemu-%s-static in %s; install "
                "the %s package (Debian/Ubuntu; qemu-user-static-%s on Fedora) or set emulator_dir "
                "to where it is." % (target, target, where, binfmt.EMULATOR_PACKAGE,
                                     target.replace("i386", "x86")))
        self.check_interpreter(target, interpreter, flags)
        return binfmt.desired_entry(target, interpreter, flags, self.params["name_prefix"])

    # --- applying (kernel) -----------------------------------------------
    def write_proc(self, name, text):
        path = os.path.join(self.proc_dir, name)
        try:
            with open(path, "w") as handle:
                handle.write(text)
        except (IOError, OSError) as exc:
            raise KernelWriteError("Writing %r to %s failed: %s." % (text, path, to_native(exc)))

    def record_diff(self, header, before, after):
        self.diffs.append({"before_header": header, "after_header": header,
                           "before": before or "", "after": after or ""})

    def plan_present(self, wanted, mounted):
        name = wanted["name"]
        current = self.read_entry(name) if mounted else None
        changes = binfmt.entry_differences(current, wanted)
        if changes and current is not None and changes != ["enabled"] \
                and self.params["conflict"] == "fail":
            raise binfmt.BinfmtError(
                "binfmt_misc entry %s already exists with a different %s (interpreter %s, flags "
                "%r); set conflict=replace to replace it." % (
                    name, ", ".join(changes), current["interpreter"], current["flags"]))
        return current, changes

    def apply_present(self, wanted, current, changes):
        """Change one kernel entry; the journal records how to undo it."""
        name = wanted["name"]
        self.changed = True
        self.record_diff("binfmt_misc/" + name, binfmt.describe(current), binfmt.describe(wanted))
        if self.module.check_mode:
            return
        self.journal.append((name, current))
        if changes == ["enabled"]:
            self.write_proc(name, "1")
        else:
            if current is not None:
                self.write_proc(name, "-1")
            self.write_proc("register", binfmt.register_line(wanted))
        after = self.read_entry(name)
        if binfmt.entry_differences(after, wanted):
            raise KernelWriteError("The kernel did not keep entry %s as registered: read back %r." % (name, after))

    def rollback(self):
        """Undo the kernel changes of this run, newest first; returns what was done, one line each."""
        done = []
        for name, previous in reversed(self.journal):
            try:
                if self.read_entry(name) is not None:
                    self.write_proc(name, "-1")
                if previous is None:
                    done.append("%s: removed the new entry" % name)
                    continue
                self.write_proc("register", binfmt.register_line(previous))
                if not previous["enabled"]:
                    self.write_proc(name, "0")
                done.append("%s: restored the previous entry (interpreter %s, flags %s%s)" % (
                    name, previous["interpreter"], previous["flags"] or "none",
                    "" if previous["enabled"] else ", disabled"))
            except (KernelWriteError, binfmt.BinfmtError) as exc:
                done.append("%s: could not be restored (%s)" % (name, exc))
        self.journal = []
        return done

    # --- applying (boot configuration) ------------------------------------
    def sync_present_boot(self, wanted):
        name = wanted["name"]
        info = {"persistent": self.boot.current(name) not in (None, "-> " + persist.MASK_TARGET),
                "persistent_file": self.boot.path(name), "masked": self.boot.is_mask(name)}
        if self.params["persistent"]:
            before, content = self.boot.current(name), binfmt.persistent_content(wanted)
            if self.boot.write(name, content):
                self.changed = True
                self.record_diff(self.boot.path(name), before, content)
            info.update(persistent=True, masked=False)
        return info

    def sync_absent_boot(self, name):
        """Remove our file; mask the distribution's; say what still registers the entry at boot."""
        before = self.boot.current(name)
        vendor = self.boot.vendor_files(name)
        masked = self.boot.is_mask(name)
        if self.params["persistent"]:
            maskable = [p for p in vendor if p not in self.boot.unmaskable(name)]
            if maskable:
                if self.boot.mask(name):
                    self.changed = True
                    self.record_diff(self.boot.path(name), before, "-> " + persist.MASK_TARGET)
                masked = True
            elif self.boot.remove(name):
                self.changed = True
                self.record_diff(self.boot.path(name), before, "")
                masked = False
            returns = self.boot.unmaskable(name)
        else:
            returns = [] if masked else ([self.boot.path(name)] if before else []) + vendor
        if returns:
            self.module.warn(
                "binfmt_misc entry %s is removed from the kernel, but %s register%s it again at boot%s." % (
                    name, ", ".join(returns), "s" if len(returns) == 1 else "",
                    " (set persistent: true to mask the binfmt.d files)" if not self.params["persistent"]
                    else " (binfmt-support enables it at boot: drop it with update-binfmts --remove, "
                         "or uninstall binfmt-support)"))
        return {"persistent": False, "persistent_file": self.boot.path(name), "masked": masked,
                "returns_at_boot": returns}

    # --- verifying ------------------------------------------------------
    def verify(self, target, entry):
        """True, None (no test program for the target), or raises VerifyError."""
        rc, output = self.run_probe(target)
        if rc is None:
            return None
        if rc != elf.PROBE_EXIT_CODE:
            raise VerifyError(
                "Emulation of %s does not work: a %s test program run through binfmt_misc entry %s "
                "ended with %d instead of exiting with %d (%s)." % (
                    target, target, entry["name"], rc, elf.PROBE_EXIT_CODE, output))
        return True

    def warn_without_flag_f(self, targets, wanted):
        """One warning naming the entries of this task registered without flag F: containers cannot use them."""
        names = [wanted[t]["name"] for t in targets if t in wanted and "F" not in wanted[t]["flags"]]
        if names:
            self.module.warn(
                "binfmt_misc %s %s %s registered without flag F (fix binary): the kernel looks for the emulator by its "
                "path inside each container and chroot, where it does not exist, so containers (docker run --platform, "
                "docker build) cannot use %s; add F to flags for container builds." % (
                    "entries" if len(names) > 1 else "entry", ", ".join(names),
                    "are" if len(names) > 1 else "is", "them" if len(names) > 1 else "it"))

    # --- the task -------------------------------------------------------
    def plan(self):
        if self.params["flags"] is not None:
            binfmt.normalize_flags(self.params["flags"])
        targets, requested, native = self.targets()
        # Resolve every interpreter before touching the kernel, so errors change nothing.
        wanted = {}
        if self.params["state"] == "present":
            for target in targets:
                wanted[target] = self.wanted_entry(target)
        return targets, requested, native, wanted

    def apply_kernel(self, targets, wanted, mounted):
        entries, plans = {}, {}
        if self.params["state"] == "present":
            # Every conflict is found before the first write.
            plans = dict((t, self.plan_present(wanted[t], mounted)) for t in targets)
        for target in targets:
            if self.params["state"] == "present":
                current, changes = plans[target]
                if changes:
                    self.apply_present(wanted[target], current, changes)
                entries[target] = dict(wanted[target], state="present", changes=list(changes))
            else:
                name = self.params["name_prefix"] + target
                current = self.read_entry(name) if mounted else None
                entries[target] = {"name": name, "state": "absent", "enabled": False, "interpreter": None,
                                   "flags": None, "offset": None, "magic": None, "mask": None,
                                   "changes": ["removed"] if current is not None else []}
                if current is not None:
                    self.changed = True
                    self.record_diff("binfmt_misc/" + name, binfmt.describe(current), "")
                    if not self.module.check_mode:
                        self.write_proc(name, "-1")
            entries[target]["machine"] = binfmt.UNAME_MACHINE.get(target)
            entries[target]["verified"] = None
        if self.params["verify"] and self.params["state"] == "present" and not self.module.check_mode:
            for target in targets:
                entries[target]["verified"] = self.verify(target, entries[target])
        return entries

    def run(self):
        self.ensure_root()
        try:
            targets, requested, native, wanted = self.plan()
        except binfmt.BinfmtError as exc:
            raise BinfmtTaskError(str(exc))
        mounted = self.ensure_mounted()
        status = persist.read_text(os.path.join(self.proc_dir, "status"))
        if status and status.strip() == "disabled":
            self.module.warn("binfmt_misc is disabled host-wide (%s/status); the entries are "
                             "registered but the kernel will not use them." % self.proc_dir)
        try:
            entries = self.apply_kernel(targets, wanted, mounted)
        except (KernelWriteError, VerifyError, binfmt.BinfmtError) as exc:
            rolled_back = self.rollback()
            raise BinfmtTaskError(
                "%s%s" % (exc, " Rolled back: %s." % "; ".join(rolled_back) if rolled_back else " Nothing was changed."),
                rolled_back=rolled_back, changed=False)
        self.warn_without_flag_f(targets, wanted)
        # The boot configuration follows the kernel only once every entry is in place and verified.
        for target in targets:
            if self.params["state"] == "present":
                entries[target].update(self.sync_present_boot(wanted[target]))
            else:
                entries[target].update(self.sync_absent_boot(entries[target]["name"]))
        result = {"changed": self.changed, "entries": entries, "requested": requested,
                  "native": native, "rolled_back": []}
        if self.module._diff:
            result["diff"] = self.diffs
        return result


class KernelWriteError(Exception):
    """A write to binfmt_misc failed or did not stick; the run is rolled back."""


class VerifyError(Exception):
    """A registered entry does not run its test program; the run is rolled back."""
