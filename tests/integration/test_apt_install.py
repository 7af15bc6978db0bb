"""tools/apt_install.sh (the Makefile's apt step) on a machine with an apt source that cannot be fetched.

The extra source is only in a private APT_CONFIG (Dir::Etc::SourceList), and installs are simulated
(apt-get --simulate): the system's sources, architectures and packages are left as they are.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.ansible_run import COLLECTION_ROOT
from harness.suite import dpkg_installed

SCRIPT = COLLECTION_ROOT / "tools" / "apt_install.sh"
pytestmark = [
    pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian/Ubuntu)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="apt-get update needs root"),
]


def run_script(tmp_path, *packages):
    sources = tmp_path / "sources.list"
    system = Path("/etc/apt/sources.list")
    # Keep the system's one-line sources (so their lists stay), plus an index nobody serves.
    sources.write_text((system.read_text() if system.exists() else "")
                       + "\ndeb [arch=armhf] http://127.0.0.1:9/debian unreachable main\n")
    config = tmp_path / "apt.conf"
    config.write_text(f'Dir::Etc::SourceList "{sources}";\n')
    env = {**os.environ, "APT_CONFIG": str(config), "APT_INSTALL_ARGS": "--simulate", "APT_TRIES": "2",
           "APT_RETRY_DELAY": "0"}
    return subprocess.run([str(SCRIPT), *packages], capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.mark.skipif(dpkg_installed("sl"), reason="the test simulates installing sl, which is installed here")
def test_index_failure_is_reported_and_the_install_goes_on(tmp_path):
    # coreutils is installed (skipped); sl is not (its install is simulated).
    proc = run_script(tmp_path, "coreutils", "sl")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installing Debian packages: sl\n" in proc.stdout
    assert "apt-get update could not fetch every index" in proc.stdout
    assert "127.0.0.1:9/debian" in proc.stdout
    assert "Inst sl " in proc.stdout


def test_a_failed_install_fails_after_retries(tmp_path):
    proc = run_script(tmp_path, "archfleet-no-such-package")
    assert proc.returncode == 1
    assert "apt-get install failed (attempt 1 of 2)" in proc.stdout
    assert "apt-get install failed after 2 attempts: could not install archfleet-no-such-package" in proc.stderr


def test_nothing_missing_runs_no_apt_get(tmp_path):
    proc = run_script(tmp_path, "coreutils")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
