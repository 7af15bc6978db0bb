# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure assembly of a manifest list / OCI index from resolved sources (no I/O).

The bytes are deterministic: fixed key order, two-space indentation, entries in source order,
so the same sources give the same digest on any host and in any run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.archfleet.multiarch.plugins.module_utils._errors import PlanError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    REFERENCE_DIGEST_ANNOTATION,
    REFERENCE_TYPE_ANNOTATION,
    is_attestation,
    is_platform_entry,
    is_reference,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import (
    PlatformError,
    check_variant,
    format_platform,
    normalize_arch,
    platform_key,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    sha256_digest,
)

_PLATFORM_KEYS = ("architecture", "os", "os.version", "os.features", "variant", "features")


class Entry:
    """One descriptor of the index to write, and where its manifest comes from."""

    __slots__ = ("descriptor", "origin", "source_ref", "carried")

    def __init__(self, descriptor, origin, source_ref, carried=False):
        self.descriptor = descriptor
        self.origin = origin          # the source as the user wrote it, for messages
        self.source_ref = source_ref  # ImageReference of the repository holding the manifest
        self.carried = carried        # taken from an index source as it lists it

    @property
    def digest(self):
        return self.descriptor["digest"]

    @property
    def reference(self):
        """A reference entry (buildx attestation or other ``vnd.docker.reference.type``): never a platform."""
        return is_reference(self.descriptor)

    @property
    def platform_entry(self):
        return is_platform_entry(self.descriptor)


def descriptor(media_type, digest, size, platform=None, annotations=None):
    """A descriptor with a fixed key order; ``platform`` is an OCI platform object."""
    result = {"mediaType": media_type, "digest": digest, "size": size}
    if platform:
        result["platform"] = ordered_platform(platform)
    if annotations:
        result["annotations"] = dict(sorted(annotations.items()))
    return result


def ordered_platform(platform):
    ordered = {}
    for key in _PLATFORM_KEYS:
        if platform.get(key) not in (None, "", []):
            ordered[key] = platform[key]
    return ordered


def entries_from_image(origin, source_ref, media_type, digest, size, platform, annotations=None):
    """The one entry of a single-image source; its platform must be complete and possible.

    A 32-bit arm entry is written with its variant (``v7`` when neither the config nor the stated platform
    names one, as containerd reads it; ``v6`` for ``armel``): clients other than containerd pick a
    variant-less arm entry on v6 hosts, where a v7 image does not run.
    """
    if not platform or not platform.get("architecture") or not platform.get("os"):
        raise PlanError("source %s has no architecture/os in its image config; give it a platform, "
                        "for example {image: %s, platform: linux/arm64}" % (origin, origin))
    arch, variant = normalize_arch(platform.get("architecture"), platform.get("variant"))
    try:
        check_variant(arch, variant, format_platform(platform))
    except PlatformError as exc:
        raise PlanError("source %s: %s; give it a platform, for example {image: %s, platform: linux/%s}"
                        % (origin, exc, origin, arch))
    if arch == "arm":
        platform = dict(platform, architecture=arch, variant=variant)
    return [Entry(descriptor(media_type, digest, size, platform, annotations), origin, source_ref)]


def entries_from_index(origin, source_ref, index_document, annotations=None, attestations="keep"):
    """The entries of a source that is itself an index, each carried with every field it has.

    Reference entries (buildx attestations and other ``vnd.docker.reference.type``) follow
    ``attestations``. ``annotations`` are added to the platform entries (the only change made to
    an entry); without them an entry is copied as it is, key order included.
    """
    entries = []
    for child in index_document.get("manifests") or []:
        if not isinstance(child, dict) or not child.get("digest"):
            continue
        if is_reference(child):
            if attestations == "keep":
                entries.append(Entry(dict(child), origin, source_ref, carried=True))
            continue
        carried = dict(child)
        if annotations:
            merged = dict(child.get("annotations") or {})
            merged.update(annotations)
            carried["annotations"] = merged
        entries.append(Entry(carried, origin, source_ref, carried=True))
    if not any(e.platform_entry for e in entries):
        raise PlanError("source %s is an index without any platform entry" % origin)
    return entries


def check_duplicates(entries):
    """Two entries for the same platform (platform_key) are an error naming both sources.

    Reference and platform-less entries are never duplicates; an identical entry (same digest and
    platform) that one index source lists twice, as some upstream indexes do, is carried as it is.
    The same image given twice as a source is a duplicate.
    """
    seen = {}
    for entry in entries:
        if not entry.platform_entry:
            continue
        platform = entry.descriptor["platform"]
        key = platform_key(platform)
        other = seen.get(key)
        identical = (other is not None and other.digest == entry.digest and other.carried and entry.carried
                     and other.origin == entry.origin)
        if other is not None and not identical:
            if other.origin != entry.origin:
                who = "sources %s and %s both provide it" % (other.origin, entry.origin)
            else:
                who = "source %s provides it twice" % entry.origin
            raise PlanError("duplicate platform %s: %s (%s and %s)"
                            % (format_platform(platform), who, other.digest, entry.digest))
        seen.setdefault(key, entry)


def merge_entries(existing_document, new_entries, target_ref):
    """``mode=merge``: the existing index with same-platform entries replaced and new ones appended.

    Platforms are compared by platform_key (``os.version`` included: a Windows image of another
    OS version is added, not swapped in). Reference entries of the existing index whose entry is no
    longer in the result are dropped; those of the new entries follow them.
    """
    new_by_key = {}
    for entry in new_entries:
        if entry.platform_entry:
            new_by_key.setdefault(platform_key(entry.descriptor["platform"]), entry)
    existing_label = "existing index %s" % target_ref.canonical
    placed = set()
    result = []
    for child in (existing_document or {}).get("manifests") or []:
        if not isinstance(child, dict) or is_reference(child):
            continue
        key = platform_key(child["platform"]) if is_platform_entry(child) else None
        if key is not None and key in new_by_key:
            if key not in placed:
                result.append(new_by_key[key])
                placed.add(key)
            continue
        result.append(Entry(dict(child), existing_label, target_ref))
    for entry in new_entries:
        if entry.reference:
            continue
        key = platform_key(entry.descriptor["platform"]) if entry.platform_entry else None
        if key is None or key not in placed:
            result.append(entry)
            if key is not None:
                placed.add(key)
    kept = set(e.digest for e in result)
    reference_pool = [Entry(dict(c), existing_label, target_ref)
                      for c in (existing_document or {}).get("manifests") or []
                      if isinstance(c, dict) and is_reference(c)]
    reference_pool += [e for e in new_entries if e.reference]
    seen = set()
    for entry in reference_pool:
        described = (entry.descriptor.get("annotations") or {}).get(REFERENCE_DIGEST_ANNOTATION)
        if described in kept and entry.digest not in seen:
            result.append(entry)
            seen.add(entry.digest)
    return result


def choose_media_type(option, entries, annotations):
    """``oci``, ``docker`` or ``auto`` to a media type; Docker lists cannot carry what OCI can."""
    docker_children = all(e.descriptor.get("mediaType") == MEDIA_DOCKER_MANIFEST for e in entries)
    entry_annotations = [e for e in entries if e.descriptor.get("annotations")]
    if option == "auto":
        return MEDIA_DOCKER_LIST if docker_children and not annotations and not entry_annotations else MEDIA_OCI_INDEX
    if option == "oci":
        return MEDIA_OCI_INDEX
    if annotations:
        raise PlanError("annotations cannot be written to a Docker manifest list (media_type=docker): "
                        "use media_type=oci or auto, or remove annotations %s" % sorted(annotations))
    if entry_annotations:
        raise PlanError("a Docker manifest list cannot carry per-entry annotations, but %s has %s; "
                        "use media_type=oci or auto" % (entry_annotations[0].origin,
                                                        sorted(entry_annotations[0].descriptor["annotations"])))
    others = [e for e in entries if e.descriptor.get("mediaType") != MEDIA_DOCKER_MANIFEST]
    if others:
        raise PlanError("media_type=docker needs Docker v2 image manifests, but %s is %s; use media_type=oci or auto"
                        % (others[0].origin, others[0].descriptor.get("mediaType")))
    return MEDIA_DOCKER_LIST


def build_index(media_type, entries, annotations=None):
    """The index document and its exact bytes (deterministic)."""
    document = {"schemaVersion": 2, "mediaType": media_type,
                "manifests": [e.descriptor for e in entries]}
    if annotations:
        document["annotations"] = dict(sorted(annotations.items()))
    body = json.dumps(document, indent=2, separators=(",", ": "), ensure_ascii=True).encode("utf-8")
    return document, body, sha256_digest(body)


def _comparable(document):
    document = document or {}

    def child(c):
        return (c.get("mediaType"), c.get("digest"), c.get("size"),
                json.dumps(ordered_platform(c.get("platform") or {}), sort_keys=True),
                json.dumps(c.get("annotations") or {}, sort_keys=True))
    return (document.get("mediaType"), [child(c) for c in document.get("manifests") or [] if isinstance(c, dict)],
            json.dumps(document.get("annotations") or {}, sort_keys=True))


def same_index(left, right):
    """Whether two index documents hold the same entries in the same order (bytes may differ)."""
    return _comparable(left) == _comparable(right)


def platform_lines(document):
    """``platform: digest`` lines for diff mode (attestations shown as such)."""
    lines = []
    for child in (document or {}).get("manifests") or []:
        if not isinstance(child, dict):
            continue
        if is_reference(child):
            annotations = child.get("annotations") or {}
            label = "%s for %s" % ("attestation" if is_attestation(child) else
                                   "reference (%s)" % annotations.get(REFERENCE_TYPE_ANNOTATION, "untyped"),
                                   annotations.get(REFERENCE_DIGEST_ANNOTATION))
        elif child.get("platform"):
            label = format_platform(child["platform"])
        else:
            label = "(no platform)"
        lines.append("%s: %s" % (label, child.get("digest")))
    annotations = (document or {}).get("annotations") or {}
    for key in sorted(annotations):
        lines.append("annotation %s: %s" % (key, annotations[key]))
    return "\n".join(lines) + ("\n" if lines else "")


def entries_by_digest(document):
    """``digest -> descriptor`` of the non-reference entries of an existing index (reused on re-runs)."""
    known = {}
    for child in (document or {}).get("manifests") or []:
        if isinstance(child, dict) and child.get("digest") and not is_reference(child):
            known[child["digest"]] = child
    return known
