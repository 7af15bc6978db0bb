# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``state=absent``: remove what was named and nothing more.

By default only the tag goes (``_registry.tags.delete_tag``): other tags of the same manifest keep
resolving, and the manifest stays for every index that lists it. With ``delete_manifest`` the
manifest itself is deleted by digest, and with it every tag that points at it; that is refused
while an index in the same repository lists it, unless ``force``. Check mode and diff name every
tag that would go.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._concurrency import parallel_map
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.index import PlanError
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import is_index


class Deleter:
    """Delete one tag (or its manifest) for docker_manifest_create ``state=absent``."""

    def __init__(self, client, target, delete_manifest=False, force=False, concurrency=8):
        self.client = client
        self.target = target
        self.delete_manifest = delete_manifest
        self.force = force
        self.concurrency = max(1, concurrency)

    def run(self, check_mode=False, diff=False):
        """The result dict: ``changed``, ``digest``, ``written_tags`` (every tag that goes), ``diff``."""
        current = self.client.get_manifest(self.target, what="reading the tag to delete")
        result = {"changed": current is not None, "digest": current.digest if current else None,
                  "written_tags": [], "deleted": None}
        if current is not None:
            if self.delete_manifest:
                gone = self._tags_of(current.digest)
                self._refuse_if_listed(current.digest)
            else:
                gone = [self.target.canonical]
            result["written_tags"] = gone
            if not check_mode:
                if self.delete_manifest:
                    self.client.delete_manifest(self.target, current.digest)
                    result["deleted"] = "manifest"
                else:
                    result["deleted"] = self.client.delete_tag(self.target, current)
        if diff:
            result["diff"] = {"before": "".join("%s: %s\n" % (tag, current.digest) for tag in result["written_tags"]),
                              "after": ""}
        return result

    def _tags_in_repository(self):
        return self.client.list_tags(self.target) or []

    def _tags_of(self, digest):
        """Every tag of the repository that points at ``digest`` (the named tag first)."""
        others = [t for t in self._tags_in_repository() if t != self.target.tag]
        heads = parallel_map(lambda tag: self.client.head_manifest(self.target.with_tag(tag), what="checking tag"),
                             others, self.concurrency)
        return [self.target.canonical] + [self.target.with_tag(tag).canonical
                                          for tag, head in zip(others, heads) if head and head.digest == digest]

    def _refuse_if_listed(self, digest):
        if self.force:
            return
        listing = []
        for tag in self._tags_in_repository():
            manifest = self.client.get_manifest(self.target.with_tag(tag), what="checking index")
            if manifest is None or manifest.digest == digest:
                continue
            document = manifest.json()
            if is_index(manifest.media_type, document) and any(
                    isinstance(child, dict) and child.get("digest") == digest
                    for child in document.get("manifests") or []):
                listing.append(self.target.with_tag(tag).canonical)
        if listing:
            raise PlanError("refusing to delete manifest %s of %s: the index(es) %s in the same repository still "
                            "list it, and would point at a missing child; delete the tag only (the default), or "
                            "set force=true" % (digest, self.target.canonical, ", ".join(listing)))
