"""`make demo`, the README's main job, run for real twice on a free port and a private directory."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

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


def qemu_state():
    """Names of the qemu-* binfmt_misc entries and /etc/binfmt.d files (what tools/demo_binfmt.py records)."""
    binfmt, binfmt_d = Path("/proc/sys/fs/binfmt_misc"), Path("/etc/binfmt.d")
    return {"entries": sorted(p.name for p in binfmt.glob("qemu-*")),
            "files": sorted(p.name for p in binfmt_d.glob("qemu-*.conf")) if binfmt_d.is_dir() else []}


@pytest.mark.usefixtures("binfmt_state")  # make demo registers emulators; no other user of binfmt_misc meanwhile
def test_make_demo_twice(demo_dir):
    before_demo = qemu_state()
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

    # demo-stop takes back the emulators the demo registered (entries and /etc/binfmt.d files), no more.
    registered = qemu_state()
    stop = subprocess.run(["make", "-s", "demo-stop", f"DEMO_DIR={demo_dir}"], cwd=COLLECTION_ROOT,
                          capture_output=True, text=True, check=False)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "removed the emulators the demo registered" in stop.stdout
    assert qemu_state() == before_demo
    assert set(before_demo["entries"]) <= set(registered["entries"])
