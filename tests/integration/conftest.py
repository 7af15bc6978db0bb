"""Shared fixtures for the integration tests (real services, real ansible-playbook)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.ansible_run import run_playbook  # noqa: E402


@pytest.fixture
def playbook():
    """Call ``playbook(yaml_text_or_path, **kwargs)`` to run ansible-playbook for real."""
    return run_playbook


# --- registries --------------------------------------------------------------------------
from harness.images import seed_fixtures  # noqa: E402
from harness.registry import Registry  # noqa: E402

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


@pytest.fixture(scope="session", params=sorted(REGISTRY_VARIANTS))
def seeded_registry(request):
    """Each registry variant, started once per session and seeded with the standard fixtures."""
    with Registry(**REGISTRY_VARIANTS[request.param]) as registry:
        registry.variant = request.param
        registry.fixtures = seed_fixtures(registry)
        yield registry


@pytest.fixture(scope="session")
def open_registry():
    """A plain-HTTP registry without auth, seeded with the standard fixtures."""
    with Registry() as registry:
        registry.variant = "open"
        registry.fixtures = seed_fixtures(registry)
        yield registry


@pytest.fixture(scope="session")
def token_registry():
    """A Bearer-token registry seeded with the standard fixtures; ``reader`` may only pull."""
    users = {"alice": "alice-Secret-Pw1", "reader": "reader-Secret-Pw2"}
    acl = {"alice": {"*": ["pull", "push", "delete"]}, "reader": {"*": ["pull"]}}
    with Registry(auth="token", users=users, acl=acl) as registry:
        registry.variant = "token"
        registry.fixtures = seed_fixtures(registry)
        yield registry
