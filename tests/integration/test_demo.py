"""`make demo`, the README's main job, run for real twice on a free port and a private directory."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from harness.ansible_run import COLLECTION_ROOT
from harness.foreign_binaries import BinfmtState
from harness.registry import free_port

PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x"]


@pytest.fixture
def demo_dir():
    directory = COLLECTION_ROOT / "build" / f"test-demo-{os.getpid()}"
    state = BinfmtState.capture()
    yield directory
    subprocess.run(["make", "-s", "demo-stop", f"DEMO_DIR={directory}"], cwd=COLLECTION_ROOT,
                   capture_output=True, check=False)
    state.restore()
    subprocess.run(["rm", "-rf", str(directory)], check=False)


def make_demo(port, directory):
    return subprocess.run(["make", "demo", f"DEMO_PORT={port}", f"DEMO_DIR={directory}"], cwd=COLLECTION_ROOT,
                          capture_output=True, text=True, timeout=1200, check=False)


def recap_changed(output):
    line = [entry for entry in output.splitlines() if entry.startswith("localhost ")][-1]
    return int(line.split("changed=")[1].split()[0])


def test_make_demo_twice(demo_dir):
    port = free_port()
    first = make_demo(port, demo_dir)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    report = json.loads((demo_dir / "audit.json").read_text())
    assert report["summary"]["status"] == "pass", report["summary"]
    assert (demo_dir / "audit.md").exists() and (demo_dir / "audit.html").exists()
    images = {image["reference"]: image for image in report["images"]}
    published = images[f"127.0.0.1:{port}/demo/app:1.0"]
    assert published["platforms"] == PLATFORMS
    assert f"Audit report: {demo_dir}/audit.html" in first.stdout
    assert "make demo-stop" in first.stdout

    second = make_demo(port, demo_dir)
    assert second.returncode == 0, second.stdout[-6000:]
    assert recap_changed(second.stdout) == 0, second.stdout[-6000:]
