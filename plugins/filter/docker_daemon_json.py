# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: docker_daemon_json
short_description: Merge and type-check docker's daemon.json, or compare it with what dockerd runs with
version_added: 0.1.0
description:
  - Without O(applied), returns the content to write to C(daemon.json) - the managed options over the
    current file (O(mode=merge), keys the options do not name are kept) or the options alone
    (O(mode=replace)) - after checking the type of every known dockerd option (a list of strings for
    C(insecure-registries), a boolean for C(debug), ...). A wrong type, or a current file that is not a
    JSON object, fails the task with one sentence naming the key or the file.
  - With O(applied) (the output of C(docker info --format '{{json .}}'), parsed), returns the list of
    options whose value dockerd does not show, one sentence each; empty when it runs with them. Compared
    are the options C(docker info) reports - C(labels), C(registry-mirrors), C(insecure-registries),
    C(debug), C(live-restore).
  - Used by the role C(archfleet.multiarch.build_host) to manage C(daemon.json).
author:
  - archfleet.multiarch contributors
positional: _input
options:
  _input:
    description: The managed options, a dictionary of daemon.json keys.
    type: dict
    required: true
  current:
    description: The current content of C(daemon.json) (text); empty when there is none.
    type: str
    default: ""
  mode:
    description: V(merge) keeps the keys of the current file the options do not name; V(replace) writes the options alone.
    type: str
    choices: [merge, replace]
    default: merge
  applied:
    description: C(docker info) as a dictionary; switches the filter to comparing.
    type: dict
"""

EXAMPLES = r"""
- name: Keep the file's other keys, add a mirror
  ansible.builtin.debug:
    msg: "{{ {'registry-mirrors': ['https://mirror.lan']} | archfleet.multiarch.docker_daemon_json(current='{\"labels\": [\"team=a\"]}') }}"
  # {"labels": ["team=a"], "registry-mirrors": ["https://mirror.lan"]}

- name: Which options dockerd does not run with
  ansible.builtin.debug:
    msg: "{{ {'debug': true} | archfleet.multiarch.docker_daemon_json(applied={'Debug': false}) }}"
  # ['debug is false']
"""

RETURN = r"""
_value:
  description:
    - The daemon.json content as a dictionary, or with O(applied) the list of options dockerd does not run with.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._daemon_json import (
    DaemonJsonError,
    merged,
    not_applied,
)


def docker_daemon_json(options, current="", mode="merge", applied=None):
    try:
        if applied is not None:
            return not_applied(merged(options, "", "replace"), applied)
        return merged(options, current, mode)
    except DaemonJsonError as exc:
        raise AnsibleFilterError("docker_daemon_json: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"docker_daemon_json": docker_daemon_json}
