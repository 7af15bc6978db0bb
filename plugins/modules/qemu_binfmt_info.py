#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: qemu_binfmt_info
short_description: Whether this host runs each platform natively or through a usable binfmt_misc entry
version_added: 0.1.0
description:
  - For each platform, says whether the host runs it natively (its own architecture, or what its CPU runs in a
    compatibility mode, such as V(linux/386) on x86-64 or V(linux/arm/v7) on an aarch64 CPU with AArch32, which is
    checked by running a built-in arm test program) or through a QEMU binfmt_misc entry, and whether that entry is
    usable.
  - A usable entry is enabled, has flag V(F) when O(containers=true) (without it the kernel looks for the
    emulator inside every container, and builds fail late with C(no such file or directory)), and has an
    interpreter that exists and, for containers, is a statically linked ELF file. A dynamically linked emulator
    (C(qemu-user)) or a wrapper script cannot run in a container even with V(F), since the kernel opens the file but the
    loader and libraries, or the script's own interpreter, are looked up inside the container.
    RV(platforms[].problems) names each missing property.
  - What runs decides as well as what reads. For each emulated platform with a built-in test program (V(aarch64),
    V(arm), V(i386), V(x86_64), V(ppc64le), V(s390x), V(riscv64)) the program is run through the kernel and, as
    root with O(containers=true), chrooted into a directory that holds nothing but it (what a container without the
    emulator sees); an entry that reads as usable but does not run is not usable.
  - Where binfmt_misc is not mounted on O(binfmt_dir) in the task's mount namespace (a task under C(unshare -m),
    some containers), the kernel still runs its entries, so the test program decides, and RV(platforms[].source) and
    RV(platforms[].evidence) say so. Only when nothing runs (or there is no test program) is the platform refused.
  - Changes nothing. Use M(archfleet.multiarch.qemu_binfmt) to register the emulators.
author:
  - archfleet maintainers (@archfleet)
options:
  platforms:
    description:
      - Platforms (V(linux/arm64), V(linux/arm/v7), V(386)) or QEMU targets (V(aarch64)) to check.
    type: list
    elements: str
    required: true
  containers:
    description:
      - Whether the platforms will run inside containers (docker builds and runs), which needs flag V(F) and a
        statically linked interpreter.
    type: bool
    default: true
  name_prefix:
    description: Entry names are this prefix followed by the QEMU target, as for M(archfleet.multiarch.qemu_binfmt).
    type: str
    default: qemu-
  binaries:
    description:
      - Files whose architecture to report in RV(binaries), as the QEMU target whose binfmt_misc magic matches their
        ELF header (V(aarch64) for an arm64 binary, V(x86_64) for an amd64 one), for example an image's entrypoint
        copied out with C(docker cp), to check that an image holds code of its platform.
    type: list
    elements: path
    default: []
  binfmt_dir:
    description: Where binfmt_misc is mounted.
    type: path
    default: /proc/sys/fs/binfmt_misc
attributes:
  check_mode:
    support: full
    description: Reads only; the same report in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: Never changes anything.
  platform:
    support: full
    platforms: posix
    description: Linux only.
seealso:
  - module: archfleet.multiarch.qemu_binfmt
"""

EXAMPLES = r"""
- name: Can this build host run the platforms it builds?
  archfleet.multiarch.qemu_binfmt_info:
    platforms: [linux/amd64, linux/arm64, linux/arm/v7, linux/s390x]
  register: emulation

- name: Which architecture is this binary for?
  archfleet.multiarch.qemu_binfmt_info:
    platforms: []
    binaries: [/tmp/entrypoint-arm64]
  register: binary
  # binary.binaries['/tmp/entrypoint-arm64'] is 'aarch64' for an arm64 binary

- name: Stop with what is missing
  ansible.builtin.assert:
    that: emulation.usable
    fail_msg: "{{ emulation.problems | join('; ') }}"
"""

RETURN = r"""
machine:
  description: The host's C(uname -m).
  returned: always
  type: str
  sample: x86_64
usable:
  description: Whether every platform runs natively or through a usable entry.
  returned: always
  type: bool
problems:
  description: One line per platform that cannot run, naming what is missing.
  returned: always
  type: list
  elements: str
  sample:
    - "linux/s390x: entry qemu-s390x lacks flag F (fix binary), so the kernel looks for /usr/bin/qemu-s390x-static
      inside each container and builds fail with 'no such file or directory'"
binaries:
  description: For each file of O(binaries), the QEMU target of its ELF header; null when it is not an ELF file of a known target.
  returned: always
  type: dict
  sample: {"/tmp/entrypoint": "aarch64"}
platforms:
  description: One report per requested platform, in order.
  returned: always
  type: list
  elements: dict
  contains:
    platform:
      description: The platform as given.
      type: str
    target:
      description: The QEMU target that emulates it; null when none does.
      type: str
    native:
      description: Whether the host runs it without an emulator.
      type: bool
    native_reason:
      description: Why it is native; null when it is not.
      type: str
    entry:
      description: Name of the binfmt_misc entry that emulates it; null when native.
      type: str
    usable:
      description: Whether it runs (natively, or through a usable entry).
      type: bool
    problems:
      description: What the entry lacks (missing, disabled, no flag F, interpreter missing, dynamic or a script), or
        what did not run.
      type: list
      elements: str
    source:
      description:
        - Where the answer comes from. V(cpu) (native), V(binfmt_misc) (the entry read from O(binfmt_dir)),
          V(test_program) (binfmt_misc is not mounted there; the test program run through the kernel decided),
          V(none) (neither could be read nor run); null when no QEMU emulator exists for the platform.
      type: str
      sample: test_program
    evidence:
      description: One sentence saying what was read or run.
      type: str
      sample: "binfmt_misc is not mounted on /proc/sys/fs/binfmt_misc in this task's mount namespace, so entry
        qemu-s390x cannot be read; a s390x test program ran through the kernel (exit 42), also in an empty root
        (as in a container without the emulator)"
    ran:
      description: Whether the platform's test program exited with 42 when run through the kernel; null when not run
        (native, no test program, or the entry already reads as unusable).
      type: bool
    ran_in_empty_root:
      description: Whether it also ran chrooted into a directory holding nothing but it, as in a container without the
        emulator; null when not tried (needs root and O(containers=true)).
      type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt import entries as binfmt
from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt.usable import BinfmtHost


def main():
    module = AnsibleModule(
        argument_spec=dict(
            platforms=dict(type="list", elements="str", required=True),
            containers=dict(type="bool", default=True),
            name_prefix=dict(type="str", default=binfmt.DEFAULT_NAME_PREFIX),
            binaries=dict(type="list", elements="path", default=[]),
            binfmt_dir=dict(type="path", default=binfmt.BINFMT_MISC_DIR),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**BinfmtHost(module, proc_dir=module.params["binfmt_dir"]).report())


if __name__ == "__main__":
    main()
