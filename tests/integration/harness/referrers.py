"""OCI 1.1 referrers in the harness: a Referrers API in front of a registry that has none, and fixtures.

Debian's docker-registry (distribution 2.8) has no Referrers API: ``GET /v2/<name>/referrers/<digest>``
answers 404, which is what clients must treat as "unsupported" and fall back to the referrers tag
schema. ``ReferrersApi(registry)`` is a proxy fault hook that gives the proxy the API, per the
distribution-spec 1.1 ("Listing Referrers"), answering from what the registry holds (its storage
directory: every manifest revision of the repository whose ``subject`` is the digest):

* 200 with an OCI index of descriptors (``artifactType``, ``annotations`` included), an empty index
  when there are none (also for an unknown subject), never 404;
* ``?artifactType=`` filters, and the answer then carries ``OCI-Filters-Applied: artifactType``;
* ``page_size`` splits the answer into pages linked with ``Link: <...>; rel="next"``;
* a manifest PUT whose manifest has a ``subject`` is answered with ``OCI-Subject: <digest>``, as a
  registry that indexes referrers does (so clients know not to maintain the tag schema).

The fixtures (``build_supply_chain``) are built from the specs: OCI 1.1 artifacts (empty config,
``artifactType``, ``subject``), a tag-schema index, cosign's legacy ``.sig``/``.att`` tags, a buildx
index whose attestation manifests carry provenance and SBOM predicates, and artifact indexes.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .images import IN_TOTO, OCI_INDEX, OCI_MANIFEST, PushClient, encode_json, push_image, sha256_digest
from .proxy import Fault, ProxyRequest

EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SBOM_TYPE = "application/spdx+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
SLSA = "https://slsa.dev/provenance/v0.2"
SPDX_PREDICATE = "https://spdx.dev/Document"
BUNDLE_TYPE = "application/vnd.archfleet.bundle.v1"


class ReferrersApi:
    """A proxy fault hook adding the Referrers API to ``registry`` (see the module docstring)."""

    def __init__(self, registry, *, page_size: int | None = None):
        self.storage = Path(registry.dir) / "storage" / "docker" / "registry" / "v2"
        self.page_size = page_size
        self.lock = threading.Lock()
        self.answered = 0

    def __call__(self, request: ProxyRequest) -> Fault | None:
        parts = urlsplit(request.path)
        if request.method == "GET" and "/referrers/" in parts.path:
            return self._answer(parts)
        if request.method == "PUT" and request.kind == "manifest":
            return Fault.add_headers(self._subject_header(parts.path.split("/v2/", 1)[1].split("/manifests/")[0]))
        return None

    # -- reading what the registry holds ---------------------------------------------------
    def _blob(self, digest: str) -> bytes | None:
        algorithm, _sep, hexpart = digest.partition(":")
        path = self.storage / "blobs" / algorithm / hexpart[:2] / hexpart / "data"
        return path.read_bytes() if path.is_file() else None

    def manifests(self, repo: str) -> list[tuple[str, bytes]]:
        revisions = self.storage / "repositories" / repo / "_manifests" / "revisions" / "sha256"
        found = []
        for link in sorted(revisions.glob("*/link")) if revisions.is_dir() else []:
            digest = link.read_text().strip()
            body = self._blob(digest)
            if body is not None:
                found.append((digest, body))
        return found

    def referrers(self, repo: str, subject: str) -> list[dict]:
        result = []
        for digest, body in self.manifests(repo):
            try:
                document = json.loads(body)
            except ValueError:
                continue
            if not isinstance(document, dict) or (document.get("subject") or {}).get("digest") != subject:
                continue
            descriptor = {"mediaType": document.get("mediaType") or OCI_MANIFEST, "digest": digest,
                          "size": len(body)}
            artifact_type = document.get("artifactType") or (document.get("config") or {}).get("mediaType")
            if artifact_type:
                descriptor["artifactType"] = artifact_type
            if document.get("annotations"):
                descriptor["annotations"] = document["annotations"]
            result.append(descriptor)
        return result

    def _answer(self, parts) -> Fault:
        repo, _sep, subject = parts.path.split("/v2/", 1)[1].partition("/referrers/")
        query = parse_qs(parts.query)
        descriptors = self.referrers(repo, unquote(subject))
        headers = {"Content-Type": OCI_INDEX}
        if "artifactType" in query:
            wanted = set(query["artifactType"])
            descriptors = [d for d in descriptors if d.get("artifactType") in wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        page = int(query.get("page", ["0"])[0])
        if self.page_size:
            start = page * self.page_size
            if start + self.page_size < len(descriptors):
                params = "&".join(["page=%d" % (page + 1)] + ["artifactType=%s" % t for t in query.get("artifactType", [])])
                headers["Link"] = f'<{parts.path}?{params}>; rel="next"'
            descriptors = descriptors[start:start + self.page_size]
        with self.lock:
            self.answered += 1
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}).encode()
        return Fault.respond(200, headers, body)

    def _subject_header(self, repo: str):
        def compute(status: int, headers: dict[str, str]) -> dict[str, str]:
            digest = {k.lower(): v for k, v in headers.items()}.get("docker-content-digest")
            if status != 201 or not digest:
                return {}
            body = self._blob(digest)
            try:
                subject = (json.loads(body or b"{}").get("subject") or {}).get("digest")
            except (ValueError, AttributeError):
                subject = None
            return {"OCI-Subject": subject} if subject else {}
        return compute


# -- fixtures -------------------------------------------------------------------------------
def _descriptor(image: dict) -> dict:
    return {"mediaType": image["media_type"], "digest": image["digest"], "size": image["size"]}


def push_artifact(client: PushClient, repo: str, artifact_type: str, subject: dict | None, payload: bytes,
                  layer_type: str, annotations: dict | None = None) -> dict:
    """An OCI 1.1 artifact (empty config, ``artifactType``, ``subject``) pushed by digest; its descriptor."""
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                "config": {"mediaType": EMPTY_TYPE, "digest": client.push_blob(repo, EMPTY), "size": 2},
                "layers": [{"mediaType": layer_type, "digest": client.push_blob(repo, payload),
                            "size": len(payload)}]}
    if subject is not None:
        document["subject"] = subject
    document["annotations"] = dict(annotations or {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"})
    body = encode_json(document)
    digest = client.push_manifest(repo, sha256_digest(body), body, OCI_MANIFEST)
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body), "artifactType": artifact_type,
            "annotations": document["annotations"]}


def push_tag_schema(client: PushClient, repo: str, subject_digest: str, descriptors: list[dict]) -> dict:
    """The referrers tag-schema index (tag ``<alg>-<hex>``) listing ``descriptors``."""
    body = encode_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors})
    tag = subject_digest.replace(":", "-")
    return {"tag": tag, "digest": client.push_manifest(repo, tag, body, OCI_INDEX)}


def push_cosign_tag(client: PushClient, repo: str, subject_digest: str, suffix: str) -> dict:
    """What cosign (tag mode) writes at ``<alg>-<hex>.<suffix>``: an image-shaped manifest, no subject."""
    if suffix == "sig":
        payload = encode_json({"critical": {"image": {"docker-manifest-digest": subject_digest},
                                            "type": "cosign container image signature"}, "optional": None})
        layer = {"mediaType": SIMPLESIGNING, "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="}}
    else:
        payload = encode_json({"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []})
        layer = {"mediaType": DSSE, "annotations": {"predicateType": SLSA}}
    config = encode_json({"architecture": "", "os": "", "config": {},
                          "rootfs": {"type": "layers", "diff_ids": [sha256_digest(payload)]}})
    layer.update(digest=client.push_blob(repo, payload), size=len(payload))
    body = encode_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": client.push_blob(repo, config), "size": len(config)},
                        "layers": [layer]})
    tag = "%s.%s" % (subject_digest.replace(":", "-"), suffix)
    return {"tag": tag, "digest": client.push_manifest(repo, tag, body, OCI_MANIFEST), "size": len(body)}


def push_buildx_attestation(client: PushClient, repo: str, subject: dict) -> dict:
    """A buildx attestation manifest with a provenance and an SBOM layer; its reference entry."""
    layers = []
    for predicate in (SLSA, SPDX_PREDICATE):
        statement = encode_json({"_type": "https://in-toto.io/Statement/v0.1", "predicateType": predicate,
                                 "subject": [{"name": f"pkg:docker/{repo}",
                                              "digest": {"sha256": subject["digest"].split(":", 1)[1]}}],
                                 "predicate": {}})
        layers.append({"mediaType": IN_TOTO, "digest": client.push_blob(repo, statement), "size": len(statement),
                       "annotations": {"in-toto.io/predicate-type": predicate}})
    config = encode_json({"architecture": "unknown", "os": "unknown", "config": {},
                          "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]}})
    body = encode_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": client.push_blob(repo, config), "size": len(config)},
                        "layers": layers})
    digest = client.push_manifest(repo, sha256_digest(body), body, OCI_MANIFEST)
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
            "annotations": {"vnd.docker.reference.digest": subject["digest"],
                            "vnd.docker.reference.type": "attestation-manifest"},
            "platform": {"architecture": "unknown", "os": "unknown"}}


def _index(client: PushClient, repo: str, tag: str, manifests: list[dict], **extra) -> dict:
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, **extra, "manifests": manifests}
    body = encode_json(document)
    return {"digest": client.push_manifest(repo, tag, body, OCI_INDEX), "size": len(body), "body": body,
            "mediaType": OCI_INDEX}


def build_supply_chain(registry, repo: str = "supply/app", *, tag_schema: bool = True) -> dict:
    """Push the supply-chain fixtures to ``repo``; returns what the tests expect.

    ``signed``: an image with a signature and an SBOM artifact (and, with ``tag_schema``, the
    tag-schema index listing both, as a client writes it on a registry without the API);
    ``cosign``: an image with cosign ``.sig`` and ``.att`` tags; ``buildx``: an index of two platforms
    with provenance+SBOM attestations; ``release``: an index whose index and amd64 entry are signed
    (for mirrors); ``bundle``: an artifact index; ``mixed``: an index with a platform and an artifact entry.
    """
    url, auth = registry.url, (registry.auth_tuple if registry.auth else None)
    out: dict = {"repo": repo}
    image = push_image(url, repo, "signed", platform="linux/amd64", auth=auth, payload=b"supply signed\n")
    cosign_image = push_image(url, repo, "cosign", platform="linux/arm64", auth=auth, payload=b"supply cosign\n")
    amd64 = push_image(url, repo, platform="linux/amd64", auth=auth, payload=b"supply release amd64\n")
    arm64 = push_image(url, repo, platform="linux/arm64", auth=auth, payload=b"supply release arm64\n")
    with PushClient(url, auth=auth, verify=registry.verify) as client:
        signature = push_artifact(client, repo, SIGNATURE_TYPE, _descriptor(image), b"signature of signed\n",
                                  SIMPLESIGNING)
        sbom = push_artifact(client, repo, SBOM_TYPE, _descriptor(image), b'{"spdxVersion": "SPDX-2.3"}\n', SBOM_TYPE)
        out["signed"] = {"digest": image["digest"], "signature": signature, "sbom": sbom}
        if tag_schema:
            out["signed"]["tag_schema"] = push_tag_schema(client, repo, image["digest"], [signature, sbom])
        out["cosign"] = {"digest": cosign_image["digest"],
                         "sig": push_cosign_tag(client, repo, cosign_image["digest"], "sig"),
                         "att": push_cosign_tag(client, repo, cosign_image["digest"], "att")}

        attestations = [push_buildx_attestation(client, repo, child) for child in (amd64, arm64)]
        entries = [dict(_descriptor(c), platform=c["platform"]) for c in (amd64, arm64)]
        buildx = _index(client, repo, "buildx", entries + attestations)
        out["buildx"] = dict(buildx, attestations=[a["digest"] for a in attestations])

        release = _index(client, repo, "release", entries)
        index_signature = push_artifact(client, repo, SIGNATURE_TYPE, {"mediaType": OCI_INDEX,
                                        "digest": release["digest"], "size": release["size"]},
                                        b"signature of release\n", SIMPLESIGNING)
        amd64_sbom = push_artifact(client, repo, SBOM_TYPE, _descriptor(amd64), b'{"spdxVersion": "amd64"}\n',
                                   SBOM_TYPE)
        if tag_schema:
            push_tag_schema(client, repo, release["digest"], [index_signature])
            push_tag_schema(client, repo, amd64["digest"], [amd64_sbom])
        out["release"] = dict(release, amd64=amd64["digest"], arm64=arm64["digest"], signature=index_signature,
                              amd64_sbom=amd64_sbom)

        part = push_artifact(client, repo, SBOM_TYPE, None, b'{"part": 1}\n', SBOM_TYPE)
        out["bundle"] = dict(_index(client, repo, "bundle", [part], artifactType=BUNDLE_TYPE),
                             artifact_type=BUNDLE_TYPE)
        arm64_artifact = dict(part, platform={"architecture": "arm64", "os": "linux"})
        out["mixed"] = _index(client, repo, "mixed", [entries[0], arm64_artifact])
    return out
