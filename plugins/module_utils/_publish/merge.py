# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``mode=merge`` as a protocol whose guarantee does not depend on timing (docs/manifests.md, "Concurrent merges").

Registries have no conditional write: two writers that read an index, add to it and write it back can
each replace the other's work. So a merging writer keeps its *contribution* (the entries it adds, per
platform) where no writer of another platform can overwrite it, in a side tag of the same repository::

    <tag>.merge.<epoch>.<platform key hash>      (12 hex digits each; see side_prefix, contribution_key)

and rebuilds the index from the index there and *every* contribution of the current epoch:

1. write its contributions (one one-platform OCI index per platform, children already in the repository);
2. list the side tags of the epoch and read each contribution;
3. write the index composed of the index at the tag and every contribution (a contribution replaces the
   entry of its platform);
4. read the tag back, list and read the contributions again; stop when the index lists every one of them
   (each descriptor as the contribution states it), else go back to 3 from what is there.

Guarantee (for writers that finish step 4): take the last index write W. Its writer's final step 4 came
after W, read W and listed the side tags, and stopped, so W lists every contribution written before that
listing. A contribution written later belongs to a writer V that lists (step 2) after writing it and then
writes an index (step 3) after W, so W would not be the last write. Hence every finished writer's
contribution is in the final index, whatever the timing. A writer killed after its index write and before
its read-back can drop contributions of writers that finished inside that window; contributions stay, so
the next merge into the tag restores them.

The *epoch* keeps contributions from outliving the index they were made for: it is the value of the
``io.archfleet.merge.epoch`` annotation of the index at the tag, or, for an index (or image) written by
anything else, the first 12 hex digits of its digest (``000000000000`` when the tag does not exist).
A merge writes the epoch it worked in into the index, so merges keep it, and a write by another tool
(or ``mode=replace``) starts a new one: contributions of older epochs are not read again.

The protocol is written without I/O (``merge_steps`` is a generator of ``Read``, ``List``, ``Write`` and
``Backoff`` steps), so tests/unit/plugins/module_utils/test_merge_protocol.py can run several writers'
steps in every interleaving up to a preemption bound against a fake registry; ``Publisher.merge`` runs
it against a real one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.index import (
    Entry,
    build_index,
    choose_media_type,
    merge_entries,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import (
    REFERENCE_DIGEST_ANNOTATION,
    is_platform_entry,
    is_reference,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_OCI_INDEX
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.platform import platform_key

EPOCH_ANNOTATION = "io.archfleet.merge.epoch"
NO_EPOCH = "0" * 12
# A tag is at most 128 characters (distribution-spec, "Pulling manifests"); the suffix takes 32.
_LONGEST_PLAIN_TAG = 128 - len(".merge.") - 12 - 1 - 12
_HEX12 = re.compile(r"^[0-9a-f]{12}$")


class Read:
    """Step: GET the manifest at ``tag``. Answer: a ``Current`` or None (no such tag)."""

    def __init__(self, tag):
        self.tag = tag


class List:
    """Step: the repository's tags that start with ``prefix``. Answer: a list of tag names."""

    def __init__(self, prefix):
        self.prefix = prefix


class Write:
    """Step: PUT ``body`` (of ``media_type``) at ``tag``. Answer: ignored."""

    def __init__(self, tag, body, media_type, contribution=False):
        self.tag = tag
        self.body = body
        self.media_type = media_type
        self.contribution = contribution


class Backoff:
    """Step: wait before writing the index again; ``undone``: how many of this writer's index writes were undone
    so far (the wait grows with it; writing again to add new contributions does not make it grow)."""

    def __init__(self, undone):
        self.undone = undone


class Current:
    """The manifest at a tag as the protocol needs it: ``digest``, the document as an index (a single image
    at the tag is a one-entry index), and the raw answer (``response``, for the caller)."""

    def __init__(self, digest, document, response=None):
        self.digest = digest
        self.document = document
        self.response = response


class MergeConflict(Exception):
    """This writer's index write was undone ``attempts`` times (other writers kept writing indexes without the
    contributions it had written).

    ``side_tags``: the contributions the writer wrote (they stay: the next merge into the tag reads them).
    """

    def __init__(self, message, side_tags):
        super(MergeConflict, self).__init__(message)
        self.side_tags = list(side_tags)


def epoch_of(current):
    """The merge epoch of the manifest at the tag (12 hex digits; see the module docstring)."""
    if current is None:
        return NO_EPOCH
    stated = ((current.document or {}).get("annotations") or {}).get(EPOCH_ANNOTATION)
    if isinstance(stated, str) and _HEX12.match(stated):
        return stated
    return current.digest.split(":", 1)[-1][:12]


def side_prefix(tag, epoch):
    """The prefix of every side tag of ``tag`` in ``epoch``; a tag too long to keep is replaced by its hash."""
    base = tag if len(tag) <= _LONGEST_PLAIN_TAG else "t" + hashlib.sha256(tag.encode("utf-8")).hexdigest()[:31]
    return "%s.merge.%s." % (base, epoch)


def contribution_key(descriptor):
    """12 hex digits naming what a contribution replaces: its platform (platform_key), or its digest."""
    if is_platform_entry(descriptor):
        identity = json.dumps(platform_key(descriptor["platform"]))
    else:
        identity = descriptor.get("digest") or ""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]


def group_contributions(entries):
    """``[(key, [descriptor, ...])]``: each entry a run adds, with the reference entries (attestations) that
    describe it, grouped by contribution_key; reference entries whose subject is not added are left out."""
    groups, order, by_digest = {}, [], {}
    for entry in entries:
        if is_reference(entry.descriptor):
            continue
        key = contribution_key(entry.descriptor)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(entry.descriptor)
        by_digest[entry.digest] = key
    for entry in entries:
        if is_reference(entry.descriptor):
            subject = (entry.descriptor.get("annotations") or {}).get(REFERENCE_DIGEST_ANNOTATION)
            if subject in by_digest:
                groups[by_digest[subject]].append(entry.descriptor)
    return [(key, groups[key]) for key in order]


def contribution_body(tag, epoch, descriptors):
    """The bytes of one contribution: an OCI index of ``descriptors`` naming its tag and epoch."""
    annotations = {EPOCH_ANNOTATION: epoch, "io.archfleet.merge.tag": tag}
    return build_index(MEDIA_OCI_INDEX, [Entry(d, "contribution", None) for d in descriptors], annotations)[1]


def contribution_descriptors(document, epoch):
    """The descriptors of a contribution read back, or None when ``document`` is not one of ``epoch``."""
    if not isinstance(document, dict) or (document.get("annotations") or {}).get(EPOCH_ANNOTATION) != epoch:
        return None
    manifests = document.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        return None
    if not all(isinstance(d, dict) and isinstance(d.get("digest"), str) and d.get("mediaType") for d in manifests):
        return None
    return manifests


def lists_all(document, contributions):
    """Whether the index ``document`` lists every descriptor of every contribution, each as it is there
    (digest, platform, annotations: a contribution may restate an entry's platform or annotations)."""
    listed = set(_canonical(c) for c in (document or {}).get("manifests") or [] if isinstance(c, dict))
    return all(_canonical(d) in listed for descriptors in contributions for d in descriptors)


def _canonical(descriptor):
    return json.dumps(descriptor, sort_keys=True)


def _canonical_set(contributions):
    return frozenset(_canonical(d) for descriptors in contributions for d in descriptors)


def composer(target, annotations, media_type):
    """``compose(current, contributions, epoch)`` for merge_steps: the index at the tag (``current.document``)
    with every contribution's entries merged in (``merge_entries``: an entry replaces the one of its
    platform), the index annotations of the tag and of the task (``annotations``), and ``epoch``, in the
    media type ``media_type`` (``auto`` or ``oci``) chooses. Returns ``(document, body, media_type)``."""
    def compose(current, contributions, epoch):
        base = current.document if current is not None else None
        entries = [Entry(dict(descriptor), "merge contribution", target)
                   for descriptors in contributions for descriptor in descriptors]
        merged_annotations = dict((base or {}).get("annotations") or {})
        merged_annotations.update(annotations or {})
        merged_annotations[EPOCH_ANNOTATION] = epoch
        entries = merge_entries(base, entries, target)
        chosen = choose_media_type(media_type, entries, merged_annotations)
        document, body, _digest = build_index(chosen, entries, merged_annotations)
        return document, body, chosen
    return compose


def merge_steps(tag, own, compose, current, attempts=10):
    """The protocol for one writer (a generator of steps; see the module docstring).

    ``own``: ``[(key, [descriptor, ...])]`` from group_contributions; ``compose(current, contributions,
    epoch)`` returns ``(document, body, media_type)`` of the index to write (``current``: a Current or None;
    ``contributions``: lists of descriptors, in side-tag order); ``current``: the tag as last read.

    Returns ``(current, rewrites, side_tags)``: the tag as read when every listed contribution was in it,
    how many times the index was written again, and the side tags this writer wrote.

    Writing again to add contributions that appeared since the last write is progress (there are only as many
    as there are writers); writing again because the index lacks contributions this writer had already written
    means another writer undid that write. Raises MergeConflict when that happened more than ``attempts`` times.
    """
    epoch, rewrites, undone, writes, side_tags, written = None, 0, 0, 0, [], frozenset()
    while True:
        if epoch_of(current) != epoch:
            epoch = epoch_of(current)
            for key, descriptors in own:
                side_tags.append(side_prefix(tag, epoch) + key)
                yield Write(side_tags[-1], contribution_body(tag, epoch, descriptors), MEDIA_OCI_INDEX, True)
        contributions = yield from _contributions(tag, epoch)
        if writes:
            if lists_all(current.document if current is not None else None, contributions):
                return current, rewrites, side_tags
            if _canonical_set(contributions) <= written:
                if undone >= attempts:
                    raise MergeConflict("other writers undid this run's index write %d times (%d index writes)"
                                        % (undone + 1, writes), side_tags)
                undone += 1
            rewrites += 1
            yield Backoff(undone)
            contributions = yield from _contributions(tag, epoch)
        document, body, media_type = compose(current, contributions, epoch)
        written = _canonical_set(contributions)
        yield Write(tag, body, media_type)
        writes += 1
        current = yield Read(tag)


def _contributions(tag, epoch):
    """Steps: list the side tags of ``epoch`` and read each; the descriptors of each contribution found."""
    found = []
    for name in sorted((yield List(side_prefix(tag, epoch)))):
        answer = yield Read(name)
        descriptors = contribution_descriptors(answer.document if answer is not None else None, epoch)
        if descriptors is not None:
            found.append(descriptors)
    return found
