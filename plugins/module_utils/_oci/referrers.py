# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Referrers, pure part (no I/O): tag names, descriptors, categories and the tag-schema index.

OCI distribution-spec 1.1 ("Listing Referrers", "Referrers Tag Schema"): the referrers of a
manifest are the manifests whose ``subject`` is its digest. A registry without the Referrers API
(``GET /v2/<name>/referrers/<digest>`` answers 404) holds them in an index tagged ``<alg>-<ref>``
(the digest with ``:`` replaced by ``-``, algorithm and hex truncated to 32 and 64 characters).
cosign's legacy tags put a signature at ``<alg>-<hex>.sig``, attestations at ``.att`` and an SBOM
at ``.sbom``.

Every referrer is reported as ``{digest, media_type, artifact_type, size, annotations, source,
category}``; ``category`` is ``signature``, ``sbom``, ``provenance``, ``attestation`` or ``other``,
so audits can ask "signed / has SBOM / has provenance" without knowing every tool's media types.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_OCI_INDEX, sha256_digest

COSIGN_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
COSIGN_SBOM = "application/vnd.dev.cosign.artifact.sbom.v1+json"
COSIGN_ATTESTATION = "application/vnd.dsse.envelope.v1+json"
# cosign's legacy tag suffixes and the artifact type each stands for.
COSIGN_SUFFIXES = (("sig", COSIGN_SIGNATURE), ("att", COSIGN_ATTESTATION), ("sbom", COSIGN_SBOM))

SIGNATURE_TYPES = frozenset((
    COSIGN_SIGNATURE,
    "application/vnd.dev.cosign.simplesigning.v1+json",
    "application/vnd.cncf.notary.signature",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
))
SBOM_TYPES = frozenset((
    COSIGN_SBOM,
    "application/spdx+json",
    "text/spdx",
    "text/spdx+json",
    "application/vnd.cyclonedx+json",
    "application/vnd.cyclonedx+xml",
    "application/vnd.cyclonedx",
    "application/vnd.syft+json",
))
PROVENANCE_TYPES = frozenset((
    "application/vnd.in-toto.provenance+dsse",
    "application/vnd.slsa.provenance+json",
))
ATTESTATION_TYPES = frozenset((COSIGN_ATTESTATION, "application/vnd.in-toto+json"))
# in-toto predicate types (buildx attestations, cosign attestations).
SBOM_PREDICATES = ("https://spdx.dev/Document", "https://cyclonedx.org/bom")
PROVENANCE_PREDICATES = ("https://slsa.dev/provenance/",)

MAX_ALGORITHM = 32
MAX_REFERENCE = 64


def tag_schema_tag(digest):
    """The referrers tag-schema tag of ``digest``: ``sha256:abc...`` -> ``sha256-abc...`` (truncated per spec)."""
    algorithm, _sep, hexpart = digest.partition(":")
    return "%s-%s" % (algorithm[:MAX_ALGORITHM], hexpart[:MAX_REFERENCE])


def cosign_tags(digest):
    """``[(tag, artifact type)]`` of cosign's legacy tags for ``digest`` (``.sig``, ``.att``, ``.sbom``)."""
    algorithm, _sep, hexpart = digest.partition(":")
    return [("%s-%s.%s" % (algorithm, hexpart, suffix), artifact_type) for suffix, artifact_type in COSIGN_SUFFIXES]


def category(artifact_type, predicates=()):
    """``signature``, ``sbom``, ``provenance``, ``attestation`` or ``other`` for a referrer or attestation."""
    artifact_type = artifact_type or ""
    if artifact_type in SIGNATURE_TYPES or "signature" in artifact_type:
        return "signature"
    if artifact_type in SBOM_TYPES or "spdx" in artifact_type or "cyclonedx" in artifact_type:
        return "sbom"
    if artifact_type in PROVENANCE_TYPES or "provenance" in artifact_type:
        return "provenance"
    for predicate in predicates or ():
        if predicate.startswith(PROVENANCE_PREDICATES):
            return "provenance"
        if predicate.startswith(SBOM_PREDICATES):
            return "sbom"
    if artifact_type in ATTESTATION_TYPES or predicates:
        return "attestation"
    return "other"


def referrer_fact(descriptor, source, tag=None):
    """The fact for one referrer descriptor (from the API, a tag-schema index, or a cosign tag)."""
    fact = {
        "digest": descriptor.get("digest"),
        "media_type": descriptor.get("mediaType"),
        "artifact_type": descriptor.get("artifactType"),
        "size": descriptor.get("size"),
        "annotations": dict(descriptor.get("annotations") or {}),
        "source": source,
        "category": category(descriptor.get("artifactType")),
    }
    if tag:
        fact["tag"] = tag
    return fact


def keep_types(facts, artifact_types):
    """Only the referrers whose artifact type is listed (``artifact_types`` None or empty keeps all)."""
    if not artifact_types:
        return list(facts)
    wanted = set(artifact_types)
    return [fact for fact in facts if fact.get("artifact_type") in wanted]


def unique(facts):
    """Referrers without repeats (the same digest found by the API and a cosign tag is kept once)."""
    seen, result = set(), []
    for fact in facts:
        key = fact.get("digest")
        if key in seen:
            continue
        seen.add(key)
        result.append(fact)
    return result


def referrer_descriptor(media_type, digest, size, document):
    """The descriptor a referrers list holds for a manifest: artifactType and annotations included."""
    result = {"mediaType": media_type, "digest": digest, "size": size}
    document = document if isinstance(document, dict) else {}
    artifact_type = document.get("artifactType") or (document.get("config") or {}).get("mediaType")
    if artifact_type:
        result["artifactType"] = artifact_type
    if document.get("annotations"):
        result["annotations"] = dict(document["annotations"])
    return result


def supply_chain(referrers, attestations=(), signatures=None):
    """``{signed, signers, signature_present, sbom, provenance}`` from referrer facts, buildx attestation facts
    (``predicate_types``) and signature verification facts.

    ``signed`` is true only when a signature verified (``signatures``: the facts of verify_layer, None
    when no keys were given: nothing verified); ``signers`` are the key ids that verified one, and for a
    certificate ``<identity> (<issuer>)``;
    ``signature_present`` says that something signature-shaped is attached, verified or not.
    """
    categories = set(fact.get("category") for fact in referrers or [])
    for attestation in attestations or []:
        for predicate in attestation.get("predicate_types") or ():
            categories.add(category(None, (predicate,)))
    signers = []
    for fact in signatures or []:
        signer = fact.get("key_id") or ("%s (%s)" % (fact.get("identity"), fact.get("issuer"))
                                        if fact.get("identity") else None)
        if fact.get("verified") and signer and signer not in signers:
            signers.append(signer)
    return {"signed": bool(signers), "signers": signers, "signature_present": "signature" in categories,
            "sbom": "sbom" in categories, "provenance": "provenance" in categories}


def tag_schema_index(existing, descriptors):
    """``(document, body, digest, added)``: the tag-schema index with ``descriptors`` added.

    ``existing`` is the current index at the tag (None when there is none); descriptors already
    listed (by digest) are not added twice, so an unchanged re-run adds nothing (``added`` empty).
    """
    manifests = list((existing or {}).get("manifests") or [])
    listed = set(entry.get("digest") for entry in manifests if isinstance(entry, dict))
    added = [d for d in descriptors if d.get("digest") not in listed]
    for descriptor in added:
        listed.add(descriptor["digest"])
        manifests.append(dict(descriptor))
    document = {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": manifests}
    body = json.dumps(document, indent=2, separators=(",", ": "), ensure_ascii=True).encode("utf-8")
    return document, body, sha256_digest(body), added
