"""Shared fixtures for the integration tests (real services, real ansible-playbook)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import foreign_binaries  # noqa: E402
from harness.ansible_run import run_playbook  # noqa: E402
from harness.suite import REAL_REGISTRIES, REGISTRY_VARIANTS, start_real_registry  # noqa: E402


@pytest.fixture(scope="module")
def binfmt_state():
    """The kernel's binfmt_misc table for one test module: the lock that keeps every other user of the
    table out is held, and the entries and /etc/binfmt.d found are put back afterwards."""
    with foreign_binaries.binfmt_held() as state:
        yield state


@pytest.fixture
def playbook():
    """Call ``playbook(yaml_text_or_path, **kwargs)`` to run ansible-playbook for real."""
    return run_playbook


# --- registries --------------------------------------------------------------------------
from harness.images import seed_fixtures  # noqa: E402
from harness.registry import Registry  # noqa: E402


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


# --- real registries: one suite on each (test_registries.py) -------------------------------------
from harness.compat import CompatLog, Operation  # noqa: E402


COMPAT_JSON = Path(__file__).resolve().parents[2] / "build" / "registry-compat.json"
COMPAT = CompatLog()


@pytest.fixture(scope="session", params=list(REAL_REGISTRIES))
def real_registry(request):
    """Each real implementation (ids as in REAL_REGISTRIES), open (Pulp: Basic auth) and plain HTTP, seeded with the standard
    fixtures when it takes pushes (``.fixtures``, else None); ``.implementation``, ``.variant``, ``.version``."""
    spec = REAL_REGISTRIES[request.param]
    with start_real_registry(request.param) as registry:
        COMPAT.versions[request.param] = registry.version
        registry.fixtures = None
        if spec.pushes:
            registry.fixtures = seed_fixtures(registry, **({} if spec.docker_cli else {"docker": None}))
        yield registry


@pytest.fixture
def compat(request, real_registry):
    """The outcome of this test's operation (``@pytest.mark.registry_operation(name)``) on ``real_registry``,
    written to build/registry-compat.json at the end of the session (harness.compat)."""
    marker = request.node.get_closest_marker("registry_operation")
    assert marker, "a test using compat needs @pytest.mark.registry_operation(name)"
    operation = Operation(COMPAT, real_registry.implementation, marker.args[0])
    if real_registry.fixtures is None:
        COMPAT.record(real_registry.implementation, marker.args[0], "unsupported", "takes no pushes: not seeded")
        pytest.skip(f"{real_registry.implementation} takes no pushes")
    yield operation
    report = getattr(request.node, "rep_call", None)
    if report is None or report.skipped:
        return
    operation.finish(report.passed, "" if report.passed else _failure_line(report))


def _failure_line(report) -> str:
    """The first line of a failed test's error (its assertion or exception message)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else report.longreprtext
    return (text.strip().splitlines() or ["failed"])[0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (``rep_call``) for the compat fixture's teardown."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# The real parts of the machine a test needs, as markers, so that one layer runs alone
# (`pytest -m registry tests/integration`, `pytest -m "not kernel and not dockerd"`). They are given here,
# from what each test uses, rather than in each file: a test that uses a registry fixture is `registry`;
# the files below start dockerd, register binfmt_misc entries (root), open Chromium, or run for minutes.
REAL_PART_MARKERS = {
    "registry": "starts or uses a registry on loopback (a fixture named *registry*)",
    "kernel": "reads or writes the kernel's binfmt_misc (root; see the helper rules before running it)",
    "dockerd": "starts a private dockerd or podman",
    "browser": "opens a report in headless Chromium",
    "slow": "runs for minutes (a fresh venv, a whole suite)",
}
MARKED_FILES = {
    "kernel": ("test_qemu_binfmt.py", "test_qemu_binfmt_info.py", "test_build_host.py", "test_fleet.py",
               "test_podman_engine.py", "test_demo.py", "test_buildkit_qemu.py", "test_provision_fleet.py"),
    "dockerd": ("test_build_host.py", "test_fleet.py", "test_podman_engine.py", "test_demo.py", "test_provision_fleet.py",
                "test_docker_manifest_create.py::test_peers_read_and_pull_every_platform",
                "test_arm64_host.py::test_fleet_builds_each_platform_natively_where_its_hardware_is"),
    "browser": ("test_audit_browser.py",),
    # test_arm64_host: an arm64 VM under software emulation (qemu-system-aarch64), image from `make vm`.
    "slow": ("test_first_hour.py", "test_arm64_host.py::test_provision_with_the_role_defaults_on_a_real_arm64_host",
             "test_arm64_host.py::test_fleet_builds_each_platform_natively_where_its_hardware_is"),
}


def pytest_configure(config):
    config.addinivalue_line("markers", "registry_operation(name): the operation a test_registries test records")
    for name, meaning in REAL_PART_MARKERS.items():
        config.addinivalue_line("markers", "%s: %s" % (name, meaning))


REGISTRY_HARNESS = ("harness.registry", "harness.goregistry", "harness.pulp", "harness.tokenserver", "harness.proxy")


def _uses_registry_harness(module) -> bool:
    """Whether a test file starts registries itself (imports from the registry harness modules)."""
    return any(getattr(value, "__module__", None) in REGISTRY_HARNESS or getattr(value, "__name__", None) in REGISTRY_HARNESS
               for value in vars(module).values())


def pytest_collection_modifyitems(config, items):
    """Mark each test with the real parts it needs (REAL_PART_MARKERS), then run last, in this order, the tests
    that hold the binfmt_misc lock and the ones that boot the arm64 VM: `make test` builds the VM's image (which
    holds that lock while it builds its root file system) beside the tests that need neither."""
    for item in items:
        where = "%s::%s" % (item.path.name, item.originalname)
        if any("registry" in name for name in item.fixturenames) or _uses_registry_harness(item.module):
            item.add_marker(pytest.mark.registry)
        for marker, files in MARKED_FILES.items():
            if item.path.name in files or where in files:
                item.add_marker(getattr(pytest.mark, marker))
    items.sort(key=_late)


def _late(item) -> int:
    """0 for most tests, 1 for those on the binfmt_misc table, 2 for those on the arm64 VM (a stable sort keeps the
    order within each)."""
    if item.path.name == "test_arm64_host.py":
        return 2
    return 1 if "binfmt_state" in item.fixturenames or item.get_closest_marker("kernel") else 0


def pytest_sessionfinish(session):
    """Write build/registry-compat.json when the session recorded any registry outcome."""
    if COMPAT.results:
        COMPAT.write(COMPAT_JSON, REAL_REGISTRIES)
