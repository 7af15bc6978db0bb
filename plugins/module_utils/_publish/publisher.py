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

import random
import threading
import time

from ansible_collections.archfleet.multiarch.plugins.module_utils._backoff import BackoffIterator
from ansible_collections.archfleet.multiarch.plugins.module_utils._concurrency import parallel_map
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.index import (
    PlanError,
    build_index,
    check_duplicates,
    choose_media_type,
    descriptor,
    entries_by_digest,
    entries_from_image,
    entries_from_index,
    merge_entries,
    same_index,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    MAX_INDEX_NESTING,
    blob_descriptors,
    index_entries,
    is_image_manifest,
    is_index,
    is_schema1,
    platform_from_config,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import (
    format_platform,
    oci_platform,
    platform_key,
    stated_contradicts_config,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import registry_key, same_repository
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import IMAGE_MEDIA_TYPES
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish import merge as merging
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.mirror import filter_entries, whole_source
from ansible_collections.archfleet.multiarch.plugins.module_utils._publish.referrers_copy import ReferrerCopy


# mode=merge (Publisher.merge): how often other writers may undo this run's index write before it fails, the
# back-off before each rewrite (BackoffIterator with full jitter: a random time up to MERGE_BACKOFF * 2 ** undone
# seconds, at most MERGE_BACKOFF_CAP), and how often one step that met a server error or no answer is tried.
MERGE_ATTEMPTS = 10
MERGE_STEP_TRIES = 5
MERGE_BACKOFF = 0.2
MERGE_BACKOFF_CAP = 5.0


class Plan:
    """What publishing one index writes, complete when made (a value: change it with ``replace``).

    * ``document``, ``body``, ``digest``, ``media_type``: the index to be at the tag (OCI image-spec
      image-index.md, or a Docker manifest list v2 schema 2).
    * ``entries``: every ``_oci.index.Entry`` it lists; ``own_entries``: the ones this run adds (a merge
      contributes only these; for a replace they are ``entries``).
    * ``existing``: the ManifestResponse at the main tag, or None; ``existing_document`` its JSON;
      ``before_document`` the index it is compared with in the diff (a single image there as a one-entry index).
    * ``tags_to_write``: the ImageReferences (main tag first) this plan writes: planned, and after
      ``Publisher.merge`` the ones it wrote (never the side tags); the one name for written tags.
    * ``referrers``: the referrers to copy (``ReferrerCopy.plan``), ``[]`` when none or ``referrers=skip``.
    * ``signature``: the signing plan (``_publish.signing.Signer.plan``), or None without ``signing_key``.
    * ``rewrites``: index writes done again after other writers; ``side_tags``: merge contributions written.
    """

    __slots__ = ("document", "body", "digest", "media_type", "entries", "own_entries", "existing",
                 "existing_document", "before_document", "tags_to_write", "referrers", "signature", "rewrites",
                 "side_tags")

    def __init__(self, document, body, digest, media_type, entries, own_entries, existing, existing_document,
                 before_document, tags_to_write, referrers=(), signature=None, rewrites=0, side_tags=()):
        values = dict(document=document, body=body, digest=digest, media_type=media_type, entries=list(entries),
                      own_entries=list(own_entries), existing=existing, existing_document=existing_document,
                      before_document=before_document, tags_to_write=list(tags_to_write),
                      referrers=list(referrers), signature=signature, rewrites=rewrites, side_tags=list(side_tags))
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("a Plan is a value: make another with plan.replace(%s=...)" % name)

    def replace(self, **changes):
        """A copy of this plan with ``changes`` (field name -> value); unknown names raise TypeError."""
        values = dict((name, getattr(self, name)) for name in self.__slots__)
        values.update(changes)
        return Plan(**values)

    @property
    def changed(self):
        """Whether applying the plan writes anything (tags or referrers; signatures are the signer's)."""
        return bool(self.tags_to_write) or bool(self.referrers)


class Publisher:
    def __init__(self, client, target, extra_tags=(), concurrency=8, force=False, referrers="skip",
                 contradictions="refuse"):
        self.client = client
        # A source platform that contradicts the image config: "refuse" (PlanError), "warn" (check mode: a
        # sentence in self.warnings) or "allow" (force_platform=true).
        self.contradictions = contradictions
        self.warnings = []
        self.referrer_copy = ReferrerCopy(client, target) if referrers == "copy" else None
        self._source_indexes = {}    # id(source) -> ManifestResponse of an index source
        self.target = target
        self.extra_tags = [target.with_tag(tag) for tag in extra_tags]
        self.concurrency = max(1, concurrency)
        self.force = force
        self.copied = {"manifests": 0, "blobs_mounted": 0, "blobs_copied": 0, "blobs_present": 0}
        self._manifests = {}     # digest -> ManifestResponse read while planning (bytes reused on copy)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ plan (reads only)
    def plan(self, sources, mode="replace", media_type="auto", annotations=None, attestations="keep"):
        existing = self.client.get_manifest(self.target, what="reading the current index")
        existing_document = existing.json() if existing is not None else None
        if existing is not None and not is_index(existing.media_type, existing_document):
            # A single image at the tag: merge makes it the first entry of a new index (as buildah
            # and podman do); replace overwrites it.
            existing_document_for_reuse = self._image_as_index(existing) if mode == "merge" else None
        else:
            existing_document_for_reuse = existing_document
        known = {} if self.force else entries_by_digest(existing_document_for_reuse)

        entries = []
        for resolved in self._map(lambda s: self._resolve(s, known, attestations), sources):
            entries.extend(resolved)
        check_duplicates(entries)
        own_entries = entries
        if mode == "merge":
            if media_type == "docker":
                raise PlanError("mode=merge writes an OCI image index: it carries the merge epoch annotation %s "
                                "(docs/manifests.md, Concurrent merges), which a Docker manifest list cannot; "
                                "use media_type=auto or oci" % merging.EPOCH_ANNOTATION)
            current = None if existing is None else merging.Current(existing.digest, existing_document_for_reuse)
            merged_annotations = dict((existing_document_for_reuse or {}).get("annotations") or {})
            merged_annotations.update(annotations or {})
            merged_annotations[merging.EPOCH_ANNOTATION] = merging.epoch_of(current)
            annotations = merged_annotations
            if existing_document_for_reuse is not None:
                entries = merge_entries(existing_document_for_reuse, entries, self.target)
        whole = whole_source(sources, self._source_indexes, mode, media_type, annotations, attestations,
                             existing_document_for_reuse)
        if whole is not None:
            # An index taken whole and unchanged: its exact bytes, so the target digest is the source digest.
            chosen, document, body, digest = whole.media_type, whole.json(), whole.body, whole.digest
        else:
            chosen = choose_media_type(media_type, entries, annotations)
            document, body, digest = build_index(chosen, entries, annotations)

        tags_to_write = []
        if existing is None or existing.digest != digest:
            if existing is None or self.force or whole is not None or not same_index(existing_document, document):
                tags_to_write.append(self.target)
            else:
                # Written by another tool with the same entries (other bytes): leave it, report its digest.
                document, body, digest = existing_document, existing.body, existing.digest
        for tag_ref in self.extra_tags:
            current = self.client.head_manifest(tag_ref, what="checking tag")
            if current is None or current.digest != digest:
                tags_to_write.append(tag_ref)
        referrers = []
        if self.referrer_copy is not None:
            referrers = self.referrer_copy.plan(digest if whole is not None else None, entries)
        return Plan(document, body, digest, document.get("mediaType") or chosen, entries, own_entries, existing,
                    existing_document, existing_document_for_reuse, tags_to_write, referrers)

    def merge(self, plan, annotations=None, media_type="auto", attempts=MERGE_ATTEMPTS, sleep=time.sleep,
              jitter=random.random):
        """Write a planned ``mode=merge`` through the merge protocol (``_publish.merge``); children already written.

        Runs ``merging.merge_steps`` against the registry: the run's entries go to its side tags, the index is
        composed of the index at the tag and every contribution of the epoch, written, read back and written
        again while contributions are missing (after a back-off, see MERGE_BACKOFF). The extra tags are then
        moved to the index read back last. Returns ``plan`` with ``document``, ``body``, ``digest``,
        ``media_type`` of that index, ``rewrites``, ``side_tags`` and ``tags_to_write`` (the tags written).

        Raises RegistryError ``CONFLICT`` after ``attempts`` rewrites; other registry errors pass.
        """
        current, rewrites, side_tags = None, 0, []
        if plan.existing is not None:
            current = merging.Current(plan.existing.digest, plan.before_document, plan.existing)
        compose = merging.composer(self.target, annotations, media_type)
        steps = merging.merge_steps(self.target.tag, merging.group_contributions(plan.own_entries), compose,
                                    current, attempts)
        answer = None
        try:
            while True:
                answer = self._merge_step(steps.send(answer), sleep, jitter)
        except StopIteration as done:
            current, rewrites, side_tags = tuple(done.value)   # merge_steps returns a 3-tuple
        except merging.MergeConflict as exc:
            raise RegistryError("merging into %s: %s; side tags %s keep this run's entries for the next merge"
                                % (self.target.canonical, exc, ", ".join(exc.side_tags)), code="CONFLICT")
        final = current.response
        written = [self.target]
        for tag_ref in self.extra_tags:
            there = self.client.head_manifest(tag_ref, what="checking tag")
            if there is None or there.digest != final.digest:
                self.client.put_manifest(tag_ref, final.body, final.media_type, what="writing index")
                written.append(tag_ref)
        return plan.replace(document=final.json(), body=final.body, digest=final.digest, media_type=final.media_type,
                            rewrites=rewrites, side_tags=side_tags, tags_to_write=written)

    def _merge_step(self, step, sleep, jitter):
        """Do one step of the merge protocol against the registry; a server error or no answer is tried again."""
        backoff = BackoffIterator(MERGE_BACKOFF, MERGE_BACKOFF_CAP, jitter="full", random=jitter)
        if isinstance(step, merging.Backoff):
            sleep(backoff.delay_for(step.undone))
            return None
        for attempt in range(1, MERGE_STEP_TRIES + 1):
            try:
                return self._merge_request(step)
            except RegistryError as exc:
                # A registry on filesystem storage can answer 500 while another PUT rewrites the tag.
                if not _transient(exc) or attempt == MERGE_STEP_TRIES:
                    raise
            sleep(backoff.delay_for(attempt))

    def _merge_request(self, step):
        if isinstance(step, merging.List):
            return [tag for tag in self.client.list_tags(self.target) or [] if tag.startswith(step.prefix)]
        ref = self.target.with_tag(step.tag)
        if isinstance(step, merging.Write):
            self.client.put_manifest(ref, step.body, step.media_type,
                                     what="writing merge contribution" if step.contribution else "writing index")
            return None
        answer = self.client.get_manifest(ref, what="reading the merged index" if step.tag == self.target.tag
                                          else "reading merge contribution")
        if answer is None:
            return None
        document = answer.json()
        if step.tag == self.target.tag and not is_index(answer.media_type, document):
            document = self._image_as_index(answer)
        return merging.Current(answer.digest, document, answer)

    def _image_as_index(self, existing):
        """The single image at the target tag as a one-entry index, its platform from its config."""
        document = existing.json()
        if is_schema1(existing.media_type, document) or not is_image_manifest(existing.media_type, document):
            raise PlanError("mode=merge cannot add to %s: it holds a %s manifest, which cannot be listed in an "
                            "index; use mode=replace to overwrite it" % (self.target.canonical, existing.media_type))
        config = self.client.get_image_config(self.target.with_digest(existing.digest), document)
        platform = platform_from_config(config)
        if not platform.get("architecture") or not platform.get("os"):
            raise PlanError("mode=merge cannot add to %s: the image there states no architecture/os in its config; "
                            "use mode=replace" % self.target.canonical)
        return {"manifests": [descriptor(existing.media_type, existing.digest, existing.size,
                                         oci_platform(platform))]}

    def _resolve(self, source, known, attestations):
        """The index entries a source contributes. Reads as little as the situation allows.

        Re-runs (the digest is in the current index) cost one HEAD per source given by tag;
        a first publish GETs each source directly, since its body is needed anyway.
        """
        ref = source.ref
        if ref.digest and ref.digest in known and source.platform is None:
            child = known[ref.digest]
            return entries_from_image(source.origin, ref, child.get("mediaType"), ref.digest, child.get("size"),
                                      child.get("platform"), source.annotations)
        if known or source.platform is not None:
            head = self.client.head_manifest(ref, what="checking source")
            if head is None:
                raise _missing_source(source)
            if head.media_type in IMAGE_MEDIA_TYPES:
                _no_platforms_filter(source)
                if source.platform is not None:
                    if not _known_as(known, head.digest, source.platform):
                        self._check_stated_platform(source, self._read(ref.with_digest(head.digest), source))
                    platform = oci_platform(source.platform)
                elif head.digest in known:
                    platform = known[head.digest].get("platform")
                else:
                    platform = self._platform_from_config(source, self._read(ref.with_digest(head.digest), source))
                return entries_from_image(source.origin, ref, head.media_type, head.digest, head.size, platform,
                                          source.annotations)
            ref = ref.with_digest(head.digest)
        manifest = self._read(ref, source)
        document = manifest.json()
        if is_index(manifest.media_type, document):
            if source.platform is not None:
                raise PlanError("source %s is an index of several platforms; a platform override is only "
                                "allowed for single-platform sources" % source.origin)
            with self._lock:
                self._source_indexes[id(source)] = manifest
            if source.platforms is not None:
                document = filter_entries(source, document)
            return entries_from_index(source.origin, source.ref, document, source.annotations, attestations)
        if is_image_manifest(manifest.media_type, document):
            _no_platforms_filter(source)
            if source.platform is not None:
                self._check_stated_platform(source, manifest)
            platform = (oci_platform(source.platform) if source.platform is not None
                        else self._platform_from_config(source, manifest))
            return entries_from_image(source.origin, source.ref, manifest.media_type, manifest.digest,
                                      manifest.size, platform, source.annotations)
        if is_schema1(manifest.media_type, document):
            raise PlanError("source %s is a Docker schema 1 manifest (%s), which no index can list; push the image "
                            "again with a current client (schema 2 or OCI)" % (source.origin, manifest.media_type))
        raise PlanError("source %s has media type %s, which is neither an image manifest nor an index"
                        % (source.origin, manifest.media_type))

    def _read(self, ref, source):
        """GET a source manifest and keep its bytes: they are put unchanged into the target later."""
        manifest = self.client.get_manifest(ref, what="reading source")
        if manifest is None:
            raise _missing_source(source)
        with self._lock:
            self._manifests[manifest.digest] = manifest
        return manifest

    def _check_stated_platform(self, source, manifest):
        """Refuse (or, in check mode, warn about) a stated platform its image config contradicts."""
        if self.contradictions == "allow" or not (manifest.json().get("config") or {}).get("digest"):
            return
        config = self.client.get_image_config(source.ref.with_digest(manifest.digest), manifest.json())
        configured = platform_from_config(config)
        if not stated_contradicts_config(source.platform, configured):
            return
        sentence = ("source %s is stated as platform %s, but its image config says %s"
                    % (source.origin, format_platform(source.platform), format_platform(configured)))
        if self.contradictions == "warn":
            with self._lock:
                self.warnings.append(sentence + "; a real run refuses it unless force_platform=true")
            return
        raise PlanError(sentence + ": nothing was written. Remove platform to publish the image as its config "
                        "says, or set force_platform=true to publish it as stated")

    def _platform_from_config(self, source, manifest):
        document = manifest.json()
        if not (document.get("config") or {}).get("digest"):
            raise PlanError("source %s has no image config to read its platform from; give it a platform"
                            % source.origin)
        config = self.client.get_image_config(source.ref.with_digest(manifest.digest), document)
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

    def apply(self, plan, write_tags=True):
        """Bring every child into the target repository, then write the index and the tags.

        Three waves, each concurrent: find the children the target lacks (with their manifests),
        bring all their blobs over, put the child manifests (images before the indexes that list
        them). Only then is the index written, at the main tag first and the extra tags after
        (``write_tags=False``: not at all; a merge writes them through Publisher.merge).
        """
        if not plan.changed:
            return
        # Children of the index at the tag already exist in the target repository.
        present = set(c.get("digest") for c in index_entries(plan.existing_document))
        missing = [e for e in plan.entries if e.digest not in present
                   and not same_repository(e.source_ref, self.target.registry, self.target.repository)]
        # A first publish into a new repository: one tag-list request says no child can be there,
        # instead of one HEAD per child (the writes that follow are idempotent either way).
        check = plan.existing is not None or len(missing) < 2 or self.client.repository_exists(self.target)
        to_copy = {}
        for found in self._map(lambda e: self._children_to_copy(e.source_ref, e.digest, check), missing):
            for source_ref, manifest in found:
                to_copy.setdefault(manifest.digest, (source_ref, manifest))
        blobs, images, indexes = {}, [], []
        for source_ref, manifest in to_copy.values():
            document = manifest.json()
            if is_index(manifest.media_type, document):
                indexes.append((source_ref, manifest))
                continue
            images.append((source_ref, manifest))
            for blob in blob_descriptors(document, copyable=True):
                blobs.setdefault(blob["digest"], source_ref)
        self._map(lambda item: self._ensure_blob(item[1], item[0]), list(blobs.items()))
        for wave in (images, indexes):
            self._map(lambda item: self._put_child(*item), wave)
        if plan.referrers:
            # Before the tags: a refused referrer write leaves the tags as they were.
            self.referrer_copy.apply(plan.referrers, self._ensure_blob)
        for tag_ref in plan.tags_to_write if write_tags else ():
            self.client.put_manifest(tag_ref, plan.body, plan.media_type, what="writing index")

    def _children_to_copy(self, source_ref, digest, check=True, depth=1):
        """``[(source_ref, manifest)]`` for ``digest`` and, for a nested index, its children; [] if present.

        ``check=False`` skips the HEAD that asks whether the target holds it (a new repository). Indexes nested
        deeper than ``MAX_INDEX_NESTING`` are refused (``MANIFEST_INVALID``) before anything is written.
        """
        if depth > MAX_INDEX_NESTING:
            raise RegistryError("source %s nests image indexes more than %d deep (at %s); refused, nothing written"
                                % (source_ref.canonical, MAX_INDEX_NESTING, digest), code="MANIFEST_INVALID")
        if check and self.client.head_manifest(self.target.with_digest(digest), what="checking child") is not None:
            return []
        manifest = self._manifests.get(digest)
        if manifest is None:
            manifest = self.client.get_manifest(source_ref.with_digest(digest), what="reading child manifest")
        if manifest is None:
            raise RegistryError("child manifest %s of source %s is missing from %s"
                                % (digest, source_ref.canonical, source_ref.name), code="MANIFEST_UNKNOWN")
        found = []
        document = manifest.json()
        if is_index(manifest.media_type, document):
            for child in index_entries(document):
                found.extend(self._children_to_copy(source_ref, child["digest"], check, depth + 1))
        found.append((source_ref, manifest))
        return found

    def _put_child(self, source_ref, manifest):
        self.client.put_manifest(self.target.with_digest(manifest.digest), manifest.body, manifest.media_type,
                                 what="writing child manifest")
        self._bump("manifests")

    def _ensure_blob(self, source_ref, digest):
        target = self.target
        if registry_key(source_ref.registry) == registry_key(target.registry):
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
        return parallel_map(function, items, self.concurrency)


def authorize(client, jobs):
    """One token request per registry for every ``(target, sources)`` job: pull,push on targets, pull on sources."""
    scopes = {}
    for target, sources in jobs:
        scopes.setdefault(target.registry, {})[target.repository] = ("pull", "push")
    for target, sources in jobs:
        for source in sources:
            scopes.setdefault(source.ref.registry, {}).setdefault(source.ref.repository, ("pull",))
    for registry, repositories in scopes.items():
        client.authorize(registry, sorted(repositories.items()))


def _known_as(known, digest, platform):
    """Whether the current index lists ``digest`` with ``platform`` (checked when it was written; a re-run
    reads no config)."""
    entry = known.get(digest)
    return entry is not None and platform_key(entry.get("platform") or {}) == platform_key(platform)


def _no_platforms_filter(source):
    if source.platforms is not None:
        raise PlanError("source %s is a single image; platforms selects entries of an index source (give one "
                        "image a platform with platform instead)" % source.origin)


def _transient(exc):
    """Whether a registry error may pass by itself: a server error (5xx) or no answer at all."""
    return (exc.status is not None and exc.status >= 500) or exc.code == "UNREACHABLE"


def _missing_source(source):
    return RegistryError("source %s does not exist in registry %s (MANIFEST_UNKNOWN)"
                         % (source.origin, source.ref.registry), code="MANIFEST_UNKNOWN")
