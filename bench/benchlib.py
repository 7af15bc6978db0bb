"""Shared plumbing for the benchmarks in bench/: timing, request counts, results.

The benchmarks reuse the integration-test harness (tests/integration/harness) unchanged:
``Registry`` for a real registry, ``Proxy`` to add a per-request delay (a model of a remote
registry) and to count requests, ``run_playbook`` for real ansible-playbook runs. This module
only adds what a benchmark needs on top: wall-clock timing, per-task timing from inside
ansible-playbook (to separate the module's time from ansible's start-up), request-count
snapshots, and writing results to build/bench/*.json.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, TypeVar

REPO = Path(__file__).resolve().parents[1]
HARNESS_PARENT = REPO / "tests" / "integration"
sys.path.insert(0, str(HARNESS_PARENT))

from harness.ansible_run import HARNESS, PlaybookRun, play, run_playbook  # noqa: E402

RESULTS_DIR = REPO / "build" / "bench"
TIMER_CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
SEED_WORKERS = 16

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Measurement:
    """One contender's run: wall time and the requests the proxy saw while it ran."""

    name: str
    seconds: float
    requests: dict[str, int]            # "METHOD kind" -> count
    total_requests: int
    manifest_requests: int
    writes: int
    module_seconds: float | None = None  # the task's own time, for ansible-playbook runs
    most_in_flight: int = 0              # the most requests the proxy held at once during the run
    client_cpu_seconds: float = 0.0      # user + system CPU of the processes the run started and waited for
    extra: dict = field(default_factory=dict)

    def per(self, units: int) -> dict[str, float]:
        """Requests per reference/publish, the unit the targets are stated in."""
        return {"total": self.total_requests / units, "manifest": self.manifest_requests / units,
                "writes": self.writes / units}

    def as_dict(self, units: int) -> dict:
        return {**asdict(self), "per_unit": self.per(units)}


def measure(name: str, proxy, action: Callable[[], T]) -> tuple[Measurement, T]:
    """Run ``action`` with fresh proxy counts and return its timing, counts and return value.

    The proxy records a request before relaying the answer, so the counts are complete
    as soon as the client has its last response. ``client_cpu_seconds`` is the CPU of the child processes
    the action waited for (getrusage RUSAGE_CHILDREN: ansible-playbook and its module processes, or the
    CLI processes with xargs and bash), not the proxy's threads or the registry's process.
    """
    proxy.reset()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    value = action()
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    requests = {f"{method} {kind}": count for (method, kind), count in sorted(proxy.counts.items())}
    measurement = Measurement(name=name, seconds=seconds, requests=requests, total_requests=proxy.count(),
                              manifest_requests=proxy.count(kind="manifest"), writes=proxy.writes,
                              most_in_flight=proxy.most_in_flight, client_cpu_seconds=cpu)
    return measurement, value


def noop_playbook() -> tuple[None, float]:
    """A playbook with one ``ansible.builtin.ping`` task, the cheapest task that runs a module.

    Returns ``(None, task seconds)``, the shape :func:`interleaved_rounds` takes.
    """
    return None, timed_playbook(play({"name": "noop", "ansible.builtin.ping": {}}))[1]["noop"]


def interleaved_rounds(repeat: int, proxy, contenders: list[tuple[str, Callable[[], tuple[T, float]]]]
                       ) -> dict[str, list[tuple[Measurement, T]]]:
    """Run each contender once per round, ``repeat`` rounds, one after the other, so load hits them alike.

    ``contenders`` is ``[(label, function)]``; ``function()`` returns ``(value, task seconds)``. Returns
    ``{label: [(Measurement, value), ...]}`` in round order, each Measurement with ``module_seconds``.
    """
    runs: dict[str, list[tuple[Measurement, T]]] = {label: [] for label, _function in contenders}
    for _round in range(repeat):
        for label, function in contenders:
            measured, (value, task_seconds) = measure(label, proxy, function)
            measured.module_seconds = task_seconds
            runs[label].append((measured, value))
    return runs


def contender_name(contender: dict) -> str:
    """A contender's name for a Markdown row, with the task's own time when it ran in ansible-playbook."""
    if contender["module_seconds"] is None:
        return contender["name"]
    return f"{contender['name']} (task alone: {contender['module_seconds']:.2f} s)"


def timed_playbook(playbook_text: str) -> tuple[PlaybookRun, dict[str, float]]:
    """Run a playbook with the harness, plus a callback that times each task.

    Returns the run and ``{task name: seconds}``; the task time is the module's own time
    (including AnsiballZ start-up) without ansible-playbook's start-up and inventory work.
    """
    with_timer = {
        "ANSIBLE_CALLBACK_PLUGINS": f"{HARNESS / 'callback_plugins'}:{TIMER_CALLBACKS}",
        "ANSIBLE_CALLBACKS_ENABLED": "record_results,bench_task_timer",
    }
    timings_file = RESULTS_DIR / f".timings-{os.getpid()}.json"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        run = run_playbook(playbook_text, env={**with_timer, "BENCH_TIMINGS_FILE": str(timings_file)})
        if run.rc != 0:
            raise RuntimeError(f"ansible-playbook failed (rc {run.rc}):\n{run.output[-3000:]}")
        return run, json.loads(timings_file.read_text())
    finally:
        timings_file.unlink(missing_ok=True)


def run_command(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one CLI command as a shell loop would, failing loudly: a failed contender is no figure."""
    result = subprocess.run(argv, env=env, capture_output=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return result


def concurrently(function: Callable[[T], R], items: Iterable[T], workers: int = SEED_WORKERS) -> list[R]:
    """Map in a thread pool: seeding is I/O-bound, and a benchmark should not wait on its fixtures."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


def write_results(name: str, results: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def ratio(slower: float, faster: float) -> float:
    return slower / faster if faster else float("inf")


def median(runs: list[Measurement]) -> Measurement:
    """The run with the median wall time (the upper one of an even count): one figure from repeated runs."""
    return sorted(runs, key=lambda m: m.seconds)[len(runs) // 2]


def paired_difference(runs: list[Measurement], baselines: list[Measurement]) -> float:
    """Median of ``runs[i] - baselines[i]``: each run against the baseline measured beside it (same load)."""
    differences = sorted(run.seconds - base.seconds for run, base in zip(runs, baselines))
    return differences[len(differences) // 2]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
