"""`make try`, the README's first command: the registry side of the collection against a registry started from
the clone, with no dockerd, no emulator, no sudo and nothing written outside the clone (HOME included: the
test gives it an empty one and checks it stays empty), and no process left when it ends."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.ansible_run import COLLECTION_ROOT
from harness.registry import free_port

TRY_DIR = COLLECTION_ROOT / "build" / "try"
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def registry_processes() -> list:
    """docker-registry processes serving make try's config."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            parts = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if str(TRY_DIR / "config.yml").encode() in parts:
            found.append(cmdline.parent.name)
    return found


def binfmt_entries() -> list:
    return sorted(path.name for path in BINFMT.iterdir()) if BINFMT.is_dir() else []


def make_try(home: Path, port: int) -> subprocess.CompletedProcess:
    # The test venv stands in for the one make try would create (same runtime requirements, already installed).
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env["HOME"] = str(home)
    return subprocess.run(["make", "-C", str(COLLECTION_ROOT), "try", f"TRY_VENV={Path(sys.executable).parent.parent}",
                           f"TRY_PORT={port}"], env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.usefixtures("binfmt_state")  # the kernel's binfmt_misc table is compared before/after
def test_make_try_publishes_inspects_audits_and_leaves_nothing_behind(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    before = binfmt_entries()
    port = free_port()

    first = make_try(home, port)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "pushed try/app:1.0-armv7" in first.stdout
    report = json.loads((TRY_DIR / "report" / "audit.json").read_text())
    images = {image["reference"].split("/", 1)[1]: image for image in report["images"]}
    assert sorted(images) == ["try/app:1.0", "try/app:1.0-arm64", "try/nothing:1.0"]
    assert [m["platform_string"] for m in images["try/app:1.0"]["manifests"]] == [
        "linux/amd64", "linux/arm64", "linux/arm/v7"]
    assert (TRY_DIR / "report" / "audit.html").is_file()
    assert f"report: {TRY_DIR / 'report' / 'audit.html'}" in first.stdout

    # Nothing outside the clone: HOME untouched, no emulator registered, no process left.
    assert list(home.iterdir()) == []
    assert binfmt_entries() == before
    assert registry_processes() == []

    # A second run finds the tag as it is.
    again = make_try(home, port)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "(unchanged)" in again.stdout
    assert list(home.iterdir()) == [] and registry_processes() == []
