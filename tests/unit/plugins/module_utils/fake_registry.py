"""An in-memory registry with RegistryClient's interface, for unit tests of the publish and inspect layers.

It stores exact bytes per ``(registry, repository)``: manifests by digest, tags pointing at digests,
and blobs. It records every call (``calls``) so tests can assert what was read and written.
"""
import json
import threading

from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.manifest import parse_image_config
from ansible_collections.archfleet.multiarch.plugins.module_utils._oci.media import (
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    sha256_digest,
)
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.api import ManifestResponse
from ansible_collections.archfleet.multiarch.plugins.module_utils._registry.errors import RegistryError


class Repository:
    def __init__(self):
        self.manifests = {}  # digest -> (media_type, bytes)
        self.tags = {}       # tag -> digest
        self.blobs = {}      # digest -> bytes


class FakeRegistry:
    def __init__(self, granted=None):
        self.repositories = {}
        self.calls = []
        self.granted = granted  # {(registry, repository): set(actions)} or None (opaque tokens)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ fixtures
    def repo(self, ref):
        return self.repositories.setdefault((ref.registry, ref.repository), Repository())

    def add_blob(self, ref, data):
        digest = sha256_digest(data)
        self.repo(ref).blobs[digest] = data
        return digest

    def add_manifest(self, ref, document, media_type=None, tag=None):
        """Store ``document`` (dict or bytes) in ``ref``'s repository; tag it with ``tag`` or ``ref.tag``."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode("utf-8")
        if media_type is None:
            media_type = json.loads(body.decode("utf-8")).get("mediaType")
        digest = sha256_digest(body)
        repository = self.repo(ref)
        repository.manifests[digest] = (media_type, body)
        tag = tag if tag is not None else ref.tag
        if tag:
            repository.tags[tag] = digest
        return digest, len(body)

    def add_image(self, ref, architecture, os_name="linux", variant=None, tag=None, layers=1):
        """An OCI image manifest with a real config blob and ``layers`` layer blobs; returns (digest, size)."""
        config = {"architecture": architecture, "os": os_name, "created": "2026-01-01T00:00:00Z",
                  "config": {"Labels": {"arch": architecture}}}
        if variant:
            config["variant"] = variant
        config_bytes = json.dumps(config).encode("utf-8")
        config_digest = self.add_blob(ref, config_bytes)
        layer_descriptors = []
        for number in range(layers):
            data = ("%s-%s-layer-%d" % (os_name, architecture, number)).encode("utf-8")
            layer_descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                      "digest": self.add_blob(ref, data), "size": len(data)})
        manifest = {"schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": config_digest, "size": len(config_bytes)},
                    "layers": layer_descriptors}
        return self.add_manifest(ref, manifest, tag=tag)

    def add_index(self, ref, entries, tag=None, annotations=None):
        """An OCI index of ``entries`` (descriptor dicts) at ``ref``; returns (digest, size)."""
        document = {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": entries}
        if annotations:
            document["annotations"] = annotations
        return self.add_manifest(ref, document, tag=tag)

    def writes(self):
        kinds = ("put_manifest", "mount_blob", "copy_blob", "delete_manifest", "delete_tag")
        return [call for call in self.calls if call[0] in kinds]

    def _record(self, *call):
        with self._lock:
            self.calls.append(call)

    # ------------------------------------------------------------------ the RegistryClient interface
    def authorize(self, registry, scopes):
        self._record("authorize", registry, tuple(scopes))

    def granted_actions(self, registry, repository):
        if self.granted is None:
            return None
        return self.granted.get((registry, repository), set())

    def _lookup(self, ref):
        repository = self.repositories.get((ref.registry, ref.repository))
        if repository is None:
            return None, None
        digest = ref.digest or repository.tags.get(ref.tag)
        if digest is None or digest not in repository.manifests:
            return None, None
        return digest, repository.manifests[digest]

    def get_manifest(self, ref, what="reading manifest"):
        self._record("get_manifest", ref.canonical)
        digest, found = self._lookup(ref)
        if found is None:
            return None
        media_type, body = found
        return ManifestResponse(digest, media_type, len(body), body)

    def head_manifest(self, ref, what="checking manifest"):
        self._record("head_manifest", ref.canonical)
        digest, found = self._lookup(ref)
        if found is None:
            return None
        return ManifestResponse(digest, found[0], len(found[1]))

    def get_blob(self, ref, digest, max_size=None, what="reading blob"):
        self._record("get_blob", ref.name, digest)
        data = self.repo(ref).blobs.get(digest)
        if data is None:
            raise RegistryError("%s %s of %s failed: the registry answered 404 BLOB_UNKNOWN"
                                % (what, digest, ref.name), code="BLOB_UNKNOWN", status=404)
        return data

    def get_image_config(self, ref, manifest_document):
        digest = (manifest_document.get("config") or {}).get("digest")
        if not digest:
            raise RegistryError("manifest %s has no config descriptor" % ref.canonical, code="MANIFEST_INVALID")
        blob = self.get_blob(ref, digest, what="reading image config")
        try:
            return parse_image_config(blob)
        except ValueError:
            raise RegistryError("image config %s of %s is not valid JSON" % (digest, ref.name),
                                code="MANIFEST_INVALID") from None

    def put_manifest(self, ref, body, media_type, what="writing manifest"):
        self._record("put_manifest", ref.canonical)
        digest = sha256_digest(body)
        repository = self.repo(ref)
        repository.manifests[digest] = (media_type, body)
        if ref.tag and not ref.digest:
            repository.tags[ref.tag] = digest
        return digest

    def delete_manifest(self, ref, digest):
        self._record("delete_manifest", ref.canonical, digest)
        repository = self.repo(ref)
        if repository.manifests.pop(digest, None) is None:
            return False
        for tag in [t for t, d in repository.tags.items() if d == digest]:
            del repository.tags[tag]
        return True

    def list_tags(self, ref):
        self._record("list_tags", ref.name)
        repository = self.repositories.get((ref.registry, ref.repository))
        return None if repository is None else sorted(repository.tags)

    def repository_exists(self, ref):
        # As distribution 2.8: a repository with untagged manifests only answers NAME_UNKNOWN too.
        self._record("repository_exists", ref.name)
        repository = self.repositories.get((ref.registry, ref.repository))
        return repository is not None and bool(repository.tags)

    def list_repositories(self, registry):
        self._record("list_repositories", registry)
        names = sorted(repo for reg, repo in self.repositories if reg == registry)
        return names or None

    def delete_tag(self, ref, current):
        self._record("delete_tag", ref.canonical)
        return "tag" if self.repo(ref).tags.pop(ref.tag, None) else None

    def blob_exists(self, ref, digest):
        self._record("blob_exists", ref.name, digest)
        return digest in self.repo(ref).blobs

    def mount_blob(self, target, digest, source_repository):
        self._record("mount_blob", target.name, digest, source_repository)
        source = self.repositories.get((target.registry, source_repository))
        if source is None or digest not in source.blobs:
            return False
        self.repo(target).blobs[digest] = source.blobs[digest]
        return True

    def copy_blob(self, source, target, digest):
        self._record("copy_blob", source.name, target.name, digest)
        self.repo(target).blobs[digest] = self.repo(source).blobs[digest]

    def stats(self):
        return {"requests": {}, "total_requests": len(self.calls), "retries": 0, "rate_limits": {}}

    def secrets(self):
        return []

    def close(self):
        pass
