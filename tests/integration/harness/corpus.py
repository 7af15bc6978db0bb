"""A conformance corpus: index shapes other tools produce, pushed as exact bytes (OCI image-spec).

Each shape is built from the specs (image-index.md, descriptor.md, Docker's manifest list v2.2)
and from what buildx, the docker CLI, cosign-style tools and Windows builders write:

* ``buildx``: an OCI index with buildx attestation manifests (``vnd.docker.reference.type:
  attestation-manifest``, platform ``unknown/unknown``) after the platform entries;
* ``reference-types``: reference entries of other types (``signature``, ``sbom``), also
  ``unknown/unknown``;
* ``windows``: a Docker manifest list with linux/amd64 and windows/amd64 for two OS versions
  (``os.version`` 10.0.17763.x and 10.0.20348.x), as the docker CLI builds it;
* ``nested``: an index with an image entry and a nested index entry (no platform);
* ``duplicates``: an index listing the same entry (digest and platform) twice;
* ``optional-fields``: entries carrying the optional descriptor fields (``annotations``, ``data``,
  ``platform.os.features``) in an unusual key order;
* ``empty``: an index with no entries.

Schema 1 manifests and registries that HEAD without a length cannot be stored in Debian's
registry; the tests serve them through the fault proxy (``schema1_answer``, ``head_without_length``).
"""
from __future__ import annotations

import base64
import json

from .images import (
    DOCKER_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    PushClient,
    encode_json,
    push_image,
    push_index,
    sha256_digest,
)
from .proxy import Fault

WINDOWS_2019 = {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5458"}
WINDOWS_2022 = {"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.2340"}
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def _reference_manifest(client: PushClient, repo: str, kind: str) -> dict:
    """A small OCI manifest standing for a signature or SBOM; returns its descriptor (no platform yet)."""
    payload = encode_json({"kind": kind, "archfleet": "conformance"})
    config = encode_json({})
    manifest = encode_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": client.push_blob(repo, config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.archfleet.%s" % kind, "digest": client.push_blob(repo, payload),
                    "size": len(payload)}]})
    digest = client.push_manifest(repo, sha256_digest(manifest), manifest, OCI_MANIFEST)
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)}


def _push_raw_index(client: PushClient, repo: str, tag: str, entries: list, media: str = "oci",
                    annotations: dict | None = None) -> dict:
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX if media == "oci" else DOCKER_LIST, "manifests": entries}
    if annotations:
        document["annotations"] = annotations
    body = encode_json(document, media)
    digest = client.push_manifest(repo, tag, body, document["mediaType"])
    return {"digest": digest, "size": len(body), "body": body, "manifests": entries}


def _entry(image: dict) -> dict:
    return {"mediaType": image["media_type"], "digest": image["digest"], "size": image["size"],
            "platform": dict(image["platform"])}


def build_corpus(registry, repo: str = "conformance/app") -> dict:
    """Push every shape to ``registry`` under ``repo:<shape>``; returns ``{shape: facts the tests expect}``."""
    url = registry.url
    auth = registry.auth_tuple if registry.auth else None
    amd64 = push_image(url, repo, platform="linux/amd64", auth=auth)
    arm64 = push_image(url, repo, platform="linux/arm64", auth=auth)
    shapes = {}

    index = push_index(url, repo, "buildx", [amd64, arm64], attestations=True, auth=auth)
    shapes["buildx"] = {"platforms": ["linux/amd64", "linux/arm64"], "references": 2, "media": "oci",
                        "digest": index["digest"]}

    with PushClient(url, auth=auth) as client:
        signature = dict(_reference_manifest(client, repo, "signature"),
                         platform={"architecture": "unknown", "os": "unknown"},
                         annotations={"vnd.docker.reference.digest": amd64["digest"],
                                      "vnd.docker.reference.type": "signature"})
        sbom = dict(_reference_manifest(client, repo, "sbom"),
                    platform={"architecture": "unknown", "os": "unknown"},
                    annotations={"vnd.docker.reference.digest": arm64["digest"], "vnd.docker.reference.type": "sbom"})
        pushed = _push_raw_index(client, repo, "reference-types", [_entry(amd64), _entry(arm64), signature, sbom])
        shapes["reference-types"] = {"platforms": ["linux/amd64", "linux/arm64"], "references": 2, "media": "oci",
                                     "digest": pushed["digest"]}

        nested_child = _push_raw_index(client, repo, "nested-child", [_entry(arm64)])
        pushed = _push_raw_index(client, repo, "nested", [
            _entry(amd64), {"mediaType": OCI_INDEX, "digest": nested_child["digest"], "size": nested_child["size"]}])
        shapes["nested"] = {"platforms": ["linux/amd64"], "references": 0, "media": "oci", "digest": pushed["digest"],
                            "kinds": ["image", "index"]}

        pushed = _push_raw_index(client, repo, "duplicates", [_entry(amd64), _entry(amd64), _entry(arm64)])
        shapes["duplicates"] = {"platforms": ["linux/amd64", "linux/amd64", "linux/arm64"], "references": 0,
                                "media": "oci", "digest": pushed["digest"]}

        manifest_bytes = client.request("GET", f"/v2/{repo}/manifests/{amd64['digest']}",
                                        headers={"Accept": OCI_MANIFEST}, scope=f"repository:{repo}:pull").content
        optional = {"digest": amd64["digest"], "mediaType": amd64["media_type"], "size": amd64["size"],
                    "data": base64.b64encode(manifest_bytes).decode(),
                    "annotations": {"org.opencontainers.image.ref.name": "amd64"},
                    "platform": {"os": "linux", "architecture": "amd64", "os.features": ["sse4"]}}
        pushed = _push_raw_index(client, repo, "optional-fields", [optional, _entry(arm64)],
                                 annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"})
        shapes["optional-fields"] = {"platforms": ["linux(+sse4)/amd64", "linux/arm64"], "references": 0,
                                     "media": "oci", "digest": pushed["digest"]}

        pushed = _push_raw_index(client, repo, "empty", [])
        shapes["empty"] = {"platforms": [], "references": 0, "media": "oci", "digest": pushed["digest"]}

    linux = push_image(url, repo, platform="linux/amd64", media="docker", auth=auth)
    win2019 = push_image(url, repo, "win-2019", platform=WINDOWS_2019, media="docker", auth=auth)
    win2022 = push_image(url, repo, "win-2022", platform=WINDOWS_2022, media="docker", auth=auth)
    pushed = push_index(url, repo, "windows", [linux, win2019], media="docker", auth=auth)
    shapes["windows"] = {"platforms": ["linux/amd64", "windows(10.0.17763.5458)/amd64"], "references": 0,
                         "media": "docker", "digest": pushed["digest"], "win2022": win2022}
    return shapes


def schema1_answer(path_suffix: str, body: bytes | None = None):
    """A proxy fault hook answering GET/HEAD of ``.../manifests/<path_suffix>`` with a signed schema 1 manifest."""
    body = body or json.dumps({"schemaVersion": 1, "name": "conformance/old", "tag": "schema1",
                               "architecture": "amd64", "fsLayers": [], "history": [],
                               "signatures": [{"header": {"alg": "ES256"}, "signature": "x", "protected": "e30"}]},
                              indent=3).encode()
    digest = "sha256:" + "5" * 64  # schema 1 digests cover the JWS payload, not these bytes

    def hook(request):
        if request.kind == "manifest" and request.path.endswith("/manifests/" + path_suffix) \
                and request.method in ("GET", "HEAD"):
            return Fault.respond(200, {"Content-Type": SCHEMA1, "Docker-Content-Digest": digest},
                                 b"" if request.method == "HEAD" else body)
        return None
    return hook


def head_without_length(registry):
    """A proxy fault hook answering every manifest HEAD with the digest and type but a zero length."""
    import requests  # the harness talks to the registry directly to learn the real headers

    def hook(request):
        if request.kind != "manifest" or request.method != "HEAD":
            return None
        answer = requests.head(registry.url + request.path, headers={"Accept": request.headers.get("Accept", "")},
                               timeout=10, auth=registry.auth_tuple if registry.auth else None)
        if answer.status_code != 200:
            return None
        return Fault.respond(200, {"Docker-Content-Digest": answer.headers["Docker-Content-Digest"],
                                   "Content-Type": answer.headers["Content-Type"]}, b"")
    return hook
