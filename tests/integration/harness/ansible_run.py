"""Run real ansible-playbook against localhost (or an inventory) and collect results."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HARNESS = Path(__file__).resolve().parent
COLLECTION_ROOT = HARNESS.parents[2]          # the checkout (collection root)
COLLECTIONS_PATH = COLLECTION_ROOT / "build" / "collections"


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    tasks: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def task(self, name: str, host: str | None = None) -> dict:
        """The last recorded entry for the task called ``name``."""
        found = [t for t in self.tasks if t["task"] == name and (host is None or t["host"] == host)]
        if not found:
            raise KeyError(f"no task {name!r} in run; tasks: {[t['task'] for t in self.tasks]}")
        return found[-1]

    def result(self, name: str, host: str | None = None) -> dict:
        return self.task(name, host)["result"]

    def changed_total(self) -> int:
        return sum(s.get("changed", 0) for s in self.stats.values())

    def failed_total(self) -> int:
        return sum(s.get("failures", 0) + s.get("unreachable", 0) for s in self.stats.values())


def run_playbook(playbook, *, extra_vars=None, inventory="localhost,", check=False, diff=False,
                 verbosity=0, env=None, cwd=None, timeout=1800, extra_args=()) -> PlaybookRun:
    """Run ``playbook`` (a path, or YAML text) with ansible-playbook and record every task.

    Returns a PlaybookRun; never raises on a failed play (tests assert on rc/tasks).
    """
    with tempfile.TemporaryDirectory(prefix="af-play-") as tmp:
        tmp = Path(tmp)
        if isinstance(playbook, (str,)) and "\n" in playbook:
            path = tmp / "play.yml"
            path.write_text(playbook)
        else:
            path = Path(playbook)
        record = tmp / "results.json"
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, str(path)]
        if inventory == "localhost,":
            cmd += ["-c", "local"]
        if extra_vars:
            varfile = tmp / "extra_vars.json"
            varfile.write_text(json.dumps(extra_vars))
            cmd += ["-e", f"@{varfile}"]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if verbosity:
            cmd.append("-" + "v" * verbosity)
        cmd += list(extra_args)
        run_env = dict(os.environ)
        run_env.update({
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_CALLBACK_PLUGINS": str(HARNESS / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "record_results",
            "RECORD_RESULTS_FILE": str(record),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_PYTHON_INTERPRETER": run_env.get("ANSIBLE_PYTHON_INTERPRETER", sys.executable),
        })
        if env:
            run_env.update(env)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env,
                              cwd=cwd or tmp, timeout=timeout, check=False)
        data = json.loads(record.read_text()) if record.exists() else {"tasks": [], "stats": {}}
        return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, data["tasks"], data["stats"])


def play(*tasks, hosts="localhost", gather_facts=False, **play_keys) -> str:
    """A one-play playbook (as YAML text; JSON is YAML) running ``tasks`` in order."""
    document = {"hosts": hosts, "gather_facts": gather_facts, "tasks": list(tasks)}
    document.update(play_keys)
    return json.dumps([document], indent=1)


def task(title: str, module: str, ignore_errors: bool = False, **args) -> dict:
    """A task named ``title`` calling ``archfleet.multiarch.<module>`` (or a FQCN) with ``args``."""
    fqcn = module if "." in module else "archfleet.multiarch." + module
    entry = {"name": title, fqcn: args}
    if ignore_errors:
        entry["ignore_errors"] = True
    return entry


def start_playbook(playbook_text: str, workdir: Path) -> subprocess.Popen:
    """Start ansible-playbook on ``playbook_text`` (localhost, local connection) in its own session, so that
    ``os.killpg(proc.pid, signal.SIGKILL)`` kills the controller and the module it runs; output goes to
    ``workdir``/out.txt. For tests that need the process itself (concurrency, SIGKILL)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "play.yml"
    path.write_text(playbook_text)
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(path)]
    run_env = dict(os.environ)
    run_env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": run_env.get("ANSIBLE_PYTHON_INTERPRETER", sys.executable),
    })
    out = open(workdir / "out.txt", "w")   # noqa: SIM115 - closed with the process by the caller's wait
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=run_env, cwd=workdir,
                            start_new_session=True)
