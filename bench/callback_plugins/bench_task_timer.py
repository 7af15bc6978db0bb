# Benchmark-only callback: records how long each task took, so bench/ can separate the
# module's own time from ansible-playbook's start-up. Enabled only by bench/benchlib.py.
from __future__ import annotations

DOCUMENTATION = r"""
name: bench_task_timer
type: aggregate
short_description: Record per-task wall time to a JSON file (benchmarks only)
description:
  - Writes the wall time of every task (first start to last result) to the file named by the
    E(BENCH_TIMINGS_FILE) environment variable.
options: {}
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_task_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("BENCH_TIMINGS_FILE")
        self._started = {}
        self._durations = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[task.get_name()] = time.monotonic()

    def _finished(self, result):
        name = result._task.get_name()
        if name in self._started:
            self._durations[name] = time.monotonic() - self._started[name]

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _finished

    def v2_playbook_on_stats(self, stats):
        if self._path:
            with open(self._path, "w") as handle:
                json.dump(self._durations, handle, indent=1)
