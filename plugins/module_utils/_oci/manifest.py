# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure shaping of manifests, indexes and image configs into facts (no I/O)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import (
    format_platform,
    from_oci,
    is_unknown,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    IMAGE_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
)

ATTESTATION_TYPE_ANNOTATION = "vnd.docker.reference.type"
ATTESTATION_DIGEST_ANNOTATION = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"


def is_index(media_type, document=None):
    if media_type in INDEX_MEDIA_TYPES:
        return True
    # An OCI index may omit mediaType; it then has "manifests" and no "layers".
    return bool(document) and media_type is None and "manifests" in document and "layers" not in document


def is_attestation(descriptor):
    """buildx attestation manifests: an annotation says so; their platform is unknown/unknown."""
    annotations = descriptor.get("annotations") or {}
    return annotations.get(ATTESTATION_TYPE_ANNOTATION) == ATTESTATION_MANIFEST


def describe_descriptor(descriptor):
    """Facts for one index entry."""
    platform = descriptor.get("platform")
    return {
        "digest": descriptor.get("digest"),
        "size": descriptor.get("size"),
        "media_type": descriptor.get("mediaType"),
        "platform": from_oci(platform) if platform else None,
        "platform_string": format_platform(platform) if platform else None,
        "annotations": dict(descriptor.get("annotations") or {}),
    }


def describe_attestation(descriptor):
    annotations = descriptor.get("annotations") or {}
    return {
        "digest": descriptor.get("digest"),
        "size": descriptor.get("size"),
        "media_type": descriptor.get("mediaType"),
        "reference_digest": annotations.get(ATTESTATION_DIGEST_ANNOTATION),
        "reference_type": annotations.get(ATTESTATION_TYPE_ANNOTATION),
        "annotations": dict(annotations),
    }


def index_facts(document):
    """``manifests``, ``attestations``, ``platforms`` and ``annotations`` of an index document.

    Entries of unknown media types are kept in ``manifests`` (reported, not an error);
    attestation entries and entries without a usable platform are not platforms.
    """
    manifests, attestations, platforms = [], [], []
    for descriptor in document.get("manifests") or []:
        if not isinstance(descriptor, dict):
            continue
        if is_attestation(descriptor):
            attestations.append(describe_attestation(descriptor))
            continue
        entry = describe_descriptor(descriptor)
        manifests.append(entry)
        platform = descriptor.get("platform")
        if platform and not is_unknown(platform):
            platforms.append(entry["platform_string"])
    return {
        "manifests": manifests,
        "attestations": attestations,
        "platforms": platforms,
        "annotations": dict(document.get("annotations") or {}),
    }


def platform_from_config(config):
    """The platform dict an image config states (architecture, os, variant, os.version, os.features)."""
    return from_oci({
        "architecture": config.get("architecture"),
        "os": config.get("os"),
        "variant": config.get("variant"),
        "os.version": config.get("os.version"),
        "os.features": config.get("os.features"),
    })


def config_facts(config, manifest):
    """Created date, labels, entrypoint/cmd, layer count and compressed size of one image."""
    container = config.get("config") or {}
    layers = manifest.get("layers") or []
    return {
        "created": config.get("created"),
        "labels": dict(container.get("Labels") or {}),
        "entrypoint": container.get("Entrypoint"),
        "cmd": container.get("Cmd"),
        "layers": len(layers),
        "size": sum(int(layer.get("size") or 0) for layer in layers),
        "config_digest": (manifest.get("config") or {}).get("digest"),
    }


def is_image_manifest(media_type, document=None):
    if media_type in IMAGE_MEDIA_TYPES:
        return True
    return bool(document) and media_type is None and "layers" in document and "config" in document
