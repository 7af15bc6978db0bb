"""The architecture as tests (docs/architecture.md): what each layer may import, sizes, test coverage.

* The pure layer (``module_utils/_oci``, ``_binfmt/elf.py``, ``entries.py`` and ``hosts.py``) imports nothing that
  does I/O, directly or transitively: no requests/urllib3, sockets, HTTP, subprocesses, Ansible's
  module runtime, nor the registry client. Checked in a fresh interpreter, so nothing else is loaded.
* ``_errors.py`` and the option parsers that raise its OptionError (``_enumerate``, ``_publish.jobs``)
  load neither ``ansible.module_utils.basic`` nor ``_module``.
* No module_utils file is over 500 lines; no module's code (its documentation strings aside) over 250.
* Every module_utils file is imported by some test under tests/unit.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE_UTILS = ROOT / "plugins" / "module_utils"
PACKAGE = "ansible_collections.archfleet.multiarch.plugins.module_utils"
COLLECTIONS = ROOT / "build" / "collections"

PURE = sorted([p for p in (MODULE_UTILS / "_oci").glob("*.py") if p.name != "__init__.py"]
              + [MODULE_UTILS / "_binfmt" / name for name in ("elf.py", "entries.py", "hosts.py")])
FORBIDDEN = ("requests", "urllib3", "socket", "ssl", "http.client", "urllib.request", "subprocess",
             "ansible.module_utils.basic", PACKAGE + "._registry", PACKAGE + "._module", PACKAGE + "._publish",
             PACKAGE + "._inspect")


def dotted(path):
    relative = path.relative_to(MODULE_UTILS).with_suffix("")
    return PACKAGE + "." + ".".join(relative.parts)


def loaded_by(path):
    """Every module a fresh interpreter loads to import the module_utils file ``path``."""
    probe = ("import sys, json; sys.path.insert(0, %r); before = set(sys.modules); import %s; "
             "print(json.dumps(sorted(set(sys.modules) - before)))" % (str(COLLECTIONS), dotted(path)))
    return json.loads(subprocess.run([sys.executable, "-I", "-c", probe], check=True, capture_output=True,
                                     text=True).stdout)


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(MODULE_UTILS)))
def test_pure_layer_imports_no_io(path):
    """docs/architecture.md: "The pure layer imports nothing that does I/O, directly or transitively." """
    bad = [name for name in loaded_by(path) if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == [], "%s imports I/O code transitively: %s" % (path.name, bad)


@pytest.mark.parametrize("relative", ["_errors.py", "_enumerate.py", "_publish/jobs.py"])
def test_option_errors_need_no_ansible_module(relative):
    """docs/architecture.md: "The option parsers that raise OptionError load no AnsibleModule." (OptionError
    lives in _errors.py, which imports nothing.)"""
    bad = [name for name in loaded_by(MODULE_UTILS / relative)
           if name == "ansible.module_utils.basic" or name == PACKAGE + "._module"]
    assert bad == []


@pytest.mark.parametrize("path", sorted(MODULE_UTILS.rglob("*.py")), ids=lambda p: str(p.relative_to(MODULE_UTILS)))
def test_module_utils_files_stay_small(path):
    """docs/architecture.md: "No module_utils file is over 500 lines." """
    assert len(path.read_text().splitlines()) <= 500


def code_lines(path):
    """Lines of a module without its DOCUMENTATION, EXAMPLES and RETURN strings."""
    source = path.read_text()
    lines = source.splitlines()
    skip = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) in ("DOCUMENTATION", "EXAMPLES", "RETURN")
                                                for t in node.targets):
            skip.update(range(node.lineno, node.end_lineno + 1))
    return len([n for n in range(1, len(lines) + 1) if n not in skip])


@pytest.mark.parametrize("path", sorted((ROOT / "plugins" / "modules").glob("*.py")), ids=lambda p: p.name)
def test_modules_are_thin(path):
    """docs/architecture.md: "No module's code, its documentation strings aside, is over 250 lines." """
    assert code_lines(path) <= 250


def test_every_module_utils_file_is_imported_by_a_unit_test():
    """docs/architecture.md: "Every module_utils file is imported by a unit test." """
    tests = "\n".join(p.read_text() for p in (ROOT / "tests" / "unit").rglob("*.py"))
    missing = []
    for path in sorted(MODULE_UTILS.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        name = dotted(path)
        package, leaf = name.rsplit(".", 1)
        if name not in tests and not ("from %s import %s" % (package, leaf)) in tests:
            missing.append(str(path.relative_to(MODULE_UTILS)))
    assert missing == []


def test_inspection_loads_no_index_assembly_or_publisher():
    """docs/architecture.md: "Inspection loads neither index assembly nor the publisher." (docker_manifest_info's
    AnsiballZ payload carries only what it runs; PlanError lives in _errors.)"""
    loaded = loaded_by(MODULE_UTILS / "_inspect.py")
    assert not [name for name in loaded if name.startswith((PACKAGE + "._oci.index", PACKAGE + "._publish"))]


@pytest.mark.parametrize("package", sorted(p.parent.name for p in MODULE_UTILS.glob("*/__init__.py")))
def test_the_unit_tree_mirrors_the_module_utils_packages(package):
    """docs/architecture.md: "The unit tree mirrors `plugins/module_utils/`." Each package has its test directory,
    and the tests in it import that package."""
    tests = sorted((ROOT / "tests" / "unit" / "plugins" / "module_utils" / package).glob("test_*.py"))
    assert tests, "no tests/unit/plugins/module_utils/%s/" % package
    assert all("module_utils.%s" % package in path.read_text() for path in tests)
