"""Unit tests import the collection as ansible_collections.archfleet.multiarch (Makefile links it)."""
import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / "build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
