"""Build and push small, valid fixture images over the raw registry API.

This is deliberately independent of the collection's own registry client (plugins/):
a fixture written by the code under test would prove nothing. It speaks just enough of
the distribution API to push: blob upload (POST + monolithic PUT, relative or absolute
``Location``), manifest PUT, and the 401 -> Basic or Bearer-token -> retry dance.

Images are deterministic: the same arguments give the same bytes and digests on every
run (fixed tar metadata, gzip mtime 0, fixed ``created``), which makes re-seeding
idempotent and lets tests hard-code nothing but still compare exact digests.

``docker_cli_manifest_list`` writes a manifest list with the real docker CLI, a client
nobody here wrote. The CLI's ``manifest`` commands talk only to the registry: no docker
daemon is needed (checked with DOCKER_HOST pointing at a socket that does not exist).
"""
from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Protocol
from urllib.parse import urljoin, urlsplit

import requests

from .proxy import Proxy

# Sent by all harness traffic (readiness probes, fixture pushes) so tests can tell it
# apart from the requests of the code under test in access logs.
HARNESS_USER_AGENT = "archfleet-test-harness"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"
ALL_MANIFEST_TYPES = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])

# Media types per ``media=`` choice: (manifest, config, layer, index).
MEDIA = {
    "oci": (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, OCI_INDEX),
    "docker": (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST),
}
DEFAULT_CREATED = "2024-01-01T00:00:00Z"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v0.2"
DOCKER_CLI = "/usr/bin/docker"   # Debian's 20.10 CLI; /usr/local/bin/docker may be another version


class RegistryEndpoint(Protocol):
    """What the seeding helpers need from a registry (harness.registry.Registry has it all)."""

    host: str
    url: str
    auth_tuple: tuple[str, str] | None
    verify: str | bool
    cert_dir: Path | None


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def encode_json(document: dict, media: str = "oci") -> bytes:
    """The bytes a real tool would write; the digest is over exactly these bytes.

    OCI documents are compact, as buildx and containerd write them. Docker documents are
    indented with three spaces, as dockerd and the docker CLI write them (Go's
    ``json.MarshalIndent(v, "", "   ")``). This matters beyond realism: ``docker manifest
    push`` (20.10) re-indents every child manifest that way before putting it in the target
    repository, so a compact child gets a new digest there and the list push fails with
    MANIFEST_BLOB_UNKNOWN.
    """
    if media == "docker":
        return json.dumps(document, indent=3).encode()
    return json.dumps(document, separators=(",", ":")).encode()


def parse_platform(platform: str | dict) -> dict:
    """``os/arch[/variant]`` (or an already-built dict) to an OCI platform object."""
    if isinstance(platform, dict):
        return dict(platform)
    parts = platform.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise ValueError(f"platform must be os/arch[/variant], not {platform!r}")
    result = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        result["variant"] = parts[2]
    return result


def platform_string(platform: dict) -> str:
    return "/".join(p for p in (platform.get("os"), platform.get("architecture"), platform.get("variant")) if p)


# -- a minimal push client --------------------------------------------------------------
class PushClient:
    """One session against one registry, with Basic and Bearer auth handled on 401.

    Tokens are cached per scope for the client's lifetime (fixture pushes are short).
    """

    def __init__(self, registry_url: str, *, auth: tuple[str, str] | None = None,
                 verify: str | bool = True, cert: tuple[str, str] | None = None):
        self.base = registry_url.rstrip("/")
        self.credentials = auth
        # verify goes on every request, not on the session: requests lets REQUESTS_CA_BUNDLE
        # from the environment override Session.verify, which would drop the test CA.
        self.verify = verify
        self.session = requests.Session()
        self.session.cert = cert   # a client pair, for registries that require one (mutual TLS)
        self.session.headers["User-Agent"] = HARNESS_USER_AGENT
        self._use_basic = False
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> PushClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, url: str, *, scope: str, headers: dict | None = None,
                **kwargs) -> requests.Response:
        """Send, and on a 401 authenticate as the challenge says and send once more."""
        url = urljoin(self.base + "/", url)
        kwargs.setdefault("verify", self.verify)
        response = self.session.request(method, url, headers=self._with_auth(scope, headers), **kwargs)
        if response.status_code != 401:
            return response
        scheme, _space, params = response.headers.get("WWW-Authenticate", "").partition(" ")
        if scheme.lower() == "basic" and self.credentials:
            self._use_basic = True
        elif scheme.lower() == "bearer":
            self._tokens[scope] = self._fetch_token(_parse_challenge(params), scope)
        else:
            return response
        return self.session.request(method, url, headers=self._with_auth(scope, headers), **kwargs)

    def _with_auth(self, scope: str, headers: dict | None) -> dict:
        headers = dict(headers or {})
        if self._use_basic and self.credentials:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif scope in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        return headers

    def _fetch_token(self, challenge: dict, scope: str) -> str:
        params = {"scope": scope}
        if "service" in challenge:
            params["service"] = challenge["service"]
        response = self.session.get(challenge["realm"], params=params, auth=self.credentials,
                                    verify=self.verify, timeout=30)
        response.raise_for_status()
        body = response.json()
        return body.get("token") or body["access_token"]

    # -- pushes ------------------------------------------------------------------------
    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload ``data`` unless the repository already has it; return its digest."""
        digest = sha256_digest(data)
        scope = f"repository:{repo}:pull,push"
        if self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=scope).status_code == 200:
            return digest
        started = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope)
        _expect(started, 202, f"start upload to {repo}")
        location = urljoin(self.base + "/", started.headers["Location"])   # may be relative
        done = self.request("PUT", location, scope=scope, params={"digest": digest}, data=data,
                            headers={"Content-Type": "application/octet-stream"})
        _expect(done, 201, f"upload {digest} to {repo}")
        return digest

    def push_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        digest = sha256_digest(body)
        response = self.request("PUT", f"/v2/{repo}/manifests/{reference}",
                                scope=f"repository:{repo}:pull,push", data=body,
                                headers={"Content-Type": media_type})
        _expect(response, 201, f"put manifest {repo}:{reference}")
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise RuntimeError(f"registry stored {repo}:{reference} as {returned}, expected {digest}")
        return digest

    def get_manifest(self, repo: str, reference: str) -> requests.Response:
        response = self.request("GET", f"/v2/{repo}/manifests/{reference}", scope=f"repository:{repo}:pull",
                                headers={"Accept": ALL_MANIFEST_TYPES})
        _expect(response, 200, f"get manifest {repo}:{reference}")
        return response


def _parse_challenge(params: str) -> dict:
    """``realm="...",service="...",scope="..."`` to a dict (values never contain quotes here)."""
    result = {}
    for part in params.split('",'):
        key, _equals, value = part.strip().partition("=")
        result[key.strip()] = value.strip().strip('"')
    return result


def _expect(response: requests.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text[:500]}")


# -- image content ----------------------------------------------------------------------
def _layer(name: str, content: bytes) -> tuple[bytes, str]:
    """A gzip tar holding one file; returns (compressed bytes, diff_id of the tar)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(content), 0o644, 0
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = buffer.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256_digest(tar_bytes)


def push_image(registry_url: str, repo: str, tag: str | None = None, *, platform: str | dict = "linux/amd64",
               media: str = "oci", auth: tuple[str, str] | None = None, verify: str | bool = True,
               labels: dict[str, str] | None = None, created: str | None = None, layers: int = 1,
               payload: bytes | None = None, cert: tuple[str, str] | None = None) -> dict:
    """Push a small runnable-looking image for ``platform`` to ``repo`` (by digest, and ``tag`` if given).

    Returns ``{digest, size, media_type, config_digest, platform, layer_digests, repo, reference}``;
    ``platform`` is the descriptor platform dict, so the result can be passed as an index child.
    The default payload differs per platform, so every platform has its own digest.
    """
    manifest_type, config_type, layer_type, _index_type = MEDIA[media]
    platform_obj = parse_platform(platform)
    created = created or DEFAULT_CREATED
    if payload is None:
        payload = f"archfleet fixture for {platform_string(platform_obj)}\n".encode()
    with PushClient(registry_url, auth=auth, verify=verify, cert=cert) as client:
        layer_descriptors, diff_ids, history = [], [], []
        for index in range(layers):
            blob, diff_id = _layer(f"layer{index}.txt", payload + f"layer {index}\n".encode())
            layer_descriptors.append({"mediaType": layer_type, "size": len(blob),
                                      "digest": client.push_blob(repo, blob)})
            diff_ids.append(diff_id)
            history.append({"created": created, "created_by": f"archfleet harness layer {index}"})
        config = {
            **{k: platform_obj[k] for k in ("architecture", "os", "variant", "os.version", "os.features")
               if k in platform_obj},
            "created": created,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["/bin/sh"], "Labels": dict(labels or {})},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }
        config_bytes = encode_json(config)   # image configs are compact with every tool
        config_digest = client.push_blob(repo, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "size": len(config_bytes), "digest": config_digest},
            "layers": layer_descriptors,
        }
        body = encode_json(manifest, media)
        digest = client.push_manifest(repo, sha256_digest(body), body, manifest_type)
        if tag:
            client.push_manifest(repo, tag, body, manifest_type)
    return {"digest": digest, "size": len(body), "media_type": manifest_type, "config_digest": config_digest,
            "platform": platform_obj, "layer_digests": [d["digest"] for d in layer_descriptors],
            "repo": repo, "reference": f"{urlsplit(registry_url).netloc}/{repo}@{digest}"}


def _push_attestation(client: PushClient, repo: str, subject: dict) -> dict:
    """Push a buildx-style provenance attestation manifest for ``subject``; return its index entry."""
    statement = encode_json({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": SLSA_PROVENANCE,
        "subject": [{"name": f"pkg:docker/{repo}", "digest": {"sha256": subject["digest"].split(":", 1)[1]}}],
        "predicate": {"builder": {"id": "archfleet-test-harness"}, "buildType": "archfleet-fixture"},
    })
    statement_digest = client.push_blob(repo, statement)
    config = encode_json({"architecture": "unknown", "os": "unknown", "config": {},
                          "rootfs": {"type": "layers", "diff_ids": [statement_digest]}})
    config_digest = client.push_blob(repo, config)
    manifest = encode_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": IN_TOTO, "digest": statement_digest, "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": SLSA_PROVENANCE}}],
    })
    digest = client.push_manifest(repo, sha256_digest(manifest), manifest, OCI_MANIFEST)
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
            "annotations": {"vnd.docker.reference.digest": subject["digest"],
                            "vnd.docker.reference.type": "attestation-manifest"},
            "platform": {"architecture": "unknown", "os": "unknown"}}


def push_index(registry_url: str, repo: str, tag: str, children: Iterable[dict], *, media: str = "oci",
               annotations: dict[str, str] | None = None, attestations: bool | Iterable[str] = False,
               auth: tuple[str, str] | None = None, verify: str | bool = True) -> dict:
    """Push an OCI index or Docker manifest list over ``children`` (results of :func:`push_image`).

    Children must already be in ``repo``. ``attestations``: True attaches a buildx-style
    attestation manifest to every child, an iterable of child digests to those only;
    attestation entries follow the platform entries, as buildx writes them.
    Returns ``{digest, size, media_type, manifests, attestations, repo, reference}`` where
    ``manifests`` are the entries as written and ``attestations`` maps child digest to
    attestation-manifest digest.
    """
    index_type = MEDIA[media][3]
    children = list(children)
    if media == "docker" and (annotations or attestations):
        raise ValueError("a Docker manifest list has no annotations and no attestation entries")
    attest = {c["digest"] for c in children} if attestations is True else set(attestations or ())
    with PushClient(registry_url, auth=auth, verify=verify) as client:
        entries = []
        for child in children:
            entry = {"mediaType": child["media_type"], "digest": child["digest"], "size": child["size"],
                     "platform": parse_platform(child["platform"])}
            if child.get("annotations"):
                entry["annotations"] = dict(child["annotations"])
            entries.append(entry)
        attestation_entries = [_push_attestation(client, repo, c) for c in children if c["digest"] in attest]
        index: dict = {"schemaVersion": 2, "mediaType": index_type, "manifests": entries + attestation_entries}
        if annotations:
            index["annotations"] = dict(annotations)
        body = encode_json(index, media)
        digest = client.push_manifest(repo, tag, body, index_type)
    return {"digest": digest, "size": len(body), "media_type": index_type, "manifests": index["manifests"],
            "attestations": {e["annotations"]["vnd.docker.reference.digest"]: e["digest"]
                             for e in attestation_entries},
            "repo": repo, "reference": f"{urlsplit(registry_url).netloc}/{repo}:{tag}"}


# -- the real docker CLI ------------------------------------------------------------------
@contextlib.contextmanager
def docker_cli_env(host: str, auth: tuple[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Environment for running the docker CLI against ``host`` without touching ~/.docker.

    A throwaway DOCKER_CONFIG holds the credentials (``auths.<host>.auth``) and the CLI's
    manifest cache; DOCKER_HOST names a socket that does not exist, so a command that
    needed a daemon would fail loudly. ``docker manifest inspect|create|push`` need none.
    """
    with tempfile.TemporaryDirectory(prefix="af-docker-config-") as config_dir:
        config: dict = {"auths": {}}
        if auth:
            config["auths"][host] = {"auth": base64.b64encode(":".join(auth).encode()).decode()}
        with open(os.path.join(config_dir, "config.json"), "w") as handle:
            json.dump(config, handle)
        yield {**os.environ, "DOCKER_CONFIG": config_dir,
               "DOCKER_HOST": f"unix://{config_dir}/no-daemon.sock",
               # Some 20.10 builds still gate `docker manifest` behind experimental CLI features.
               "DOCKER_CLI_EXPERIMENTAL": "enabled"}


def skopeo_args(registry: RegistryEndpoint) -> list[str]:
    """skopeo flags to read from ``registry``: TLS trust (or plain HTTP) and credentials."""
    args = [f"--cert-dir={registry.cert_dir}"] if registry.url.startswith("https:") else ["--tls-verify=false"]
    if registry.auth_tuple:
        args.append("--creds=" + ":".join(registry.auth_tuple))
    return args


def docker_cli_manifest_list(registry: RegistryEndpoint, repo: str, tag: str, sources: Iterable[str],
                             docker: str = DOCKER_CLI) -> dict:
    """Create and push a manifest list with ``docker manifest create`` + ``docker manifest push``.

    ``sources`` are references on the same registry, full (``HOST/repo:tag``) or without
    the host. Runs with a throwaway DOCKER_CONFIG (credentials and the CLI's manifest
    cache) and a DOCKER_HOST socket that does not exist: no daemon is involved.

    What the CLI (20.10) does, and why this function works around it:

    * it treats every loopback registry as "insecure" and ``manifest push`` then always
      speaks plain HTTP, ``--insecure`` or not; so a TLS registry is reached through a
      plain-HTTP :class:`~harness.proxy.Proxy` for the duration of the call, and so is a
      registry with ``docker_cli_needs_proxy`` set (one that never answers the CLI's TLS probe);
    * it re-indents each child manifest it puts into the target repository (3 spaces for
      Docker, 2 for OCI) while the list keeps the source digests: sources must already be
      written that way, as :func:`push_image` does for ``media="docker"``;
    * the list's entries come out in the order of its cache files, not of ``sources``.

    Returns ``{digest, size, media_type, manifest, repo, reference}`` read back from the registry.
    """
    with contextlib.ExitStack() as stack:
        # The proxy answers the CLI's first TLS ClientHello with an HTTP 400, as Go's server does, which a
        # registry may not do (Pulp's gunicorn never answers it: the CLI then fails with a TLS handshake timeout).
        use_proxy = registry.url.startswith("https:") or getattr(registry, "docker_cli_needs_proxy", False)
        endpoint = stack.enter_context(Proxy(registry)) if use_proxy else registry
        env = stack.enter_context(docker_cli_env(endpoint.host, registry.auth_tuple))
        sources = [s.split("/", 1)[1] if s.startswith(registry.host + "/") else s for s in sources]
        target = f"{endpoint.host}/{repo}:{tag}"
        for command in (["manifest", "create", "--insecure", target, *(f"{endpoint.host}/{s}" for s in sources)],
                        ["manifest", "push", "--insecure", target]):
            result = subprocess.run([docker, *command], env=env, capture_output=True, text=True, timeout=120, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"docker {' '.join(command)} failed ({result.returncode}): "
                                   f"{result.stderr.strip() or result.stdout.strip()}")
    with PushClient(registry.url, auth=registry.auth_tuple, verify=registry.verify) as client:
        response = client.get_manifest(repo, tag)
    return {"digest": sha256_digest(response.content), "size": len(response.content),
            "media_type": response.headers.get("Content-Type", "").split(";")[0],
            "manifest": response.json(), "repo": repo, "reference": f"{registry.host}/{repo}:{tag}"}


# -- the standard fixture set -----------------------------------------------------------------
MULTI_PLATFORMS = ("linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le", "linux/s390x")


def seed_fixtures(registry: RegistryEndpoint, *, docker: str | None = DOCKER_CLI) -> dict:
    """Push the standard fixture set and describe it so tests can assert exact digests.

    Repositories (``H`` is ``registry.host``)::

        H/fixtures/single:amd64, :arm64      OCI single-platform images
        H/fixtures/docker-single:latest      Docker schema2, linux/amd64 (:arm64 also, as a list source)
        H/fixtures/multi:latest              OCI index: the five MULTI_PLATFORMS + one attestation (amd64)
        H/fixtures/dockerlist:latest         Docker manifest list made by the docker CLI (amd64, arm64);
                                             with ``docker=None`` pushed by push_index instead (for registries
                                             the CLI cannot push a list to: it fails unless its blob mounts
                                             are honoured, and go-containerregistry's registry answers 202)

    Returns a dict keyed ``single_amd64``, ``single_arm64``, ``docker_single``,
    ``docker_single_arm64`` (push_image results), ``multi`` (push_index result plus
    ``platforms``: platform string -> child digest), ``dockerlist`` (docker CLI result plus
    ``platforms``), and ``missing_tag`` / ``missing_repo`` references that do not exist.
    """
    common = {"auth": registry.auth_tuple, "verify": registry.verify}
    url, host = registry.url, registry.host
    labels = {"org.opencontainers.image.source": "https://example.invalid/archfleet/fixtures"}
    seeded: dict = {
        "single_amd64": push_image(url, "fixtures/single", "amd64", platform="linux/amd64", labels=labels, **common),
        "single_arm64": push_image(url, "fixtures/single", "arm64", platform="linux/arm64", labels=labels, **common),
        "docker_single": push_image(url, "fixtures/docker-single", "latest", platform="linux/amd64",
                                    media="docker", **common),
        "docker_single_arm64": push_image(url, "fixtures/docker-single", "arm64", platform="linux/arm64",
                                          media="docker", **common),
    }

    children = [push_image(url, "fixtures/multi", platform=p, labels=labels, **common) for p in MULTI_PLATFORMS]
    multi = push_index(url, "fixtures/multi", "latest", children, attestations=[children[0]["digest"]],
                       annotations={"org.opencontainers.image.created": DEFAULT_CREATED}, **common)
    multi["platforms"] = {platform_string(c["platform"]): c["digest"] for c in children}
    seeded["multi"] = multi

    if docker is None:
        children = [push_image(url, "fixtures/dockerlist", platform=p, media="docker", **common)
                    for p in ("linux/amd64", "linux/arm64")]
        listed = push_index(url, "fixtures/dockerlist", "latest", children, media="docker", **common)
        dockerlist = dict(listed, manifest={"manifests": listed["manifests"]})
    else:
        dockerlist = docker_cli_manifest_list(registry, "fixtures/dockerlist", "latest",
                                              ["fixtures/docker-single:latest", "fixtures/docker-single:arm64"],
                                              docker=docker)
    dockerlist["platforms"] = {platform_string(m["platform"]): m["digest"]
                               for m in dockerlist["manifest"]["manifests"]}
    seeded["dockerlist"] = dockerlist
    seeded["missing_tag"] = f"{host}/fixtures/single:does-not-exist"
    seeded["missing_repo"] = f"{host}/fixtures/no-such-repo:latest"
    return seeded
