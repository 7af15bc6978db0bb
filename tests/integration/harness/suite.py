"""What the integration suite shares beside its fixtures (conftest.py holds only fixtures and hooks).

* Registry variants and how a module reaches them: ``REGISTRY_VARIANTS``, ``registry_options``.
* Real registry implementations (``REAL_REGISTRIES``, ``start_real_registry``) and peers built from the Go
  module proxy (``peer_or_skip``); a partner that cannot run here is ``missing_peer``: a skip naming it, or a
  failure under ``ARCHFLEET_REQUIRE_PEERS=1`` (as .ci/run sets).
* Small helpers written once: ``unique`` (a repository name no other test uses), ``skopeo_raw`` (a manifest's
  exact bytes as skopeo reads them), ``dpkg_installed`` (a Debian package's state).

Tests import these from here, never from conftest.
"""
from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass
from typing import Callable

import pytest

from harness.goregistry import DistributionRegistry, GgcrRegistry, PeerUnavailable, peer_binary
from harness.images import skopeo_args
from harness.pulp import PulpRegistry
from harness.registry import Registry

_counter = itertools.count()


def unique(name: str, namespace: str = "") -> str:
    """A repository name no other test of the session uses (registries live for the whole session):
    ``name-N``, under ``namespace/`` when given."""
    return f"{namespace}/{name}-{next(_counter)}" if namespace else f"{name}-{next(_counter)}"


def skopeo_raw(registry, reference: str, timeout: int = 60) -> bytes:
    """The exact bytes of the manifest at ``reference`` (``host/repository:tag`` or ``@digest``) as skopeo reads
    them from ``registry`` (its credentials and CA). Fails the test with skopeo's message."""
    result = subprocess.run(["skopeo", "inspect", "--raw", *skopeo_args(registry), f"docker://{reference}"],
                            capture_output=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def dpkg_installed(package: str) -> bool:
    """Whether Debian package ``package`` is installed (dpkg-query's Status is "install ok installed")."""
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
                            check=False).stdout
    return status == "install ok installed"


# --- registries --------------------------------------------------------------------------------
REGISTRY_VARIANTS = {
    "open": {},
    "htpasswd": {"auth": "htpasswd"},
    "token": {"auth": "token"},
    "tls-htpasswd": {"auth": "htpasswd", "tls": True},
}


def registry_options(registry, **extra):
    """Module options that reach ``registry``: credentials and the CA of its TLS variant."""
    options = {}
    if registry.auth:
        options.update(username=registry.username, password=registry.password)
    if registry.tls:
        options["ca_path"] = str(registry.ca_path)
    options.update(extra)
    return options


def pulp_registry(auth=None, **variant):
    """Pulp (pulpcore + pulp-container, harness.pulp) for the suite: Basic auth, or its own token service for
    ``auth="token"``. Pulp takes no push without credentials, so it has no open variant."""
    if variant:
        raise ValueError(f"the harness runs Pulp without TLS; no variant {variant}")
    return PulpRegistry(auth="token" if auth == "token" else "basic")


@dataclass(frozen=True)
class RealRegistry:
    """How to run one implementation: ``factory(**Registry variant kwargs)`` returns a started registry with the
    surface of harness.registry.Registry (a context manager, ``host``, ``url``, ``auth_tuple``, ``verify``,
    ``access_log()``...) and a ``version`` (shown in docs/registries.md).

    ``token``: it takes ``auth="token"`` (harness.tokenserver); ``pushes``: seed_fixtures can push to it;
    ``docker_cli``: the docker CLI can push a manifest list to it (else the list is pushed by the harness).
    """

    factory: Callable
    token: bool = False
    pushes: bool = True
    docker_cli: bool = True


# The registration point: one line per implementation (e.g. harness.pulp's, when it lands).
REAL_REGISTRIES = {
    "distribution-2.8": RealRegistry(Registry, token=True),
    "distribution-3": RealRegistry(DistributionRegistry, token=True),
    # docker CLI 20.10's manifest push fails when a blob mount is answered 202 (an upload), as ggcr does.
    "ggcr": RealRegistry(GgcrRegistry, docker_cli=False),
    # the registry of Satellite and Private Automation Hub; Basic auth (no open variant), its own tokens
    "pulp": RealRegistry(pulp_registry, token=True),
}


def missing_peer(reason: str):
    """A test partner that cannot be built here: a skip naming it, or a failure when ARCHFLEET_REQUIRE_PEERS=1
    (as .ci/run sets). Never returns."""
    if os.environ.get("ARCHFLEET_REQUIRE_PEERS") == "1":
        pytest.fail(f"{reason} (ARCHFLEET_REQUIRE_PEERS=1: a missing peer is a failure)", pytrace=False)
    pytest.skip(reason)


def peer_or_skip(name: str) -> str:
    """The binary of peer ``name`` (harness.goregistry.peer_binary), or missing_peer naming it."""
    try:
        return peer_binary(name)
    except PeerUnavailable as missing:
        reason = f"{name}: {missing}"
    missing_peer(reason)


def start_real_registry(implementation: str, **variant):
    """A started registry of ``implementation``; a peer that cannot be built here is missing_peer."""
    reason = None
    try:
        registry = REAL_REGISTRIES[implementation].factory(**variant)
    except PeerUnavailable as missing:
        registry, reason = None, f"{implementation}: {missing}"
    if registry is None:
        missing_peer(reason)
    registry.implementation = implementation
    registry.variant = "token" if variant.get("auth") == "token" else "open"
    return registry
