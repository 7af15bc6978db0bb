# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publish a manifest list / OCI index registry-side: resolve sources, bring children over, write last.

Order of writes: child manifests (with their blobs mounted or copied) first, the index at the
main tag next, extra tags last, so a tag never points at an index whose children are missing.
An unchanged re-run reads the existing index once and HEADs each source given by tag; it writes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.archfleet.multiarch.plugins.module_utils.index_plan import (
    PlanError,
    build_index,
    check_duplicates,
    choose_media_type,
    entries_from_image,
    entries_from_index,
    known_platforms,
    merge_entries,
    same_index,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils.manifest import is_index, platform_from_config
from ansible_collections.archfleet.multiarch.plugins.module_utils.platform import oci_platform
from ansible_collections.archfleet.multiarch.plugins.module_utils.registry import (
    IMAGE_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    RegistryError,
)


class Source:
    """A source as the user gave it: reference, optional platform override and annotations."""

    __slots__ = ("origin", "ref", "platform", "annotations")

    def __init__(self, origin, ref, platform=None, annotations=None):
        self.origin = origin
        self.ref = ref
        self.platform = platform          # parsed platform dict, or None
        self.annotations = annotations or {}


class Plan:
    """What the module would write: the index, its digest, and which tags must move."""

    def __init__(self, document, body, digest, media_type, entries, existing, existing_document, tags_to_write):
        self.document = document
        self.body = body
        self.digest = digest
        self.media_type = media_type
        self.entries = entries
        self.existing = existing                    # ManifestResponse of the main tag, or None
        self.existing_document = existing_document
        self.tags_to_write = tags_to_write          # ImageReferences (main tag first) that must be written

    @property
    def changed(self):
        return bool(self.tags_to_write)


class Publisher:
    def __init__(self, client, target, extra_tags=(), concurrency=8, force=False):
        self.client = client
        self.target = target
        self.extra_tags = [target.with_tag(tag) for tag in extra_tags]
        self.concurrency = max(1, concurrency)
        self.force = force
        self.copied = {"manifests": 0, "blobs_mounted": 0, "blobs_copied": 0, "blobs_present": 0}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ plan (reads only)
    def authorize(self, sources):
        """One token request for the target (pull,push) and every same-registry source (pull)."""
        scopes = {self.target.registry: {self.target.repository: ("pull", "push")}}
        for source in sources:
            repos = scopes.setdefault(source.ref.registry, {})
            repos.setdefault(source.ref.repository, ("pull",))
        for registry, repos in scopes.items():
            self.client.authorize(registry, sorted(repos.items()))

    def plan(self, sources, mode="replace", media_type="auto", annotations=None, attestations="keep"):
        existing = self.client.get_manifest(self.target, what="reading the current index at")
        existing_document = existing.json() if existing is not None else None
        if existing is not None and not is_index(existing.media_type, existing_document):
            if mode == "merge":
                raise PlanError("mode=merge needs an index at %s, but it holds a single-platform image (%s)"
                                % (self.target.canonical, existing.media_type))
            existing_document_for_reuse = None
        else:
            existing_document_for_reuse = existing_document
        known = {} if self.force else known_platforms(existing_document_for_reuse)

        entries = []
        for resolved in self._map(lambda s: self._resolve(s, known, attestations), sources):
            entries.extend(resolved)
        check_duplicates(entries)
        if mode == "merge" and existing_document_for_reuse is not None:
            merged_annotations = dict(existing_document_for_reuse.get("annotations") or {})
            merged_annotations.update(annotations or {})
            annotations = merged_annotations
            entries = merge_entries(existing_document_for_reuse, entries, self.target)
        chosen = choose_media_type(media_type, entries, annotations)
        document, body, digest = build_index(chosen, entries, annotations)

        tags_to_write = []
        if existing is None or existing.digest != digest:
            if existing is None or self.force or not same_index(existing_document, document):
                tags_to_write.append(self.target)
            else:
                # Written by another tool with the same entries (other bytes): leave it, report its digest.
                document, body, digest = existing_document, existing.body, existing.digest
        for tag_ref in self.extra_tags:
            current = self.client.head_manifest(tag_ref, what="checking tag")
            if current is None or current.digest != digest:
                tags_to_write.append(tag_ref)
        return Plan(document, body, digest, document.get("mediaType") or chosen, entries, existing,
                    existing_document, tags_to_write)

    def _resolve(self, source, known, attestations):
        ref = source.ref
        if ref.digest and ref.digest in known and source.platform is None:
            child = known[ref.digest]
            return entries_from_image(source.origin, ref, child.get("mediaType"), ref.digest, child.get("size"),
                                      child.get("platform"), source.annotations)
        head = self.client.head_manifest(ref, what="checking source")
        if head is None:
            raise RegistryError("source %s does not exist in registry %s (MANIFEST_UNKNOWN)"
                                % (source.origin, ref.registry), code="MANIFEST_UNKNOWN")
        pinned = ref.with_digest(head.digest)
        if head.media_type in IMAGE_MEDIA_TYPES:
            if source.platform is not None:
                platform = oci_platform(source.platform)
            elif head.digest in known:
                platform = known[head.digest].get("platform")
            else:
                platform = self._platform_from_config(source, pinned)
            return entries_from_image(source.origin, ref, head.media_type, head.digest, head.size, platform,
                                      source.annotations)
        manifest = self.client.get_manifest(pinned, what="reading source")
        if manifest is None:
            raise RegistryError("source %s disappeared while it was being read" % source.origin,
                                code="MANIFEST_UNKNOWN")
        document = manifest.json()
        if manifest.media_type in INDEX_MEDIA_TYPES or is_index(manifest.media_type, document):
            if source.platform is not None:
                raise PlanError("source %s is an index of several platforms; a platform override is only "
                                "allowed for single-platform sources" % source.origin)
            return entries_from_index(source.origin, ref, document, source.annotations, attestations)
        if manifest.media_type in IMAGE_MEDIA_TYPES:
            platform = (oci_platform(source.platform) if source.platform is not None
                        else self._platform_from_config(source, pinned, document))
            return entries_from_image(source.origin, ref, manifest.media_type, manifest.digest, manifest.size,
                                      platform, source.annotations)
        raise PlanError("source %s has media type %s, which is neither an image manifest nor an index"
                        % (source.origin, manifest.media_type))

    def _platform_from_config(self, source, pinned, document=None):
        if document is None:
            manifest = self.client.get_manifest(pinned, what="reading source")
            document = manifest.json()
        digest = (document.get("config") or {}).get("digest")
        if not digest:
            raise PlanError("source %s has no image config to read its platform from; give it a platform"
                            % source.origin)
        config = json.loads(self.client.get_blob(pinned, digest, what="reading image config").decode("utf-8"))
        platform = platform_from_config(config)
        if not platform.get("architecture") or not platform.get("os"):
            return None
        return oci_platform(platform)

    # ------------------------------------------------------------------ writes
    def ensure_push_permission(self):
        granted = self.client.granted_actions(self.target.registry, self.target.repository)
        if granted is not None and "push" not in granted:
            raise RegistryError("no push permission on %s: the token service granted only %s, not push; "
                                "nothing was written" % (self.target.name, ",".join(sorted(granted)) or "no access"),
                                code="DENIED")

    def apply(self, plan):
        """Bring every child into the target repository, then write the index and the tags."""
        if not plan.changed:
            return
        # Children of the index at the tag already exist in the target repository.
        present = set(c.get("digest") for c in (plan.existing_document or {}).get("manifests") or []
                      if isinstance(c, dict))
        missing = [e for e in plan.entries if e.digest not in present and not self._same_repository(e.source_ref)]
        list(self._map(lambda e: self._ensure_manifest(e.source_ref, e.digest), missing))
        for tag_ref in plan.tags_to_write:
            self.client.put_manifest(tag_ref, plan.body, plan.media_type, what="writing index")

    def _same_repository(self, ref):
        return ref.registry == self.target.registry and ref.repository == self.target.repository

    def _ensure_manifest(self, source_ref, digest):
        target = self.target.with_digest(digest)
        if self.client.head_manifest(target, what="checking child") is not None:
            return
        manifest = self.client.get_manifest(source_ref.with_digest(digest), what="reading child manifest")
        if manifest is None:
            raise RegistryError("child manifest %s of source %s is missing from %s"
                                % (digest, source_ref.canonical, source_ref.name), code="MANIFEST_UNKNOWN")
        document = manifest.json()
        if is_index(manifest.media_type, document):
            for child in document.get("manifests") or []:
                self._ensure_manifest(source_ref, child["digest"])
        else:
            blobs = [document.get("config") or {}] + list(document.get("layers") or [])
            for blob in blobs:
                if blob.get("digest") and not blob.get("urls"):
                    self._ensure_blob(source_ref, blob["digest"])
        self.client.put_manifest(target, manifest.body, manifest.media_type, what="writing child manifest")
        self._bump("manifests")

    def _ensure_blob(self, source_ref, digest):
        target = self.target
        if source_ref.registry == target.registry:
            if self.client.mount_blob(target, digest, source_ref.repository):
                self._bump("blobs_mounted")
                return
        elif self.client.blob_exists(target, digest):
            self._bump("blobs_present")
            return
        self.client.copy_blob(source_ref, target, digest)
        self._bump("blobs_copied")

    # ------------------------------------------------------------------ helpers
    def _bump(self, key):
        with self._lock:
            self.copied[key] += 1

    def _map(self, function, items):
        items = list(items)
        if self.concurrency <= 1 or len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(function, items))
