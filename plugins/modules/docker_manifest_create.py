#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: docker_manifest_create
short_description: Publish a multi-architecture manifest list or OCI index, idempotently and registry-side
version_added: 0.1.0
description:
  - Assembles per-architecture images into a manifest list (Docker) or image index (OCI) and pushes it
    to the registry, working only against the registry API (no docker daemon, CLI or local cache).
  - Sources may be single-platform images (their platform is read from the image config unless given)
    or indexes themselves (all their platform entries are taken; buildx attestation entries follow O(attestations)).
  - Sources in another repository of the same registry have their blobs mounted; sources on another registry
    are copied (blobs streamed). Child manifests are written first, the index next, extra tags last, so a
    tag never points at an index whose children are missing; a failure part-way leaves the previous index in place.
  - The index bytes are deterministic (fixed key order, two-space indentation, entries in source order), so the
    same sources give the same digest on any host and any run.
  - When the tag already holds the index that would be written, nothing is written and the task is not changed;
    such a re-run reads the current index once and sends one HEAD per source given by tag (plus one per extra tag).
author:
  - archfleet maintainers (@archfleet)
extends_documentation_fragment:
  - archfleet.multiarch.registry
attributes:
  check_mode:
    support: full
    description: Computes the same index and digest and reports whether it would change anything, without writing.
  diff_mode:
    support: full
    description: Shows the index before and after as C(platform -> digest) lines.
  idempotent:
    support: full
    description: An unchanged re-run writes nothing.
  platform:
    support: full
    platforms: posix
    description: Runs on any host that can reach the registries, usually the controller.
options:
  name:
    description:
      - The target reference, with a tag (C(registry.example.com/team/app:1.4.2)). A reference without tag
        means C(:latest); a digest is not allowed.
    type: str
    required: true
  sources:
    description:
      - The per-platform images, in the order their entries are written.
      - Each item is a reference string, or a dict with C(image) (the reference), optional C(platform)
        (overrides the platform read from the image config, for example C(linux/arm/v7); written as given)
        and optional C(annotations) (a dict of strings added to the entry; OCI only).
      - Required with O(state=present).
    type: list
    elements: raw
    default: []
  tags:
    description: Extra tags in the same repository that get the same index, written after O(name).
    type: list
    elements: str
    default: []
  media_type:
    description:
      - V(oci) writes an OCI image index; V(docker) a Docker manifest list v2.
      - V(auto) writes a Docker manifest list when every child is a Docker v2 manifest and no annotations are
        requested, and an OCI index otherwise.
    type: str
    choices: [auto, oci, docker]
    default: auto
  annotations:
    description:
      - Index-level annotations (strings), for example C(org.opencontainers.image.source).
      - A Docker manifest list cannot carry them; with O(media_type=docker) they are an error, never dropped.
    type: dict
    default: {}
  mode:
    description:
      - V(replace) makes the index exactly the O(sources).
      - V(merge) amends the index at O(name) - entries of the same platform as a source are replaced,
        other entries are kept, new platforms are appended; index annotations are merged.
    type: str
    choices: [replace, merge]
    default: replace
  attestations:
    description:
      - What to do with buildx attestation entries (provenance, SBOM) carried by sources that are indexes.
      - V(keep) copies them with the images they describe; V(drop) leaves them out.
    type: str
    choices: [keep, drop]
    default: keep
  state:
    description:
      - V(present) publishes the index.
      - V(absent) deletes the manifest O(name) points at, where the registry allows deletes (the distribution
        registry also removes every tag pointing at it); a registry that refuses deletes is reported clearly.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Rewrite the index even when the tag holds one with the same entries written by another tool (different
        bytes), and re-read every source's platform from its image config instead of reusing the current index.
    type: bool
    default: false
  concurrency:
    description: How many sources are read, and children copied, at once.
    type: int
    default: 8
"""

EXAMPLES = r"""
- name: Publish app:1.4.2 for three platforms from per-platform tags
  archfleet.multiarch.docker_manifest_create:
    name: registry.example.com/team/app:1.4.2
    sources:
      - registry.example.com/team/app:1.4.2-amd64
      - registry.example.com/team/app:1.4.2-arm64
      - image: registry.example.com/team/app:1.4.2-armv7
        platform: linux/arm/v7
    tags: [latest, "1.4"]
    annotations:
      org.opencontainers.image.source: https://git.example.com/team/app
      org.opencontainers.image.revision: "{{ git_sha }}"
  register: published

- name: Add (or replace) the riscv64 image in the existing index
  archfleet.multiarch.docker_manifest_create:
    name: registry.example.com/team/app:1.4.2
    mode: merge
    sources:
      - registry.example.com/builds/app@sha256:4f1c...
  check_mode: true
  diff: true

- name: Re-publish a buildx index without its attestations, from another registry
  archfleet.multiarch.docker_manifest_create:
    name: registry.internal:5000/mirror/app:1.4.2
    sources: [ghcr.io/example/app:1.4.2]
    attestations: drop
    insecure_registries: [registry.internal:5000]

- name: Remove a release candidate
  archfleet.multiarch.docker_manifest_create:
    name: registry.example.com/team/app:1.5.0-rc1
    state: absent
"""

RETURN = r"""
digest:
  description: Digest of the index at O(name) (after the task; with O(state=absent), the digest removed or V(null)).
  returned: always
  type: str
  sample: sha256:9d0a...
media_type:
  description: Media type of the index.
  returned: when O(state=present)
  type: str
  sample: application/vnd.oci.image.index.v1+json
manifest:
  description: The index document as written (or as it would be written in check mode).
  returned: when O(state=present)
  type: dict
platforms:
  description: Platforms of the index (C(os/architecture[/variant]), attestations excluded), in entry order.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [linux/amd64, linux/arm64, linux/arm/v7]
tags:
  description: Every reference that holds the index (O(name) first, then O(tags)).
  returned: always
  type: list
  elements: str
written_tags:
  description: The references that were (or in check mode would be) written.
  returned: always
  type: list
  elements: str
copied:
  description:
    - What was brought into the target repository - C(manifests) (child manifests written), C(blobs_mounted),
      C(blobs_copied), C(blobs_present) (already there).
  returned: when O(state=present)
  type: dict
registry_stats:
  description: Requests made by method and kind, retries, and the rate-limit headers seen per registry.
  returned: always
  type: dict
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.archfleet.multiarch.plugins.module_utils.common import (
    REGISTRY_REQUIRED_TOGETHER,
    OptionError,
    check_requests,
    client_from_params,
    registry_argument_spec,
    scrub,
    validate_registry_options,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils.index_plan import PlanError, platform_lines
from ansible_collections.archfleet.multiarch.plugins.module_utils.manifest import index_facts
from ansible_collections.archfleet.multiarch.plugins.module_utils.platform import PlatformError, parse_platform
from ansible_collections.archfleet.multiarch.plugins.module_utils.publish import Publisher, Source
from ansible_collections.archfleet.multiarch.plugins.module_utils.reference import (
    ReferenceError,
    parse_reference,
    validate_tag,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils.registry import RegistryError

SOURCE_KEYS = ("image", "platform", "annotations")


def parse_annotations(value, where):
    if not isinstance(value, dict):
        raise OptionError("%s must be a dict of strings, got %s" % (where, type(value).__name__))
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise OptionError("%s: annotation keys must be non-empty strings, got %r" % (where, key))
        if not isinstance(item, str):
            raise OptionError("%s: annotation %r must be a string, got %s %r (quote it)"
                              % (where, key, type(item).__name__, item))
    return dict(value)


def parse_sources(values):
    sources = []
    for index, item in enumerate(values):
        where = "sources[%d]" % index
        if isinstance(item, str):
            item = {"image": item}
        if not isinstance(item, dict):
            raise OptionError("%s must be a reference string or a dict with image, platform, annotations; got %s"
                              % (where, type(item).__name__))
        unknown = sorted(set(item) - set(SOURCE_KEYS))
        if unknown:
            raise OptionError("%s has unknown keys %s (allowed: %s)" % (where, unknown, ", ".join(SOURCE_KEYS)))
        if not isinstance(item.get("image"), str):
            raise OptionError("%s needs 'image', a reference string" % where)
        try:
            ref = parse_reference(item["image"])
        except ReferenceError as exc:
            raise OptionError("%s: %s" % (where, exc))
        platform = None
        if item.get("platform") is not None:
            try:
                platform = parse_platform(item["platform"])
            except PlatformError as exc:
                raise OptionError("%s: %s" % (where, exc))
        annotations = parse_annotations(item.get("annotations") or {}, where + ".annotations")
        sources.append(Source(item["image"], ref, platform, annotations))
    return sources


def parse_target(params):
    try:
        target = parse_reference(params["name"])
    except ReferenceError as exc:
        raise OptionError("name: %s" % exc)
    if target.digest:
        raise OptionError("name %r must be a tag, not a digest: an index is published under a tag" % params["name"])
    if target.tag is None:
        target = target.with_tag("latest")
    for index, tag in enumerate(params["tags"]):
        try:
            validate_tag(tag)
        except ReferenceError as exc:
            raise OptionError("tags[%d]: %s" % (index, exc))
    return target


def main():
    module = AnsibleModule(
        argument_spec=registry_argument_spec(
            name=dict(type="str", required=True),
            sources=dict(type="list", elements="raw", default=[]),
            tags=dict(type="list", elements="str", default=[]),
            media_type=dict(type="str", choices=["auto", "oci", "docker"], default="auto"),
            annotations=dict(type="dict", default={}),
            mode=dict(type="str", choices=["replace", "merge"], default="replace"),
            attestations=dict(type="str", choices=["keep", "drop"], default="keep"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            force=dict(type="bool", default=False),
            concurrency=dict(type="int", default=8),
        ),
        required_together=REGISTRY_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    check_requests(module)
    params = module.params
    try:
        validate_registry_options(params)
        if not 1 <= params["concurrency"] <= 64:
            raise OptionError("concurrency must be between 1 and 64, got %d" % params["concurrency"])
        target = parse_target(params)
        sources = parse_sources(params["sources"])
        annotations = parse_annotations(params["annotations"], "annotations")
        if params["state"] == "present" and not sources:
            raise OptionError("sources must list at least one image when state=present")
        if params["media_type"] == "docker" and annotations:
            raise OptionError("annotations cannot be written to a Docker manifest list (media_type=docker): use "
                              "media_type=oci or auto, or remove annotations %s" % sorted(annotations))
    except OptionError as exc:
        module.fail_json(msg=str(exc))

    client = client_from_params(params, pool_size=params["concurrency"])
    publisher = Publisher(client, target, params["tags"], params["concurrency"], params["force"])
    tags = [target.canonical] + [r.canonical for r in publisher.extra_tags]
    try:
        if params["state"] == "absent":
            result = absent(module, publisher)
        else:
            result = present(module, publisher, sources, annotations)
    except (RegistryError, PlanError) as exc:
        module.fail_json(msg=scrub(exc, client.secrets()), error_code=getattr(exc, "code", None),
                         registry_stats=client.stats())
    except Exception as exc:  # anything unexpected still must not leak a secret
        module.fail_json(msg=scrub("unexpected error: %s" % exc, client.secrets()),
                         exception=scrub(traceback.format_exc(), client.secrets()))
    finally:
        client.close()
    result.update(tags=tags, registry_stats=client.stats())
    module.exit_json(**result)


def present(module, publisher, sources, annotations):
    params = module.params
    publisher.authorize(sources)
    plan = publisher.plan(sources, mode=params["mode"], media_type=params["media_type"], annotations=annotations,
                          attestations=params["attestations"])
    if plan.changed:
        publisher.ensure_push_permission()
        if not module.check_mode:
            publisher.apply(plan)
    result = {
        "changed": plan.changed,
        "digest": plan.digest,
        "media_type": plan.media_type,
        "manifest": plan.document,
        "platforms": index_facts(plan.document)["platforms"],
        "written_tags": [r.canonical for r in plan.tags_to_write],
        "copied": publisher.copied,
    }
    if module._diff:
        result["diff"] = {
            "before_header": "%s (%s)" % (publisher.target.canonical,
                                          plan.existing.digest if plan.existing else "absent"),
            "before": platform_lines(plan.existing_document),
            "after_header": "%s (%s)" % (publisher.target.canonical, plan.digest),
            "after": platform_lines(plan.document),
        }
    return result


def absent(module, publisher):
    current = publisher.client.head_manifest(publisher.target, what="checking")
    result = {"changed": current is not None, "digest": current.digest if current else None,
              "written_tags": [publisher.target.canonical] if current else []}
    if current is not None and not module.check_mode:
        publisher.client.delete_manifest(publisher.target, current.digest)
    if module._diff:
        result["diff"] = {"before": "%s: %s\n" % (publisher.target.canonical, current.digest) if current else "",
                          "after": ""}
    return result


if __name__ == "__main__":
    main()
