# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: manifest_query
short_description: Query manifest facts with a JMESPath expression
version_added: 0.1.0
description:
  - Evaluates a JMESPath expression (U(https://jmespath.org/specification.html)) over manifest facts,
    typically the result of M(archfleet.multiarch.docker_manifest_info) or its RV(archfleet.multiarch.docker_manifest_info#module:images) list.
  - The input is converted to plain JSON data first, so JMESPath functions such as C(length) and
    C(contains) work on values Ansible has wrapped.
  - A malformed expression fails the task with one sentence naming the expression and the parser's
    reason and position; so does an expression that fails when evaluated (an unknown function,
    C(length) of a null value).
  - Needs the Python library C(jmespath) on the controller.
author:
  - archfleet.multiarch contributors
positional: expression
options:
  _input:
    description: The data to query, usually a registered M(archfleet.multiarch.docker_manifest_info) result.
    type: raw
    required: true
  expression:
    description: The JMESPath expression.
    type: str
    required: true
seealso:
  - plugin: archfleet.multiarch.manifest_audit
    plugin_type: filter
  - module: archfleet.multiarch.docker_manifest_info
"""

EXAMPLES = r"""
- name: Gather facts
  archfleet.multiarch.docker_manifest_info:
    images: "{{ release_images }}"
    require_platforms: [linux/amd64, linux/arm64]
    config: true
  register: manifests

- name: Images that lack a required platform
  ansible.builtin.debug:
    msg: "{{ manifests | archfleet.multiarch.manifest_query('images[?length(missing_platforms) > `0`].canonical') }}"

- name: Digest of the arm64 image of each index
  ansible.builtin.debug:
    msg: >-
      {{ manifests | archfleet.multiarch.manifest_query(
           'images[?kind==`"index"`].{image: canonical,
             arm64: manifests[?platform.architecture==`"arm64"`].digest | [0]}') }}

- name: Creation date of every platform, oldest first
  ansible.builtin.debug:
    msg: "{{ manifests.images[0] | archfleet.multiarch.manifest_query('sort_by(manifests, &config.created)[].[platform_string, config.created]') }}"

- name: Fail when an index lacks its source annotation
  ansible.builtin.assert:
    that: manifests | archfleet.multiarch.manifest_query(query) | length == 0
    fail_msg: "No org.opencontainers.image.source on {{ manifests | archfleet.multiarch.manifest_query(query) }}"
  vars:
    query: "images[?kind=='index' && !annotations.\"org.opencontainers.image.source\"].canonical"
"""

RETURN = r"""
_value:
  description: Whatever the expression selects (V(null) when nothing matches).
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._policy import PolicyError, require_jmespath, search


def manifest_query(data, expression):
    """JMESPath over manifest facts; every error becomes one AnsibleFilterError sentence."""
    try:
        require_jmespath("the manifest_query filter")
        return search(expression, data)
    except PolicyError as exc:
        raise AnsibleFilterError("manifest_query: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"manifest_query": manifest_query}
