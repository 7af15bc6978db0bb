# -*- coding: utf-8 -*-
# Copyright: archfleet.multiarch contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The distribution API every module uses: manifests, blobs and uploads (OCI distribution-spec v1.1).

:class:`RegistryClient` is the one client of a task. It resolves credentials (options, docker's
``config.json``, containers ``auth.json``) and describes each request as a ``transport.Request``, which
:meth:`Transport.request` sends (discovery, authorization for any challenge, retries). Every body it
reads is checked against its digest; manifests are limited to 4 MiB (distribution-spec, "Pushing
Manifests"). Failures are RegistryError with one sentence naming the reference.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    ACCEPT_MANIFESTS,
    MEDIA_DOCKER_SCHEMA1,
    SCHEMA1_MEDIA_TYPES,
    compute_digest,
    media_type_of,
    sha256_digest,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.jsondoc import loads_strict
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import descriptor_problem, is_schema1
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.reference import registry_key
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.credentials import (
    CredentialError,
    Credentials,
    DockerConfig,
    containers_auth_paths,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import (
    BrokenBodyError,
    RegistryError,
    describe_path,
    error_code,
    is_pull_denied,
    pull_denied_error,
    response_error,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry import tags
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.blobs import BlobsMixin, verify_digest
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.transport import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    Request,
    Transport,
)

__all__ = ("HAS_REQUESTS", "REQUESTS_IMPORT_ERROR", "ManifestResponse", "RegistryClient", "RegistryError",
           "verify_digest")

MAX_MANIFEST_SIZE = 4 * 1024 * 1024


class ManifestResponse:
    """A manifest read from a registry: ``digest``, ``media_type``, ``size`` (bytes) and ``body`` (None after HEAD)."""

    __slots__ = ("digest", "media_type", "size", "body")

    def __init__(self, digest, media_type, size, body=None):
        self.digest = digest
        self.media_type = media_type
        self.size = size
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))


class RegistryClient(BlobsMixin):
    """Talk to one or more registries for one task (thread-safe)."""

    def __init__(self, username=None, password=None, docker_config=None, validate_certs=True, ca_path=None,
                 insecure_registries=None, timeout=30, retries=3, pool_size=10, sleep=time.sleep,
                 docker_config_required=False, client_cert=None, client_key=None, certs_dir=None,
                 registry_credentials=None, containers_auth=None, max_in_flight=None):
        self.username = username
        self.password = password
        # [{registry, username, password}]: per-registry credentials, before every other source.
        self.registry_credentials = list(registry_credentials or [])
        self._containers_auth_paths = containers_auth
        self._containers_auth = None
        self._docker_config_path = docker_config
        self._docker_config_required = docker_config_required
        self._docker_config = None
        self.transport = Transport(self._credentials, validate_certs=validate_certs, ca_path=ca_path,
                                   insecure_registries=insecure_registries, timeout=timeout, retries=retries,
                                   pool_size=pool_size, sleep=sleep, client_cert=client_cert,
                                   client_key=client_key, certs_dir=certs_dir, max_in_flight=max_in_flight)
        self.auth = self.transport.auth
        # digest -> size of the blobs the manifests read so far list (verified manifests: a copy's size limit)
        self.blob_sizes = {}

    # ------------------------------------------------------------------ bookkeeping
    def close(self):
        self.transport.close()

    def stats(self):
        """Requests made (by method and kind), retries, and the rate-limit headers seen per registry."""
        return self.transport.stats()

    def secrets(self):
        """Every secret this client holds, so callers can scrub text before showing it."""
        values = [self.password] if self.password else []
        values += [entry.get("password") for entry in self.registry_credentials if entry.get("password")]
        for credentials in list(self.auth._credentials.values()):
            if credentials is not None:
                values.extend(credentials.secrets())
        return values + self.auth.secrets()

    # ------------------------------------------------------------------ credentials and auth
    def docker_config(self):
        if self._docker_config is None:
            self._docker_config = DockerConfig.load(self._docker_config_path, required=self._docker_config_required)
        return self._docker_config

    def containers_auth(self):
        """The Podman/skopeo ``auth.json`` files that exist, as DockerConfig objects (same format)."""
        if self._containers_auth is None:
            paths = self._containers_auth_paths
            if paths is None:
                paths = containers_auth_paths()
            self._containers_auth = [DockerConfig.load(path, required=True) for path in paths if os.path.isfile(path)]
        return self._containers_auth

    def _credentials(self, registry, strict=False):
        """Credentials for ``registry``, or None (anonymous), from the first source that has some.

        Order: ``registry_credentials`` entries for that registry; ``username``/``password`` (not when
        ``strict``: a host reached by a redirect gets only credentials stored for its own name); docker's
        ``config.json``; the containers ``auth.json`` files (containers_auth_paths).
        """
        for entry in self.registry_credentials:
            if registry_key(entry["registry"]) == registry_key(registry):
                return Credentials(entry["username"], entry.get("password") or "",
                                   source="registry_credentials (%s)" % entry["registry"])
        if self.username and not strict:
            return Credentials(self.username, self.password or "", source="the username/password options")
        try:
            found = self.docker_config().credentials_for(registry)
            for config in ([] if found is not None else self.containers_auth()):
                found = config.credentials_for(registry)
                if found is not None:
                    break
            return found
        except CredentialError as exc:
            raise RegistryError(str(exc), code="CREDENTIALS")

    def authorize(self, registry, scopes):
        """Fetch Bearer tokens for many ``(repository, actions)`` scopes of ``registry`` in few token requests.

        Only where the registry has asked for a Bearer token already (its ping); elsewhere each request
        answers its own challenge.
        """
        self.auth.authorize(self.transport.endpoint(registry).api_host, scopes)

    def granted_actions(self, registry, repository):
        """Actions the cached Bearer token grants on ``repository``, when the token says (a JWT); else None."""
        return self.auth.granted_actions(self.transport.endpoint(registry).api_host, repository)

    # ------------------------------------------------------------------ requests against a repository
    def request(self, method, ref, path, kind, actions=("pull",), headers=None, stream=False, data=None,
                allow_redirects=True, read_body=None, retry=True, url=None, limit=None):
        """Send ``method`` to ``/v2/<repository>/<path>`` (or the absolute ``url`` of an upload session).

        The request's scope is ``ref.repository`` with ``actions``; see :meth:`Transport.request` for what
        it returns. A request that never got an answer is a RegistryError naming what was asked for. ``limit``:
        the bytes a successful answer may have when not its kind's (``bodies.LIMITS``).
        """
        endpoint = self.transport.endpoint(ref.registry)
        if url is None:
            url = "%s/v2/%s/%s" % (endpoint.base_url, ref.repository, path.lstrip("/"))
        req = Request(method, url, ref.registry, kind, scope=(ref.repository, tuple(actions)), headers=headers,
                      data=data, stream=stream, read_body=read_body, retry=retry, allow_redirects=allow_redirects,
                      limit=limit)
        try:
            return self.transport.request(req)
        except BrokenBodyError:
            raise
        except RegistryError as exc:
            if exc.status is not None or exc.code not in ("UNREACHABLE", "TLS"):
                raise
            # A transport failure: name what was asked for rather than the URL.
            raise RegistryError("%s %s: %s" % (method, describe_path(ref, path), exc.detail),
                                code=exc.code, status=exc.status)

    def _error(self, response, what, registry=None):
        return response_error(response, what, registry=registry, auth=getattr(response, "registry_auth", None),
                              retries=self.transport.max_retries)

    def read_error(self, response, what, ref):
        """The error of a read: ``DENIED`` "does not exist or no pull access" when the repository was refused."""
        if is_pull_denied(response):
            return pull_denied_error(response, what, ref.name, ref.registry)
        return self._error(response, what, ref.registry)

    def _get_body(self, ref, path, kind, label, limit, too_large, headers=None, missing_ok=False):
        """``(response, body)`` of a GET, or None on 404 when ``missing_ok``; at most ``limit`` bytes."""
        try:
            response, body = self.request("GET", ref, path, kind, headers=headers, stream=True,
                                          read_body=lambda r: read_limited(r, limit, too_large))
        except BrokenBodyError as exc:
            raise RegistryError("%s failed: %s" % (label, exc.detail), code=exc.code)
        try:
            if response.status_code == 404 and missing_ok:
                return None
            if response.status_code != 200:
                raise self.read_error(response, label, ref)
            return response, body
        finally:
            response.close()

    # ------------------------------------------------------------------ manifests
    def get_manifest(self, ref, what="reading manifest"):
        """GET the manifest ``ref`` points at (tag or digest); None when the tag or repository does not exist."""
        label = "%s of %s" % (what, ref.canonical)
        found = self._get_body(ref, "manifests/" + ref.manifest_reference, "manifest", label, MAX_MANIFEST_SIZE,
                               "%s: the manifest is larger than the 4 MiB limit" % label,
                               headers={"Accept": ACCEPT_MANIFESTS}, missing_ok=True)
        if found is None:
            return None
        response, body = found
        return self._manifest_from(ref, response, body, what)

    def head_manifest(self, ref, what="checking manifest"):
        """HEAD the manifest: digest, media type and size without a body; None when it does not exist.

        A GET answers instead where a HEAD cannot be believed: a 405, an answer without a digest or a
        length (some proxies), and a 404, which one GET confirms before the tag is called missing (Nexus
        and some Harbor set-ups answer HEAD 404 for manifests their GET returns: andrey-pohilko/registry-cli#43).
        A registry caught doing that is asked with GET from then on.
        """
        endpoint = self.transport.endpoint(ref.registry)
        if endpoint.head_known:
            return self._head_manifest(endpoint, ref, what)
        with endpoint.head_lock:    # the first HEAD of a registry learns its habit alone
            found = self._head_manifest(endpoint, ref, what)
            endpoint.head_known = True
            return found

    def _head_manifest(self, endpoint, ref, what):
        if endpoint.head_misses:
            return self.get_manifest(ref, what)
        response = self.request("HEAD", ref, "manifests/" + ref.manifest_reference, "manifest",
                                headers={"Accept": ACCEPT_MANIFESTS})
        response.close()
        if response.status_code == 404:
            found = self.get_manifest(ref, what)
            if found is not None:
                endpoint.head_misses = True
            return found
        digest = response.headers.get("Docker-Content-Digest")
        size = response.headers.get("Content-Length")
        size = int(size) if size and size.isdigit() else 0
        # No digest, or no (or a zero) length as some proxies send: the GET tells both for sure.
        if response.status_code == 405 or (response.status_code == 200 and (not digest or size <= 0)):
            return self.get_manifest(ref, what)
        if response.status_code != 200:
            raise self.read_error(response, "%s of %s" % (what, ref.canonical), ref)
        if ref.digest and digest != ref.digest:
            raise RegistryError("%s of %s: the registry reports digest %s for it" % (what, ref.canonical, digest),
                                code="DIGEST_MISMATCH")
        return ManifestResponse(digest, media_type_of(response.headers.get("Content-Type")), size)

    def _manifest_from(self, ref, response, body, what):
        """A ManifestResponse for a manifest body, its digest verified before anything else is believed.

        Docker schema 1 is the exception: its digest covers the JWS payload, not these bytes, so it is
        recognised (by media type or ``schemaVersion: 1``), reported and refused as a source, never written.
        """
        label = "%s of %s" % (what, ref.canonical)
        content_type = media_type_of(response.headers.get("Content-Type"))
        document = _json_or_none(body)
        schema1 = content_type in SCHEMA1_MEDIA_TYPES or is_schema1(None, document)
        if schema1:
            digest = ref.digest or response.headers.get("Docker-Content-Digest") or sha256_digest(body)
            return ManifestResponse(digest, content_type if content_type in SCHEMA1_MEDIA_TYPES
                                    else MEDIA_DOCKER_SCHEMA1, len(body), body)
        if ref.digest:
            verify_digest(body, ref.digest, label)
            digest = ref.digest
        else:
            digest = sha256_digest(body)
            announced = response.headers.get("Docker-Content-Digest")
            if announced and announced.startswith("sha256:") and announced != digest:
                raise RegistryError("%s: the registry announced digest %s but the bytes it sent hash to %s; "
                                    "refusing the content" % (label, announced, digest), code="DIGEST_MISMATCH")
        if not isinstance(document, dict):
            try:
                reason = "a JSON %s, not an object" % type(loads_strict(body)).__name__
            except ValueError as exc:
                reason = str(exc)
            raise RegistryError("%s: the manifest is not valid (%s)" % (label, reason), code="MANIFEST_INVALID")
        problem = descriptor_problem(document)
        if problem is not None:
            raise RegistryError("%s: the manifest is not valid: %s" % (label, problem), code="MANIFEST_INVALID")
        for blob in [document.get("config")] + list(document.get("layers") or []):
            if isinstance(blob, dict) and isinstance(blob.get("size"), int) and blob.get("digest"):
                self.blob_sizes[blob["digest"]] = blob["size"]
        media_type = document.get("mediaType") if isinstance(document, dict) else None
        return ManifestResponse(digest, media_type or content_type, len(body), body)

    def put_manifest(self, ref, body, media_type, what="writing manifest"):
        """PUT manifest bytes unchanged at ``ref`` (tag or digest); returns the digest the registry reports."""
        label = "%s %s" % (what, ref.canonical)
        response = self.request("PUT", ref, "manifests/" + ref.manifest_reference, "manifest",
                                actions=("pull", "push"), headers={"Content-Type": media_type}, data=body)
        response.close()
        if response.status_code not in (200, 201, 202):
            raise self._write_error(response, label, ref)
        # A PUT by digest keeps that digest's algorithm (sha512 too); a registry may report another algorithm's.
        expected = (compute_digest(body, ref.digest) if ref.digest else None) or sha256_digest(body)
        reported = response.headers.get("Docker-Content-Digest")
        if reported and reported != expected and compute_digest(body, reported) != reported:
            raise RegistryError("%s: the registry stored digest %s but the bytes sent hash to %s"
                                % (label, reported, expected), code="DIGEST_MISMATCH")
        return expected

    def list_tags(self, ref):
        """Every tag of ``ref``'s repository (``Link`` pagination); None when the repository does not exist."""
        return tags.list_tags(self, ref)

    def repository_exists(self, ref):
        """Whether ``ref``'s repository exists (one tag-list request; see ``tags.repository_exists``)."""
        return tags.repository_exists(self, ref)

    def list_repositories(self, registry):
        """Every repository in ``registry``'s catalog (``Link`` pagination); None when it offers none."""
        return tags.list_repositories(self, registry)

    def delete_tag(self, ref, current):
        """Remove the tag ``ref`` only (``current``: its ManifestResponse); ``"tag"``, ``"tombstone"`` or None."""
        return tags.delete_tag(self, ref, current)

    def delete_manifest(self, ref, digest):
        """DELETE a manifest by digest. Returns False when it was already gone."""
        target = ref.with_digest(digest)
        response = self.request("DELETE", target, "manifests/" + digest, "manifest",
                                actions=("pull", "push", "delete"))
        response.close()
        if response.status_code in (200, 202):
            return True
        if response.status_code == 404:
            return False
        if response.status_code == 405 or error_code(response) == "UNSUPPORTED":
            raise RegistryError("deleting %s failed: registry %s does not allow deletes (answered %d UNSUPPORTED; "
                                "for the distribution registry set storage.delete.enabled)"
                                % (ref.canonical, ref.registry, response.status_code), code="UNSUPPORTED",
                                status=response.status_code)
        raise self._write_error(response, "deleting %s" % ref.canonical, ref)

    def _write_error(self, response, what, ref):
        """A failed write; permission problems say plainly that push is not allowed and why."""
        error = self._error(response, what, ref.registry)
        if response.status_code in (401, 403) or error.code in ("DENIED", "UNAUTHORIZED"):
            granted = self.granted_actions(ref.registry, ref.repository)
            if granted is not None and "push" not in granted:
                why = "the token service granted only %s, not push" % (",".join(sorted(granted)) or "no access")
            elif not getattr(getattr(response, "registry_auth", None), "token_granted", False):
                why = "the registry refused the write for these credentials"
            else:
                why = "the token service did not grant push"
            return RegistryError("no push permission on %s: %s (%s)" % (ref.name, why, error),
                                 code=error.code, status=response.status_code)
        return error

    def write_error(self, response, what, ref):
        """A RegistryError for a failed write (see _write_error), for the helpers in tags.py and referrers.py."""
        return self._write_error(response, what, ref)


def _json_or_none(body):
    """The strict JSON value of a manifest's bytes (``_oci.jsondoc``), or None when they are not strict JSON."""
    try:
        return loads_strict(body, "the manifest")
    except ValueError:
        return None


def read_limited(response, limit, message):
    """A streamed body as bytes; RegistryError(SIZE_INVALID, ``message``) past ``limit`` bytes."""
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        raise RegistryError(message, code="SIZE_INVALID")
    chunks = []
    total = 0
    for chunk in response.iter_content(65536):
        total += len(chunk)
        if total > limit:
            raise RegistryError(message, code="SIZE_INVALID")
        chunks.append(chunk)
    return b"".join(chunks)
