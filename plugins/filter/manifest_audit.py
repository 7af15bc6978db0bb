# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: manifest_audit
short_description: Evaluate JMESPath policies over manifest facts, image by image
version_added: 0.1.0
description:
  - Evaluates every policy for every image of a M(archfleet.multiarch.docker_manifest_info) result and returns
    the audit document that C(playbooks/audit.yml) writes its JSON, Markdown and HTML reports from.
  - A policy is a JMESPath expression over ONE image's facts; the image passes when the result is truthy
    (JMESPath truthiness, so V(false), V(null), empty strings, lists and objects fail).
  - JMESPath has no date arithmetic, so before evaluating, each image and each of its manifests gets
    C(age_days), the whole days from the config C(created) date (facts gathered with C(config=true)) to
    O(now); the image's C(age_days) is its oldest platform's, V(null) when no date is known.
  - Every policy is checked before any image is evaluated; an invalid policy (malformed expression, unknown
    severity, duplicate name) fails the task with one sentence naming the policy and the expression. An
    expression that fails on an image (for example C(length) of a null value) names the image too.
  - Needs the Python library C(jmespath) on the controller.
author:
  - archfleet.multiarch contributors
positional: policies
options:
  _input:
    description:
      - The facts, either a registered M(archfleet.multiarch.docker_manifest_info) result or its
        RV(archfleet.multiarch.docker_manifest_info#module:images) list.
    type: raw
    required: true
  policies:
    description: The policies, evaluated in order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Unique name, used in reports and failure messages.
        type: str
        required: true
      expression:
        description: JMESPath expression over one image's facts; truthy means the image passes.
        type: str
        required: true
      severity:
        description: V(error) failures fail C(playbooks/audit.yml); V(warning) and V(info) are reported only.
        type: str
        choices: [error, warning, info]
        default: error
      description:
        description: What the policy checks, shown in the reports.
        type: str
  now:
    description:
      - The time ages are computed against, as an RFC 3339 timestamp (V(2024-06-01T00:00:00Z)).
      - Defaults to the current time; pass a fixed value for a reproducible audit.
    type: str
  require_platforms:
    description:
      - The platforms the facts were gathered with (O(archfleet.multiarch.docker_manifest_info#module:require_platforms)).
      - They become the first columns of the platform matrix, so a required platform no image has still
        shows, as missing.
    type: list
    elements: str
    default: []
seealso:
  - plugin: archfleet.multiarch.manifest_query
    plugin_type: filter
  - module: archfleet.multiarch.docker_manifest_info
"""

EXAMPLES = r"""
- name: Gather facts with creation dates
  archfleet.multiarch.docker_manifest_info:
    images: "{{ release_images }}"
    require_platforms: "{{ required }}"
    config: true
  register: manifests

- name: Evaluate policies
  ansible.builtin.set_fact:
    audit: "{{ manifests | archfleet.multiarch.manifest_audit(policies, now='2024-06-01T00:00:00Z',
                                                              require_platforms=required) }}"
  vars:
    policies:
      - name: required-platforms
        expression: length(missing_platforms) == `0`
        severity: error
      - name: fresh
        expression: "!exists || age_days <= `90`"
        severity: warning
        description: No platform was built more than 90 days ago.

- name: Fail on failed error policies
  ansible.builtin.assert:
    that: audit.summary.failed.error == 0
    fail_msg: "{{ audit.summary.failures | selectattr('severity', '==', 'error') | map(attribute='image') | unique }}"
"""

RETURN = r"""
_value:
  description: The audit document.
  type: dict
  contains:
    now:
      description: The time ages were computed against (ISO 8601).
      type: str
    require_platforms:
      description: O(require_platforms) as given.
      type: list
      elements: str
    policies:
      description: The policies with defaults filled in, each with C(failed), the number of images that failed it.
      type: list
      elements: dict
    platform_columns:
      description:
        - The platform matrix columns, normalised (C(linux/arm64) and C(linux/arm64/v8) are one column),
          required platforms first, then every other platform in order of appearance.
      type: list
      elements: str
    images:
      description:
        - One entry per image, in input order, each the image's facts plus C(age_days) (on the image and on
          each manifest), C(results), C(status) and C(platform_cells).
        - C(results) has one entry per policy with C(policy), C(severity), C(passed), C(outcome) and C(value)
          (what the expression returned). C(outcome) is V(fail), V(pass), or V(n/a) for a policy that an image
          which does not exist (or could not be read, C(exists) not V(true)) passes.
        - C(status) is V(pass), or the worst severity the image failed (V(error), V(warning), V(info)).
        - C(platform_cells) has one entry per RV(_value.platform_columns) item with C(present), C(required),
          and for a present platform C(platform), C(digest), C(short_digest), C(size) (compressed bytes),
          C(created) and C(age_days).
      type: list
      elements: dict
    summary:
      description:
        - C(images), C(policies) and C(evaluations) counts, C(failed) (failures per severity), C(status)
          (as an image's, over all images) and C(failures) (each failed C(image), C(policy), C(severity)).
      type: dict
"""

import datetime

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._policy import PolicyError, audit, require_jmespath


def manifest_audit(facts, policies, now=None, require_platforms=None):
    """The audit document for ``facts``; every error becomes one AnsibleFilterError sentence."""
    if isinstance(facts, dict) and "images" in facts:
        facts = facts["images"]
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    try:
        require_jmespath("the manifest_audit filter")
        return audit(facts, policies, now, require_platforms=require_platforms)
    except PolicyError as exc:
        raise AnsibleFilterError("manifest_audit: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"manifest_audit": manifest_audit}
