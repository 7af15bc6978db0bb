"""The test tree keeps its helpers in one place (docs/architecture.md, "Where the tests' helpers live").

* No test imports conftest: shared helpers live in tests/integration/harness (``harness.suite`` for the
  small ones), and conftest.py holds only fixtures, pytest hooks and private helpers of those hooks.
* Each shared helper is defined once in the whole tree: ``unique``, ``skopeo_raw``, ``dpkg_installed``,
  ``binfmt_state`` (the fixture that holds the binfmt_misc lock), ``BinfmtState``.
* Every integration test module that changes the kernel's binfmt_misc table or relies on it holds the lock.
"""
import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
ONCE = ("unique", "skopeo_raw", "dpkg_installed", "binfmt_state", "BinfmtState")


def python_files():
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_test_imports_conftest():
    """docs/architecture.md: "No test imports conftest, and each shared test helper is defined once." """
    offenders = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "conftest":
                offenders.append(str(path.relative_to(TESTS)))
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "conftest" for a in node.names):
                offenders.append(str(path.relative_to(TESTS)))
    assert offenders == []


@pytest.mark.parametrize("name", ONCE)
def test_shared_helpers_are_defined_once(name):
    """docs/architecture.md: "No test imports conftest, and each shared test helper is defined once." """
    where = [str(path.relative_to(TESTS)) for path in python_files()
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name]
    assert len(where) == 1, where


def test_conftest_holds_fixtures_and_hooks_only():
    conftest = TESTS / "integration" / "conftest.py"
    public = []
    for node in ast.parse(conftest.read_text()).body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith(("_", "pytest_")):
            continue
        decorators = [ast.unparse(d) for d in node.decorator_list]
        if not any(d.startswith("pytest.fixture") for d in decorators):
            public.append(node.name)
    assert public == [], "move these to tests/integration/harness: %s" % public


# What changes the kernel's binfmt_misc table in a test: the module, the role that registers emulators, the
# harness's register helpers, make demo, or a look at the table itself.
TOUCHES_BINFMT = re.compile(r"qemu_binfmt|ensure_emulators\(|\.register\(|remove_entry\(|provision\.yml|PROVISION\b|"
                            r"build_host|make_demo|binfmt_misc/")
HOLDS_LOCK = re.compile(r"binfmt_state|BinfmtState\.capture|binfmt_held")
# Modules that match TOUCHES_BINFMT without touching this kernel's table, each with the reason.
NOT_THIS_KERNEL = {
    "test_arm64_host.py": "provisions the arm64 VM, whose kernel has a table of its own",
    "test_buildkit.py": "build_hosts is only the name of an inventory group there",
    "test_galaxy_build.py": "names files of the collection",
}


def test_every_binfmt_test_holds_the_lock():
    """docs/architecture.md: "Every test that changes or relies on the kernel's binfmt_misc table holds the
    binfmt_misc lock." """
    unlocked = [path.name for path in sorted((TESTS / "integration").glob("test_*.py"))
                if TOUCHES_BINFMT.search(path.read_text()) and not HOLDS_LOCK.search(path.read_text())
                and path.name not in NOT_THIS_KERNEL]
    assert unlocked == []
