"""Fixtures the publish layer's unit tests share (test_mirror, test_plan)."""
import pytest
from test_mirror import mirror_source


@pytest.fixture
def source():
    """A registry with a multi-platform index and its referrers in the tag schema (test_mirror.mirror_source)."""
    return mirror_source()
