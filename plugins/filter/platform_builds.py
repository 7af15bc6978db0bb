# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: platform_builds
short_description: The per-platform images a build host builds
version_added: 0.1.0
description:
  - Turns the platforms assigned to a build host into one build per platform, each with its normalised platform
    (P(archfleet.multiarch.platform#filter) rules) and its per-platform tag
    C(<image>:<tag>-<os>-<arch>[-<variant>]), as role archfleet.multiarch.build_images builds and pushes them.
  - An invalid platform name fails the task with a message naming it.
author:
  - archfleet maintainers (@archfleet)
positional: _input
options:
  _input:
    description: Platform names such as C(linux/amd64), C(arm64) or C(linux/arm/v7).
    type: list
    elements: str
    required: true
  image:
    description: The repository the images are pushed to, such as C(registry.lan:5000/team/app).
    type: str
    required: true
  tag:
    description: The release tag.
    type: str
    required: true
  host:
    description: The build host (reported as C(host) of each build).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: The per-platform tags of a release
  ansible.builtin.debug:
    msg: >-
      {{ ['linux/amd64', 'linux/arm/v7'] | archfleet.multiarch.platform_builds(image='registry.lan:5000/team/app', tag='1.4.2')
         | map(attribute='image') | list }}
  # ['registry.lan:5000/team/app:1.4.2-linux-amd64', 'registry.lan:5000/team/app:1.4.2-linux-arm-v7']

- name: The normalised platforms (aliases resolved)
  ansible.builtin.debug:
    msg: "{{ ['aarch64', 'i386', 'armhf'] | archfleet.multiarch.platform_builds(image='app', tag='1') | map(attribute='platform') | list }}"
  # ['linux/arm64', 'linux/386', 'linux/arm']
"""

RETURN = r"""
_value:
  description: One build per platform, in the order given.
  type: list
  elements: dict
  contains:
    given:
      description: The platform as written.
      type: str
    platform:
      description: The normalised platform, C(os/architecture[/variant]).
      type: str
    os:
      description: Operating system.
      type: str
    architecture:
      description: Architecture (Go's naming).
      type: str
    variant:
      description: CPU variant, or V("").
      type: str
    host:
      description: The build host.
      type: str
    image:
      description: The per-platform tag C(<image>:<tag>-<os>-<arch>[-<variant>]).
      type: str
    reference:
      description: The same per-platform tag (build_images replaces it by the pushed digest in its results).
      type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import BuildDataError
from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import platform_builds as _platform_builds


def platform_builds(platforms, image, tag, host=""):
    try:
        return _platform_builds(platforms, image, tag, host)
    except BuildDataError as exc:
        raise AnsibleFilterError("platform_builds: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"platform_builds": platform_builds}
