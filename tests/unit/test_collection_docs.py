"""The module, filter and role documentation passes antsibull-docs' collection linter."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / "build" / "collections"
COLLECTION = COLLECTIONS / "ansible_collections" / "archfleet" / "multiarch"


def test_lint_collection_docs():
    venv_bin = Path(sys.executable).parent  # antsibull-docs runs ansible-doc from there
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
           "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    proc = subprocess.run([str(venv_bin / "antsibull-docs"), "lint-collection-docs",
                           "--plugin-docs", "."], cwd=COLLECTION, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
