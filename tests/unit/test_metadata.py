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
