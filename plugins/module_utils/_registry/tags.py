# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tags and the catalog: listing them (``Link`` pagination) and deleting one tag without deleting its manifest.

Distribution-spec v1.1, "Listing Tags" and "Deleting tags": ``GET /v2/<name>/tags/list?n=<n>``
answers a page and, when more follow, a ``Link: <...?last=...&n=...>; rel="next"`` header (RFC 8288).
``DELETE /v2/<name>/manifests/<tag>`` removes one tag where the registry supports it; registries that
do not (the distribution registry 2.x answers 400 DIGEST_INVALID) get the fallback: the tag is pointed
at a unique throw-away manifest, which is then deleted by digest, so every other tag keeps resolving.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import uuid

from urllib.parse import urljoin, urlsplit, urlunsplit

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.jsondoc import loads_strict
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import is_valid_repository, is_valid_tag
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import MEDIA_OCI_MANIFEST, sha256_digest
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.credentials import CATALOG
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import (
    RegistryError,
    error_code,
)

PAGE_SIZE = 1000
MAX_PAGES = 10000
# The OCI empty descriptor (image-spec manifest.md, "Guidance for an Empty Descriptor").
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
TOMBSTONE_ANNOTATION = "org.archfleet.multiarch.deleted-tag"


def pages(client, ref, path, kind, what, headers=None, url=None, actions=("pull",), max_pages=MAX_PAGES):
    """Each answer of a paginated listing, following ``Link: <...>; rel="next"`` (RFC 8288) page by page.

    The pages are requested through ``client.request`` (one request path); the next link is read with
    ``requests``' ``Response.links`` and resolved against the page's own URL (distribution-spec, "Listing
    Tags": the link may be relative). A non-200 answer is yielded and ends the walk; the caller reads
    each answer before asking for the next. RegistryError past ``max_pages`` (``what`` names the listing).
    """
    seen = set()
    for _page in range(max_pages):
        if url is not None:
            if url in seen:
                raise RegistryError("%s failed: the registry's Link header leads back to a page already read (%s)"
                                    % (what, url.split("?", 1)[-1][:200]), code="PAGINATION_INVALID")
            seen.add(url)
        response = client.request("GET", ref, path, kind, headers=headers, url=url, actions=actions)
        try:
            yield response
            link = response.links.get("next", {}).get("url") if response.status_code == 200 else None
        finally:
            response.close()
        if not link:
            return
        url = next_page_url(response.url, link)
    raise RegistryError("%s failed: more than %d pages" % (what, max_pages), code="PAGINATION_INVALID")


def next_page_url(page_url, link):
    """The URL of the next page: ``link`` resolved against the page's URL (it may be relative).

    A link whose path is not the page's own (Artifactory drops the repository's first path component,
    JFrog RTFACT-18971; renovatebot/renovate#20745 keeps its own path too) keeps the page's path and
    takes the link's query (``last``, ``n``) only: the listing never wanders into another repository.
    """
    target = urlsplit(urljoin(page_url, link))
    page = urlsplit(page_url)
    if (target.scheme, target.netloc, target.path) != (page.scheme, page.netloc, page.path):
        return urlunsplit((page.scheme, page.netloc, page.path, target.query, ""))
    return target.geturl()


def _json_list(response, key, what, code, valid):
    """The names under ``key`` of a listing page that ``valid`` accepts (a page holds at most ``bodies.LIMITS``).

    A name that is not a valid tag or repository (distribution/reference grammar) is left out: it never
    becomes a reference, a path or a shell word.
    """
    try:
        values = loads_strict(response.content, "the page").get(key) or []
        if not isinstance(values, list):
            raise ValueError(key)
    except (ValueError, AttributeError):
        raise RegistryError("%s failed: the registry answered something that is not a %s list" % (what, key[:-1]),
                            code=code)
    return [value for value in values if isinstance(value, str) and valid(value)]


def list_tags(client, ref, page_size=PAGE_SIZE):
    """Every tag of ``ref``'s repository, in the registry's order; None when the repository does not exist."""
    what = "listing the tags of %s" % ref.name
    tags = []
    for response in pages(client, ref, "tags/list?n=%d" % page_size, "tags", what):
        if response.status_code == 404:
            return None if not tags else tags
        if response.status_code != 200:
            raise client.read_error(response, what, ref)
        tags.extend(_json_list(response, "tags", what, "TAG_INVALID", is_valid_tag))
    return tags


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
    registries that do not offer it (404, 405, 401/403 for the ``registry:catalog:*`` scope) get None.
    """
    catalog = _Catalog(registry)
    what = "listing %s" % catalog.name
    names = []
    first = "%s/v2/_catalog?n=%d" % (client.transport.endpoint(registry).base_url, page_size)
    for response in pages(client, catalog, "_catalog", "catalog", what, url=first, actions=("*",)):
        if response.status_code in (401, 403, 404, 405):
            return names or None
        if response.status_code != 200:
            raise client.read_error(response, what, catalog)
        names.extend(_json_list(response, "repositories", what, "NAME_INVALID", is_valid_repository))
    return names


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

    Tag deletion first; where the registry refuses it, the throw-away manifest fallback, but only after a
    DELETE of the throw-away manifest's digest (not yet written) shows that the registry deletes manifests
    at all (404): a registry that does not (405, UNSUPPORTED, ...) gets nothing written, and the error
    names its answer. If the fallback cannot finish, the tag is put back to ``current`` before the error
    is raised, so the registry holds the old state or the new one.
    """
    response = client.request("DELETE", ref, "manifests/" + ref.tag, "manifest", actions=("pull", "push", "delete"))
    response.close()
    if response.status_code in (200, 202):
        return "tag"
    if response.status_code == 404:
        return None
    if response.status_code not in (400, 405) and error_code(response) not in ("UNSUPPORTED", "DIGEST_INVALID"):
        raise client.write_error(response, "deleting tag %s" % ref.canonical, ref)
    body = tombstone_manifest()
    _check_manifest_deletes(client, ref, sha256_digest(body), response)
    client.push_blob(ref, EMPTY_CONFIG)
    client.put_manifest(ref, body, MEDIA_OCI_MANIFEST, what="pointing the tag at a throw-away manifest")
    try:
        client.delete_manifest(ref, sha256_digest(body))
    except RegistryError:
        client.put_manifest(ref, current.body, current.media_type, what="restoring tag")
        raise
    return "tombstone"


def _check_manifest_deletes(client, ref, digest, tag_answer):
    """Raise unless the registry deletes manifests by digest: a DELETE of ``digest``, which is not there, must 404."""
    response = client.request("DELETE", ref.with_digest(digest), "manifests/" + digest, "manifest",
                              actions=("pull", "push", "delete"))
    response.close()
    if response.status_code == 404:
        return
    code = error_code(response) or "HTTP_%d" % response.status_code
    if response.status_code in (401, 403):
        raise client.write_error(response, "deleting tag %s" % ref.canonical, ref)
    raise RegistryError("deleting tag %s failed: registry %s deletes neither tags (answered %d %s) nor manifests "
                        "(answered %d %s to a manifest DELETE); nothing was written (for the distribution registry "
                        "set storage.delete.enabled)" % (ref.canonical, ref.registry, tag_answer.status_code,
                                                         error_code(tag_answer) or "HTTP_%d" % tag_answer.status_code,
                                                         response.status_code, code),
                        code="UNSUPPORTED", status=response.status_code)
