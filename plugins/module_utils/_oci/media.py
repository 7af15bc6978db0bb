# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Media types and content digests: the leaf of the pure layer (no I/O, no imports of the collection).

Media types follow the OCI image-spec (``media-types.md``) and Docker's image manifest v2 schema 2;
digests follow the OCI image-spec ``descriptor.md`` (``<algorithm>:<hex>``, sha256 and sha512).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# Docker image manifest schema 1 (deprecated; signed with JWS): recognised to be reported, never written.
MEDIA_DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
MEDIA_DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1_MEDIA_TYPES = (MEDIA_DOCKER_SCHEMA1, MEDIA_DOCKER_SCHEMA1_SIGNED)
MANIFEST_MEDIA_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST)
IMAGE_MEDIA_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
# Image configs (a manifest whose config is anything else is an artifact, OCI image-spec 1.1 manifest.md).
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
IMAGE_CONFIG_MEDIA_TYPES = (MEDIA_OCI_CONFIG, MEDIA_DOCKER_CONFIG)
# The empty descriptor's media type (image-spec manifest.md, "Guidance for an Empty Descriptor").
MEDIA_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)

DIGEST_ALGORITHMS = ("sha256", "sha512")


def sha256_digest(data):
    """``sha256:<64 hex>`` of ``data`` (bytes), the digest registries compute for what they store."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compute_digest(data, digest):
    """The digest of ``data`` in the algorithm ``digest`` names (``sha256:...`` or ``sha512:...``).

    Returns None when the algorithm is not one of DIGEST_ALGORITHMS; callers decide how to refuse it.
    """
    algorithm = digest.split(":", 1)[0]
    if algorithm not in DIGEST_ALGORITHMS:
        return None
    return algorithm + ":" + hashlib.new(algorithm, data).hexdigest()


def media_type_of(content_type):
    """The media type of a ``Content-Type`` header value (parameters dropped); None when empty."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip() or None
