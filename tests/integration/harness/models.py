"""Models of registries that cannot run here, each a small HTTP front in front of a real registry.

Docker Hub, GHCR (and lscr.io in front of it), Quay, ECR, Artifact Registry, ACR, Harbor, Artifactory,
Nexus and GitLab cannot be started on loopback. Each model is a :class:`harness.proxy.Proxy` (its fault
hooks decide every answer) in front of its own Debian ``docker-registry`` (:class:`harness.registry.Registry`,
open, plain HTTP), and signs its Bearer tokens with a :class:`harness.tokenserver.TokenServer`'s grant and
JWT logic. A model reproduces only what that registry's documentation or a public bug report records;
every behaviour below names its source, and nothing else about the real service is claimed.

================  ==========================================================  ============================================================================
model             behaviour                                                   source
================  ==========================================================  ============================================================================
DockerHub         token realm on another host, service registry.docker.io     https://github.com/distribution/distribution/issues/1589
DockerHub         anonymous tokens granted for any repository, even a         https://github.com/docker/hub-feedback/issues/1771
                  missing one
DockerHub         missing/mistyped repository: 401                            https://github.com/distribution/distribution/issues/1291
                  error="insufficient_scope" on manifest GET/HEAD even with   https://github.com/jupyterhub/binderhub/issues/1664
                  the fresh token                                             https://github.com/docker-archive/docker-registry/issues/1071
DockerHub         ratelimit-limit, ratelimit-remaining, docker-ratelimit-     [hub-pulls]
                  source on manifest answers; GETs count, HEADs do not; 429   https://github.com/docker/docs/pull/20774
                  TOOMANYREQUESTS
DockerHub         DELETE of a manifest: 405 UNSUPPORTED (after the auth       https://github.com/docker/hub-feedback/issues/1759
                  challenge)                                                  https://github.com/docker/hub-feedback/issues/2360
Ghcr              anonymous pull token from /token on the registry host,      https://github.com/getwud/wud/issues/143
                  service ghcr.io                                             https://github.com/opensciencegrid/cvmfs-singularity-sync/pull/353
Lscr              every /v2/ request 307-redirected to another registry       https://github.com/google/go-containerregistry/issues/2333
                  host, which answers with its own Bearer challenge (realm    https://github.com/google/go-containerregistry/issues/2359
                  on its host)                                                https://github.com/nicholas-fedor/watchtower/pull/359
Nexus             manifest HEAD answers 404 while GET answers 200; Basic      https://github.com/andrey-pohilko/registry-cli/issues/43
                  realm "Sonatype Nexus Repository Manager"                   https://github.com/andrey-pohilko/registry-cli/issues/14
                                                                              https://github.com/crazy-max/diun/issues/1614
Harbor            some set-ups: manifest HEAD 404, GET 200 (head_404=True)    https://github.com/crossplane/crossplane/pull/3223
Harbor            token service /service/token; robot accounts                https://github.com/goharbor/harbor/issues/714
                  robot$project+name
Harbor            2.7: referrers endpoint answers 401 with no WWW-            https://github.com/goharbor/harbor/issues/18305
                  Authenticate                                                https://github.com/regclient/regclient/pull/389
AnonymousReads    /v2/ ping 200 and anonymous reads; writes challenged        https://github.com/moby/moby/issues/12972
                  (Basic, or Bearer with scheme="bearer")                     https://github.com/nexspence/nexspence/issues/260
NoReferrersApi    400: the referrers endpoint answers 400 where 404 was       https://github.com/quay/quay/pull/3071
                  expected
NoReferrersApi    405: what the registry lacks of OCI 1.1 answered 405        https://github.com/aws/containers-roadmap/issues/2783
NoReferrersApi    406: Artifactory's answer to the referrers endpoint         https://github.com/google/go-containerregistry/pull/2026
NoReferrersApi    500: "404 or similar error code" when the API is not        https://github.com/opencontainers/opencontainers.org/pull/152
                  supported (no registry-specific report of a 500 found)
NoDelete          delete disabled: DELETE 405 UNSUPPORTED; a tag delete that  https://github.com/distribution/distribution/issues/1222
                  first PUT a throw-away manifest leaves it behind            https://github.com/regclient/regclient/issues/819
Quay              realm /v2/auth on the registry host, service = the host     https://github.com/oras-project/oras/issues/738
                                                                              https://github.com/quay/claircore/pull/879
Quay              robot accounts org+name with a token as password; private   [quay-robots]
                  repositories
Quay              before 3.8: an OCI index listing Docker manifests refused   https://github.com/openshift/oc-mirror/issues/253
                  with 400 MANIFEST_INVALID                                   https://github.com/quay/quay/pull/1649
                  (refuse_docker_in_oci_index=True)
Ecr               Basic auth, user AWS, a 12-hour token as password;          [ecr-auth]
                  credential helper ecr-login                                 [ecr-login-password]
ArtifactRegistry  users oauth2accesstoken (access token) and _json_key        [gar-auth]
                  (service account key JSON as password)                      https://github.com/Dokploy/dokploy/issues/3935
ArtifactRegistry  Bearer challenge with a realm and no service                https://github.com/nicholas-fedor/watchtower/pull/1895
Acr               identitytoken (user 00000000-0000-0000-0000-000000000000)   https://azure.github.io/acr/AAD-OAuth.html
                  is an OAuth2 refresh token: POST /oauth2/token              https://gist.github.com/toddysm/4b34220dfaffa8ab4c3288e02e5ceb16
                  grant_type=refresh_token, answered with access_token only
GitLab            token realm /jwt/auth on the GitLab host (another host),    https://gitlab.com/gitlab-org/gitlab-foss/-/issues/26265
                  service container_registry; deploy/access tokens as         https://github.com/dotnet/sdk-container-builds/issues/284
                  passwords                                                   [gitlab-auth]
GitLab            no Referrers API (404); a missing sha256-<hex> tag          https://github.com/oras-project/oras-go/issues/1396
                  resolves to the manifest sha256:<hex>
                  (dash_tags_resolve=True)
GitLab            artifactType or config media type outside its allowlist:    https://github.com/ocx-sh/ocx/issues/480
                  400 MANIFEST_INVALID "unknown media type"                   https://github.com/fluxcd/flux2/issues/3724
                  (known_media_types=GITLAB_KNOWN)                            https://github.com/grimoire-rs/grimoire/issues/11
Artifactory       tag-list Link drops the repository's first path component   https://github.com/renovatebot/renovate/pull/20745
                  (RTFACT-18971): followed as is, the next page 404s          https://github.com/renovatebot/renovate/issues/35917
Artifactory       referrers endpoint answers 406                              https://github.com/google/go-containerregistry/issues/1962
                                                                              https://github.com/google/go-containerregistry/pull/2026
================  ==========================================================  ============================================================================


Long addresses in the table:

- [hub-pulls] https://docs.docker.com/docker-hub/usage/pulls/
- [quay-robots] https://docs.redhat.com/en/documentation/red_hat_quay/3/html/managing_access_and_permissions/creating-robot-account-api
- [ecr-auth] https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html
- [ecr-login-password] https://docs.aws.amazon.com/cli/latest/reference/ecr/get-login-password.html
- [gar-auth] https://cloud.google.com/artifact-registry/docs/docker/authentication
- [gitlab-auth] https://docs.gitlab.com/user/packages/container_registry/authenticate_with_container_registry.html

Every model is a context manager::

    with DockerHub() as hub:
        hub.push("library/busybox", "latest")            # straight into its registry, bypassing the front
        hub.host, hub.url                                # what the collection talks to
        hub.requests                                     # every request the front saw, with its headers
        hub.log, hub.count("HEAD", "manifest")           # harness.proxy's log (method, path, kind, status)

Credentials: ``.users`` (name -> password), ``.refresh_tokens`` (identitytoken -> name), ``.issued``
(every token the model handed out), ``.token_requests`` (account and scopes asked).
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from . import pki
from .images import ALL_MANIFEST_TYPES, HARNESS_USER_AGENT, OCI_INDEX, push_image
from .proxy import Fault, Proxy, ProxyRequest
from .registry import Registry
from .tokenserver import TokenServer

_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs|tags|referrers)(/|$)")
_DOCKER_MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json",
                          "application/vnd.docker.distribution.manifest.list.v2+json")
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class SeenRequest:
    """One request as a model host received it: method, path and every header (names lower-cased)."""

    host: str
    method: str
    path: str
    headers: dict[str, str]

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


def _errors(code: str, message: str, detail=None) -> bytes:
    error = {"code": code, "message": message}
    if detail is not None:
        error["detail"] = detail
    return json.dumps({"errors": [error]}).encode()


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _action(method: str) -> str:
    if method in ("GET", "HEAD"):
        return "pull"
    return "delete" if method == "DELETE" else "push"


class _Front(Proxy):
    """A harness Proxy that also keeps every request's headers (``seen``) and lets ``endpoint`` answer a
    request from its body (token POSTs, manifest PUTs) before the fault hook and the registry see it."""

    def __init__(self, upstream, *, fault, endpoint=None, name: str = "model"):
        self.seen: list[SeenRequest] = []
        self.endpoint = endpoint
        self.name = name
        super().__init__(upstream, fault=fault)

    def _handler_class(self):
        base = super()._handler_class()
        front = self

        class Handler(base):
            def _forward_one(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                with front._lock:
                    front.seen.append(SeenRequest(front.host, self.command, self.path, headers))
                if front.endpoint is None:
                    super()._forward_one()
                    return
                cache: list[bytes] = []

                def body() -> bytes | None:
                    if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                        return None
                    if not cache:
                        cache.append(b"".join(self._request_body()))
                    return cache[0]

                answer = front.endpoint(self.command, self.path, self.headers, body)
                if answer is not None:
                    if not cache:
                        body()                      # drain, so the connection stays usable
                    front._record(self.command, self.path, "token" if answer.status == 200 else "other",
                                  answer.status)
                    self._send_fault(answer)
                    return
                if not cache:
                    super()._forward_one()
                    return
                original, self.rfile = self.rfile, io.BytesIO(cache[0])   # the body, read again upstream
                try:
                    super()._forward_one()
                finally:
                    self.rfile = original

        return Handler


class Model:
    """A registry model: a front (``.host``) with the model's rules, its registry (``.backend``), its tokens.

    Class attributes are the knobs a model sets (and a test may override as keyword arguments):
    ``scheme`` (``"bearer"``, ``"basic"`` or None), ``service`` (None: the front's host),
    ``realm_path``, ``realm_on_own_host`` (the token endpoint on a second host), ``challenge_service``,
    ``protect_ping`` / ``protect_reads`` (False: answered without credentials), ``anonymous_pull``,
    ``token_fields`` (what a token answer carries), ``users``, ``refresh_tokens``, ``delete_enabled``,
    and the quirks ``head_404``, ``missing_repo_unauthorized``, ``ratelimit``/``pull_limit``,
    ``delete_answer``, ``referrers_answer``, ``referrers_before_auth``, ``refuse_docker_in_oci_index``,
    ``known_media_types`` (an allowlist for ``artifactType`` and ``config.mediaType``), ``dash_tags_resolve``,
    ``broken_tag_links``.
    """

    title = "registry"
    scheme: str | None = "bearer"
    service: str | None = "registry"
    realm_path = "/token"
    realm_on_own_host = False
    challenge_service = True
    basic_realm = "registry"
    protect_ping = True
    protect_reads = True
    anonymous_pull = True
    token_fields: tuple[str, ...] = ("token", "access_token", "expires_in", "issued_at")
    users: dict[str, str] = {}
    refresh_tokens: dict[str, str] = {}
    delete_enabled = True
    token_expires_in = 300
    # quirks
    head_404 = False
    missing_repo_unauthorized = False
    ratelimit = False
    pull_limit: int | None = None
    delete_answer: tuple[int, bytes] | None = None
    referrers_answer: tuple[int, dict, bytes] | None = None
    referrers_before_auth = False
    refuse_docker_in_oci_index = False
    known_media_types: frozenset[str] | None = None
    dash_tags_resolve = False
    broken_tag_links = False

    def __init__(self, **knobs):
        for name, value in knobs.items():
            if not hasattr(type(self), name) or name.startswith("_"):
                raise TypeError(f"{type(self).__name__} has no knob {name!r}")
            setattr(self, name, value)
        self.users = dict(self.users)
        self.refresh_tokens = dict(self.refresh_tokens)
        self.backend: Registry | None = None
        self.front: _Front | None = None
        self.auth_host: _Front | None = None
        self.token_server: TokenServer | None = None
        self.issued: list[str] = []
        self.token_requests: list[tuple[str | None, tuple[str, ...]]] = []
        self.pulls = 0
        self._dir: Path | None = None
        self._public_key = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Model:
        self._dir = Path(tempfile.mkdtemp(prefix="af-model-"))
        try:
            self.backend = Registry(delete_enabled=self.delete_enabled)
            signer = pki.make_token_signer(self._dir / "token")
            self._public_key = x509.load_pem_x509_certificate(signer.cert_path.read_bytes()).public_key()
            acl = {user: {"*": ["pull", "push", "delete"]} for user in self.users}
            self.token_server = TokenServer(
                signing_key_path=signer.key_path, signing_cert_path=signer.cert_path, users=self.users,
                acl=acl, anonymous_acl={"*": ["pull"]} if self.anonymous_pull else {},
                service=self.service or "registry", expires_in=self.token_expires_in,
                refresh_tokens=self.refresh_tokens)
            self.front = _Front(self.backend, fault=self._fault, endpoint=self._endpoint, name=self.title)
            if self.realm_on_own_host:
                self.auth_host = _Front(self.backend, fault=lambda request: Fault.respond(404, JSON, _errors(
                    "NOT_FOUND", "not found")), endpoint=self._token_endpoint, name=self.title + " auth")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for part in (self.front, self.auth_host, self.token_server, self.backend):
            if part is not None:
                part.stop()
        self.front = self.auth_host = self.token_server = self.backend = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Model:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses and logs -----------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self.front.host

    @property
    def url(self) -> str:
        return self.front.url

    @property
    def realm(self) -> str:
        return (self.auth_host.url if self.auth_host else self.url) + self.realm_path

    @property
    def service_name(self) -> str:
        return self.service or self.host

    @property
    def requests(self) -> list[SeenRequest]:
        """Every request the model's hosts received (the auth host's too), with headers."""
        return list(self.front.seen) + (list(self.auth_host.seen) if self.auth_host else [])

    @property
    def log(self):
        return list(self.front.log)

    def count(self, method: str | None = None, kind: str | None = None, status: int | None = None) -> int:
        return sum(1 for entry in self.front.log if (method is None or entry.method == method)
                   and (kind is None or entry.kind == kind) and (status is None or entry.status == status))

    def reset(self) -> None:
        self.front.reset()
        with self.front._lock:
            self.front.seen.clear()

    # -- content ------------------------------------------------------------------------------------
    def push(self, repo: str, tag: str | None = None, **kwargs) -> dict:
        """push_image straight into the model's registry (the front and its rules are not involved)."""
        return push_image(self.backend.url, repo, tag, **kwargs)

    def resolve(self, repo: str, reference: str) -> str | None:
        """The digest ``repo:reference`` has in the model's registry, or None."""
        response = requests.head(f"{self.backend.url}/v2/{repo}/manifests/{reference}", timeout=10,
                                 headers={"Accept": ALL_MANIFEST_TYPES, "User-Agent": HARNESS_USER_AGENT})
        return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None

    def manifest_revisions(self) -> set[str]:
        """Every manifest the registry holds (revision links of every repository), for "nothing was left"."""
        root = Path(self.backend.dir) / "storage" / "docker" / "registry" / "v2" / "repositories"
        return {str(link.relative_to(root)) for link in root.glob("**/_manifests/revisions/sha256/*/link")}

    def repository_exists(self, name: str) -> bool:
        root = Path(self.backend.dir) / "storage" / "docker" / "registry" / "v2" / "repositories"
        return (root / name / "_manifests").is_dir()

    # -- tokens ---------------------------------------------------------------------------------------
    def _endpoint(self, method, path, headers, body):
        if self.scheme == "bearer" and not self.realm_on_own_host:
            answer = self._token_endpoint(method, path, headers, body)
            if answer is not None:
                return answer
        return self.with_body(method, path, headers, body)

    def with_body(self, method, path, headers, body) -> Fault | None:
        """Rules that need a request's body (``body()`` reads it). None: go on to the fault hook."""
        if self.refuse_docker_in_oci_index and method == "PUT" and "/manifests/" in path \
                and headers.get("Content-Type", "").startswith(OCI_INDEX):
            document = json.loads(body() or b"{}")
            children = [m.get("mediaType") for m in document.get("manifests", [])]
            if any(child in _DOCKER_MANIFEST_TYPES for child in children):
                return Fault.respond(400, JSON, _errors("MANIFEST_INVALID", "manifest invalid", {
                    "message": "failed to parse manifest: manifest data does not match schema: "
                               f"'{_DOCKER_MANIFEST_TYPES[0]}' is not one of "
                               "['application/vnd.oci.image.manifest.v1+json', "
                               "'application/vnd.oci.image.index.v1+json']"}))
        if self.known_media_types is not None and method == "PUT" and "/manifests/" in path:
            try:
                document = json.loads(body() or b"{}")
            except ValueError:
                document = {}
            for media_type in (document.get("artifactType"), (document.get("config") or {}).get("mediaType")):
                if media_type and media_type not in self.known_media_types:
                    return Fault.respond(400, JSON, _errors("MANIFEST_INVALID", "manifest invalid",
                                                            f"unknown media type: {media_type}"))
        return None

    def _token_endpoint(self, method, path, headers, body) -> Fault | None:
        parts = urlsplit(path)
        if parts.path != self.realm_path or method not in ("GET", "POST"):
            return None
        fields = parse_qs(parts.query)
        account: str | None = None
        if method == "POST":
            form = parse_qs((body() or b"").decode("utf-8"))
            fields.update(form)
            grant = (form.get("grant_type") or [""])[0]
            if grant == "refresh_token":
                account = self.refresh_tokens.get((form.get("refresh_token") or [""])[0])
            elif grant == "password":
                user, password = (form.get("username") or [""])[0], (form.get("password") or [""])[0]
                account = user if self.users.get(user) == password else None
            if account is None:
                return Fault.respond(401, JSON, json.dumps({"error": "invalid_grant"}).encode())
        else:
            authorization = headers.get("Authorization")
            if authorization:
                account = self._basic_account(authorization)
                if account is None:
                    return Fault.respond(401, dict(JSON, **{"WWW-Authenticate": f'Basic realm="{self.title}"'}),
                                         _errors("UNAUTHORIZED", "incorrect username or password"))
        scopes = [s for value in fields.get("scope", []) for s in value.split(" ") if s]
        access = self.token_server.grant(account, scopes)
        issued = self.token_server.issue(account, access)
        with self._lock:
            self.issued.append(issued["token"])
            self.token_requests.append((account, tuple(scopes)))
        answer = {key: value for key, value in issued.items() if key in self.token_fields}
        if method == "POST" and "refresh_token" in fields and "refresh_token" in self.token_fields:
            answer["refresh_token"] = fields["refresh_token"][0]
        return Fault.respond(200, JSON, json.dumps(answer).encode())

    def _basic_account(self, authorization: str | None) -> str | None:
        scheme, _space, value = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _colon, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user if user in self.users and self.users[user] == password else None

    def _claims(self, authorization: str | None) -> dict | None:
        """The claims of a Bearer token this model signed, unexpired and for its service; else None."""
        scheme, _space, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 2:
            return None
        header, payload, signature = token.split(".")
        try:
            self._public_key.verify(_b64url_decode(signature), f"{header}.{payload}".encode("ascii"),
                                    padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(_b64url_decode(payload))
        except (InvalidSignature, ValueError, binascii.Error):
            return None
        if claims.get("aud") != (self.service or "registry") or claims.get("exp", 0) < time.time():
            return None
        return claims

    # -- the rules --------------------------------------------------------------------------------------
    def _fault(self, request: ProxyRequest) -> Fault | None:
        path = request.path.split("?", 1)[0]
        match = _REPO_PATH.match(path)
        name, kind = (match["name"], match["kind"]) if match else (None, None)
        if kind == "referrers" and self.referrers_answer and self.referrers_before_auth:
            return Fault.respond(*self.referrers_answer)
        denied = self._authorize(request, path, name)
        if denied is not None:
            return denied
        return self.rules(request, path, name, kind)

    def _authorize(self, request: ProxyRequest, path: str, name: str | None) -> Fault | None:
        if self.scheme is None:
            return None
        action = _action(request.method)
        authorization = request.headers.get("Authorization")
        if path in ("/v2/", "/v2") and not self.protect_ping:
            return None
        if action == "pull" and not self.protect_reads and not authorization:
            return None
        if self.scheme == "basic":
            if self._basic_account(authorization) is not None:
                return None
            return Fault.respond(401, dict(JSON, **{"WWW-Authenticate": f'Basic realm="{self.basic_realm}"'}),
                                 _errors("UNAUTHORIZED", "authentication required"))
        claims = self._claims(authorization)
        if claims is not None and (name is None or any(
                entry.get("name") == name and action in entry.get("actions", []) for entry in claims["access"])):
            return None
        return self.bearer_challenge(name, action, insufficient=claims is not None)

    def bearer_challenge(self, name: str | None, action: str, *, insufficient: bool = False) -> Fault:
        """401 with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...[,error="insufficient_scope"]``,
        the body distribution (and Docker Hub) send (docker-archive/docker-registry#1071)."""
        params = [f'realm="{self.realm}"']
        if self.challenge_service:
            params.append(f'service="{self.service_name}"')
        detail = None
        if name is not None:
            actions = "pull" if action == "pull" else f"pull,{action}" if action == "push" else action
            params.append(f'scope="repository:{name}:{actions}"')
            detail = [{"Type": "repository", "Class": "", "Name": name, "Action": action}]
        if insufficient:
            params.append('error="insufficient_scope"')
        return Fault.respond(401, dict(JSON, **{"WWW-Authenticate": "Bearer " + ",".join(params)}),
                             _errors("UNAUTHORIZED", "authentication required", detail))

    def rules(self, request: ProxyRequest, path: str, name: str | None, kind: str | None) -> Fault | None:
        """The model's quirks, for a request that passed authentication."""
        if kind == "referrers" and self.referrers_answer:
            return Fault.respond(*self.referrers_answer)
        if kind == "manifests" and request.method in ("GET", "HEAD") and self.missing_repo_unauthorized \
                and not self.repository_exists(name):
            return self.bearer_challenge(name, "pull", insufficient=True)
        if kind == "manifests" and request.method == "DELETE" and self.delete_answer:
            status, body = self.delete_answer[0], self.delete_answer[1]
            return Fault.respond(status, JSON, body)
        if kind == "manifests" and request.method == "HEAD" and self.head_404:
            return Fault.respond(404, JSON, _errors("MANIFEST_UNKNOWN", "manifest unknown"))
        if kind == "manifests" and request.method in ("GET", "HEAD") and self.dash_tags_resolve:
            reference = path.rsplit("/manifests/", 1)[1]
            if re.fullmatch(r"sha256-[0-9a-f]{64}", reference) and self.resolve(name, reference) is None:
                return self._forward_by_hand(request, path.replace(f"/manifests/{reference}",
                                                                   "/manifests/" + reference.replace("-", ":", 1)))
        if kind == "tags" and self.broken_tag_links and request.method == "GET":
            return self._tags_with_broken_link(request, name)
        if kind == "manifests" and request.method in ("GET", "HEAD") and self.ratelimit:
            return self._rate_limited(request)
        return None

    def _forward_by_hand(self, request: ProxyRequest, path: str) -> Fault:
        """Answer with what the registry answers at another path (the proxy forwards paths unchanged)."""
        response = requests.request(request.method, self.backend.url + path, timeout=30,
                                    headers={"Accept": request.headers.get("Accept") or ALL_MANIFEST_TYPES})
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() in ("content-type", "docker-content-digest", "content-length")}
        return Fault.respond(response.status_code, headers, response.content)

    def _tags_with_broken_link(self, request: ProxyRequest, name: str) -> Fault:
        query = urlsplit(request.path).query
        response = requests.get(f"{self.backend.url}/v2/{name}/tags/list?{query}", timeout=30)
        headers = dict(JSON)
        link = response.headers.get("Link")
        if link:
            # RTFACT-18971: the next link names the repository without its first path component.
            headers["Link"] = link.replace(f"/v2/{name}/", "/v2/{}/".format(name.split("/", 1)[-1]))
        return Fault.respond(response.status_code, headers, response.content)

    def _rate_limited(self, request: ProxyRequest) -> Fault:
        limit = self.pull_limit if self.pull_limit is not None else 100
        with self._lock:
            if request.method == "GET":
                self.pulls += 1
            pulls = self.pulls
        if request.method == "GET" and pulls > limit:
            return Fault.respond(429, JSON, _errors(
                "TOOMANYREQUESTS", "You have reached your pull rate limit. You may increase the limit by "
                "authenticating and upgrading: https://www.docker.com/increase-rate-limit"))
        remaining = max(limit - pulls, 0)
        headers = {"ratelimit-limit": f"{limit};w=21600", "ratelimit-remaining": f"{remaining};w=21600",
                   "docker-ratelimit-source": "127.0.0.1"}
        return Fault.add_headers(lambda status, upstream_headers: headers)


# -- the registries ------------------------------------------------------------------------------------------
class DockerHub(Model):
    """Docker Hub: realm on another host (auth.docker.io-like), service ``registry.docker.io``, anonymous
    pull tokens for any repository (docker/hub-feedback#1771), a missing or mistyped repository answered
    401 ``insufficient_scope`` with the fresh token (distribution/distribution#1291,
    jupyterhub/binderhub#1664), rate-limit headers and 429 (docs.docker.com/docker-hub/usage/pulls), and
    DELETE answered 405 UNSUPPORTED (docker/hub-feedback#1759, #2360). ``.users``: one Hub user."""

    title = "Docker Hub"
    service = "registry.docker.io"
    realm_on_own_host = True
    missing_repo_unauthorized = True
    ratelimit = True
    token_fields = ("token", "access_token", "expires_in", "issued_at")
    delete_answer = (405, _errors("UNSUPPORTED", "The operation is unsupported."))
    users = {"hubuser": "Hub-Pw-4821"}


class Ghcr(Model):
    """GHCR: anonymous pull tokens from ``/token`` on the registry host, service ``ghcr.io``
    (getwud/wud#143, opensciencegrid/cvmfs-singularity-sync#353)."""

    title = "GHCR"
    service = "ghcr.io"
    users = {"octocat": "ghp_model_Token_0001"}


class Lscr:
    """lscr.io: a host that answers every ``/v2/`` request with 307 to the same path on ``target`` (another
    host:port), which then challenges for itself (google/go-containerregistry#2333, #2359;
    nicholas-fedor/watchtower#359). Logs every request's headers in ``.requests``."""

    title = "lscr.io"

    def __init__(self, target: Model):
        self.target = target
        self.front: _Front | None = None

    def start(self) -> Lscr:
        self.front = _Front(self.target.backend, fault=self._redirect, name=self.title)
        return self

    def stop(self) -> None:
        if self.front is not None:
            self.front.stop()
            self.front = None

    def __enter__(self) -> Lscr:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self.front.host

    @property
    def url(self) -> str:
        return self.front.url

    @property
    def requests(self) -> list[SeenRequest]:
        return list(self.front.seen)

    def _redirect(self, request: ProxyRequest) -> Fault:
        return Fault.respond(307, {"Location": self.target.url + request.path, "Content-Type": "text/html"})


class Nexus(Model):
    """Nexus Repository: Basic auth, and a manifest HEAD answered 404 while the GET answers 200
    (andrey-pohilko/registry-cli#43 and #14, crazy-max/diun#1614)."""

    title = "Nexus"
    scheme = "basic"
    basic_realm = "Sonatype Nexus Repository Manager"
    head_404 = True
    users = {"deployer": "Nexus-Pw-7730"}


class Harbor(Model):
    """Harbor: token service ``/service/token`` (goharbor/harbor#714), robot accounts ``robot$project+name``,
    the referrers endpoint of 2.7 answered 401 without a challenge (goharbor/harbor#18305,
    regclient/regclient#389); ``head_404=True`` for the set-ups of crossplane/crossplane#3223."""

    title = "Harbor"
    service = "harbor-registry"
    realm_path = "/service/token"
    users = {"robot$library+ci": "Harbor-Robot-Secret-1"}
    referrers_answer = (401, JSON, _errors("UNAUTHORIZED", "unauthorized"))
    referrers_before_auth = True


class AnonymousReads(Model):
    """A registry whose ``/v2/`` ping and reads are open and whose writes are challenged, with Basic
    (an nginx in front of a registry, moby/moby#12972) or Bearer (nexspence/nexspence#260)."""

    title = "anonymous reads"
    scheme = "basic"
    protect_ping = False
    protect_reads = False
    users = {"pusher": "Push-Pw-5531"}


class NoReferrersApi(Model):
    """An open registry without the Referrers API whose referrers endpoint answers ``status`` instead of
    404 (400: quay/quay#3071; 405: aws/containers-roadmap#2783; 406: google/go-containerregistry#2026;
    500: the OCI 1.1 announcement's "404 or similar error code", opencontainers/opencontainers.org#152)."""

    title = "no Referrers API"
    scheme = None

    def __init__(self, status: int, **knobs):
        messages = {400: ("BAD_REQUEST", "bad request"), 405: ("UNSUPPORTED", "The operation is unsupported."),
                    406: ("UNSUPPORTED", "not acceptable"), 500: ("UNKNOWN", "internal server error")}
        code, message = messages.get(status, ("UNKNOWN", "error"))
        super().__init__(referrers_answer=(status, JSON, _errors(code, message)), **knobs)


class NoDelete(Model):
    """A registry that refuses DELETE: distribution with ``storage.delete.enabled: false`` answers 405
    UNSUPPORTED (distribution/distribution#1222; regclient/regclient#819 shows the throw-away manifest a
    tag delete leaves behind when that DELETE fails)."""

    title = "no DELETE"
    scheme = "basic"
    delete_enabled = False
    users = {"admin": "NoDelete-Pw-1"}


class Quay(Model):
    """Quay: realm ``/v2/auth`` on the registry host, service = the host (oras-project/oras#738,
    quay/claircore#879), robot accounts ``org+name`` with a token as password (Red Hat Quay docs), private
    repositories; ``refuse_docker_in_oci_index=True``: Quay before 3.8 refused an OCI index listing Docker
    manifests with 400 MANIFEST_INVALID (openshift/oc-mirror#253, quay/quay#1649)."""

    title = "Quay"
    service = None
    realm_path = "/v2/auth"
    anonymous_pull = False
    users = {"myorg+ci": "QUAYROBOTTOKEN0123456789ABCDEF"}


class Ecr(Model):
    """Amazon ECR: Basic auth with user ``AWS`` and a 12-hour token from ``aws ecr get-login-password``
    or the ``ecr-login`` credential helper (AWS ECR user guide, registry_auth.html)."""

    title = "ECR"
    scheme = "basic"
    users = {"AWS": "eyJwYXlsb2FkIjoiZWNyLW1vZGVsIn0=" + "A" * 64}

    def __init__(self, **knobs):
        super().__init__(**knobs)
        self.basic_realm = "https://ecr.example.invalid/"


class ArtifactRegistry(Model):
    """Artifact Registry: users ``oauth2accesstoken`` (an access token as password) and ``_json_key`` (the
    service account key JSON as password) (cloud.google.com artifact-registry docker authentication,
    Dokploy/dokploy#3935); the Bearer challenge names a realm and no service (nicholas-fedor/watchtower#1895)."""

    title = "Artifact Registry"
    service = None
    realm_path = "/v2/token"
    challenge_service = False
    anonymous_pull = False
    users = {"oauth2accesstoken": "ya29.model-access-token-0001",
             "_json_key": json.dumps({"type": "service_account", "project_id": "model-project",
                                      "private_key_id": "0123", "client_email": "ci@model-project.iam.example",
                                      "private_key": "-----BEGIN PRIVATE KEY-----\nMODEL\n-----END PRIVATE KEY-----\n"},
                                     indent=2)}


class Acr(Model):
    """Azure Container Registry: realm ``/oauth2/token`` on the registry host, service = the host; docker's
    ``identitytoken`` (user 00000000-0000-0000-0000-000000000000) is a refresh token exchanged with POST
    grant_type=refresh_token; answers carry ``access_token`` only (azure.github.io/acr/AAD-OAuth.html)."""

    title = "ACR"
    service = None
    realm_path = "/oauth2/token"
    anonymous_pull = False
    token_fields = ("access_token",)
    users = {"00000000-0000-0000-0000-000000000000": secrets.token_urlsafe(8)}   # never usable as a password
    refresh_tokens = {"acr-refresh-token-model-0001": "00000000-0000-0000-0000-000000000000"}


# Media types GitLab is reported to accept as artifactType or config.mediaType (ocx-sh/ocx#480 tried these on
# gitlab.com: the OCI image config and Helm's config are accepted; Docker images push everywhere).
GITLAB_KNOWN = frozenset({"application/vnd.oci.image.config.v1+json",
                          "application/vnd.docker.container.image.v1+json",
                          "application/vnd.cncf.helm.config.v1+json"})


class GitLab(Model):
    """GitLab: realm ``/jwt/auth`` on the GitLab host (another host than the registry), service
    ``container_registry`` (gitlab-org/gitlab-foss#26265, dotnet/sdk-container-builds#284), deploy tokens as
    passwords; no Referrers API; ``dash_tags_resolve=True``: a ``sha256-<hex>`` tag that does not exist
    resolves to the manifest ``sha256:<hex>`` (oras-project/oras-go#1396); ``known_media_types=GITLAB_KNOWN``:
    an ``artifactType`` or config media type outside GitLab's allowlist is refused with 400 MANIFEST_INVALID
    "unknown media type" (ocx-sh/ocx#480, fluxcd/flux2#3724, grimoire-rs/grimoire#11)."""

    title = "GitLab"
    service = "container_registry"
    realm_path = "/jwt/auth"
    realm_on_own_host = True
    anonymous_pull = False
    users = {"gitlab+deploy-token-1": "gldt-model-token-0001"}


class Artifactory(Model):
    """Artifactory: the referrers endpoint answers 406 (google/go-containerregistry#1962, #2026) and the tag
    list's ``Link`` drops the first path component of the repository (RTFACT-18971,
    renovatebot/renovate#20745, #35917)."""

    title = "Artifactory"
    scheme = "basic"
    basic_realm = "Artifactory Realm"
    broken_tag_links = True
    referrers_answer = (406, JSON, _errors("UNSUPPORTED", "not acceptable"))
    users = {"ci": "Artifactory-Pw-88"}
