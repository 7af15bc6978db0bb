# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: release_plan
short_description: What a multi-arch release from a fleet of build hosts holds and lacks
version_added: 0.1.0
description:
  - Reads what each build host reported (C(build_images_results) of role archfleet.multiarch.build_images) and
    what it was to build (its C(build_images_host.platforms), else its C(build_images_platforms)), and returns the
    M(archfleet.multiarch.docker_manifest_create) C(sources) of what exists, pinned by digest, and what is missing -
    the hosts that reported nothing (failed or unreachable) and the platforms no host reported. Role
    archfleet.multiarch.publish_manifests publishes from it.
  - A platform of an index BuildKit pushed (C(from_index)) is a source with C(platforms), so the attestation
    manifest that describes it comes along; any other is a source with C(platform).
  - An invalid platform name fails the task with a message naming it.
author:
  - archfleet maintainers (@archfleet)
positional: _input
options:
  _input:
    description:
      - The build hosts, each a dict (for example C(hostvars[host])) with C(inventory_hostname) (or C(host)),
        C(build_images_results) (absent when the host reported nothing), C(build_images_host) and
        C(build_images_platforms).
    type: list
    elements: dict
    required: true
  required:
    description: Platforms the release must have; empty for the platforms the hosts were to build.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Two hosts, one of which failed before it reported
  ansible.builtin.debug:
    msg: >-
      {{ [{'inventory_hostname': 'host1', 'build_images_results': [
              {'platform': 'linux/amd64', 'reference': 'reg.lan/app@sha256:' ~ 'a' * 64, 'host': 'host1'}]},
          {'inventory_hostname': 'host2', 'build_images_platforms': ['linux/arm/v7', 'ppc64el']}]
         | archfleet.multiarch.release_plan | dict2items | selectattr('key', 'in', ['missing_platforms', 'complete'])
         | items2dict }}
  # {'missing_platforms': ['linux/arm/v7', 'linux/ppc64le'], 'complete': False}

- name: The sources of the platforms that exist
  ansible.builtin.debug:
    msg: >-
      {{ ([{'inventory_hostname': 'host1', 'build_images_results': [
              {'platform': 'linux/amd64', 'reference': 'reg.lan/app@sha256:' ~ 'a' * 64, 'host': 'host1'}]}]
          | archfleet.multiarch.release_plan(required=['linux/amd64', 'linux/arm64'])).sources }}
  # [{'image': 'reg.lan/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'platform': 'linux/amd64'}]
"""

RETURN = r"""
_value:
  description: The release.
  type: dict
  contains:
    results:
      description: Every reported result that was pushed (not C(held)), in host order.
      type: list
      elements: dict
    held:
      description: The results of hosts that held their pushes because another build host was missing.
      type: list
      elements: dict
    sources:
      description: M(archfleet.multiarch.docker_manifest_create) C(sources), one per reported platform.
      type: list
      elements: dict
    platforms:
      description: The reported platforms.
      type: list
      elements: str
    missing_hosts:
      description: The hosts that reported nothing, each C(host) and C(platforms) (V(null) when unknown).
      type: list
      elements: dict
    missing_platforms:
      description:
        - Platforms required, to be built by a host that reported nothing, or held, that no host reported (sorted).
      type: list
      elements: str
    missing_required:
      description: The platforms of O(required) that no host reported (sorted).
      type: list
      elements: str
    conflicts:
      description: Platforms reported by more than one host (P(archfleet.multiarch.platform_conflicts#filter)).
      type: list
      elements: dict
    complete:
      description: No host and no platform is missing.
      type: bool
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import BuildDataError
from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import release_plan as _release_plan


def _host_entry(host):
    if not hasattr(host, "get"):
        raise AnsibleFilterError("release_plan: each build host must be a dict (such as hostvars[host]), got %r"
                                 % (host,))
    name = host.get("inventory_hostname") or host.get("host")
    started = host.get("build_images_host") or {}
    planned = started.get("platforms") if "platforms" in started else (host.get("build_images_platforms") or None)
    return {"host": name, "results": host.get("build_images_results"), "platforms": planned}


def release_plan(hosts, required=None):
    try:
        return _release_plan([_host_entry(host) for host in hosts], required or [])
    except BuildDataError as exc:
        raise AnsibleFilterError("release_plan: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"release_plan": release_plan}
