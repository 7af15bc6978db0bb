"""CHANGELOG.rst is antsibull-changelog's output for the release galaxy.yml names (runs in the test venv, which has
antsibull-changelog; the version matrix leaves it out, as it does the docs linter)."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def galaxy() -> dict:
    return yaml.safe_load((ROOT / "galaxy.yml").read_text())


def test_the_changelog_is_antsibull_changelogs_output_for_the_version_of_galaxy_yml(tmp_path):
    """CHANGELOG.rst is what `antsibull-changelog generate` writes from changelogs/ (so it is up to date), and the
    release of galaxy.yml's version is in it."""
    import os
    import shutil
    import subprocess
    import sys

    version = galaxy()["version"]
    assert version in yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text())["releases"]
    copy = tmp_path / "ansible_collections" / "archfleet" / "multiarch"
    copy.mkdir(parents=True)
    for name in ("galaxy.yml", "CHANGELOG.rst"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "changelogs", copy / "changelogs", ignore=shutil.ignore_patterns(".plugin-cache.yaml"))
    shutil.copytree(ROOT / "plugins", copy / "plugins", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "roles", copy / "roles")
    shutil.copytree(ROOT / "meta", copy / "meta")
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "ANSIBLE_COLLECTIONS_PATH": str(tmp_path),
           "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false"}
    for command in (["lint"], ["generate"]):
        proc = subprocess.run([str(venv_bin / "antsibull-changelog"), *command], cwd=copy, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    assert (copy / "CHANGELOG.rst").read_text() == (ROOT / "CHANGELOG.rst").read_text()
    assert f"\nv{version}\n" in (ROOT / "CHANGELOG.rst").read_text()
