# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure classification of manifests and index entries, and their shaping into facts (no I/O).

The entry model: every entry of an index is one of

* ``image``: a manifest for one platform (OCI image-spec image-index.md ``platform``);
* ``index``: a nested index;
* ``reference``: an entry that describes another entry rather than being a platform, marked with
  the annotations ``vnd.docker.reference.digest`` / ``vnd.docker.reference.type`` (buildx
  attestations, ``reference.type: attestation-manifest``, are one kind); its platform is
  ``unknown/unknown`` and it is never a platform;
* ``artifact``: an entry with ``artifactType`` (OCI 1.1);
* ``unknown``: anything else (no usable platform, an unknown media type); reported, not an error.

A manifest (not an entry) is an ``artifact`` when it states ``artifactType`` or its config is not an
image config (OCI image-spec 1.1 manifest.md, "Guidelines for Artifact Usage"): signatures, SBOMs and
other things attached to images with ``subject``; see :func:`manifest_kind` and :func:`artifact_facts`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.jsondoc import loads_strict
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import (
    format_platform,
    from_oci,
    is_unknown,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    IMAGE_CONFIG_MEDIA_TYPES,
    IMAGE_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    SCHEMA1_MEDIA_TYPES,
)

REFERENCE_TYPE_ANNOTATION = "vnd.docker.reference.type"
REFERENCE_DIGEST_ANNOTATION = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"
# The in-toto predicate type of a buildx attestation layer (buildx docs, attestation storage).
PREDICATE_TYPE_ANNOTATION = "in-toto.io/predicate-type"


def is_index(media_type, document=None):
    if media_type in INDEX_MEDIA_TYPES:
        return True
    # An OCI index may omit mediaType; it then has "manifests" and no "layers".
    return bool(document) and media_type is None and "manifests" in document and "layers" not in document


def index_entries(document):
    """The descriptors an index lists (``manifests``), dicts only, in order; [] for None or a non-index.

    OCI image-spec, image-index.md ``manifests``; a Docker manifest list has the same field.
    """
    return [entry for entry in (document or {}).get("manifests") or [] if isinstance(entry, dict)]


def blob_descriptors(document, copyable=False):
    """The blob descriptors of an image manifest: its ``config`` first, then its ``layers``, dicts with a digest.

    ``copyable=True`` leaves out foreign layers (descriptors with ``urls``, image-spec descriptor.md), which a
    registry never holds and a copy must not ask for. OCI image-spec, manifest.md ``config`` and ``layers``.
    """
    blobs = [document.get("config")] + list(document.get("layers") or []) if isinstance(document, dict) else []
    return [blob for blob in blobs if isinstance(blob, dict) and blob.get("digest")
            and not (copyable and blob.get("urls"))]


def is_schema1(media_type, document=None):
    """Docker image manifest schema 1 (``schemaVersion: 1``, signed or not)."""
    if media_type in SCHEMA1_MEDIA_TYPES:
        return True
    return isinstance(document, dict) and document.get("schemaVersion") == 1


def is_reference(descriptor):
    """An index entry that refers to another entry (``vnd.docker.reference.*`` annotations); never a platform."""
    annotations = descriptor.get("annotations") or {}
    return REFERENCE_DIGEST_ANNOTATION in annotations or REFERENCE_TYPE_ANNOTATION in annotations


def is_attestation(descriptor):
    """buildx attestation manifests: a reference entry of type ``attestation-manifest``."""
    annotations = descriptor.get("annotations") or {}
    return annotations.get(REFERENCE_TYPE_ANNOTATION) == ATTESTATION_MANIFEST


def has_platform(descriptor):
    """Whether an index entry names a real platform (os and architecture, not ``unknown/unknown``)."""
    platform = descriptor.get("platform")
    return (isinstance(platform, dict) and bool(platform.get("os")) and bool(platform.get("architecture"))
            and not is_unknown(platform))


def is_platform_entry(descriptor):
    """An entry a runtime selects by platform: it has a real platform and is not a reference entry."""
    return not is_reference(descriptor) and has_platform(descriptor)


def entry_kind(descriptor):
    """``reference``, ``artifact``, ``index``, ``image`` or ``unknown`` (see the module docstring)."""
    if is_reference(descriptor):
        return "reference"
    if descriptor.get("artifactType"):
        return "artifact"
    media_type = descriptor.get("mediaType")
    if media_type in INDEX_MEDIA_TYPES:
        return "index"
    if has_platform(descriptor) and media_type in IMAGE_MEDIA_TYPES + (None,):
        return "image"
    return "unknown"


def describe_descriptor(descriptor):
    """Facts for one index entry."""
    platform = descriptor.get("platform")
    return {
        "kind": entry_kind(descriptor),
        "digest": descriptor.get("digest"),
        "size": descriptor.get("size"),
        "media_type": descriptor.get("mediaType"),
        "platform": from_oci(platform).as_dict() if platform else None,
        "platform_string": format_platform(platform) if platform else None,
        "annotations": dict(descriptor.get("annotations") or {}),
    }


def describe_attestation(descriptor):
    annotations = descriptor.get("annotations") or {}
    return {
        "digest": descriptor.get("digest"),
        "size": descriptor.get("size"),
        "media_type": descriptor.get("mediaType"),
        "reference_digest": annotations.get(REFERENCE_DIGEST_ANNOTATION),
        "reference_type": annotations.get(REFERENCE_TYPE_ANNOTATION),
        "annotations": dict(annotations),
    }


def index_facts(document):
    """``manifests``, ``attestations``, ``platforms`` and ``annotations`` of an index document.

    ``attestations`` lists every reference entry (buildx attestations and any other
    ``vnd.docker.reference.type``); ``manifests`` every other entry, with its ``kind``. Entries of
    unknown media types are kept in ``manifests`` (reported, not an error). ``platforms`` holds the
    platform of each platform entry, in index order (an identical duplicate entry appears twice).
    """
    manifests, attestations, platforms = [], [], []
    for descriptor in document.get("manifests") or []:
        if not isinstance(descriptor, dict):
            continue
        if is_reference(descriptor):
            attestations.append(describe_attestation(descriptor))
            continue
        entry = describe_descriptor(descriptor)
        manifests.append(entry)
        if has_platform(descriptor):
            platforms.append(entry["platform_string"])
    return {
        "manifests": manifests,
        "attestations": attestations,
        "platforms": platforms,
        "annotations": dict(document.get("annotations") or {}),
    }


def descriptor_problem(document):
    """What is wrong with the descriptors of a manifest or index ``document`` (a dict), or None.

    Every descriptor a registry lists (``manifests`` of an index, ``config``, ``layers``, ``subject``) must
    be an object whose ``digest`` (required in ``manifests``) is ``sha256:`` or ``sha512:`` with its exact
    hex length (OCI image-spec descriptor.md, "Digests": registered algorithms), and whose ``size``, when
    given, a non-negative integer.
    A digest becomes a URL path: anything else (``md5:``, ``sha256:../..``, a newline) is refused here,
    before any request names it.
    """
    lists = [("manifests", document.get("manifests")), ("layers", document.get("layers"))]
    singles = [("config", document.get("config")), ("subject", document.get("subject"))]
    for name, value in lists:
        if value is not None and not isinstance(value, list):
            return "%s is not a list" % name
    descriptors = [(name, item) for name, value in lists for item in value or []]
    descriptors += [(name, value) for name, value in singles if value is not None]
    for name, descriptor in descriptors:
        if not isinstance(descriptor, dict):
            return "an entry of %s is not an object" % name
        digest = descriptor.get("digest")
        if digest is None and name != "manifests":
            continue        # never requested (get_image_config names a config without a digest)
        algorithm, _colon, encoded = digest.partition(":") if isinstance(digest, str) else ("", "", "")
        length = _DIGEST_HEX.get(algorithm)
        if length is None or len(encoded) != length or encoded.strip("0123456789abcdef"):
            return "%s lists the digest %r (allowed: sha256 or sha512 with lower-case hex)" % (name, str(digest)[:150])
        size = descriptor.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            return "%s lists the size %r for %s" % (name, str(size)[:40], digest)
    return None


_DIGEST_HEX = {"sha256": 64, "sha512": 128}


# Image indexes inside image indexes: an index of indexes (one level) is what tools write; the image-spec sets
# no limit, so a hostile source could nest without end. Copies refuse anything deeper than this.
MAX_INDEX_NESTING = 8


def parse_image_config(data):
    """The image config blob ``data`` (bytes, as read and verified) as the JSON object it must be.

    OCI image-spec v1.1 config.md ("Properties"; media type ``application/vnd.oci.image.config.v1+json``,
    Docker's ``application/vnd.docker.container.image.v1+json`` has the same shape): the config is a
    UTF-8 JSON object with ``architecture``, ``os``, ``created``, ``config`` (Labels, Entrypoint, Cmd ...)
    and ``rootfs``. Only that it is an object is checked here; :func:`platform_from_config` and
    :func:`config_facts` read the fields.

    Returns a dict. Raises ValueError when the bytes are not UTF-8, not JSON, or JSON that is not an
    object (a list, a string, a number, ``null``).
    """
    try:
        config = loads_strict(data, "it")   # not UTF-8, not strict JSON (duplicate keys, NaN), nested too deep
    except ValueError as exc:
        raise ValueError("the image config is not UTF-8 JSON: %s" % exc) from None
    if not isinstance(config, dict):
        raise ValueError("the image config is JSON but not an object (%s)" % type(config).__name__)
    return config


def platform_from_config(config):
    """The :class:`_oci.platform.Platform` an image config states (its architecture, os, variant, os.version
    and os.features; OCI image-spec config.md)."""
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


def is_artifact_manifest(media_type, document):
    """An image-manifest-shaped document that is an OCI 1.1 artifact: ``artifactType``, or a non-image config."""
    if not isinstance(document, dict) or not is_image_manifest(media_type, document):
        return False
    if document.get("artifactType"):
        return True
    config_type = (document.get("config") or {}).get("mediaType")
    return bool(config_type) and config_type not in IMAGE_CONFIG_MEDIA_TYPES


def manifest_kind(media_type, document):
    """``schema1``, ``index``, ``artifact``, ``image`` or ``unknown`` for a manifest document."""
    if is_schema1(media_type, document):
        return "schema1"
    if is_index(media_type, document):
        return "artifact" if isinstance(document, dict) and document.get("artifactType") else "index"
    if is_artifact_manifest(media_type, document):
        return "artifact"
    if is_image_manifest(media_type, document):
        return "image"
    return "unknown"


def subject_facts(document):
    """``{digest, media_type, size}`` of a manifest's ``subject`` (OCI 1.1), or None."""
    subject = document.get("subject") if isinstance(document, dict) else None
    if not isinstance(subject, dict) or not subject.get("digest"):
        return None
    return {"digest": subject.get("digest"), "media_type": subject.get("mediaType"), "size": subject.get("size")}


def artifact_type_of(document):
    """``artifactType``, else the config media type (image-spec 1.1: how a client names an artifact's type)."""
    if not isinstance(document, dict):
        return None
    if document.get("artifactType"):
        return document["artifactType"]
    return (document.get("config") or {}).get("mediaType")


def predicate_types(document):
    """The in-toto predicate types the layers of an attestation manifest carry, in layer order, unique."""
    found = []
    for layer in (document.get("layers") if isinstance(document, dict) else None) or []:
        value = ((layer or {}).get("annotations") or {}).get(PREDICATE_TYPE_ANNOTATION)
        if value and value not in found:
            found.append(value)
    return found


def artifact_facts(document):
    """``artifact_type``, ``subject`` and ``layers`` (media types) of an artifact manifest or artifact index."""
    entries = document.get("layers") if "layers" in document else document.get("manifests")
    return {
        "artifact_type": artifact_type_of(document),
        "subject": subject_facts(document),
        "layers": [(layer or {}).get("mediaType") for layer in entries or [] if isinstance(layer, dict)],
    }
