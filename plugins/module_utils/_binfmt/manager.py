# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""binfmt_misc on this host for the qemu_binfmt module: plan, register, persist, verify.

Reads and writes the kernel's binfmt_misc (``/proc/sys/fs/binfmt_misc``, see the kernel's
``admin-guide/binfmt-misc.rst``) and ``/etc/binfmt.d`` (systemd's ``binfmt.d(5)``). Every interpreter
is resolved and checked before the kernel is touched, so a bad option changes nothing. The line
formats, targets and probe programs are pure code in ``_binfmt.entries``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import platform
import shutil
import tempfile

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries as binfmt


class QemuBinfmt(object):
    """Plan and apply binfmt_misc registrations; every kernel write goes through here."""

    def __init__(self, module, proc_dir=binfmt.BINFMT_MISC_DIR, conf_dir=binfmt.PERSISTENT_DIR):
        self.module = module
        self.params = module.params
        self.proc_dir = proc_dir
        self.conf_dir = conf_dir
        self.changed = False
        self.diffs = []

    # --- reading --------------------------------------------------------
    def read_entry(self, name):
        path = os.path.join(self.proc_dir, name)
        try:
            with open(path) as handle:
                return binfmt.parse_entry(name, handle.read())
        except (IOError, OSError):
            return None

    def conf_path(self, name):
        return os.path.join(self.conf_dir, name + ".conf")

    @staticmethod
    def read_text(path):
        try:
            with open(path) as handle:
                return handle.read()
        except (IOError, OSError):
            return None

    # --- preconditions --------------------------------------------------
    def ensure_root(self):
        if os.geteuid() != 0:
            self.module.fail_json(
                msg="qemu_binfmt must run as root (use become: true): binfmt_misc and "
                    "/etc/binfmt.d are writable only by root, and this task runs as uid %d."
                    % os.geteuid())

    def ensure_mounted(self):
        if os.path.exists(os.path.join(self.proc_dir, "register")):
            return True
        if not os.path.isdir(self.proc_dir):
            modprobe = self.module.get_bin_path("modprobe")
            if modprobe:
                self.module.run_command([modprobe, "binfmt_misc"])
        if not os.path.isdir(self.proc_dir):
            self.module.fail_json(
                msg="binfmt_misc is unavailable: %s does not exist (a kernel without "
                    "CONFIG_BINFMT_MISC, or a container without access to /proc/sys)." % self.proc_dir)
        self.changed = True
        if self.module.check_mode:
            return False
        rc, out, err = self.module.run_command(
            [self.module.get_bin_path("mount", required=True), "-t", "binfmt_misc", "binfmt_misc",
             self.proc_dir])
        if rc != 0 or not os.path.exists(os.path.join(self.proc_dir, "register")):
            self.module.fail_json(
                msg="binfmt_misc is unavailable: mounting it on %s failed (%s)."
                    % (self.proc_dir, (err or out).strip() or "rc=%d" % rc))
        return True

    # --- planning -------------------------------------------------------
    def targets(self):
        names = self.params["architectures"]
        if not names:
            raise binfmt.BinfmtError("architectures must name at least one architecture, or 'all'.")
        explicit = [n for n in names if str(n).strip().lower() != "all"]
        targets, requested = binfmt.resolve_architectures(explicit)
        native = binfmt.native_targets(platform.machine())
        if self.params["state"] == "present":
            for name, target in requested.items():
                if target in native:
                    raise binfmt.BinfmtError(
                        "Refusing to register %r (QEMU target %s): it belongs to this host's own "
                        "architecture family (%s), and routing native binaries through an emulator "
                        "can make the host unusable." % (name, target, platform.machine()))
        if len(explicit) != len(names):
            for target in sorted(binfmt.QEMU_TARGETS):
                if target in native or target in targets:
                    continue
                if self.params["state"] == "absent":
                    found = self.read_entry(self.params["name_prefix"] + target) is not None
                else:
                    found = self.find_interpreter(target, self.default_flags(target)[0]) is not None
                if found:
                    targets.append(target)
        return targets, requested

    def vendor_line(self, target):
        """The emulator package's own registration (Debian/Ubuntu /usr/lib/binfmt.d)."""
        if self.params["emulator_dir"]:
            return None
        text = self.read_text(os.path.join(binfmt.DEBIAN_BINFMT_D, "qemu-%s.conf" % target))
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
                static = binfmt.elf_is_static(handle.read(65536))
            if static is False:
                raise binfmt.BinfmtError(
                    "The emulator %s for %s is dynamically linked, but flag F needs a statically "
                    "linked one (install %s, or leave F out of flags)."
                    % (interpreter, target, binfmt.EMULATOR_PACKAGE))

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

    # --- applying -------------------------------------------------------
    def write_proc(self, name, text):
        path = os.path.join(self.proc_dir, name)
        try:
            with open(path, "w") as handle:
                handle.write(text)
        except (IOError, OSError) as exc:
            self.module.fail_json(msg="Writing %r to %s failed: %s." % (text, path, to_native(exc)))

    def record_diff(self, header, before, after):
        self.diffs.append({"before_header": header, "after_header": header,
                           "before": before or "", "after": after or ""})

    def present(self, target, wanted, mounted):
        name = wanted["name"]
        current = self.read_entry(name) if mounted else None
        changes = binfmt.entry_differences(current, wanted)
        if changes and current is not None and changes != ["enabled"] \
                and self.params["conflict"] == "fail":
            raise binfmt.BinfmtError(
                "binfmt_misc entry %s already exists with a different %s (interpreter %s, flags "
                "%r); set conflict=replace to replace it." % (
                    name, ", ".join(changes), current["interpreter"], current["flags"]))
        if changes:
            self.changed = True
            self.record_diff("binfmt_misc/" + name, binfmt.describe(current), binfmt.describe(wanted))
            if not self.module.check_mode:
                if changes == ["enabled"]:
                    self.write_proc(name, "1")
                else:
                    if current is not None:
                        self.write_proc(name, "-1")
                    self.write_proc("register", binfmt.register_line(wanted))
                after = self.read_entry(name)
                if binfmt.entry_differences(after, wanted):
                    self.module.fail_json(
                        msg="The kernel did not keep entry %s as registered: read back %r." % (name, after))
        persistent = self.sync_persistent(name, binfmt.persistent_content(wanted))
        result = dict(wanted, state="present", changes=list(changes))
        result.update(self.persistent_info(name, persistent))
        return result

    def absent(self, target, mounted):
        name = self.params["name_prefix"] + target
        current = self.read_entry(name) if mounted else None
        changes = []
        if current is not None:
            changes = ["removed"]
            self.changed = True
            self.record_diff("binfmt_misc/" + name, binfmt.describe(current), "")
            if not self.module.check_mode:
                self.write_proc(name, "-1")
        persistent = self.sync_persistent(name, None)
        result = {"name": name, "state": "absent", "enabled": False, "interpreter": None,
                  "flags": None, "offset": None, "magic": None, "mask": None, "changes": changes}
        result.update(self.persistent_info(name, persistent))
        return result

    def persistent_info(self, name, exists):
        return {"persistent": exists, "persistent_file": self.conf_path(name)}

    def sync_persistent(self, name, content):
        """Write or remove /etc/binfmt.d/<name>.conf; returns whether it exists afterwards."""
        path = self.conf_path(name)
        current = self.read_text(path)
        if not self.params["persistent"]:
            return current is not None
        if current == content:
            return content is not None
        self.changed = True
        self.record_diff(path, current, content)
        if self.module.check_mode:
            return content is not None
        if content is None:
            os.unlink(path)
            return False
        if not os.path.isdir(self.conf_dir):
            os.makedirs(self.conf_dir, 0o755)
        fd, tmp = tempfile.mkstemp(dir=self.conf_dir, prefix="." + name)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        self.module.atomic_move(tmp, path)
        return True

    def verify(self, target, entry):
        program = binfmt.probe_program(target)
        if program is None:
            return None
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
        if rc != binfmt.PROBE_EXIT_CODE:
            self.module.fail_json(
                msg="Emulation of %s does not work: a %s test program run through binfmt_misc "
                    "entry %s ended with %d instead of exiting with %d (%s)." % (
                        target, target, entry["name"], rc, binfmt.PROBE_EXIT_CODE,
                        (err or out).strip() or "no output"),
                entries={target: entry})
        return True

    def run(self):
        self.ensure_root()
        try:
            if self.params["flags"] is not None:
                binfmt.normalize_flags(self.params["flags"])
            targets, requested = self.targets()
            # Resolve every interpreter before touching the kernel, so errors change nothing.
            wanted = {}
            if self.params["state"] == "present":
                for target in targets:
                    wanted[target] = self.wanted_entry(target)
            mounted = self.ensure_mounted()
            status = self.read_text(os.path.join(self.proc_dir, "status"))
            if status and status.strip() == "disabled":
                self.module.warn("binfmt_misc is disabled host-wide (%s/status); the entries are "
                                 "registered but the kernel will not use them." % self.proc_dir)
            entries = {}
            for target in targets:
                if self.params["state"] == "present":
                    entries[target] = self.present(target, wanted[target], mounted)
                else:
                    entries[target] = self.absent(target, mounted)
                entries[target]["machine"] = binfmt.UNAME_MACHINE.get(target)
                entries[target]["verified"] = None
        except binfmt.BinfmtError as exc:
            self.module.fail_json(msg=str(exc))
        if self.params["verify"] and self.params["state"] == "present" and not self.module.check_mode:
            for target in targets:
                entries[target]["verified"] = self.verify(target, entries[target])
        result = {"changed": self.changed, "entries": entries, "requested": requested}
        if self.module._diff:
            result["diff"] = self.diffs
        return result
