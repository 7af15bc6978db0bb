# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: image_ref
short_description: Parse an image reference as Docker does
version_added: 0.1.0
description:
  - Parses an image reference with Docker's C(distribution/reference) grammar and normalisation
    (C(docker.io) default registry, C(library/) for official images, C(index.docker.io) as an alias).
  - An invalid reference fails the task with a message that says why.
author:
  - archfleet.multiarch contributors
positional: _input
options:
  _input:
    description: An image reference such as C(busybox:1.36) or C(registry.example.com:5000/team/app@sha256:...).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Split a reference
  ansible.builtin.debug:
    msg: "{{ 'busybox:1.36' | archfleet.multiarch.image_ref }}"
  # registry: docker.io, repository: library/busybox, tag: '1.36', digest: null,
  # name: docker.io/library/busybox, familiar: busybox:1.36, canonical: docker.io/library/busybox:1.36

- name: Group images by registry
  ansible.builtin.set_fact:
    registries: "{{ images | map('archfleet.multiarch.image_ref') | map(attribute='registry') | unique }}"
  vars:
    images: [busybox, ghcr.io/org/app:1.0, localhost:5000/app]
"""

RETURN = r"""
_value:
  description: The parts of the reference.
  type: dict
  contains:
    registry:
      description: Registry domain as Docker normalises it (C(docker.io) for Docker Hub).
      type: str
    repository:
      description: Repository path (C(library/busybox)).
      type: str
    tag:
      description: Tag as written, V(null) when none was written (no C(latest) is invented).
      type: str
    digest:
      description: Digest as written, or V(null).
      type: str
    name:
      description: C(registry/repository).
      type: str
    familiar:
      description: The short form Docker prints (C(busybox:1.36)).
      type: str
    canonical:
      description: C(registry/repository[:tag][@digest]).
      type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import InvalidReferenceError, parse_reference


def image_ref(reference):
    try:
        return parse_reference(reference).to_dict()
    except InvalidReferenceError as exc:
        raise AnsibleFilterError("image_ref: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"image_ref": image_ref}
