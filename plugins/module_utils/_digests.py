# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Digests of many references, one manifest HEAD each (the image_digest lookup).

``RegistryClient.head_manifest`` falls back to a GET only when the registry answers a HEAD
without a digest or length, or with a 404 (confirmed by one GET), so a digest costs no pull on
registries that count GETs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.archfleet.multiarch.plugins.module_utils._concurrency import parallel_map
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError


def head_digests(client, refs, concurrency=8):
    """Per reference, in input order: a ManifestResponse (digest, media type, size; no body), or a str
    saying why there is none (the tag or repository does not exist, or the registry refused it:
    ``DENIED``, "does not exist or no pull access").

    Bearer tokens are fetched per registry for all its repositories up front, and ``concurrency`` HEADs
    run at once. Any other RegistryError of any reference propagates.
    """
    by_registry = {}
    for ref in refs:
        by_registry.setdefault(ref.registry, set()).add(ref.repository)
    for registry, repositories in by_registry.items():
        client.authorize(registry, [(repository, ("pull",)) for repository in sorted(repositories)])
    return parallel_map(lambda ref: _head(client, ref), refs, concurrency)


def _head(client, ref):
    try:
        found = client.head_manifest(ref, what="reading the digest")
    except RegistryError as exc:
        if exc.code != "DENIED":
            raise
        return str(exc)
    if found is None:
        return "%s does not exist (no such tag or repository in registry %s)" % (ref.canonical, ref.registry)
    return found
