#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: docker_manifest_info
short_description: Inspect image manifests, manifest lists and OCI indexes straight from the registry
version_added: 0.1.0
description:
  - Reads the manifest each image reference points at from the registry API and returns facts,
    namely digest, media type, platforms, per-platform child manifests, buildx attestation entries and annotations.
  - Inspects many images in one task with bounded concurrency; one manifest request per reference
    when nothing more is asked, plus one token request per batch of repositories on token-auth registries.
  - A missing tag or repository is a fact (RV(images[].exists=false)), not a failure.
  - A broken or unreadable image is a fact too (RV(images[].error)); the other images are still inspected.
    A registry that cannot be reached or refuses the credentials fails only the images on it (each with that
    sentence as its RV(images[].error)), so the images on other registries are still reported; the task fails
    when no image at all could be read for such a reason, for bad options, or with O(fail_on_error=true).
  - Index entries are classified (RV(images[].manifests[].kind)) as platform images, nested indexes,
    artifacts or unknown; reference entries (buildx attestations and any other C(vnd.docker.reference.type))
    are listed apart and never count as platforms. Windows entries keep their C(os.version).
  - Needs no docker daemon or CLI.
author:
  - archfleet maintainers (@archfleet)
extends_documentation_fragment:
  - archfleet.multiarch.registry
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  idempotent:
    support: full
    description: Reads only.
  platform:
    support: full
    platforms: posix
    description: Runs on any host that can reach the registries, usually the controller.
options:
  images:
    description:
      - Image references, as Docker writes them (C(busybox), C(registry.example.com:5000/team/app:1.2),
        C(ghcr.io/org/app@sha256:...)). A reference without tag or digest means C(:latest).
      - At least one of O(images), O(repositories) and O(catalog) is required.
    type: list
    elements: str
  repositories:
    description:
      - Repositories whose tags are inspected, each a repository reference (C(registry.example.com/team/app))
        or a dict with C(name), C(include) and C(exclude) (lists of regular expressions a tag must match, or
        must not match; Python C(re.search)), and C(limit) (keep the newest N tags, in semantic-version order
        when every matched tag is a version such as C(1.4.2) or C(v2.0.0-rc.1), else in name order).
      - Tags are read with the tags API, following C(Link) pagination. Each matched tag becomes an entry of
        RV(images), after those of O(images), repository by repository, tags in ascending order.
      - A repository that does not exist is a fact in RV(repositories), not a failure.
      - The side tags where M(archfleet.multiarch.docker_manifest_create) keeps the contributions of
        O(archfleet.multiarch.docker_manifest_create#module:mode=merge) (C(<tag>.merge.<12 hex>.<12 hex>)) are
        not releases and are left out, here and in O(catalog).
    type: list
    elements: raw
  catalog:
    description:
      - Registries whose repositories are listed from their catalog (C(/v2/_catalog), the distribution
        registry's extension, paginated), each a registry host or a dict with C(registry),
        C(repositories) and C(exclude_repositories) (regular expressions on repository names), and the tag
        filters C(include), C(exclude), C(limit) as in O(repositories).
      - A registry that offers no catalog (or denies it to these credentials) lists no repository.
    type: list
    elements: raw
  digest_only:
    description:
      - Read each reference with one manifest HEAD (no GET; on Docker Hub a HEAD is not counted as a pull) and
        return only RV(images[].reference), RV(images[].canonical), RV(images[].exists), RV(images[].digest),
        RV(images[].media_type) and RV(images[].size), about 250 bytes per image instead of about 2 KB.
      - A registry that answers a HEAD without a digest or length gets a GET for that reference.
      - O(require_platforms), O(config), O(verify_children) and O(referrers) need more than a digest, so they
        cannot be combined with O(digest_only=true); the task is refused before any request when one is set.
    type: bool
    default: false
  require_platforms:
    description:
      - Platforms every image should have (C(linux/amd64), C(linux/arm64), C(linux/arm/v7), ...).
      - When set, each image gets RV(images[].missing_platforms). Platforms are compared normalised
        (C(arm64) is C(arm64/v8), C(aarch64) is C(arm64), C(armhf) is C(arm/v7)).
      - An OS version is matched as containerd matches it, as a prefix on a dot boundary;
        V(windows(10.0.20348\)/amd64) needs an entry whose C(os.version) is C(10.0.20348) or starts with
        C(10.0.20348.); V(windows/amd64) is met by any version.
    type: list
    elements: str
    default: []
  config:
    description:
      - Also read each platform's image config and return its creation date, labels, entrypoint, command,
        layer count and compressed size (RV(images[].manifests[].config)). Costs a manifest and a blob request
        per platform.
    type: bool
    default: false
  verify_children:
    description:
      - Check that every child an index lists still exists (one HEAD per child), and list those that are gone
        in RV(images[].missing_children). O(config=true) finds them too, as it reads each child.
    type: bool
    default: false
  fail_on_error:
    description:
      - Fail the task when any image cannot be read or is broken, instead of reporting RV(images[].error).
    type: bool
    default: false
  referrers:
    description:
      - Also list what is attached to each image and to each platform entry of an index (signatures, SBOMs,
        attestations pushed with a C(subject)), in RV(images[].referrers) and RV(images[].manifests[].referrers),
        and summarise them in RV(images[].supply_chain); buildx attestation entries get their in-toto
        RV(images[].attestations[].predicate_types).
      - V(false) (default) reads nothing more. V(true) keeps every referrer; a list of artifact types
        (C(application/spdx+json), C(application/vnd.dev.cosign.artifact.sig.v1+json), ...) keeps only those.
      - Read with the OCI 1.1 Referrers API (C(artifactType) filter, C(Link) pages), else, when the registry
        answers 404, from the referrers tag schema (the index at tag C(<alg>-<hex>)); cosign's legacy tags
        (C(<alg>-<hex>.sig), C(.att), C(.sbom)) count as referrers of their type.
      - Costs one request per image and per platform entry (plus one per further page), one tag list per
        repository, one HEAD per cosign tag found and one manifest GET per attestation entry.
      - Without O(signature_keys) nothing is verified, so C(supply_chain.signed) is V(false);
        C(supply_chain.signature_present) says whether a signature is attached at all.
    type: raw
    default: false
  signature_keys:
    description:
      - Public keys that cosign signatures are verified with, each a PEM text (C(-----BEGIN PUBLIC KEY-----),
        as C(cosign generate-key-pair) writes C(cosign.pub)) or the path of a PEM file (a file may hold several
        keys). Supported - ECDSA P-256, P-384 and P-521, RSA of 2048 bits or more (PKCS#1 v1.5 and PSS
        signatures), Ed25519.
      - Needs O(referrers) (V(true), or a list that keeps the signature type
        C(application/vnd.dev.cosign.artifact.sig.v1+json)). Every signature referrer of each image and of
        each platform entry is read (one manifest GET, one blob GET per signature) and each signature in it
        verified as C(cosign verify --key) does, offline - the signature over the simple-signing payload,
        whose C(critical.image.docker-manifest-digest) must be the digest it is attached to and whose
        C(critical.identity.docker-reference) must be the image's repository (so a signature copied to a
        mirror under another name does not count there). Both storage forms of cosign are read, its
        C(<alg>-<hex>.sig) tags and OCI 1.1 referrers (Referrers API or tag schema).
      - Sigstore bundles (C(cosign sign --new-bundle-format)) signed with a key are verified too - the DSSE
        signature over cosign's in-toto statement, whose subject must be the digest (a bundle names no repository).
      - Not checked - transparency-log (Rekor) entries and timestamps, Notation signatures (reason V(unsupported)).
        Certificates (keyless signatures) are checked with O(certificate_identity) instead.
      - A value that is no PEM public key, a private key, a certificate, an unsupported key type or a missing
        file fails the task before any request, naming the entry; a key's text is never shown.
    type: list
    version_added: 0.1.0
    elements: str
  certificate_identity:
    description:
      - Verify signatures made with a certificate (Sigstore keyless signing, or C(cosign sign --certificate)) - the
        certificate must be for this identity, one of its subjectAltNames (an email, or a URI such as a CI
        workflow's), compared exactly, as C(cosign verify --certificate-identity).
      - Needs O(certificate_oidc_issuer) and O(trusted_root), and O(referrers) as O(signature_keys) does; may be
        combined with O(signature_keys) (a signature counts when a key or the certificate verifies it).
      - Both forms cosign writes are read - the certificate and chain annotations of a simple-signing layer
        (C(dev.sigstore.cosign/certificate), C(dev.sigstore.cosign/chain)) and Sigstore bundles
        (C(application/vnd.dev.sigstore.bundle.v0.3+json), C(cosign sign --new-bundle-format)).
      - The certificate's key must verify the signature; the certificate must chain to a root of O(trusted_root)
        (intermediates from the trusted root or the signature's chain, each CA valid when the certificate was
        issued), allow code signing, carry the identity and the issuer, and be valid now.
      - Offline - no transparency-log inclusion (Rekor), no SCTs, no timestamps, no revocation. With no verified
        signing time the certificate's validity is checked at the time of verification, so a Fulcio certificate
        (valid for 10 minutes) is V(expired-certificate) after that, as with C(cosign verify --insecure-ignore-tlog).
    type: str
    version_added: 0.1.0
  certificate_oidc_issuer:
    description:
      - The OIDC issuer the certificate must name in its Fulcio extension (1.3.6.1.4.1.57264.1.8, or the deprecated
        1.3.6.1.4.1.57264.1.1), compared exactly, as C(cosign verify --certificate-oidc-issuer)
        (C(https://token.actions.githubusercontent.com), C(https://accounts.google.com), ...).
      - Only with O(certificate_identity).
    type: str
    version_added: 0.1.0
  trusted_root:
    description:
      - The certificate authorities certificates must chain to - Sigstore's C(trusted_root.json) (the
        C(certificateAuthorities[].certChain) of each CA, within its C(validFor); as C(cosign verify --trusted-root))
        or a PEM bundle of CA certificates (self-signed ones are roots, the others intermediates; as
        C(cosign verify --ca-roots) and C(--ca-intermediates)), as a path or as the text itself.
      - Only with O(certificate_identity). Transparency logs, CT logs and timestamp authorities in a
        C(trusted_root.json) are not used (offline).
    type: str
    version_added: 0.1.0
"""

EXAMPLES = r"""
- name: Inspect two images
  archfleet.multiarch.docker_manifest_info:
    images:
      - registry.example.com/team/app:1.4.2
      - docker.io/library/busybox:1.36
  register: manifests

- name: Show the digest of each platform of the first image
  ansible.builtin.debug:
    msg: "{{ manifests.images[0].manifests | items2dict(key_name='platform_string', value_name='digest') }}"

- name: Audit a plain-HTTP registry with platform requirements and config details
  archfleet.multiarch.docker_manifest_info:
    images: "{{ release_images }}"
    require_platforms: [linux/amd64, linux/arm64, linux/arm/v7]
    config: true
    insecure_registries: [registry.lan:5000]
    concurrency: 16
  register: audit

- name: Fail when a release lacks a platform
  ansible.builtin.assert:
    that: audit.images | map(attribute='missing_platforms') | flatten | length == 0
    fail_msg: "Missing platforms: {{ audit.images | selectattr('missing_platforms') | items2dict(key_name='canonical', value_name='missing_platforms') }}"

- name: Digests of the five newest releases of every team repository, one HEAD per tag
  archfleet.multiarch.docker_manifest_info:
    catalog:
      - registry: registry.lan:5000
        repositories: ["^team/"]
        include: ['^v?\d+\.\d+\.\d+$']
        limit: 5
    digest_only: true
  register: releases

- name: Every tag of two repositories, except build caches
  archfleet.multiarch.docker_manifest_info:
    repositories:
      - registry.example.com/team/app
      - name: registry.example.com/team/worker
        exclude: ["-cache$"]
    require_platforms: [linux/amd64, linux/arm64]
  register: tagged

- name: Audit that no index lists a child that a cleanup deleted
  archfleet.multiarch.docker_manifest_info:
    images: "{{ release_images }}"
    verify_children: true
    insecure_registries: [registry.lan:5000]
  register: children

- name: Report the images that could not be read, and why
  ansible.builtin.debug:
    msg: "{{ children.images | selectattr('error', 'defined') | map(attribute='error.message') | list }}"

- name: Signatures, SBOMs and provenance of each release image and each of its platforms
  archfleet.multiarch.docker_manifest_info:
    images: "{{ release_images }}"
    referrers: true
  register: chain

- name: Verify the cosign signatures of the release images with the release key
  archfleet.multiarch.docker_manifest_info:
    images: "{{ release_images }}"
    referrers: true
    signature_keys: [/etc/ci/cosign.pub]
  register: chain

- name: Release images without a signature that verifies, and why each of theirs does not
  ansible.builtin.debug:
    msg: "{{ item.canonical }}: {{ item.signatures | map(attribute='message') | list }}"
  loop: "{{ chain.images | selectattr('exists') | rejectattr('supply_chain.signed') }}"
  loop_control:
    label: "{{ item.canonical }}"

- name: Use credentials from a specific docker config file
  archfleet.multiarch.docker_manifest_info:
    images: [ghcr.io/example/app:latest]
    docker_config: /etc/ci/docker/config.json
"""

RETURN = r"""
images:
  description:
    - One entry per O(images) item, in the same order, then one per tag matched by O(repositories) and O(catalog).
    - With O(digest_only=true), only C(reference), C(canonical), C(exists), C(digest), C(media_type), C(size)
      (and C(error)).
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The reference as given.
      type: str
      sample: busybox:1.36
    canonical:
      description: The fully qualified reference (C(registry/repository[:tag][@digest])).
      type: str
      sample: docker.io/library/busybox:1.36
    registry:
      description: Registry domain as Docker normalises it.
      type: str
      sample: docker.io
    repository:
      description: Repository path.
      type: str
      sample: library/busybox
    tag:
      description: Tag as written; V(null) when none was written.
      type: str
    exists:
      description:
        - Whether the tag or digest exists in the registry; V(null) when the registry could not tell
          (see RV(images[].error)).
      type: bool
    digest:
      description: Digest of the manifest or index the reference points at.
      type: str
      sample: sha256:0a1b...
    media_type:
      description: Media type of that manifest or index.
      type: str
      sample: application/vnd.oci.image.index.v1+json
    size:
      description: Size in bytes of the manifest or index document.
      type: int
    kind:
      description:
        - V(index) (manifest list or OCI index), V(image) (single-platform manifest), V(artifact) (an OCI 1.1
          artifact - a manifest with C(artifactType) or a config that is not an image config, or an index with
          C(artifactType)), V(schema1) (a deprecated
          Docker schema 1 manifest, reported with an RV(images[].error)), V(missing) (the tag or repository does
          not exist) or V(unknown) (not an image, index or artifact, or the registry could not tell; see
          RV(images[].error)). Never null.
      type: str
    error:
      description:
        - Only when the image could not be read or is broken. C(code) is the registry's error code or one of
          C(MANIFEST_UNKNOWN) (a listed child is gone), C(UNSUPPORTED) (schema 1), C(DIGEST_MISMATCH),
          C(UNREACHABLE), or C(DENIED) when the registry refused this repository ("does not exist or no pull
          access", as the docker CLI says - a 403, or a 401 after a token was granted, which is how Docker Hub
          answers a missing or private repository; RV(images[].exists) is then V(null)); C(message) is one
          sentence naming the reference and the registry's answer.
      type: dict
      sample: {"code": "MANIFEST_UNKNOWN", "message": "registry.lan:5000/app:1.0 lists 1 child manifest(s) missing from the registry: sha256:..."}
    missing_children:
      description: Digests of the children the index lists that are missing. Only with O(config) or O(verify_children).
      type: list
      elements: str
    platforms:
      description:
        - Platforms as C(os/architecture[/variant]), with the OS version in parentheses after the OS where an entry
          states one (V(windows(10.0.20348.2340\)/amd64)), as written in the index, or from the image
          config for a single-platform image. Reference entries (attestations) are excluded; an identical entry
          listed twice appears twice.
      type: list
      elements: str
      sample: [linux/amd64, linux/arm64, linux/arm/v7]
    manifests:
      description: Child manifests (for a single-platform image, the image itself), reference entries excluded.
      type: list
      elements: dict
      contains:
        kind:
          description: V(image) (a platform), V(index) (nested), V(artifact) (OCI 1.1 C(artifactType)) or V(unknown).
          type: str
        digest:
          description: Digest of the child manifest.
          type: str
        size:
          description: Size of the child manifest in bytes.
          type: int
        media_type:
          description: Media type of the child manifest.
          type: str
        platform:
          description: Platform with keys C(os), C(architecture), C(variant), C(os_version), C(os_features).
          type: dict
        platform_string:
          description:
            - The platform as C(os/architecture[/variant]), with the OS version in parentheses after the OS where
              the entry states one (V(windows(10.0.20348.2340\)/amd64)), as containerd formats it.
          type: str
        missing:
          description: V(true) when this child's manifest is gone from the registry (O(config) or O(verify_children)).
          type: bool
        annotations:
          description: Descriptor annotations.
          type: dict
        referrers:
          description: Only with O(referrers) - the referrers of this entry, as in RV(images[].referrers).
          type: list
          elements: dict
        supply_chain:
          description:
            - Only with O(referrers) - C(signed), C(signers), C(signature_present), C(sbom), C(provenance) of this
              entry (as RV(images[].supply_chain)), from its referrers and the buildx attestations that describe it
              (in-toto predicate types).
          type: dict
        signatures:
          description: Only with O(signature_keys) - the signatures of this entry, as RV(images[].signatures).
          type: list
          elements: dict
        config:
          description:
            - Only with O(config=true). Keys C(created), C(labels), C(entrypoint), C(cmd), C(layers)
              (count), C(size) (compressed bytes of all layers), C(config_digest).
          type: dict
    attestations:
      description:
        - Reference entries, each with C(reference_digest) (the entry it describes) and C(reference_type)
          (C(attestation-manifest) for buildx provenance and SBOM attestations, or another type).
      type: list
      elements: dict
      contains:
        predicate_types:
          description:
            - Only with O(referrers) - the in-toto predicate types of the attestation's layers (layer annotation
              C(in-toto.io/predicate-type)), such as C(https://slsa.dev/provenance/v0.2) and C(https://spdx.dev/Document).
          type: list
          elements: str
    annotations:
      description: Index-level (or manifest-level) annotations.
      type: dict
    artifact_type:
      description: Only for RV(images[].kind=artifact) - its C(artifactType), else its config media type.
      type: str
      sample: application/spdx+json
    subject:
      description:
        - Only for RV(images[].kind=artifact) - the manifest it is attached to (C(digest), C(media_type),
          C(size)), V(null) when it has none.
      type: dict
    layers:
      description: Only for RV(images[].kind=artifact) - the media types of its layers (of its entries for an index).
      type: list
      elements: str
    referrers:
      description:
        - Only with O(referrers) - what is attached to this image or index, each with C(digest), C(media_type),
          C(artifact_type), C(size), C(annotations), C(category) (V(signature), V(sbom), V(provenance),
          V(attestation) or V(other)), C(source) (V(api), V(tag-schema) or V(cosign-tag)) and, for a cosign tag,
          C(tag). Platform entries have their own in RV(images[].manifests[].referrers).
      type: list
      elements: dict
    supply_chain:
      description:
        - Only with O(referrers) - of the image or index itself, from its referrers - C(signed) (a signature
          verified with one of O(signature_keys) or by a certificate O(certificate_identity) accepts; always
          V(false) without either), C(signers) (the key ids that verified one, and for a certificate its identity
          followed by its issuer in parentheses), C(signature_present) (a signature is attached - present, not verified; what C(signed)
          meant before O(signature_keys) existed), C(sbom), C(provenance). Each platform entry has its own in
          RV(images[].manifests[].supply_chain), which also counts the buildx attestations of that entry.
      type: dict
      sample: {"signed": true, "signers": ["sha256:5f1c..."], "signature_present": true, "sbom": true,
               "provenance": false}
    signatures:
      description:
        - Only with O(signature_keys) - one entry per signature attached to the image or index itself (platform
          entries have theirs in RV(images[].manifests[].signatures)) - C(referrer) (the signature manifest's
          digest), C(layer) (the signed payload's digest), C(source) (V(api), V(tag-schema) or V(cosign-tag)),
          C(verified), C(key_id) (the key that verified the signature, also when its claims are wrong),
          C(identity) and C(issuer) (the certificate's, when a certificate O(certificate_identity) accepts verified it),
          C(signed_digest) and C(docker_reference) (the payload's claims, when verified), C(reason) and
          C(message) (why it does not count, V(null) when it does).
        - C(reason) is V(bad-signature) (no signature annotation, not base64, truncated - not the shape of a
          signature of any given key), V(other-key) (verified by none of the given keys - made with another
          key, or altered), V(bad-payload) (the signed payload is not simple-signing JSON), V(other-digest)
          (signed for another manifest), V(other-repository) (its docker-reference names another repository),
          V(unsupported) (not a cosign signature, or a bundle of an attestation) or V(unreadable) (its manifest or
          payload could not be read); for certificates V(untrusted-certificate) (does not chain to O(trusted_root),
          or does not allow code signing), V(other-identity), V(other-issuer), V(expired-certificate) (not valid
          at the time of verification, no signing time being verified offline).
      type: list
      elements: dict
      sample: [{"referrer": "sha256:9d3e...", "layer": "sha256:c1a2...", "source": "cosign-tag", "verified": false,
                "key_id": null, "reason": "other-key", "message": "none of the 1 given key(s) verifies the signature
                (made with another key, or altered)"}]
    missing_platforms:
      description: Platforms from O(require_platforms) the image does not have (as given). Only when requested.
      type: list
      elements: str
    config:
      description: For a single-platform image with O(config=true), the same as its RV(images[].manifests[].config).
      type: dict
repositories:
  description:
    - With O(repositories) or O(catalog), one entry per repository listed - C(name), C(exists) (false for a
      repository that does not exist), C(tags) (how many it has) and C(matched) (the tags inspected).
  returned: when O(repositories) or O(catalog) is used
  type: list
  elements: dict
  sample: [{"name": "registry.lan:5000/team/app", "exists": true, "tags": 41, "matched": ["1.4.1", "1.4.2"]}]
certificate_policy:
  description:
    - Only with O(certificate_identity) - what certificates were checked against - C(certificate_identity),
      C(certificate_oidc_issuer), C(trusted_root) (the file, or V(trusted_root) for inline text), C(roots) and
      C(intermediates) (how many certificates of each it holds).
  returned: when O(certificate_identity) is given
  type: dict
  sample: {"certificate_identity": "release@example.com", "certificate_oidc_issuer": "https://accounts.google.com",
           "trusted_root": "files/trusted_root.json", "roots": 1, "intermediates": 1}
signature_keys:
  description:
    - Only with O(signature_keys) - the keys signatures were verified with, each C(key_id) (C(sha256:) and the
      SHA-256 of the DER public key, as in RV(images[].signatures)), C(type) (V(ecdsa-p256), V(ecdsa-p384),
      V(ecdsa-p521), V(rsa-<bits>), V(ed25519)) and C(source) (the file, or C(signature_keys[N]) for inline text).
  returned: when O(signature_keys) is given
  type: list
  elements: dict
  sample: [{"key_id": "sha256:5f1c...", "type": "ecdsa-p256", "source": "/etc/ci/cosign.pub"}]
registry_stats:
  description: Requests made by method and kind, retries, and the rate-limit headers seen per registry.
  returned: always
  type: dict
  sample:
    requests: {"GET manifest": 3, "GET ping": 1, "GET token": 1}
    total_requests: 5
    retries: 0
    rate_limits: {}
"""

from ansible_collections.archfleet.multiarch.plugins.module_utils._inspect import inspect_task, parse_options
from ansible_collections.archfleet.multiarch.plugins.module_utils._module import (
    OptionError,
    registry_module,
    run_registry_task,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._supply_chain import parse_referrers_option

# What digest_only (one HEAD per reference) cannot give: each would be silently ignored.
NEEDS_MORE_THAN_A_DIGEST = ("require_platforms", "config", "verify_children", "referrers")


def check_options(params):
    """parse_options, after refusing options that contradict each other."""
    if params["digest_only"]:
        set_too = [name for name in NEEDS_MORE_THAN_A_DIGEST
                   if (parse_referrers_option(params[name]) is not None if name == "referrers" else params[name])]
        if set_too:
            raise OptionError("digest_only=true reads one digest per reference and cannot apply %s: remove %s, or set "
                              "digest_only=false" % (", ".join(set_too), " and ".join(set_too)))
    return parse_options(params)


def main():
    module = registry_module(dict(
        images=dict(type="list", elements="str"),
        repositories=dict(type="list", elements="raw"),
        catalog=dict(type="list", elements="raw"),
        digest_only=dict(type="bool", default=False),
        require_platforms=dict(type="list", elements="str", default=[]),
        config=dict(type="bool", default=False),
        verify_children=dict(type="bool", default=False),
        fail_on_error=dict(type="bool", default=False),
        referrers=dict(type="raw", default=False),
        signature_keys=dict(type="list", elements="str", no_log=False),     # public keys: nothing secret
        certificate_identity=dict(type="str"),
        certificate_oidc_issuer=dict(type="str"),
        trusted_root=dict(type="str"),
    ), required_one_of=[("images", "repositories", "catalog")])
    run_registry_task(module, check_options, lambda client, prepared: inspect_task(client, prepared, module.params))


if __name__ == "__main__":
    main()
