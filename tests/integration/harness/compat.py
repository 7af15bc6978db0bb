"""Which operation works on which real registry: recorded by tests/integration/test_registries.py.

Each test of that suite is one operation (``@pytest.mark.registry_operation("inspect")``) on one
implementation (the ``real_registry`` parameter). Its outcome is recorded in a :class:`CompatLog`:

* ``passed``: the test passed (``detail`` is what the test chose to note, e.g. how a tag was deleted);
* ``unsupported``: the test established that the registry cannot do it and called
  :meth:`Operation.unsupported` with the registry's answer (the test itself then passes);
* ``failed``: the test failed; ``detail`` is the first line of its failure.

``CompatLog.write(path)`` writes (JSON)::

    {"_run": {"date": "YYYY-MM-DD", "complete": bool, "operations": [...], "implementations": [...],
              "versions": {implementation: version}},
     implementation: {operation: {"outcome": "passed"|"unsupported"|"failed", "detail": str}}}

``complete`` is true when every implementation registered in conftest.REAL_REGISTRIES has an outcome for
every operation in OPERATIONS (a run with -k, or with a peer skipped, is not complete).
tools/registries_table.py turns it into the table of docs/registries.md.
"""
from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

# The suite's operations, in the order of the table.
OPERATIONS = ("inspect", "digest_only", "enumeration", "publish", "rerun_no_writes", "merge", "tag_delete",
              "referrers_read", "referrers_copy", "token_auth")
OUTCOMES = ("passed", "unsupported", "failed")
_HOST = re.compile(r"127\.0\.0\.1:\d+")


def scrub(detail: str) -> str:
    """One line, loopback addresses replaced by ``<registry>``: the same text on every run."""
    line = " ".join(str(detail).split())
    return _HOST.sub("<registry>", line)[:300]


class Operation:
    """What one test records about its operation on one implementation."""

    def __init__(self, log: CompatLog, implementation: str, operation: str):
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; known: {', '.join(OPERATIONS)}")
        self.log, self.implementation, self.operation = log, implementation, operation
        self.detail = ""
        self.outcome: str | None = None

    def note(self, detail: str) -> None:
        """Set the detail recorded with a pass (e.g. ``deleted: tombstone``)."""
        self.detail = scrub(detail)

    def unsupported(self, answer: str) -> None:
        """Record that the registry cannot do this; ``answer`` is what the registry (or module) said."""
        self.outcome, self.detail = "unsupported", scrub(answer)

    def finish(self, passed: bool, failure: str = "") -> None:
        """Record the test's end: its own verdict if it gave one and passed, else passed or failed."""
        if not passed:
            self.log.record(self.implementation, self.operation, "failed", failure)
        else:
            self.log.record(self.implementation, self.operation, self.outcome or "passed", self.detail)


class CompatLog:
    """The outcomes of one pytest session (see the module docstring)."""

    def __init__(self):
        self.results: dict[str, dict[str, dict[str, str]]] = {}
        self.versions: dict[str, str] = {}

    def record(self, implementation: str, operation: str, outcome: str, detail: str = "") -> None:
        assert outcome in OUTCOMES, outcome
        self.results.setdefault(implementation, {})[operation] = {"outcome": outcome, "detail": scrub(detail)}

    def complete(self, implementations) -> bool:
        return all(set(OPERATIONS) <= set(self.results.get(name, {})) for name in implementations)

    def write(self, path: Path, implementations) -> None:
        """Write the JSON (shape in the module docstring); ``implementations`` are the registered ids, in order."""
        implementations = list(implementations)
        document: dict = {"_run": {
            "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
            "complete": self.complete(implementations), "operations": list(OPERATIONS),
            "implementations": implementations, "versions": dict(self.versions)}}
        for name in implementations:
            if name in self.results:
                document[name] = {op: self.results[name][op] for op in OPERATIONS if op in self.results[name]}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")
