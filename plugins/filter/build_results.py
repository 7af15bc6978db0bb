# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: build_results
short_description: The per-platform digests a build host reports, from the results of its build and push tasks
version_added: 0.1.0
description:
  - Makes C(build_images_results) of role archfleet.multiarch.build_images, one dict per build of
    P(archfleet.multiarch.platform_builds#filter), from the registered C(results) of its looped tasks.
  - Without O(index) (each platform built on its own) - O(before), O(built) and O(pushed) are the C(results) of the
    tasks that read the image IDs, built and pushed, one per build; O(registry) the C(images) of
    M(archfleet.multiarch.docker_manifest_info) on the per-platform tags. A push skipped without a C(skip_reason)
    (check mode) makes the platform C(pending) with an empty digest; a push skipped because the registry holds the
    image keeps the registry's digest; C(docker push) prints C(digest sha256:...) after its tag, C(podman push --digestfile
    /dev/stdout) the digest alone. With O(engine=podman), C(local_reference) is the image ID.
  - With O(index) (BuildKit pushed every platform as one index, O(index_name)) - each platform's digest is its
    entry in that index (docker_manifest_info facts), C(reference) the index by digest, C(from_index) true.
  - Lists that do not line up, or a docker push that printed no digest, fail the task with a message naming them.
author:
  - archfleet maintainers (@archfleet)
positional: _input
options:
  _input:
    description: The builds (P(archfleet.multiarch.platform_builds#filter)).
    type: list
    elements: dict
    required: true
  image:
    description: The repository the images were pushed to.
    type: str
    required: true
  tag:
    description: The release tag.
    type: str
    required: true
  host:
    description: The build host.
    type: str
    required: true
  engine:
    description: The build engine.
    type: str
    choices: [docker, podman]
    default: docker
  before:
    description: C(results) of the task that read each image's ID before building.
    type: list
    elements: dict
  built:
    description: C(results) of the build task.
    type: list
    elements: dict
  pushed:
    description: C(results) of the push task.
    type: list
    elements: dict
  registry:
    description: C(images) of docker_manifest_info on the per-platform tags, before pushing.
    type: list
    elements: dict
  index:
    description: The docker_manifest_info facts of the index BuildKit pushed (C(exists), C(digest), C(manifests)).
    type: dict
  index_name:
    description: The tag of that index.
    type: str
  pending:
    description: With O(index), whether the digests are known only after a real run (check mode).
    type: bool
    default: false
  held:
    description:
      - The host held its pushes because another build host of the play failed or was unreachable (and a partial
        release is not allowed) - every result has C(held) true and an empty C(digest) and C(reference).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: A platform pushed now, and one whose image the registry already held
  ansible.builtin.debug:
    msg: >-
      {{ [{'platform': 'linux/amd64', 'image': 'reg.lan/app:1-linux-amd64'},
          {'platform': 'linux/arm64', 'image': 'reg.lan/app:1-linux-arm64'}]
         | archfleet.multiarch.build_results(image='reg.lan/app', tag='1', host='host1', engine='docker',
             before=[{'stdout': ''}, {'stdout': 'sha256:' ~ 'e' * 64}],
             built=[{'stdout_lines': ['sha256:' ~ 'd' * 64]}, {'stdout_lines': ['sha256:' ~ 'e' * 64]}],
             pushed=[{'stdout': 'latest: digest: sha256:' ~ 'a' * 64 ~ ' size: 528'},
                     {'skipped': true, 'skip_reason': 'Conditional result was False'}],
             registry=[{'digest': none}, {'digest': 'sha256:' ~ 'b' * 64}])
         | map(attribute='reference') | map('regex_replace', '^(.*@sha256:.{4}).*$', '\1') | list }}
  # ['reg.lan/app@sha256:aaaa', 'reg.lan/app@sha256:bbbb']

- name: In check mode a push that would run leaves the platform pending
  ansible.builtin.debug:
    msg: >-
      {{ [{'platform': 'linux/s390x', 'image': 'reg.lan/app:1-linux-s390x'}]
         | archfleet.multiarch.build_results(image='reg.lan/app', tag='1', host='host3', before=[{'stdout': ''}],
             built=[{'skipped': true}], pushed=[{'skipped': true}], registry=[{'digest': none}])
         | map(attribute='pending') | list }}
  # [True]
"""

RETURN = r"""
_value:
  description: One dict per build, as C(build_images_results) documents them.
  type: list
  elements: dict
  contains:
    platform:
      description: The platform.
      type: str
    image:
      description: The per-platform tag (with O(index), the index's tag).
      type: str
    digest:
      description: The pushed digest; empty while C(pending).
      type: str
    reference:
      description: C(<repository>@<digest>) (with O(index), the index by digest).
      type: str
    repository:
      description: The repository.
      type: str
    tag:
      description: The release tag.
      type: str
    host:
      description: The build host.
      type: str
    pending:
      description: Check mode - the digest is known only after a real build and push.
      type: bool
    local_reference:
      description: With podman, the local image ID.
      type: str
      returned: engine is podman
    from_index:
      description: True when the platform is taken from the index BuildKit pushed.
      type: bool
      returned: index is given
    held:
      description: True when the host held its pushes (O(held)).
      type: bool
      returned: held
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import BuildDataError
from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import build_results as _build_results
from ansible_collections.archfleet.multiarch.plugins.plugin_utils._builds import index_results


def build_results(builds, image, tag, host, engine="docker", before=None, built=None, pushed=None, registry=None,
                  index=None, index_name=None, pending=False, held=False):
    try:
        if index is not None:
            return index_results(builds, image, tag, host, index_name or "", index, pending, held)
        return _build_results(builds, image, tag, host, engine, before or [], built or [], pushed or [],
                              registry or [], held)
    except BuildDataError as exc:
        raise AnsibleFilterError("build_results: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"build_results": build_results}
