# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blobs of the distribution API (distribution-spec v1.1, "Pulling blobs", "Pushing blobs", "Mounting").

A mixin of RegistryClient: small blobs read into memory and verified (image configs), existence
checks, cross-repository mounts, monolithic uploads of small blobs, and streamed copies between
registries (1 MiB chunks, hashed while they pass, never held whole). Every failure names the step.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from urllib.parse import urljoin

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import parse_image_config
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import compute_digest, sha256_digest
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.bodies import size_text
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import BrokenBodyError, RegistryError

MAX_CONFIG_SIZE = 8 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
# A blob copied without a manifest read in this task stating its size (none of the collection's paths): 1 TiB.
UNLISTED_BLOB_LIMIT = 1 << 40


def verify_digest(data, digest, what):
    """Raise RegistryError unless ``data`` hashes to ``digest`` (sha256 / sha512 over the exact bytes)."""
    actual = compute_digest(data, digest)
    if actual is None:
        raise RegistryError("%s: unsupported digest algorithm in %s" % (what, digest), code="DIGEST_INVALID")
    if actual != digest:
        raise RegistryError("%s: the registry sent bytes whose digest is %s, not the %s that was asked for; "
                            "refusing the content" % (what, actual, digest), code="DIGEST_MISMATCH")


class BlobsMixin:
    """Blob operations; needs ``request``, ``_get_body``, ``_error``, ``_write_error`` and ``transport``."""

    def get_blob(self, ref, digest, max_size=MAX_CONFIG_SIZE, what="reading blob"):
        """GET a (small) blob into memory (bytes), verified against its digest."""
        label = "%s %s of %s" % (what, digest, ref.name)
        response, body = self._get_body(ref, "blobs/" + digest, "blob", label, max_size,
                                        "%s: larger than %s, the limit for a blob read whole (an image config)"
                                        % (label, size_text(max_size)))
        verify_digest(body, digest, label)
        return body

    def get_image_config(self, ref, manifest_document):
        """The image config (dict) an image manifest's ``config`` descriptor names (OCI image-spec config.md).

        Raises RegistryError ``MANIFEST_INVALID`` when the manifest has no config descriptor or the
        config is not a JSON object (``_oci.manifest.parse_image_config``).
        """
        digest = (manifest_document.get("config") or {}).get("digest")
        if not digest:
            raise RegistryError("manifest %s has no config descriptor" % ref.canonical, code="MANIFEST_INVALID")
        blob = self.get_blob(ref, digest, what="reading image config")
        try:
            return parse_image_config(blob)
        except ValueError as exc:
            raise RegistryError("image config %s of %s is not valid JSON (%s)" % (digest, ref.name, exc),
                                code="MANIFEST_INVALID") from None

    def blob_exists(self, ref, digest):
        response = self.request("HEAD", ref, "blobs/" + digest, "blob", actions=("pull", "push"))
        response.close()
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._error(response, "checking blob %s in %s" % (digest, ref.name), ref.registry)

    def mount_blob(self, target, digest, source_repository):
        """Cross-repository mount. True when mounted; False when the registry opened an upload instead."""
        response = self.request("POST", target, "blobs/uploads/?mount=%s&from=%s" % (digest, source_repository),
                                "upload", actions=("pull", "push"), allow_redirects=False)
        response.close()
        if response.status_code == 201:
            return True
        if response.status_code == 202:
            self._cancel_upload(target, response)
            return False
        what = "mounting blob %s from %s into %s" % (digest, source_repository, target.name)
        raise self._write_error(response, what, target)

    def push_blob(self, ref, data):
        """Upload a small blob (bytes) into ``ref``'s repository unless it is there; returns its digest."""
        digest = sha256_digest(data)
        if self.blob_exists(ref, digest):
            return digest
        label = "uploading blob %s to %s" % (digest, ref.name)
        start = self.request("POST", ref, "blobs/uploads/", "upload", actions=("pull", "push"), allow_redirects=False)
        start.close()
        if start.status_code != 202:
            raise self._write_error(start, label, ref)
        location = self._location(ref, start)
        separator = "&" if "?" in location else "?"
        done = self._upload_request("PUT", location + separator + "digest=" + digest, ref,
                                    {"Content-Type": "application/octet-stream"}, data=data)
        if done.status_code != 201:
            raise self._write_error(done, label, ref)
        return digest

    def copy_blob(self, source, target, digest):
        """Stream a blob from ``source`` (any registry) into ``target`` in 1 MiB chunks; never held whole.

        Every failure, of the download or of any upload step, names the copy (blob, source, target).
        """
        label = "copying blob %s from %s to %s" % (digest, source.name, target.name)
        try:
            self._copy_blob(source, target, digest, label)
        except BrokenBodyError as exc:
            raise RegistryError("%s failed: %s" % (label, exc.detail), code=exc.code)
        except RegistryError as exc:
            if str(exc).startswith(label) or str(exc).startswith("no push permission"):
                raise
            raise RegistryError("%s failed: %s" % (label, exc.detail), code=exc.code, status=exc.status)

    def _copy_blob(self, source, target, digest, label):
        # The size the (verified) manifest listing the blob states; bytes past it are refused (bodies.GuardedBody).
        limit = getattr(self, "blob_sizes", {}).get(digest, UNLISTED_BLOB_LIMIT)
        download = self.request("GET", source, "blobs/" + digest, "blob", stream=True, limit=limit)
        try:
            if download.status_code != 200:
                raise self._error(download, label, source.registry)
            start = self.request("POST", target, "blobs/uploads/", "upload", actions=("pull", "push"),
                                 allow_redirects=False)
            start.close()
            if start.status_code != 202:
                raise self._write_error(start, label, target)
            hasher = _Hasher(digest)
            patch = self._upload_request("PATCH", self._location(target, start), target,
                                         {"Content-Type": "application/octet-stream"},
                                         hasher.wrap(download.iter_content(COPY_CHUNK)), retry=False)
            if patch.status_code not in (202, 204):
                raise self._write_error(patch, label, target)
            hasher.check(label)
            location = self._location(target, patch)
            separator = "&" if "?" in location else "?"
            done = self._upload_request("PUT", location + separator + "digest=" + digest, target,
                                        {"Content-Length": "0"})
            if done.status_code != 201:
                raise self._write_error(done, label, target)
        finally:
            download.close()

    def _upload_request(self, method, url, target, headers, data=None, retry=True):
        """A request to an upload session URL (absolute, from the registry's ``Location``); closed."""
        response = self.request(method, target, "blobs/uploads/", "upload", actions=("pull", "push"),
                                headers=headers, data=data, retry=retry, url=url)
        response.close()
        return response

    def _location(self, ref, response):
        location = response.headers.get("Location")
        if not location:
            raise RegistryError("the registry opened an upload in %s without a Location header" % ref.name,
                                code="BLOB_UPLOAD_INVALID")
        return urljoin(self.transport.endpoint(ref.registry).base_url + "/", location)

    def _cancel_upload(self, ref, response):
        if not response.headers.get("Location"):
            return
        try:
            self._upload_request("DELETE", self._location(ref, response), ref, {}, retry=False)
        except RegistryError:
            pass  # an abandoned upload session expires on the registry by itself


class _Hasher:
    """Hash a stream while it passes through, to check a copied blob against its digest."""

    def __init__(self, digest):
        self.digest = digest
        self.algorithm = digest.split(":", 1)[0]
        self._hash = hashlib.new(self.algorithm)

    def wrap(self, chunks):
        for chunk in chunks:
            self._hash.update(chunk)
            yield chunk

    def check(self, what):
        actual = self.algorithm + ":" + self._hash.hexdigest()
        if actual != self.digest:
            raise RegistryError("%s: the source sent bytes whose digest is %s; refusing them" % (what, actual),
                                code="DIGEST_MISMATCH")
