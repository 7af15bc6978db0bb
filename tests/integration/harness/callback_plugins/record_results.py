# Test-suite callback: records every task result as JSON so integration tests can
# assert on real ansible-playbook runs. Enabled only by the test harness.
from __future__ import annotations

DOCUMENTATION = r"""
name: record_results
type: aggregate
short_description: Record task results to a JSON file (test suite only)
description:
  - Writes every task result and the play recap to the file named by the
    E(RECORD_RESULTS_FILE) environment variable.
options: {}
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("RECORD_RESULTS_FILE")
        self._tasks = []

    def _record(self, result, status):
        self._tasks.append({
            "task": result._task.get_name(),
            "action": result._task.action,
            "host": result._host.get_name(),
            "status": status,
            "result": self._clean(dict(result._result, failed=status in ("failed", "ignored"))),
        })

    @staticmethod
    def _clean(data):
        return json.loads(json.dumps(data, default=str))

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if not self._path:
            return
        recap = {h: stats.summarize(h) for h in sorted(stats.processed.keys())}
        with open(self._path, "w") as handle:
            json.dump({"tasks": self._tasks, "stats": recap}, handle, indent=1)
