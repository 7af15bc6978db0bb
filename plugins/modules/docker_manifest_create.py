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
  - An index source taken whole and unchanged (the only source, no C(platform), C(platforms) or annotations,
    O(attestations=keep), O(media_type) V(auto) or the source's own, nothing to merge with) is written byte for
    byte, so the target digest is the source digest and signatures made for it still apply (a mirror).
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
    description: Shows the index before and after as C(platform -> digest) lines, and the referrers O(referrers=copy) copies.
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
        (the platform written for it instead of the one read from the image config, for example C(linux/arm/v7)
        for an image whose config says only C(arm); a platform that contradicts the config is refused, see
        O(force_platform))
        and optional C(annotations) (a dict of strings added to the entry; OCI only).
      - For a source that is an index, C(platforms) (a list such as C([linux/amd64, linux/arm64])) takes only
        those platform entries (matched as containerd matches) and the attestations that describe them; a
        listed platform the index does not have is an error. This makes a new index (a filtered mirror).
      - Required with O(state=present); not allowed with O(state=absent).
    type: list
    elements: raw
    default: []
  force_platform:
    description:
      - Publish a source's C(platform) even when it contradicts the platform its image config states (an arm64
        image stated as C(linux/amd64)); for images whose config is known to be wrong.
      - V(false) refuses such a source and writes nothing; in check mode the contradiction is a warning. The OS
        and architecture must agree with the config, and the variant too where the config states one.
    type: bool
    default: false
  tags:
    description:
      - Extra tags in the same repository that get the same index, written after O(name).
      - Not allowed with O(state=absent), which deletes O(name) only.
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
      - Mutually exclusive with O(name), O(sources), O(tags) and O(annotations).
    type: list
    elements: dict
    suboptions:
      name:
        description: The target reference of this index, as O(name).
        type: str
        required: true
      sources:
        description: The sources of this index, as O(sources).
        type: list
        elements: raw
        default: []
      tags:
        description: Extra tags of this index, as O(tags).
        type: list
        elements: str
        default: []
      annotations:
        description: Annotations of this index, as O(annotations).
        type: dict
        default: {}
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
      - Not allowed with O(state=absent).
    type: dict
    default: {}
  mode:
    description:
      - V(replace) makes the index exactly the O(sources).
      - V(merge) amends the index at O(name) - entries of the same platform as a source are replaced,
        other entries are kept, new platforms are appended; index annotations are merged. A single image at
        O(name) becomes the first entry of a new index.
      - Concurrent merges into one tag lose nothing, whatever the timing. Each run first writes what it adds at a
        side tag of the repository, C(<tag>.merge.<epoch>.<platform>), then writes the index from the index there
        and every such contribution, reads it back and writes it again while a contribution is missing (C(CONFLICT)
        when other writers undid its write 10 times). Side tags are not deleted; the next merge reads them. The
        collection's C(docs/manifests.md) (Concurrent merges) gives the argument, the costs and the limits.
      - V(merge) writes an OCI image index (it carries the annotation C(io.archfleet.merge.epoch)), so
        O(media_type=docker) is refused with it.
    type: str
    choices: [replace, merge]
    default: replace
  attestations:
    description:
      - What to do with reference entries (buildx attestations such as provenance and SBOM, and any other
        C(vnd.docker.reference.type)) carried by sources that are indexes.
      - V(keep) copies them with the entries they describe; V(drop) leaves them out.
    type: str
    choices: [keep, drop]
    default: keep
  referrers:
    description:
      - V(copy) also copies the referrers (signatures, SBOMs, attestations attached with a C(subject), and cosign's
        C(.sig)/C(.att)/C(.sbom) tags) of every manifest this task lists - the index itself when its digest is
        kept (see the description), and each entry - from the source repository to the target, with their
        blobs, before the index tag is written.
      - Referrers are read from the source with the OCI 1.1 Referrers API, else the referrers tag schema. A target
        that indexes referrers itself (it answers C(OCI-Subject)) needs nothing more; any other target gets
        its referrers tag-schema index (tag C(<alg>-<hex>)) updated. Referrers the target has are not copied
        again, so a re-run writes nothing.
      - V(skip) (default) reads no referrers.
    type: str
    choices: [skip, copy]
    default: skip
  signing_key:
    description:
      - A PEM private key (PKCS#8, SEC1 EC or PKCS#1 RSA; ECDSA P-256/P-384/P-521, RSA of 2048 bits or more,
        Ed25519), as text (a vaulted variable) or the path of a file, to sign each index written with, as
        C(cosign sign --key) signs - the simple-signing payload naming the index digest and the target repository,
        verified by C(cosign verify --key) (with the transparency log ignored - nothing is uploaded to Rekor).
      - Written as an OCI 1.1 referrer where the registry has the Referrers API, else in cosign's tag scheme
        (C(<alg>-<hex>.sig)). A signature by this key for that digest that verifies already means nothing is
        written, so a re-run changes nothing. Check mode and diff say what would be signed.
      - A registry that refuses the signature fails the task naming the index that was not signed (the index
        stays written; a re-run signs it). cosign's own encrypted key format is not read - give a PKCS#8 PEM.
      - Only the index (or image) written is signed, not its platform entries, unless O(signing_recursive=true).
    type: str
    version_added: 0.1.0
  signing_key_passphrase:
    description: The passphrase of an encrypted O(signing_key); never shown, also when it is wrong.
    type: str
    version_added: 0.1.0
  signing_recursive:
    description:
      - Also sign every platform manifest the index lists, as C(cosign sign --recursive) does (buildx attestation
        entries are not platforms and are left out), so that C(cosign verify) of a platform's digest, and
        the C(supply_chain) of each platform entry in M(archfleet.multiarch.docker_manifest_info), find a
        signature.
      - Each platform is planned as the index is - skipped when a signature by the key already verifies for it,
        so a re-run writes nothing - and written the same way. A refused write fails the task naming the platform.
      - V(false) (default, as cosign's default) signs the index only. Needs O(signing_key).
    type: bool
    default: false
    version_added: 0.1.0
  state:
    description:
      - V(present) publishes the index.
      - V(absent) deletes the tag O(name) and nothing else; other tags of the same manifest keep resolving and
        the manifest stays for the indexes that list it. Where the registry cannot delete a tag (the distribution
        registry 2.x), the tag is pointed at a unique throw-away manifest which is then deleted by digest.
        A registry that refuses deletes is reported clearly, and the tag is left as it was.
    type: str
    choices: [present, absent]
    default: present
  delete_manifest:
    description:
      - With O(state=absent), delete the manifest itself, by digest, and with it every tag that points at it
        (check mode and diff name them all).
      - Refused while an index in the same repository lists that manifest (the refusal names the index tags),
        unless O(force=true).
      - Not allowed with O(state=present).
    type: bool
    default: false
  force:
    description:
      - Rewrite the index even when the tag holds one with the same entries written by another tool (different
        bytes), and re-read every source's platform from its image config instead of reusing the current index.
      - With O(state=absent) and O(delete_manifest=true), delete a manifest that an index still lists.
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
      - registry.example.com/builds/app:1.4.2-riscv64
  check_mode: true
  diff: true

- name: Re-publish a buildx index without its attestations, from another registry
  archfleet.multiarch.docker_manifest_create:
    name: registry.internal:5000/mirror/app:1.4.2
    sources: [ghcr.io/example/app:1.4.2]
    attestations: drop
    insecure_registries: [registry.internal:5000]

- name: Mirror an upstream release as it is, so signatures made for its digest still verify, referrers included
  archfleet.multiarch.docker_manifest_create:
    name: registry.internal:5000/mirror/app:1.4.2-signed
    sources: [ghcr.io/example/app:1.4.2]
    referrers: copy
    insecure_registries: [registry.internal:5000]
  register: mirror

- name: The mirror has the upstream digest
  ansible.builtin.assert:
    that: mirror.digest == lookup('archfleet.multiarch.image_digest', 'ghcr.io/example/app:1.4.2')

- name: Mirror only the amd64 platform of an upstream index (a new index, with that platform's attestations)
  archfleet.multiarch.docker_manifest_create:
    name: registry.internal:5000/mirror/app:1.4.2-amd64
    sources:
      - image: ghcr.io/example/app:1.4.2
        platforms: [linux/amd64]
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
      single index (RV(name), RV(digest), RV(media_type), RV(manifest), RV(platforms), RV(tags), RV(written_tags),
      RV(copied)) and its own C(changed).
  returned: when O(indexes) is used
  type: list
  elements: dict
name:
  description: The index's reference (O(name) or the item's C(name), fully qualified; C(:latest) when no tag was given).
  returned: always
  type: str
  sample: registry.example.com/team/app:1.4.2
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
signature:
  description:
    - With O(signing_key) - C(digest) (what is signed), C(key_id) (C(sha256:) and the SHA-256 of the DER public key,
      as docker_manifest_info reports it), C(signed) (a signature was written, or would be in check mode; V(false)
      when one by the key already verified) and C(form) (V(referrer) or V(tag), V(null) when nothing is written).
    - With O(signing_recursive=true) also C(platforms) - per platform manifest C(digest), C(platform), C(signed)
      and C(form), as for the index.
  returned: when O(signing_key) is given
  type: dict
  sample: {"digest": "sha256:0a1b...", "key_id": "sha256:5f1c...", "signed": true, "form": "tag",
           "platforms": [{"digest": "sha256:9e8d...", "platform": "linux/arm64", "signed": true, "form": "tag"}]}
referrers_copied:
  description:
    - With O(referrers=copy), the referrers copied (or that would be, in check mode) - C(subject) (the digest they
      are attached to), C(digest), C(artifact_type), C(category) (V(signature), V(sbom), V(provenance),
      V(attestation), V(other)) and C(tag) (for a cosign tag, else V(null)). Empty on an unchanged re-run.
  returned: when O(referrers=copy)
  type: list
  elements: dict
merge_side_tags:
  description:
    - With O(mode=merge), the side tags this run wrote its contributions to (one per platform it added).
  returned: when a merge wrote something
  type: list
  elements: str
  sample: ["registry.example.com/team/app:1.0.merge.3f2a9c81d0e4.77c0ab12ef34"]
merge_rewrites:
  description:
    - With O(mode=merge), how often the index was written again because contributions of other writers were
      missing from it when it was read back (see O(mode)).
  returned: when a merge had to be redone
  type: int
deleted:
  description:
    - With O(state=absent), how the tag went - V(tag) (the registry deleted the tag), V(tombstone) (the tag was
      pointed at a throw-away manifest that was then deleted) or V(manifest) (O(delete_manifest=true)).
  returned: when O(state=absent) and something was deleted
  type: str
registry_stats:
  description: Requests made by method and kind, retries, and the rate-limit headers seen per registry.
  returned: always
  type: dict
"""

from ansible_collections.archfleet.multiarch.plugins.module_utils._module import registry_module, run_registry_task
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.batch import Batch
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.jobs import (
    ARGUMENT_RULES,
    ARGUMENT_SPEC,
    parse_jobs,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.signing import Signer, parse_signing_options


def main():
    module = registry_module(ARGUMENT_SPEC, **ARGUMENT_RULES)

    def prepare(params):
        return parse_jobs(params), parse_signing_options(params)

    def publish(client, prepared):
        (jobs, options), signing = prepared
        signer = Signer(client, *signing, recursive=module.params["signing_recursive"]) if signing else None
        return Batch(client, jobs, options, check_mode=module.check_mode, diff=module._diff, signer=signer).run()

    run_registry_task(module, prepare, publish, pool_size=module.params["concurrency"] * 2)


if __name__ == "__main__":
    main()
