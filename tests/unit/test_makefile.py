"""The Makefile's promises to a newcomer: `make help` names every target, and `make test-unit`, `make lint` and
`make docs` need only the virtualenv and the collection link (no apt, no sudo; tests/integration/test_first_hour.py
runs them as an unprivileged user)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()


def phony_targets():
    declaration = re.search(r"^\.PHONY:((?:.*\\\n)*.*)$", MAKEFILE, re.M).group(1)
    return set(declaration.replace("\\\n", " ").split())


def prerequisites(target):
    return re.search(r"^%s:(?!=)(.*)$" % re.escape(target), MAKEFILE, re.M).group(1).split()


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_help_lists_every_target():
    output = subprocess.run(["make", "-s", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True).stdout
    listed = set(re.findall(r"^make ([a-z-]+)", output, re.M))
    assert phony_targets() - listed == set()


@pytest.mark.parametrize("target", ["test-unit", "lint", "docs"])
def test_the_first_hour_targets_need_only_the_venv(target):
    assert set(prerequisites(target)) <= {"venv", "collection"}, prerequisites(target)
