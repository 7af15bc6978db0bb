# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: platform
short_description: Parse and normalise a platform string as containerd does
version_added: 0.1.0
description:
  - Parses C(os/arch[/variant]), or a bare OS or architecture, and normalises it
    like containerd's C(platforms.Parse) (C(aarch64) is C(arm64), C(x86_64) is C(amd64), C(armhf) is C(arm/v7),
    C(armel) is C(arm/v6), C(i386) is C(386), case-insensitive).
  - The OS part may carry a version and features in parentheses, as in windows(10.0.17763+win32k)/amd64;
    they are returned as RV(_value.os_version) and RV(_value.os_features).
  - A bare architecture gets C(linux) as its OS; a bare OS gets the architecture of the controller, as containerd does.
  - C(linux/arm) has no variant (v7 is implied) and C(linux/arm64/v8) keeps its variant, as containerd returns them.
  - An invalid string fails the task with a message that says why. Unlike containerd, an unknown OS or
    architecture (a typo such as C(linux/arm46)) is an error rather than a new platform.
author:
  - archfleet.multiarch contributors
positional: _input
options:
  _input:
    description: A platform string such as C(linux/arm64/v8), C(aarch64), C(armhf) or C(Linux/x86_64).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Normalise a platform
  ansible.builtin.debug:
    msg: "{{ 'aarch64' | archfleet.multiarch.platform }}"
  # os: linux, architecture: arm64, variant: null, os_version: null, os_features: []

- name: Platforms of a list of Debian architectures (dpkg names are aliases too)
  ansible.builtin.debug:
    msg: "{{ ['amd64', 'armhf', 'ppc64el', 'i386'] | map('archfleet.multiarch.platform') | map(attribute='architecture') | list }}"
  # ['amd64', 'arm', 'ppc64le', '386']

- name: A Windows platform with its OS version, as containerd prints it
  ansible.builtin.debug:
    msg: "{{ 'windows(10.0.20348.2340)/amd64' | archfleet.multiarch.platform }}"
  # os: windows, architecture: amd64, variant: null, os_version: 10.0.20348.2340, os_features: []
"""

RETURN = r"""
_value:
  description: The platform.
  type: dict
  contains:
    os:
      description: Operating system (C(linux)).
      type: str
    architecture:
      description: Architecture in Go's naming (C(amd64), C(arm64), C(arm), C(ppc64le), C(s390x), C(riscv64), ...).
      type: str
    variant:
      description: CPU variant (C(v7), C(v6), C(v8)) or V(null).
      type: str
    os_version:
      description: OS version, from the parenthesised part of the OS, or V(null).
      type: str
    os_features:
      description: OS features, the C(+feature) parts inside the parentheses.
      type: list
      elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import PlatformError, parse_platform


def platform(text):
    try:
        return parse_platform(text).as_dict()
    except PlatformError as exc:
        raise AnsibleFilterError("platform: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"platform": platform}
