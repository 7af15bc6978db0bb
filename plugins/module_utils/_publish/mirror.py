# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mirrors in docker_manifest_create: an index source taken whole keeps its bytes; ``platforms`` filters one.

An index source taken whole and unchanged - the only source, no ``platform``/``platforms``, no
annotations (on the source or the index), ``attestations: keep``, a media type option that is
``auto`` or the source's own, and nothing to merge with - is written byte for byte: the target
digest is the source digest, so signatures made for it still apply. Anything else builds a new
index (``_oci.index``), deterministic as always.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.index import PlanError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    REFERENCE_DIGEST_ANNOTATION,
    is_platform_entry,
    is_reference,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import (
    format_platform,
    platform_key,
    platform_matches,
)

MEDIA_OPTION = {"oci": MEDIA_OCI_INDEX, "docker": MEDIA_DOCKER_LIST}


def whole_source(sources, source_indexes, mode, media_type, annotations, attestations, existing_document):
    """The ManifestResponse of the one index source to write unchanged, or None when a new index is needed."""
    if len(sources) != 1 or annotations or attestations != "keep":
        return None
    source = sources[0]
    if source.platform is not None or source.platforms is not None or source.annotations:
        return None
    manifest = source_indexes.get(id(source))
    if manifest is None:
        return None
    if media_type != "auto" and MEDIA_OPTION[media_type] != manifest.media_type:
        return None
    if media_type == "docker" and any(isinstance(child, dict) and child.get("mediaType") != MEDIA_DOCKER_MANIFEST
                                      for child in manifest.json().get("manifests") or []):
        return None     # a Docker list holding OCI manifests (some tools write them): refused by choose_media_type
    if mode == "merge" and existing_document is not None:
        return None
    return manifest


def filter_entries(source, document):
    """The manifests of index ``document`` that ``source.platforms`` asks for, with their reference entries.

    Each listed platform must match at least one platform entry (as containerd matches), else PlanError
    naming the platforms the source has.
    """
    wanted = [(text, platform_key(text)) for text in source.platforms]
    kept, matched = [], set()
    for child in document.get("manifests") or []:
        if not isinstance(child, dict) or not is_platform_entry(child):
            continue
        hits = [text for text, key in wanted if platform_matches(key, platform_key(child["platform"]))]
        if hits:
            kept.append(child)
            matched.update(hits)
    missing = [text for text, _key in wanted if text not in matched]
    if missing:
        have = sorted(set(format_platform(c["platform"]) for c in document.get("manifests") or []
                          if isinstance(c, dict) and is_platform_entry(c)))
        raise PlanError("source %s has no entry for platform %s (it has: %s)"
                        % (source.origin, ", ".join(missing), ", ".join(have) or "none"))
    digests = set(c["digest"] for c in kept)
    references = [c for c in document.get("manifests") or [] if isinstance(c, dict) and is_reference(c)
                  and (c.get("annotations") or {}).get(REFERENCE_DIGEST_ANNOTATION) in digests]
    result = dict(document)
    result["manifests"] = kept + references
    return result
