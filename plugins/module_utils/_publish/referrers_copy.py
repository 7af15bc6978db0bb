# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``referrers: copy`` in docker_manifest_create: the referrers of every manifest copied go along.

Subjects are the index when its digest is kept (a whole mirror) and every entry it lists. For each,
the source's referrers are read (``_registry.referrers``: API, tag schema, cosign tags); when it
has some, the target's are read the same way and only the ones the target lacks are planned.
Applying copies each one's blobs and puts its manifest by digest (cosign tags at their tag); a
target that does not answer ``OCI-Subject`` gets its tag-schema index (``<alg>-<hex>``) updated.
A re-run finds every referrer in the target and writes nothing. Referrers of referrers (a
signature of an SBOM) are not followed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import blob_descriptors
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import same_repository
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.referrers import referrer_descriptor
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.referrers import Referrers


class ReferrerCopy:
    def __init__(self, client, target):
        self.client = client
        self.target = target
        self.reader = Referrers(client)

    def plan(self, index_digest, entries):
        """``[{source_ref, subject, fact}]``: the referrers the target lacks (reads only)."""
        subjects = []
        if index_digest is not None and entries:
            subjects.append((entries[0].source_ref, index_digest))
        seen = set()
        for entry in entries:
            if entry.digest not in seen:
                seen.add(entry.digest)
                subjects.append((entry.source_ref, entry.digest))
        planned = []
        for source_ref, subject in subjects:
            if same_repository(source_ref, self.target.registry, self.target.repository):
                continue
            wanted = self.reader.list(source_ref, subject)
            if not wanted:
                continue
            have = set(fact["digest"] for fact in self.reader.list(self.target, subject))
            planned.extend({"source_ref": source_ref, "subject": subject, "fact": fact}
                           for fact in wanted if fact["digest"] not in have)
        return planned

    def apply(self, planned, ensure_blob):
        """Copy the planned referrers (blobs, manifest; cosign tags at their tag), then the tag-schema indexes."""
        schema = {}
        for item in planned:
            source_ref, fact = item["source_ref"], item["fact"]
            manifest = self.client.get_manifest(source_ref.with_digest(fact["digest"]), what="reading referrer")
            if manifest is None:
                raise RegistryError("referrer %s of %s is listed but missing from %s"
                                    % (fact["digest"], item["subject"], source_ref.name), code="MANIFEST_UNKNOWN")
            document = manifest.json()
            for blob in blob_descriptors(document, copyable=True):
                ensure_blob(source_ref, blob["digest"])
            if fact.get("tag"):
                self.client.put_manifest(self.target.with_tag(fact["tag"]), manifest.body, manifest.media_type,
                                         what="writing cosign tag")
                continue
            if not self.reader.put_referrer(self.target, manifest.body, manifest.media_type):
                schema.setdefault(item["subject"], []).append(
                    referrer_descriptor(manifest.media_type, manifest.digest, manifest.size, document))
        for subject, descriptors in schema.items():
            self.reader.update_tag_schema(self.target, subject, descriptors)


def copied_facts(planned):
    """What the module returns in ``referrers_copied``."""
    return [{"subject": item["subject"], "digest": item["fact"]["digest"],
             "artifact_type": item["fact"].get("artifact_type"), "category": item["fact"].get("category"),
             "tag": item["fact"].get("tag")} for item in planned]
