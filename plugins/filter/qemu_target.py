# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: qemu_target
short_description: The QEMU user-mode target that emulates a platform
version_added: 0.1.0
description:
  - Maps a Docker platform (C(linux/arm64), C(linux/arm/v7), C(386)) or a QEMU target name (C(aarch64))
    to the QEMU target whose emulator runs it, which is also the binfmt_misc entry name without its
    C(qemu-) prefix. The same table as M(archfleet.multiarch.qemu_binfmt) uses.
  - An architecture no QEMU emulator runs fails the task with a message naming it, unless O(missing) is given.
author:
  - archfleet maintainers (@archfleet)
positional: _input
options:
  _input:
    description: A platform or architecture such as C(linux/arm/v7), C(arm64), C(ppc64le) or C(aarch64).
    type: str
    required: true
  missing:
    description: Returned instead of failing when no QEMU emulator runs the architecture.
    type: str
  machine:
    description:
      - Return what C(uname -m) prints in a program run by that emulator (C(armv7l) for C(linux/arm/v7),
        C(i686) for C(386)) instead of the QEMU target; what a check that a container really ran under
        emulation compares with.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The binfmt_misc entry that runs arm/v7 binaries
  ansible.builtin.debug:
    msg: "/proc/sys/fs/binfmt_misc/qemu-{{ 'linux/arm/v7' | archfleet.multiarch.qemu_target }}"
  # /proc/sys/fs/binfmt_misc/qemu-arm

- name: Targets of a list of platforms, with '' for those without an emulator
  ansible.builtin.debug:
    msg: "{{ ['linux/amd64', 'linux/s390x', 'wasm'] | map('archfleet.multiarch.qemu_target', missing='') | list }}"
  # ['x86_64', 's390x', '']

- name: What uname -m prints in an arm/v7 container run under emulation
  ansible.builtin.debug:
    msg: "{{ 'linux/arm/v7' | archfleet.multiarch.qemu_target(machine=true) }}"
  # armv7l
"""

RETURN = r"""
_value:
  description:
    - The QEMU target (C(x86_64), C(aarch64), C(arm), C(ppc64le), C(s390x), C(riscv64), ...).
    - With O(machine=true), the C(uname -m) of that emulator (C(aarch64), C(armv7l), C(i686), ...).
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.module_utils._binfmt.entries import (
    UNAME_MACHINE,
    BinfmtError,
    resolve_architecture,
)


def qemu_target(platform, missing=None, machine=False):
    try:
        target = resolve_architecture(platform)
    except BinfmtError as exc:
        if missing is not None:
            return missing
        raise AnsibleFilterError("qemu_target: %s" % exc)
    if machine:
        return UNAME_MACHINE.get(target, target)
    return target


class FilterModule(object):
    def filters(self):
        return {"qemu_target": qemu_target}
