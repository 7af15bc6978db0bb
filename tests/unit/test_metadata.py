"""The ansible-core and library versions the collection declares are the ones the version matrix tests.

meta/runtime.yml (requires_ansible), every role's min_ansible_version and requirements.txt's lower
bounds must name the oldest venv of the Makefile's version matrix (MATRIX, MATRIX_PINS_<minor>).
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def makefile_variable(name: str) -> list:
    match = re.search(r"^%s\s*:=\s*(.*)$" % re.escape(name), (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"no {name} in the Makefile"
    return match.group(1).split()


def lower_bounds() -> dict:
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return dict(line.split(">=") for line in lines)


def test_oldest_tested_ansible_core_is_the_declared_minimum():
    oldest = min(makefile_variable("MATRIX"), key=lambda minor: tuple(int(part) for part in minor.split(".")))
    assert yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"] == f">={oldest}.0"
    for meta in sorted(ROOT.glob("roles/*/meta/main.yml")):
        assert yaml.safe_load(meta.read_text())["galaxy_info"]["min_ansible_version"] == oldest, meta
    assert lower_bounds()["ansible-core"] == oldest
    pins = dict(pin.split("==") for pin in makefile_variable(f"MATRIX_PINS_{oldest}"))
    assert pins["ansible-core"].startswith(oldest + ".")


def test_lower_bounds_are_what_the_oldest_venv_installs():
    oldest = makefile_variable("MATRIX")[0]
    pins = dict(pin.split("==") for pin in makefile_variable(f"MATRIX_PINS_{oldest}"))
    bounds = lower_bounds()
    assert {name: pins[name] for name in bounds if name != "ansible-core"} == \
        {name: bound for name, bound in bounds.items() if name != "ansible-core"}


def galaxy() -> dict:
    return yaml.safe_load((ROOT / "galaxy.yml").read_text())


def test_one_repository_and_issue_address_everywhere():
    """galaxy.yml's repository and issues are the addresses the README gives, and no file names another."""
    repository, issues = galaxy()["repository"], galaxy()["issues"]
    assert issues.startswith(repository + "/")
    assert galaxy()["documentation"].startswith(repository + "/")
    readme = (ROOT / "README.md").read_text()
    assert repository in readme and issues in readme
    owner = repository.split("/")[3]                              # archfleet
    texts = [ROOT / "README.md", ROOT / "galaxy.yml", *ROOT.glob("docs/**/*.md"), *ROOT.glob("docs/**/*.rst"),
             *ROOT.glob("docs/**/*.yml"), *ROOT.glob("roles/*/meta/*.yml"), *ROOT.glob("plugins/**/*.py")]
    others = []
    for path in texts:
        for url in re.findall(r"https?://[^\s)>\]\"'`]+", path.read_text()):
            if owner in url.split("/")[2] or owner in url.split("/")[3:4]:
                if not url.startswith(repository):
                    others.append(f"{path.relative_to(ROOT)}: {url}")
    assert others == []


def test_the_readme_lists_every_plugin_and_role():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| content | what it does |", 1)[1].split("\n\n", 1)[0]
    names = [path.stem for folder in ("modules", "filter", "lookup") for path in (ROOT / "plugins" / folder).glob("*.py")
             if not path.name.startswith("_")]
    names += [path.name for path in (ROOT / "roles").iterdir() if path.is_dir()]
    assert [name for name in sorted(names) if f"archfleet.multiarch.{name}`" not in table] == []
