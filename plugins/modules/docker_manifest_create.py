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
      - Required unless O(indexes) is used.
    type: str
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
  indexes:
    description:
      - Publish several indexes in one task, sharing one HTTP session and one token request, read and
        written concurrently. Each item is a dict with C(name), C(sources), and optional C(tags) and
        C(annotations), with the same meaning as the top-level options, which must then be left unset.
      - The other options (O(media_type), O(mode), O(attestations), O(state), O(force), registry options) apply
        to every item.
      - Every index is planned (all sources read and checked) before anything is written, so an invalid or
        missing source anywhere writes nothing. Writing then happens per index; each index keeps the
        write-order guarantee, and a failure names the item it belongs to.
    type: list
    elements: dict
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

- name: Publish a whole release in one task
  archfleet.multiarch.docker_manifest_create:
    indexes: "{{ release_indexes }}"
  vars:
    release_indexes:
      - name: registry.example.com/team/api:1.4.2
        sources: [registry.example.com/builds/api:1.4.2-amd64, registry.example.com/builds/api:1.4.2-arm64]
        tags: [latest]
      - name: registry.example.com/team/worker:1.4.2
        sources: [registry.example.com/builds/worker:1.4.2-amd64, registry.example.com/builds/worker:1.4.2-arm64]
        tags: [latest]

- name: Remove a release candidate
  archfleet.multiarch.docker_manifest_create:
    name: registry.example.com/team/app:1.5.0-rc1
    state: absent
"""

RETURN = r"""
indexes:
  description:
    - With O(indexes), one result per item, in the same order, each with the keys documented here for a
      single index (RV(digest), RV(media_type), RV(manifest), RV(platforms), RV(tags), RV(written_tags), RV(copied))
      and its own C(changed).
  returned: when O(indexes) is used
  type: list
  elements: dict
digest:
  description: Digest of the index at O(name) (after the task; with O(state=absent), the digest removed or V(null)).
  returned: when O(name) is used
  type: str
  sample: sha256:9d0a...
media_type:
  description: Media type of the index.
  returned: when O(state=present) and O(name) is used
  type: str
  sample: application/vnd.oci.image.index.v1+json
manifest:
  description: The index document as written (or as it would be written in check mode).
  returned: when O(state=present) and O(name) is used
  type: dict
platforms:
  description: Platforms of the index (C(os/architecture[/variant]), attestations excluded), in entry order.
  returned: when O(state=present) and O(name) is used
  type: list
  elements: str
  sample: [linux/amd64, linux/arm64, linux/arm/v7]
tags:
  description: Every reference that holds the index (O(name) first, then O(tags)).
  returned: when O(name) is used
  type: list
  elements: str
written_tags:
  description: The references that were (or in check mode would be) written.
  returned: when O(name) is used
  type: list
  elements: str
copied:
  description:
    - What was brought into the target repository - C(manifests) (child manifests written), C(blobs_mounted),
      C(blobs_copied), C(blobs_present) (already there).
  returned: when O(state=present) and O(name) is used
  type: dict
registry_stats:
  description: Requests made by method and kind, retries, and the rate-limit headers seen per registry.
  returned: always
  type: dict
"""

import traceback

from ansible_collections.archfleet.multiarch.plugins.module_utils.common import (
    OptionError,
    client_from_params,
    registry_module,
    scrub,
    validate_registry_options,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils.concurrency import parallel_map
from ansible_collections.archfleet.multiarch.plugins.module_utils.index_plan import PlanError, platform_lines
from ansible_collections.archfleet.multiarch.plugins.module_utils.manifest import index_facts
from ansible_collections.archfleet.multiarch.plugins.module_utils.platform import PlatformError, parse_platform
from ansible_collections.archfleet.multiarch.plugins.module_utils.publish import Publisher, Source, authorize
from ansible_collections.archfleet.multiarch.plugins.module_utils.reference import (
    ReferenceError,
    parse_reference,
    validate_tag,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils.registry import RegistryError

SOURCE_KEYS = ("image", "platform", "annotations")
INDEX_KEYS = ("name", "sources", "tags", "annotations")


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


class Job:
    """One index to publish: where its parts come from in the options, for messages."""

    def __init__(self, label, target, sources, tags, annotations):
        self.label = label
        self.target = target
        self.sources = sources
        self.tags = tags
        self.annotations = annotations


def parse_sources(values, where="sources"):
    if not isinstance(values, list):
        raise OptionError("%s must be a list of references or dicts, got %s" % (where, type(values).__name__))
    sources = []
    for index, item in enumerate(values):
        item_where = "%s[%d]" % (where, index)
        if isinstance(item, str):
            item = {"image": item}
        if not isinstance(item, dict):
            raise OptionError("%s must be a reference string or a dict with image, platform, annotations; got %s"
                              % (item_where, type(item).__name__))
        unknown = sorted(set(item) - set(SOURCE_KEYS))
        if unknown:
            raise OptionError("%s has unknown keys %s (allowed: %s)" % (item_where, unknown, ", ".join(SOURCE_KEYS)))
        if not isinstance(item.get("image"), str):
            raise OptionError("%s needs 'image', a reference string" % item_where)
        try:
            ref = parse_reference(item["image"])
        except ReferenceError as exc:
            raise OptionError("%s: %s" % (item_where, exc))
        platform = None
        if item.get("platform") is not None:
            try:
                platform = parse_platform(item["platform"])
            except PlatformError as exc:
                raise OptionError("%s: %s" % (item_where, exc))
        annotations = parse_annotations(item.get("annotations") or {}, item_where + ".annotations")
        sources.append(Source(item["image"], ref, platform, annotations))
    return sources


def parse_target(name, tags, where=""):
    try:
        target = parse_reference(name)
    except ReferenceError as exc:
        raise OptionError("%sname: %s" % (where, exc))
    if target.digest:
        raise OptionError("%sname %r must be a tag, not a digest: an index is published under a tag" % (where, name))
    if target.tag is None:
        target = target.with_tag("latest")
    if not isinstance(tags, list):
        raise OptionError("%stags must be a list of tags, got %s" % (where, type(tags).__name__))
    for index, tag in enumerate(tags):
        try:
            validate_tag(tag)
        except ReferenceError as exc:
            raise OptionError("%stags[%d]: %s" % (where, index, exc))
    return target


def parse_jobs(params):
    """The indexes to publish: the top-level options, or each item of ``indexes``."""
    if params["indexes"]:
        clashing = [key for key in ("name", "sources", "tags", "annotations") if params[key]]
        if clashing:
            raise OptionError("indexes cannot be combined with %s: give those per item of indexes"
                              % ", ".join(clashing))
        items = []
        for index, item in enumerate(params["indexes"]):
            where = "indexes[%d]." % index
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise OptionError("indexes[%d] must be a dict with at least 'name' (a reference string)" % index)
            unknown = sorted(set(item) - set(INDEX_KEYS))
            if unknown:
                raise OptionError("indexes[%d] has unknown keys %s (allowed: %s)"
                                  % (index, unknown, ", ".join(INDEX_KEYS)))
            items.append((where, item["name"], item.get("sources") or [], item.get("tags") or [],
                          item.get("annotations") or {}))
    else:
        if not params["name"]:
            raise OptionError("name is required (or indexes, to publish several at once)")
        items = [("", params["name"], params["sources"], params["tags"], params["annotations"])]
    jobs = []
    seen = {}
    for where, name, sources, tags, annotations in items:
        target = parse_target(name, tags, where)
        job = Job(where.rstrip(".") or target.canonical, target, parse_sources(sources, where + "sources"), tags,
                  parse_annotations(annotations, where + "annotations"))
        if params["state"] == "present" and not job.sources:
            raise OptionError("%ssources must list at least one image when state=present" % where)
        if params["media_type"] == "docker" and job.annotations:
            raise OptionError("%sannotations cannot be written to a Docker manifest list (media_type=docker): use "
                              "media_type=oci or auto, or remove annotations %s" % (where, sorted(job.annotations)))
        for tag_ref in [target] + [target.with_tag(t) for t in tags]:
            if tag_ref.canonical in seen:
                if seen[tag_ref.canonical] == job.label:
                    raise OptionError("%s is listed twice in %s (name and tags)" % (tag_ref.canonical, job.label))
                raise OptionError("%s is published twice (by %s and %s)"
                                  % (tag_ref.canonical, seen[tag_ref.canonical], job.label))
            seen[tag_ref.canonical] = job.label
        jobs.append(job)
    return jobs


def main():
    module = registry_module(
        name=dict(type="str"),
        sources=dict(type="list", elements="raw", default=[]),
        tags=dict(type="list", elements="str", default=[]),
        indexes=dict(type="list", elements="dict", default=[]),
        media_type=dict(type="str", choices=["auto", "oci", "docker"], default="auto"),
        annotations=dict(type="dict", default={}),
        mode=dict(type="str", choices=["replace", "merge"], default="replace"),
        attestations=dict(type="str", choices=["keep", "drop"], default="keep"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        force=dict(type="bool", default=False),
    )
    params = module.params
    try:
        validate_registry_options(params)
        jobs = parse_jobs(params)
    except OptionError as exc:
        module.fail_json(msg=str(exc))

    concurrency = params["concurrency"]
    # Several indexes run side by side; each then reads and copies with its share of the concurrency.
    outer = min(concurrency, len(jobs))
    client = client_from_params(params, pool_size=concurrency * 2)
    publishers = [Publisher(client, job.target, job.tags, max(1, concurrency // outer), params["force"])
                  for job in jobs]
    try:
        if params["state"] == "absent":
            results = parallel_map(lambda pair: labelled(pair[0], absent, module, pair[1]),
                                   list(zip(jobs, publishers)), outer)
        else:
            results = present(module, jobs, publishers, outer)
    except (RegistryError, PlanError) as exc:
        module.fail_json(msg=scrub(exc, client.secrets()), error_code=getattr(exc, "code", None),
                         registry_stats=client.stats())
    except Exception as exc:  # anything unexpected still must not leak a secret
        module.fail_json(msg=scrub("unexpected error: %s" % exc, client.secrets()),
                         exception=scrub(traceback.format_exc(), client.secrets()))
    finally:
        client.close()
    for result, publisher in zip(results, publishers):
        result["tags"] = [publisher.target.canonical] + [r.canonical for r in publisher.extra_tags]
    if params["indexes"]:
        output = {"changed": any(r["changed"] for r in results), "indexes": results}
        if module._diff:
            output["diff"] = [r.pop("diff") for r in results if "diff" in r]
    else:
        output = results[0]
    output["registry_stats"] = client.stats()
    module.exit_json(**output)


def labelled(job, function, *args):
    """Run ``function``; in a batch, errors say which item of ``indexes`` they belong to."""
    try:
        return function(*args)
    except RegistryError as exc:
        if not job.label.startswith("indexes["):
            raise
        raise RegistryError("%s (%s): %s" % (job.label, job.target.canonical, exc), code=exc.code, status=exc.status)
    except PlanError as exc:
        if not job.label.startswith("indexes["):
            raise
        raise PlanError("%s (%s): %s" % (job.label, job.target.canonical, exc))


def present(module, jobs, publishers, outer):
    """Plan every index first (reads only), then write: a bad source anywhere writes nothing."""
    params = module.params
    authorize(publishers[0].client, [(job.target, job.sources) for job in jobs])
    pairs = list(zip(jobs, publishers))
    plans = parallel_map(lambda pair: labelled(pair[0], pair[1].plan, pair[0].sources, params["mode"],
                                               params["media_type"], pair[0].annotations, params["attestations"]),
                         pairs, outer)
    for (job, publisher), plan in zip(pairs, plans):
        if plan.changed:
            labelled(job, publisher.ensure_push_permission)
    if not module.check_mode:
        parallel_map(lambda item: labelled(item[0][0], item[0][1].apply, item[1]), list(zip(pairs, plans)), outer)
    return [result_of(module, publisher, plan) for publisher, plan in zip(publishers, plans)]


def result_of(module, publisher, plan):
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
