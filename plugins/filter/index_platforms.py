# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: index_platforms
short_description: The platform images of an OCI index, platform to digest
version_added: 0.1.0
description:
  - Reads an OCI image index or Docker manifest list document (a dict, for example the C(index.json) of an OCI
    layout read with M(ansible.builtin.slurp) and C(from_json)) and returns the digest of each platform image it lists,
    keyed by C(os/architecture[/variant]) as the index states the platform.
  - Attestation manifests (C(vnd.docker.reference.type)) and C(unknown/unknown) entries are left out, so two indexes
    BuildKit built from the same sources compare equal although their provenance differs.
author:
  - archfleet maintainers (@archfleet)
positional: _input
options:
  _input:
    description: The index document.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The images of a buildx index, without its attestation manifest
  ansible.builtin.debug:
    msg: >-
      {{ {'schemaVersion': 2, 'manifests': [
            {'digest': 'sha256:' ~ 'a' * 64, 'platform': {'os': 'linux', 'architecture': 'arm', 'variant': 'v7'}},
            {'digest': 'sha256:' ~ 'b' * 64, 'platform': {'os': 'unknown', 'architecture': 'unknown'},
             'annotations': {'vnd.docker.reference.type': 'attestation-manifest',
                             'vnd.docker.reference.digest': 'sha256:' ~ 'a' * 64}}]}
         | archfleet.multiarch.index_platforms | list }}
  # ['linux/arm/v7']
"""

RETURN = r"""
_value:
  description: Platform (C(os/architecture[/variant])) to the digest of its image.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import BuildDataError
from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import index_platforms as _index_platforms


def index_platforms(document):
    try:
        return _index_platforms(document)
    except BuildDataError as exc:
        raise AnsibleFilterError("index_platforms: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"index_platforms": index_platforms}
