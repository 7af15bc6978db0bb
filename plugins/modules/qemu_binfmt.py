#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: archfleet maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: qemu_binfmt
short_description: Register QEMU user-mode emulators with the kernel's binfmt_misc
version_added: 0.1.0
description:
  - Registers (or removes) QEMU user-mode emulators in C(/proc/sys/fs/binfmt_misc) so that
    binaries and containers of foreign CPU architectures run on this host, for example
    C(docker run --platform linux/arm64).
  - Replaces C(docker run --privileged multiarch/qemu-user-static --reset -p yes), which
    removes every registration on the host and does not survive a reboot. This module only
    touches the entries it is asked about, changes an entry only when its interpreter, offset,
    magic, mask or flags differ, and can make the registration persistent.
  - Knows the magic and mask bytes of every QEMU target (the bytes of QEMU's
    C(qemu-binfmt-conf.sh) and Debian's C(/usr/lib/binfmt.d/qemu-*.conf)).
  - Mounts binfmt_misc on C(/proc/sys/fs/binfmt_misc) when it is not mounted.
  - Refuses to register the host's own architecture family (for example V(x86_64) and V(i386)
    on an x86_64 host), because routing native binaries through an emulator can make the host
    unusable.
  - Must run as root, so use C(become=true).
author:
  - archfleet maintainers (@archfleet)
options:
  architectures:
    description:
      - Architectures to manage, as QEMU target names (V(aarch64), V(arm), V(ppc64le), V(s390x),
        V(riscv64), V(mips64el), V(i386), V(x86_64), ...) or Docker platform names
        (V(arm64), V(linux/arm64), V(arm/v7), V(386), V(amd64), V(ppc64le), V(mips64le), ...).
        Aliases that map to the same QEMU target are managed once.
      - V(all) means every target whose emulator is installed (with O(state=present)) or every
        target that has an entry called O(name_prefix)+target (with O(state=absent)), except the
        host's own family.
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) registers the emulators, V(absent) removes their entries.
    type: str
    choices: [present, absent]
    default: present
  flags:
    description:
      - binfmt_misc flags, a combination of V(P) (preserve argv[0]), V(O) (open the binary),
        V(C) (credentials of the binary, implies V(O)) and V(F) (open the interpreter at
        registration time, so it works inside containers and chroots).
      - By default the flags of the emulator package's own registration line are used
        (Debian and Ubuntu C(qemu-user-static) ship V(POF) with a C(-binfmt-P) wrapper in
        C(/usr/libexec/qemu-binfmt)), always with V(F) added; without such a line the default
        is V(F) with C(/usr/bin/qemu-<target>-static).
      - Flags are compared as a set, in the kernel's order, so V(FPO) and V(POF) are the same.
    type: str
  persistent:
    description:
      - Also manage C(/etc/binfmt.d/<name>.conf) so the registration comes back after a reboot
        (C(systemd-binfmt) applies it at boot). With O(state=absent) the file is removed.
      - With V(false) nothing under C(/etc/binfmt.d) is touched.
    type: bool
    default: false
  conflict:
    description:
      - What to do when an entry of the same name exists with other settings.
      - V(replace) removes it and registers the wanted entry (the kernel has no in-place update).
      - V(fail) fails and leaves it alone.
    type: str
    choices: [replace, fail]
    default: replace
  emulator_dir:
    description:
      - Directory that holds the emulators when they are not installed by the distribution
        package, for example V(/opt/qemu/bin). The module looks for C(<target>-binfmt-P) (only
        with flag V(P)), C(qemu-<target>-static) and C(qemu-<target>) in it.
      - By default it uses Debian's C(/usr/libexec/qemu-binfmt/<target>-binfmt-P) wrappers when
        the flags contain V(P), and C(/usr/bin/qemu-<target>-static) otherwise.
    type: path
  name_prefix:
    description:
      - Entry names are this prefix followed by the QEMU target, for example C(qemu-aarch64),
        the names Debian, Ubuntu, Fedora and QEMU's own script use.
    type: str
    default: qemu-
  verify:
    description:
      - After registering, run a tiny static test program of each architecture (built in, no
        download) through the kernel and fail if it does not run under emulation.
      - Test programs exist for V(aarch64), V(arm), V(i386), V(x86_64), V(ppc64le), V(s390x)
        and V(riscv64); other targets report RV(entries.verified=null).
      - Skipped in check mode.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Computes the same plan, reports it and the diff, and writes nothing.
  diff_mode:
    support: full
    description: Shows each entry and persistence file before and after.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
  platform:
    support: full
    platforms: posix
    description: Linux only (binfmt_misc is a Linux kernel feature).
notes:
  - Existing entries are compared field by field with what the kernel prints, so an entry
    registered by C(systemd-binfmt) or C(update-binfmts) with the same settings is left alone.
  - Entries with flag V(F) keep the emulator binary open; after upgrading QEMU run the module
    again with O(conflict=replace) and the new binary is picked up only once the entry is
    re-registered (remove it with O(state=absent) first).
  - C(/etc/binfmt.d) is read at boot by C(systemd-binfmt). Hosts without systemd need their own
    boot hook, for example a task that runs this module at boot.
seealso:
  - name: Kernel binfmt_misc documentation
    description: The register line format and the meaning of the flags.
    link: https://docs.kernel.org/admin-guide/binfmt-misc.html
  - name: QEMU qemu-binfmt-conf.sh
    description: QEMU's own registration script, the source of the magic and mask bytes.
    link: https://gitlab.com/qemu-project/qemu/-/blob/master/scripts/qemu-binfmt-conf.sh
"""

EXAMPLES = r"""
- name: Register the emulators for the platforms we build for, surviving reboots
  become: true
  archfleet.multiarch.qemu_binfmt:
    architectures:
      - linux/arm64
      - linux/arm/v7
      - s390x
      - ppc64le
    persistent: true

- name: Register every installed emulator and check that each one really runs
  become: true
  archfleet.multiarch.qemu_binfmt:
    architectures: [all]
    verify: true

- name: Use emulators built from source, without argv[0] preservation
  become: true
  archfleet.multiarch.qemu_binfmt:
    architectures: [riscv64]
    emulator_dir: /opt/qemu/bin
    flags: F

- name: Fail instead of replacing an entry someone else registered differently
  become: true
  archfleet.multiarch.qemu_binfmt:
    architectures: [aarch64]
    conflict: fail

- name: Remove the arm64 emulator and its persistence file
  become: true
  archfleet.multiarch.qemu_binfmt:
    architectures: [arm64]
    state: absent
    persistent: true
"""

RETURN = r"""
entries:
  description:
    - One item per managed QEMU target, keyed by the target name.
    - Describes the entry as it is after the task, or in check mode as it would be.
  returned: always
  type: dict
  sample:
    aarch64:
      name: qemu-aarch64
      state: present
      enabled: true
      interpreter: /usr/libexec/qemu-binfmt/aarch64-binfmt-P
      flags: POF
      offset: 0
      magic: 7f454c460201010000000000000000000200b700
      mask: ffffffffffffff00fffffffffffffffffeffffff
      persistent: true
      persistent_file: /etc/binfmt.d/qemu-aarch64.conf
      machine: aarch64
      changes: [flags]
      verified: true
  contains:
    name:
      description: Name of the binfmt_misc entry.
      type: str
    state:
      description: V(present) or V(absent).
      type: str
    enabled:
      description: Whether the entry is enabled.
      type: bool
    interpreter:
      description: The emulator the kernel runs; null when absent.
      type: str
    flags:
      description: Normalised flags in the kernel's order (C(POCF)).
      type: str
    offset:
      description: Offset of the magic in the file.
      type: int
    magic:
      description: Magic bytes, lowercase hex.
      type: str
    mask:
      description: Mask bytes, lowercase hex.
      type: str
    persistent:
      description: Whether C(/etc/binfmt.d/<name>.conf) exists.
      type: bool
    persistent_file:
      description: Path of the persistence file.
      type: str
    machine:
      description: What C(uname -m) prints under this emulator, when known.
      type: str
    changes:
      description: Fields that differed and were (or would be) changed; empty when unchanged.
      type: list
      elements: str
    verified:
      description: Result of O(verify); null when not verified.
      type: bool
requested:
  description: How each name in O(architectures) other than V(all) was resolved to a QEMU target.
  returned: always
  type: dict
  sample: {"linux/arm64": "aarch64", "arm/v7": "arm"}
"""

import os
import platform
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.archfleet.multiarch.plugins.module_utils import binfmt


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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            architectures=dict(type="list", elements="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            flags=dict(type="str"),
            persistent=dict(type="bool", default=False),
            conflict=dict(type="str", choices=["replace", "fail"], default="replace"),
            emulator_dir=dict(type="path"),
            name_prefix=dict(type="str", default=binfmt.DEFAULT_NAME_PREFIX),
            verify=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**QemuBinfmt(module).run())


if __name__ == "__main__":
    main()
