# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tags: listing them (with ``Link`` pagination) and deleting one tag without deleting its manifest.

Distribution-spec v1.1, "Listing Tags" and "Deleting tags": ``GET /v2/<name>/tags/list?n=<n>``
answers a page and, when more follow, a ``Link: <...?last=...&n=...>; rel="next"`` header (RFC 8288).
``DELETE /v2/<name>/manifests/<tag>`` removes one tag where the registry supports it; registries that
do not (the distribution registry 2.x answers 400 DIGEST_INVALID) get the fallback: the tag is pointed
at a unique throw-away manifest, which is then deleted by digest, so every other tag keeps resolving.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import uuid

from urllib.parse import urljoin

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_OCI_MANIFEST, sha256_digest
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.credentials import CATALOG
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import (
    RegistryError,
    error_code,
    response_error,
)

PAGE_SIZE = 1000
MAX_PAGES = 10000
# The OCI empty descriptor (image-spec manifest.md, "Guidance for an Empty Descriptor").
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
TOMBSTONE_ANNOTATION = "org.archfleet.multiarch.deleted-tag"
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def next_link(header):
    """The ``rel="next"`` target of a ``Link`` header (RFC 8288), or None."""
    match = _NEXT_LINK.search(header or "")
    return match.group(1) if match else None


def list_tags(client, ref, page_size=PAGE_SIZE):
    """Every tag of ``ref``'s repository, in the registry's order; None when the repository does not exist."""
    path = "tags/list?n=%d" % page_size
    tags = []
    for _page in range(MAX_PAGES):
        response = client.request("GET", ref, path, "tags")
        try:
            if response.status_code == 404:
                return None if not tags else tags
            if response.status_code != 200:
                raise response_error(response, "listing the tags of %s" % ref.name, registry=ref.registry,
                                     retries=client.transport.max_retries)
            try:
                page = response.json().get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError("listing the tags of %s failed: the registry answered something that is "
                                    "not a tag list" % ref.name, code="TAG_INVALID")
            tags.extend(tag for tag in page if isinstance(tag, str))
            link = next_link(response.headers.get("Link"))
        finally:
            response.close()
        if not link:
            return tags
        # The link is relative to the registry (or absolute); keep only the part after /v2/<name>/.
        absolute = urljoin("http://registry/v2/%s/tags/list" % ref.repository, link)
        path = absolute.split("/v2/%s/" % ref.repository, 1)[-1]
    raise RegistryError("listing the tags of %s failed: more than %d pages" % (ref.name, MAX_PAGES),
                        code="TAG_INVALID")


def repository_exists(client, ref):
    """Whether ``ref``'s repository exists: one ``GET tags/list?n=1`` (distribution-spec "Listing Tags").

    False only for a 404 (``NAME_UNKNOWN``); any other answer counts as existing, so a caller that
    skips work for a missing repository skips it only when the registry said so. Distribution also
    answers 404 for a repository that holds untagged manifests only: callers must treat False as
    "nothing need be checked there", never as "nothing is there".
    """
    response = client.request("GET", ref, "tags/list?n=1", "tags")
    try:
        return response.status_code != 404
    finally:
        response.close()


class _Catalog:
    """The stand-in reference ``request`` needs for ``/v2/_catalog`` (not a repository path)."""

    def __init__(self, registry):
        self.registry = registry
        self.repository = CATALOG
        self.name = "the catalog of %s" % registry


def list_repositories(client, registry, page_size=PAGE_SIZE):
    """Every repository of ``registry`` from ``/v2/_catalog`` (``Link`` pagination); None when there is none.

    The catalog is the distribution registry's extension, not part of the OCI distribution-spec:
    registries that do not offer it (404, 401/403 for the ``registry:catalog:*`` scope) get None.
    """
    endpoint = client.transport.endpoint(registry)
    path = "/v2/_catalog?n=%d" % page_size
    names = []
    catalog = _Catalog(registry)
    for _page in range(MAX_PAGES):
        headers = client.tokens.headers(endpoint, CATALOG, ("*",))
        response = client.transport.send("GET", endpoint.base_url + path, registry, "catalog", headers=headers,
                                         verify=endpoint.verify, cert=endpoint.cert)
        try:
            if response.status_code in (401, 403, 404, 405):
                return names or None
            if response.status_code != 200:
                raise response_error(response, "listing %s" % catalog.name, registry=registry,
                                     retries=client.transport.max_retries)
            try:
                names.extend(n for n in response.json().get("repositories") or [] if isinstance(n, str))
            except (ValueError, AttributeError):
                raise RegistryError("listing %s failed: the registry answered something that is not a repository "
                                    "list" % catalog.name, code="NAME_INVALID")
            link = next_link(response.headers.get("Link"))
        finally:
            response.close()
        if not link:
            return names
        path = "/v2/" + urljoin("http://registry/v2/_catalog", link).split("/v2/", 1)[-1]
    raise RegistryError("listing %s failed: more than %d pages" % (catalog.name, MAX_PAGES), code="NAME_INVALID")


def tombstone_manifest():
    """The bytes of a unique throw-away OCI manifest (empty config, no layers)."""
    document = {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": sha256_digest(EMPTY_CONFIG), "size": len(EMPTY_CONFIG)},
        "layers": [],
        "annotations": {TOMBSTONE_ANNOTATION: str(uuid.uuid4())},
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def delete_tag(client, ref, current):
    """Remove the tag ``ref`` (whose manifest ``current`` was just read) and nothing else.

    Tag deletion first; where the registry refuses it, the throw-away manifest fallback. If the
    fallback cannot finish, the tag is put back to ``current`` before the error is raised, so the
    registry holds the old state or the new one.
    """
    response = client.request("DELETE", ref, "manifests/" + ref.tag, "manifest", actions=("pull", "push", "delete"))
    response.close()
    if response.status_code in (200, 202):
        return "tag"
    if response.status_code == 404:
        return None
    if response.status_code not in (400, 405) and error_code(response) not in ("UNSUPPORTED", "DIGEST_INVALID"):
        raise client.write_error(response, "deleting tag %s" % ref.canonical, ref)
    client.push_blob(ref, EMPTY_CONFIG)
    body = tombstone_manifest()
    client.put_manifest(ref, body, MEDIA_OCI_MANIFEST, what="pointing the tag at a throw-away manifest")
    try:
        client.delete_manifest(ref, sha256_digest(body))
    except RegistryError:
        client.put_manifest(ref, current.body, current.media_type, what="restoring tag")
        raise
    return "tombstone"
