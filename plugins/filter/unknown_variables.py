# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: unknown_variables
short_description: The variables of a role's prefix that the role does not know, each with the closest known name
version_added: 0.1.0
description:
  - Takes the names of the variables defined for a host (for example from the lookup
    P(ansible.builtin.varnames#lookup) with the role's prefix) and returns one sentence for each name that is
    not in O(known), naming the closest known name. An empty list means every name is known.
  - The roles of this collection use it as their first task, so a misspelt optional variable
    (C(audit_require_platform) for C(audit_require_platforms)) fails the role instead of being ignored.
author:
  - archfleet maintainers (@archfleet)
positional: _input
options:
  _input:
    description: Variable names, such as the ones the lookup P(ansible.builtin.varnames#lookup) returns.
    type: list
    elements: str
    required: true
  known:
    description:
      - The names the role knows - the options of its C(meta/argument_specs.yml), and the facts it sets itself.
      - A dict (such as the C(options) of an argument spec) counts by its keys.
    type: raw
    required: true
  role:
    description: The role's name, used in the sentences.
    type: str
    default: the role
"""

EXAMPLES = r"""
- name: Fail on a variable with the role's prefix that the role does not know
  ansible.builtin.assert:
    that: unknown | length == 0
    fail_msg: "{{ unknown | join(' ') }}"
  vars:
    unknown: >-
      {{ lookup('ansible.builtin.varnames', '^audit_', wantlist=true)
         | archfleet.multiarch.unknown_variables(known=['audit_images', 'audit_max_age_days'],
                                                 role='archfleet.multiarch.audit') }}
  # with audit_max_age_day set:
  # ["audit_max_age_day is not a variable of role archfleet.multiarch.audit; did you mean audit_max_age_days?"]
"""

RETURN = r"""
_value:
  description:
    - One sentence per unknown name, in the order of the input, naming the closest known name.
  type: list
  elements: str
"""

import difflib

from ansible.errors import AnsibleFilterError


def closest(name, known):
    """The known name most like ``name`` (difflib's ratio; ties go to the first in sorted order)."""
    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.0)
    return matches[0] if matches else None


def unknown_variables(names, known, role="the role"):
    if isinstance(known, dict):
        known = list(known)
    if not isinstance(known, (list, tuple)) or not all(isinstance(item, str) for item in known):
        raise AnsibleFilterError("unknown_variables: known must be a list of variable names (or a dict), got %r"
                                 % (known,))
    if isinstance(names, str) or not all(isinstance(item, str) for item in names):
        raise AnsibleFilterError("unknown_variables: the input must be a list of variable names, got %r" % (names,))
    known = sorted(set(known))
    sentences = []
    for name in names:
        if name in known:
            continue
        guess = closest(name, known)
        sentences.append("%s is not a variable of role %s%s" % (
            name, role, "; did you mean %s?" % guess if guess else " (it knows no variables)."))
    return sentences


class FilterModule(object):
    def filters(self):
        return {"unknown_variables": unknown_variables}
