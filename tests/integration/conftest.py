"""Shared fixtures for the integration tests (real services, real ansible-playbook)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.ansible_run import run_playbook  # noqa: E402


@pytest.fixture
def playbook():
    """Call ``playbook(yaml_text_or_path, **kwargs)`` to run ansible-playbook for real."""
    return run_playbook
