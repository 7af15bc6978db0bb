# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: audit_since
short_description: What changed between two audits - new failures, fixed ones, changed digests
version_added: 0.1.0
description:
  - Compares an audit document (P(archfleet.multiarch.manifest_audit#filter), as role archfleet.multiarch.audit
    writes it to C(audit.json)) with an earlier one. A failure is the same when its image and policy are; a
    digest changed when the image was read both times with different digests.
  - Role archfleet.multiarch.audit adds the result to its document as C(since) (C(audit_previous_report)).
author:
  - archfleet maintainers (@archfleet)
positional: _input
options:
  _input:
    description: The current audit document (C(now), C(images) with C(canonical) and C(digest), C(summary.failures)).
    type: dict
    required: true
  previous:
    description: The earlier audit document.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: One failure fixed since the last audit, and the image re-pushed
  ansible.builtin.debug:
    msg: "{{ [since.new_failures | length, since.fixed_failures | length, since.changed_digests | map(attribute='image') | list] }}"
  vars:
    since: >-
      {{ {'now': '2026-12-05T10:00:00Z', 'images': [{'canonical': 'r/app:1', 'digest': 'sha256:' ~ 'b' * 64}],
          'summary': {'failures': []}}
         | archfleet.multiarch.audit_since(previous={'now': '2026-12-04T10:00:00Z',
             'images': [{'canonical': 'r/app:1', 'digest': 'sha256:' ~ 'a' * 64}],
             'summary': {'failures': [{'image': 'r/app:1', 'policy': 'arm64'}]}}) }}
  # [0, 1, ['r/app:1']]
"""

RETURN = r"""
_value:
  description: What changed.
  type: dict
  contains:
    previous_now:
      description: When the earlier audit ran (its C(now)).
      type: str
    new_failures:
      description: Failures of the current audit that the earlier one did not have.
      type: list
      elements: dict
    fixed_failures:
      description: Failures of the earlier audit that the current one does not have.
      type: list
      elements: dict
    changed_digests:
      description: Images read both times with another digest, each C(image), C(before) and C(after).
      type: list
      elements: dict
"""

from ansible.errors import AnsibleFilterError


def _failures(document):
    return dict(("%s %s" % (failure["image"], failure["policy"]), failure)
                for failure in document.get("summary", {}).get("failures") or [])


def audit_since(current, previous):
    if not isinstance(current, dict) or not isinstance(previous, dict):
        raise AnsibleFilterError("audit_since: expected two audit documents (dicts), got %s and %s"
                                 % (type(current).__name__, type(previous).__name__))
    before, after = _failures(previous), _failures(current)
    digests = dict((image["canonical"], image.get("digest")) for image in previous.get("images") or [])
    return {
        "previous_now": previous.get("now"),
        "new_failures": [failure for key, failure in after.items() if key not in before],
        "fixed_failures": [failure for key, failure in before.items() if key not in after],
        "changed_digests": [{"image": image["canonical"], "before": digests[image["canonical"]],
                             "after": image.get("digest")}
                            for image in current.get("images") or []
                            if image["canonical"] in digests and digests[image["canonical"]] != image.get("digest")],
    }


class FilterModule(object):
    def filters(self):
        return {"audit_since": audit_since}
