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
  - Skips what the host runs natively, with the reason in RV(native), that is its own architecture
    and what its CPU runs in a compatibility mode (V(i386) on x86_64, 32-bit V(arm) on an aarch64
    CPU that runs it, checked with a test program). Routing native binaries through an emulator can
    make the host unusable, and no emulator is needed for them.
  - With O(verify), a change is transactional. If an entry fails its test, every entry this task
    changed is put back as it was (a replaced entry restored, a new one removed), nothing is
    written to C(/etc/binfmt.d), and the failure lists what was rolled back.
  - Must run as root, so use C(become=true).
author:
  - archfleet maintainers (@archfleet)
options:
  architectures:
    description:
      - Architectures to manage, as QEMU target names (V(aarch64), V(arm), V(ppc64le), V(s390x),
        V(riscv64), V(mips64el), V(i386), V(x86_64), and every other target Debian's C(qemu-user-static) installs or
        QEMU's C(qemu-binfmt-conf.sh) knows, V(aarch64_be), V(microblazeel), V(nios2) and V(or1k) included; V(i486)
        is V(i386)) or Docker platform names
        (V(arm64), V(linux/arm64), V(arm/v7), V(386), V(amd64), V(ppc64le), V(mips64le), ...).
        Aliases that map to the same QEMU target are managed once.
      - V(all) means every target whose emulator is installed (with O(state=present)) or every
        target that has an entry called O(name_prefix)+target (with O(state=absent)), except what
        the host runs natively.
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
      - Without V(F) the kernel looks the emulator up by its path at each run, inside each container and chroot,
        where it does not exist; the task then warns once, naming the entries that containers cannot use.
      - With V(F) the emulator must be a statically linked ELF file. A dynamically linked one (C(qemu-user)) or a
        wrapper script is refused, naming what it would look up inside each container (the loader and
        libraries, or the script's own interpreter), since it cannot run there.
      - By default the flags of the emulator package's own registration line are used
        (Debian and Ubuntu C(qemu-user-static) ship V(POF) with a C(-binfmt-P) wrapper in
        C(/usr/libexec/qemu-binfmt)), always with V(F) added; without such a line the default
        is V(F) with C(/usr/bin/qemu-<target>-static).
      - Flags are compared as a set, in the kernel's order, so V(FPO) and V(POF) are the same.
    type: str
  persistent:
    description:
      - Also manage C(/etc/binfmt.d/<name>.conf) so the registration comes back after a reboot
        (C(systemd-binfmt) applies it at boot). It is written only after every kernel entry of the
        task is registered (and verified, with O(verify)).
      - With O(state=absent) the file is removed; when the distribution ships a same-named file
        (C(/usr/lib/binfmt.d/qemu-<target>.conf) from C(qemu-user-static)), it is masked instead
        with a symlink to C(/dev/null), as the manual page binfmt.d(5) documents, so the entry stays removed
        after a reboot. binfmt-support's own list (C(/var/lib/binfmts)) cannot be masked; it is
        reported in RV(entries.returns_at_boot) with a warning.
      - With V(false) nothing under C(/etc/binfmt.d) is touched; removing an entry that a
        binfmt.d file registers again at boot warns and says so in RV(entries.returns_at_boot).
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
      - When a test fails, every kernel change of the task is rolled back (see RV(rolled_back)
        in the failure) and no persistence file is written.
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
      masked: false
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
    masked:
      description: Whether C(/etc/binfmt.d/<name>.conf) is a symlink to C(/dev/null) masking the distribution's file.
      type: bool
    returns_at_boot:
      description:
        - With O(state=absent), the files that will register the entry again at the next boot (empty when
          the removal lasts).
      type: list
      elements: str
      returned: when O(state=absent)
native:
  description: Requested names that are not registered because this host runs them natively, with the reason.
  returned: always
  type: dict
  sample: {"linux/amd64": "this is the host's own architecture (x86_64): it runs natively, no emulator is needed."}
rolled_back:
  description:
    - What was undone, one line per entry, when a verification or a kernel write failed (returned with the
      failure); empty on success.
  returned: always
  type: list
  elements: str
  sample: ["qemu-aarch64: restored the previous entry (interpreter /usr/bin/qemu-aarch64-static, flags F)"]
requested:
  description: How each name in O(architectures) other than V(all) was resolved to a QEMU target.
  returned: always
  type: dict
  sample: {"linux/arm64": "aarch64", "arm/v7": "arm"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries as binfmt
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt.manager import BinfmtTaskError, QemuBinfmt


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
    try:
        result = QemuBinfmt(module).run()
    except BinfmtTaskError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
