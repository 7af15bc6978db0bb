"""The test tree keeps its helpers in one place (docs/testing.md, "Where things live"; issue 24, item 4).

* No test imports conftest: shared helpers live in tests/integration/harness (``harness.suite`` for the
  small ones), and conftest.py holds only fixtures, pytest hooks and private helpers of those hooks.
* Each shared helper is defined once in the whole tree: ``unique``, ``skopeo_raw``, ``dpkg_installed``,
  ``binfmt_state`` (the fixture that holds the binfmt_misc lock), ``BinfmtState``.
"""
import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
ONCE = ("unique", "skopeo_raw", "dpkg_installed", "binfmt_state", "BinfmtState")


def python_files():
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_test_imports_conftest():
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
