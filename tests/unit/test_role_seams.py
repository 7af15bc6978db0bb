"""Roles as thin as the modules (issue 24, item 2), checked over roles/*/tasks so that it stays true.

- No Jinja loop builds data in a role's tasks or vars: what a role computes comes from a unit-tested filter
  (plugins/filter/), and its tasks only call it.
- No role reads (or sets) another role's private variable (``__<role>_...``): what one role needs from another is a
  documented variable (build_images_results, build_images_docker, build_images_host) or an entry point
  (build_images' verify_architecture).
- Every role hands its registry options to the registry modules as one dict in ``module_defaults`` (as audit does),
  never as task arguments (an option given in the task, even as omit, hides the play's module_defaults).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
NAMES = sorted(path.name for path in ROLES.iterdir() if (path / "tasks").is_dir())
FILES = sorted(path for role in NAMES for part in ("tasks", "vars") for path in (ROLES / role / part).glob("*.yml"))
REGISTRY_MODULES = ("archfleet.multiarch.docker_manifest_info", "archfleet.multiarch.docker_manifest_create")
REGISTRY_OPTIONS = {"username", "password", "insecure_registries", "ca_path", "docker_config"}


def relative(path: Path) -> str:
    return str(path.relative_to(ROLES.parent))


def test_the_roles_are_found():
    assert NAMES == ["audit", "build_host", "build_images", "publish_manifests"]
    assert len(FILES) > 10


@pytest.mark.parametrize("path", FILES, ids=relative)
def test_no_jinja_loop_builds_data(path):
    """docs/architecture.md: "No Jinja loop builds data in a role's tasks." (nor in its vars)"""
    loops = [n for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\{%-?\s*for\b", line)]
    assert loops == [], f"{relative(path)}: Jinja for loops on lines {loops}; use a filter of plugins/filter/"


@pytest.mark.parametrize("path", FILES, ids=relative)
def test_no_role_reads_another_roles_private_variable(path):
    """docs/architecture.md: "No role reads another role's private variable." (nor sets one)"""
    own = path.parent.parent.name
    others = [name for name in NAMES if name != own and not ("__%s_" % own).startswith("__%s_" % name)]
    found = sorted({match.group(0) for match in re.finditer(r"\b__([a-z0-9_]+)", path.read_text())
                    if any(match.group(1).startswith(name + "_") for name in others)
                    and not match.group(1).startswith(own + "_")})
    assert found == [], f"{relative(path)} reads private variables of other roles: {found}"


def tasks_of(items, defaults=None):
    """(task, module_defaults in effect) for every task, blocks unrolled."""
    for task in items or []:
        here = dict(defaults or {})
        here.update(task.get("module_defaults") or {})
        blocks = [task.get(key) for key in ("block", "rescue", "always") if task.get(key)]
        if blocks:
            for block in blocks:
                yield from tasks_of(block, here)
        else:
            yield task, here


@pytest.mark.parametrize("path", sorted(p for role in NAMES for p in (ROLES / role / "tasks").glob("*.yml")),
                         ids=relative)
def test_registry_options_come_from_module_defaults(path):
    """docs/architecture.md: "Every role hands its registry options to the registry modules as one dict in
    `module_defaults`." """
    for task, defaults in tasks_of(yaml.safe_load(path.read_text())):
        for module in REGISTRY_MODULES:
            if module not in task:
                continue
            given = REGISTRY_OPTIONS & set(task[module] or {})
            assert not given, f"{relative(path)}, task {task.get('name')!r}: {sorted(given)} given as task arguments"
            assert module in defaults or "group/archfleet.multiarch.registry" in defaults, (
                f"{relative(path)}, task {task.get('name')!r}: the role's registry options are not in module_defaults")


def test_the_checks_see_what_they_look_for(tmp_path):
    """The patterns find a loop and a foreign private variable where there is one."""
    assert re.search(r"\{%-?\s*for\b", "{%- for x in y %}")
    assert re.search(r"\b__([a-z0-9_]+)", "hostvars[h].__build_images_emulation").group(1).startswith("build_images_")


@pytest.mark.parametrize("role", NAMES)
def test_no_task_registers_over_a_role_variable(role):
    """A registered result would silently replace the role's own variable of that name (a registry options dict
    became a module result once): registered names and vars/main.yml names are apart."""
    variables = set(yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text()) or {})
    registered = {task.get("register") for path in (ROLES / role / "tasks").glob("*.yml")
                  for task, _defaults in tasks_of(yaml.safe_load(path.read_text()))} - {None}
    assert registered & variables == set()
