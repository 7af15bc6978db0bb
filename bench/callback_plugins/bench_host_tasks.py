# Benchmark-only callback: counts the task results of every host by status, include_tasks included (each
# is a per-host step of the strategy, as a task is). Enabled only by bench/bench_provision_fleet.py.
from __future__ import annotations

DOCUMENTATION = r"""
name: bench_host_tasks
type: aggregate
short_description: Count each host's task results by status (benchmarks only)
description:
  - Writes, for each host, how many of its task results were ok, changed, skipped, failed, unreachable and
    included to the file named by the E(BENCH_HOST_TASKS_FILE) environment variable, as JSON.
  - C(ok) counts changed results and include_tasks too (as the recap does); C(included) counts the
    include_tasks a host ran.
options: {}
"""

import json
import os
from collections import defaultdict

from ansible.plugins.callback import CallbackBase

STATUSES = ("ok", "changed", "skipped", "failed", "unreachable", "included")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_host_tasks"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("BENCH_HOST_TASKS_FILE")
        self._counts = defaultdict(lambda: dict.fromkeys(STATUSES, 0))

    def _count(self, host, status):
        self._counts[host][status] += 1

    def v2_runner_on_ok(self, result):
        self._count(result._host.get_name(), "ok")
        if result._result.get("changed"):
            self._count(result._host.get_name(), "changed")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result._host.get_name(), "failed")

    def v2_runner_on_skipped(self, result):
        self._count(result._host.get_name(), "skipped")

    def v2_runner_on_unreachable(self, result):
        self._count(result._host.get_name(), "unreachable")

    def v2_playbook_on_include(self, included_file):
        for host in included_file._hosts:
            self._count(host.get_name(), "included")

    def v2_playbook_on_stats(self, stats):
        if self._path:
            with open(self._path, "w") as handle:
                json.dump(self._counts, handle, indent=1, sort_keys=True)
