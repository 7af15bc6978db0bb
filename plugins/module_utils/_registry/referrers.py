# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Referrers over the registry API (OCI distribution-spec 1.1, "Listing Referrers").

Reading: ``GET /v2/<name>/referrers/<digest>`` (with ``?artifactType=`` when one type is asked for;
the answer is filtered here too unless ``OCI-Filters-Applied`` says the registry did it), pages
followed with ``Link``. A 404 means the registry has no Referrers API (the spec's answer), and so does
any other refusal that is not about load: registries without the API answer 400, 401, 403, 405, 406,
500 or 501 there too (NO_API_STATUSES). Then the referrers tag schema is read instead (the index at tag
``<alg>-<hex>``), and the registry is remembered as one without the API. cosign's legacy tags (``.sig``,
``.att``, ``.sbom``) and the tag-schema tags are found in the repository's tag list (read once per repository and task, ``Link`` pages), so without the API a
subject costs one GET only when it has a tag-schema index, and each cosign tag that exists one HEAD.

Writing (``referrers: copy``): a manifest with a ``subject`` is PUT as it is; a registry with the
API answers ``OCI-Subject`` and indexes it itself, else the target's tag-schema index is updated.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from urllib.parse import quote

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.jsondoc import loads_strict
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    MEDIA_OCI_EMPTY,
    MEDIA_OCI_INDEX,
    sha256_digest,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import registry_key
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.referrers import (
    category,
    cosign_tags,
    keep_types,
    referrer_fact,
    tag_schema_index,
    tag_schema_tag,
    unique,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError, error_code
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.tags import pages

MAX_PAGES = 1000
MAX_INDEX_SIZE = 4 * 1024 * 1024
# Answers of registries without a Referrers API at /v2/<name>/referrers/<digest>: the spec's 404, and
# what others answer for a path they do not route: 400 (quay/quay#3071), 401 without a challenge after a
# token was granted (Harbor 2.7, goharbor/harbor#18305) or 403, 405 (ECR, aws/containers-roadmap#2783),
# 406 (Artifactory, google/go-containerregistry#2026), 500 from an unrouted handler, 501 not implemented.
# A real access problem is not hidden by this: the tag-schema fallback then meets it and says so.
NO_API_STATUSES = frozenset((400, 401, 403, 404, 405, 406, 500, 501))


class Referrers:
    """Read (and write) the referrers of manifests through one RegistryClient, for one task (thread-safe)."""

    def __init__(self, client):
        self.client = client
        self._api = {}        # registry key -> True (Referrers API) / False (404: tag schema)
        self._tags = {}       # (registry key, repository) -> set of tags, or None (no repository)
        self._lock = threading.Lock()
        # registry key -> Lock held while the first request learns whether the API exists;
        # (registry key, repository) -> Lock held while the repository's tags are listed
        self._probing = {}

    # ------------------------------------------------------------------ reading
    def supports_api(self, registry):
        """True/False once known for ``registry``, None before the first answer."""
        return self._api.get(registry_key(registry))

    def list(self, ref, digest, artifact_types=None, cosign=True):
        """Facts of the referrers of ``digest`` in ``ref``'s repository (see _oci.referrers.referrer_fact)."""
        facts = None
        key = registry_key(ref.registry)
        if self._api.get(key) is None:
            # The first subject of a registry learns whether it has the API; the others wait for the answer
            # instead of each paying a 404 (inspections run concurrently).
            with self._lock:
                probe = self._probing.setdefault(key, threading.Lock())
            with probe:
                if self._api.get(key) is None:
                    facts = self._from_api(ref, digest, artifact_types)
                    if facts is not None or self._api.get(key) is False:
                        return self._finish(ref, digest, facts, artifact_types, cosign)
        if self._api.get(key) is not False:
            facts = self._from_api(ref, digest, artifact_types)
        return self._finish(ref, digest, facts, artifact_types, cosign)

    def _finish(self, ref, digest, facts, artifact_types, cosign):
        if facts is None:
            facts = self._from_tag_schema(ref, digest)
        if cosign:
            facts += self._from_cosign_tags(ref, digest)
        return keep_types(unique(facts), artifact_types)

    def _from_api(self, ref, digest, artifact_types):
        """The API's answer, every page; None when the registry has no Referrers API (NO_API_STATUSES)."""
        path = "referrers/%s" % digest
        if artifact_types and len(artifact_types) == 1:
            path += "?artifactType=%s" % quote(artifact_types[0], safe="")
        what = "listing the referrers of %s" % ref.with_digest(digest).canonical
        facts = []
        for response in pages(self.client, ref, path, "referrers", what, headers={"Accept": MEDIA_OCI_INDEX},
                              max_pages=MAX_PAGES):
            if response.status_code == 404 and error_code(response) in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN"):
                # The API answered: no such repository or subject (go-containerregistry's registry for a
                # repository not written yet). No referrers, and nothing learnt about the API.
                return facts
            if response.status_code in NO_API_STATUSES or (response.status_code == 200 and not _is_index(response)):
                with self._lock:
                    self._api[registry_key(ref.registry)] = False
                return None if not facts else facts
            if response.status_code != 200:
                raise self.client.read_error(response, what, ref)
            with self._lock:
                self._api[registry_key(ref.registry)] = True
            document = _json_document(response, "the referrers of %s" % ref.with_digest(digest).canonical)
            facts.extend(referrer_fact(d, "api") for d in document.get("manifests") or [] if isinstance(d, dict))
        return [self._own_artifact_type(ref, fact) for fact in facts]

    def _own_artifact_type(self, ref, fact):
        """A referrer listed without its artifact type, or with the empty config's media type, gets the one
        its manifest states (``artifactType``, else the config's media type), at the cost of one GET.

        go-containerregistry v0.22.1's registry lists every referrer with its config's media type, so an
        OCI 1.1 signature (empty config, ``artifactType`` set) is listed as ``application/vnd.oci.empty.v1+json``,
        and cosign v2.6.1 writes the same into the referrers tag schema; the distribution-spec says the listing
        carries the manifest's ``artifactType``.
        """
        if fact.get("artifact_type") not in (None, MEDIA_OCI_EMPTY) or not fact.get("digest"):
            return fact
        found = self.client.get_manifest(ref.with_digest(fact["digest"]), what="reading referrer")
        document = found.json() if found is not None else None
        if not isinstance(document, dict):
            return fact
        stated = document.get("artifactType") or (document.get("config") or {}).get("mediaType")
        if stated and stated != fact.get("artifact_type"):
            fact = dict(fact, artifact_type=stated, category=category(stated))
        return fact

    def _from_tag_schema(self, ref, digest):
        """The referrers tag-schema index of ``digest``; [] when there is none.

        The repository's tag list (read once, it finds cosign's tags too) says whether the tag exists: a
        subject without referrers costs no request, one with some costs one manifest GET.
        """
        tag = tag_schema_tag(digest)
        if tag not in self.tags(ref):
            return []
        found = self.client.get_manifest(ref.with_tag(tag), what="reading the referrers tag")
        if found is None:
            return []
        document = found.json()
        # cosign v2.6.1 (go-containerregistry's fallback) lists its OCI 1.1 referrers in the tag schema with the
        # empty config's media type as artifactType, as the ggcr registry's API does: read their own.
        return [self._own_artifact_type(ref, referrer_fact(d, "tag-schema"))
                for d in document.get("manifests") or [] if isinstance(d, dict)]

    def tags(self, ref):
        """The tags of ``ref``'s repository, listed once per task (cosign tags are looked up in it)."""
        key = (registry_key(ref.registry), ref.repository)
        with self._lock:
            listing = self._probing.setdefault(key, threading.Lock())
        with listing:   # one listing per repository; other repositories are listed meanwhile
            if key not in self._tags:
                listed = self.client.list_tags(ref)
                self._tags[key] = set(listed) if listed is not None else set()
            return self._tags[key]

    def _from_cosign_tags(self, ref, digest):
        facts = []
        tags = self.tags(ref)
        for tag, artifact_type in cosign_tags(digest):
            if tag not in tags:
                continue
            head = self.client.head_manifest(ref.with_tag(tag), what="checking cosign tag")
            if head is None:
                continue
            facts.append(referrer_fact({"mediaType": head.media_type, "digest": head.digest, "size": head.size,
                                        "artifactType": artifact_type}, "cosign-tag", tag=tag))
        return facts

    # ------------------------------------------------------------------ writing
    def put_referrer(self, target, body, media_type):
        """PUT a referrer manifest by digest; True when the registry indexed its subject (``OCI-Subject``)."""
        digest = sha256_digest(body)
        ref = target.with_digest(digest)
        response = self.client.request("PUT", ref, "manifests/" + digest, "manifest", actions=("pull", "push"),
                                       headers={"Content-Type": media_type}, data=body)
        response.close()
        if response.status_code not in (200, 201, 202):
            raise self.client.write_error(response, "writing referrer %s" % ref.canonical, ref)
        indexed = bool(response.headers.get("OCI-Subject"))
        with self._lock:
            self._api.setdefault(registry_key(target.registry), indexed)
        return indexed

    def update_tag_schema(self, target, subject_digest, descriptors, check_mode=False):
        """Add ``descriptors`` to the tag-schema index of ``subject_digest`` in ``target``; the digests added."""
        tag_ref = target.with_tag(tag_schema_tag(subject_digest))
        current = self.client.get_manifest(tag_ref, what="reading the referrers tag")
        _document, body, _digest, added = tag_schema_index(current.json() if current is not None else None,
                                                           descriptors)
        if added and not check_mode:
            self.client.put_manifest(tag_ref, body, MEDIA_OCI_INDEX, what="writing the referrers tag")
        return [d["digest"] for d in added]


def _is_index(response):
    """Whether a 200 answer is an image index (some registries answer unknown paths 200 with HTML or {})."""
    try:
        document = loads_strict(response.content, "the answer")
    except ValueError:
        return False
    return isinstance(document, dict) and isinstance(document.get("manifests", []), list) and (
        "manifests" in document or document.get("mediaType") == MEDIA_OCI_INDEX)


def _json_document(response, what):
    try:
        document = loads_strict(response.content, what)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise RegistryError("reading %s failed: the registry answered something that is not an index" % what,
                            code="REFERRERS_INVALID")
    return document
