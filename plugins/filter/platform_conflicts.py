# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: platform_conflicts
short_description: Platforms that more than one build host builds
version_added: 0.1.0
description:
  - Groups builds (P(archfleet.multiarch.platform_builds#filter) or C(build_images_results) of several hosts) by
    platform and returns the platforms built by more than one host, sorted by platform, each with its hosts in
    the order the builds are given. An empty list means every platform has one host.
author:
  - archfleet maintainers (@archfleet)
positional: _input
options:
  _input:
    description: Builds, dicts with C(platform) and C(host).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Which platform is assigned twice?
  ansible.builtin.debug:
    msg: >-
      {{ [{'platform': 'linux/s390x', 'host': 'host2'}, {'platform': 'linux/amd64', 'host': 'host1'},
          {'platform': 'linux/s390x', 'host': 'host3'}] | archfleet.multiarch.platform_conflicts }}
  # [{'platform': 'linux/s390x', 'hosts': ['host2', 'host3']}]
"""

RETURN = r"""
_value:
  description: The platforms with more than one host.
  type: list
  elements: dict
  contains:
    platform:
      description: The platform.
      type: str
    hosts:
      description: The hosts that build it.
      type: list
      elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import platform_conflicts as _conflicts


def platform_conflicts(builds):
    if not isinstance(builds, list) or not all(isinstance(b, dict) and "platform" in b and "host" in b for b in builds):
        raise AnsibleFilterError("platform_conflicts: expected a list of dicts with platform and host, got %r"
                                 % (builds,))
    return _conflicts(builds)


class FilterModule(object):
    def filters(self):
        return {"platform_conflicts": platform_conflicts}
