"""Benchmark: playbooks/provision.yml over 1, 5 and 20 build hosts, re-run with nothing to change (issue 22 item 4).

What a "host" is here: this machine under N inventory names, each reached over real SSH through an sshd of
its own (its own port, host key, pid file and authorized_keys; harness/sshd.py) and each with its own state
directory for the file the role manages per host (``build_host_docker_daemon_json_path``). All of them drive
one private dockerd (harness/dockerd.py, started with the same ``insecure-registries`` the role writes), as in
tests/integration/test_fleet.py. Network namespaces would add nothing to this measurement: they separate
network stacks, not what the role reads and writes (files, the dpkg database, binfmt_misc, which is one
kernel-wide table), so every "host" would still be this machine. What the figures therefore include: the
controller's work per host (forks, templating, SSH) and each host's module runs, all on this machine's cores;
on a real fleet the hosts' module runs happen on their own CPUs, so 20 real hosts take less wall time than
20 names here (the tasks per host are the same).

Runs per host count: one converging run (not measured: the first run on a new name writes its daemon.json),
then ``--repeat`` re-runs with nothing to change (``changed=0`` is checked) and ``--repeat`` check-mode runs
(``--check``, the collection's verify-only path: every check of a real run, nothing written), each timed whole
(wall) with the task results per host counted by status (callback bench_host_tasks, include_tasks counted
too) and each task's time (bench_task_timer). The load average is read before and after every run.

Settings: ansible's default ``forks`` (5), pipelining on, connected as root with ``become`` off
(``ansible_become: false``; the machine has no sudo, and ``su`` would turn pipelining off and add round trips a
sudo fleet does not have), the role's defaults except the private dockerd's socket, pid
file and the per-host daemon.json path, ``build_host_docker_daemon_options`` with one ``insecure-registries``
entry (the docs' typical set), and ``build_host_apt_cache_valid_time`` of ten years, so that no run refreshes
the apt lists (a refresh is network time and something to do, not a re-run with nothing to change).

binfmt_misc: provision registers the emulators of ``build_host_platforms`` (kernel-wide). The benchmark holds
the binfmt lock (``BinfmtState.capture()``, /run/lock/archfleet-binfmt.lock) for its whole run and puts the
table and /etc/binfmt.d back at the end; only the converging run may change them. ``--native-only`` sets
``build_host_platforms`` to this machine's own platform instead (a fleet whose hosts build only their own
architecture): qemu_binfmt and qemu_binfmt_info still run on every host, find the platform native and neither
register, run a test program through, nor read an entry, so the table is neither changed nor relied on and the
lock is not taken. The same modules run per host; the test programs of the emulated platforms do not.

Run it with nice on a shared machine: ``nice -n 10 .venv/bin/python bench/bench_provision_fleet.py --hosts 1 5 20``.
``--collection DIR [DIR ...]`` runs the provision.yml and roles of other checkouts (an older tree, for before/after
figures: ``git worktree add /tmp/af-old <commit>``) instead of this one, interleaved round by round.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from benchlib import RESULTS_DIR, TIMER_CALLBACKS, write_results

from harness import foreign_binaries as fb
from harness.ansible_run import COLLECTION_ROOT, HARNESS, run_playbook
from harness.dockerd import Dockerd
from harness.sshd import ClientKey, Sshd, close_control_masters

INSECURE_REGISTRY = "registry.lan:5000"
TEN_YEARS = 10 * 365 * 24 * 3600
HOST_COUNTS = (1, 5, 20)
OWN_PLATFORM = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}


class FleetOfNames:
    """N inventory names for this machine: an sshd and a state directory each, one shared dockerd."""

    def __init__(self, tmp: Path, count: int, daemon: Dockerd, platforms: list | None = None):
        self.tmp, self.daemon, self.platforms = tmp, daemon, platforms
        self.key = ClientKey.generate(tmp / "client")
        self.sshds = {f"host{index:02d}": Sshd(tmp / f"host{index:02d}", self.key.public_path)
                      for index in range(1, count + 1)}
        self.control_dir = tmp / "cp"
        self.control_dir.mkdir()

    def start(self) -> None:
        for sshd in self.sshds.values():
            sshd.start()

    def hosts_cpu_seconds(self) -> float:
        """CPU the hosts' side used so far: user + system time of every sshd's finished children (the connections,
        their shells and the modules they ran), from /proc/<pid>/stat (cutime, cstime). A connection counts once
        it has ended: ``run`` ends ansible's multiplexing masters after each run."""
        total = 0
        for sshd in self.sshds.values():
            pid = (sshd.dir / "sshd.pid").read_text().strip()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[13]) + int(fields[14])   # fields 16 and 17 of proc(5), counted from the state
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        close_control_masters(self.control_dir)
        for sshd in self.sshds.values():
            sshd.stop()

    def inventory(self, count: int) -> str:
        hosts = {}
        for name in list(self.sshds)[:count]:
            state = self.tmp / name / "state"
            state.mkdir(exist_ok=True)
            hosts[name] = {"ansible_port": self.sshds[name].port,
                           "build_host_docker_daemon_json_path": str(state / "daemon.json")}
        group_vars = {
            "ansible_host": "127.0.0.1",
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.key.private_path),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_pipelining": True,
            "ansible_become": False,
            "build_host_docker_host": self.daemon.host,
            "build_host_dockerd_pidfile": str(self.daemon.root / "dockerd.pid"),
            "build_host_docker_daemon_options": {"insecure-registries": [INSECURE_REGISTRY]},
            "build_host_apt_cache_valid_time": TEN_YEARS,
        }
        if self.platforms is not None:
            group_vars["build_host_platforms"] = self.platforms
        path = self.tmp / f"inventory-{count}.json"
        path.write_text(json.dumps({"all": {"children": {"build_hosts": {"hosts": hosts, "vars": group_vars}}}}))
        return str(path)

    def write_converged_state(self, count: int) -> None:
        """Each host's daemon.json with the bytes the role writes (to_nice_json, a newline), mode 0644."""
        for name in list(self.sshds)[:count]:
            path = self.tmp / name / "state" / "daemon.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"insecure-registries": [INSECURE_REGISTRY]}, indent=2, sort_keys=True) + "\n")
            path.chmod(0o644)

    def run(self, collection: Path, inventory: str, check: bool = False) -> dict:
        """One ansible-playbook run of ``collection``'s provision.yml: wall time, CPU, counts, task times."""
        with tempfile.TemporaryDirectory(prefix="af-bench-fleet-") as scratch:
            counts_file, timings_file = Path(scratch) / "counts.json", Path(scratch) / "timings.json"
            # ansible finds the collection under ansible_collections/<namespace>/<name>: link the checkout there.
            link = Path(scratch) / "collections" / "ansible_collections" / "archfleet" / "multiarch"
            link.parent.mkdir(parents=True)
            link.symlink_to(collection.resolve())
            env = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir),
                   "ANSIBLE_COLLECTIONS_PATH": str(Path(scratch) / "collections"),
                   "ANSIBLE_CALLBACK_PLUGINS": f"{HARNESS / 'callback_plugins'}:{TIMER_CALLBACKS}",
                   "ANSIBLE_CALLBACKS_ENABLED": "record_results,bench_task_timer,bench_host_tasks",
                   "BENCH_HOST_TASKS_FILE": str(counts_file), "BENCH_TIMINGS_FILE": str(timings_file)}
            load_before = os.getloadavg()
            cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            hosts_before = self.hosts_cpu_seconds()
            started = time.monotonic()
            run = run_playbook(collection / "playbooks" / "provision.yml", inventory=inventory, check=check, env=env)
            seconds = time.monotonic() - started
            # The multiplexing masters, and so the hosts' sessions, end here (as a later ansible-playbook would
            # start its own), so that the hosts' CPU of this run is counted.
            close_control_masters(self.control_dir)
            time.sleep(1)
            cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            hosts_cpu = self.hosts_cpu_seconds() - hosts_before
            if run.rc != 0:
                raise RuntimeError(f"provision.yml failed (rc {run.rc}):\n{run.output[-4000:]}")
            counts = json.loads(counts_file.read_text())
            timings = json.loads(timings_file.read_text())
        return {"seconds": round(seconds, 2),
                "cpu_seconds": round((cpu_after.ru_utime - cpu_before.ru_utime)
                                     + (cpu_after.ru_stime - cpu_before.ru_stime), 2),
                "hosts_cpu_seconds": round(hosts_cpu, 2),
                "changed": run.changed_total(), "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in os.getloadavg()], "per_host": counts,
                "task_seconds": {name: round(value, 3) for name, value in timings.items()}}


def per_host_shape(counts: dict) -> dict:
    """The task counts every host of a run shares, or each host's when they differ."""
    shapes = {json.dumps(value, sort_keys=True) for value in counts.values()}
    if len(shapes) == 1:
        return json.loads(shapes.pop())
    return {"differs": counts}


def median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def run(host_counts=HOST_COUNTS, repeat: int = 1, collections: tuple = (COLLECTION_ROOT,),
        native_only: bool = False, modes: tuple = ("rerun", "check"), converge: bool = True) -> dict:
    """For each host count: one converging run (the first collection's), then ``repeat`` rounds in which each
    collection runs each of ``modes`` ("rerun", "check"), one after the other (so load hits them alike). Results
    are keyed by host count, then by collection. ``converge=False`` writes each host's daemon.json as a converged
    host has it instead of the converging run (for a machine already converged by an earlier run: packages and
    binfmt_misc entries are the machine's)."""
    platforms = [OWN_PLATFORM[platform.machine()]] if native_only else None
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
               "platforms": platforms or "the role's defaults", "nice": os.nice(0),
               "forks": int(os.environ.get("ANSIBLE_FORKS", "5")), "repeat": repeat,
               "collections": [str(c) for c in collections], "counts": {}}
    # Holds the binfmt_misc lock until restore(); native-only runs neither change nor rely on the table.
    binfmt = None if native_only else fb.BinfmtState.capture()
    try:
        with tempfile.TemporaryDirectory(prefix="af-bench-fleet-") as tmp, \
                Dockerd(insecure_registries=[INSECURE_REGISTRY]) as daemon:
            fleet = FleetOfNames(Path(tmp), max(host_counts), daemon, platforms)
            try:
                fleet.start()
                for count in host_counts:
                    inventory = fleet.inventory(count)
                    if converge:
                        converged = fleet.run(collections[0], inventory)
                    else:
                        fleet.write_converged_state(count)
                        converged = {"seconds": None, "changed": None}
                    runs = {str(c): {mode: [] for mode in modes} for c in collections}
                    for _round in range(repeat):
                        for collection in collections:
                            for mode in modes:
                                measured = fleet.run(collection, inventory, check=mode == "check")
                                if measured["changed"]:
                                    raise RuntimeError(f"{mode} on {count} hosts ({collection}) changed "
                                                       f"{measured['changed']} things")
                                runs[str(collection)][mode].append(measured)
                    results["counts"][str(count)] = {
                        "converge_seconds": converged["seconds"], "converge_changed": converged["changed"],
                        "by_collection": {label: {**{mode: median_run(measured) for mode, measured in by_mode.items()},
                                                  **{f"{mode}_seconds": [r["seconds"] for r in measured]
                                                     for mode, measured in by_mode.items()}}
                                          for label, by_mode in runs.items()}}
            finally:
                fleet.stop()
    finally:
        if binfmt is not None:
            binfmt.restore()
    return results


def markdown(results: dict) -> str:
    lines = [f"{results['date']}, {results['cores']} cores, nice {results['nice']}, forks {results['forks']}, "
             f"median of {results['repeat']} run(s) each, build_host_platforms: {results['platforms']}",
             "",
             "| hosts | collection | re-run wall s | re-run CPU s: controller + hosts "
             "| tasks per host: ok (includes) / skipped | load before -> after | --check wall s "
             "| --check CPU s | --check tasks per host |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(value):
        if "differs" in value:
            return "differs by host"
        return f"{value['ok']} ({value['included']}) / {value['skipped']}"

    for count, entry in results["counts"].items():
        for label, measured in entry["by_collection"].items():
            rerun, check = measured.get("rerun"), measured.get("check")
            row = [count, label]
            if rerun:
                row += [f"{rerun['seconds']:.1f}", f"{rerun['cpu_seconds']:.1f} + {rerun['hosts_cpu_seconds']:.1f}",
                        cell(per_host_shape(rerun["per_host"])),
                        f"{rerun['load_before'][0]:.2f} -> {rerun['load_after'][0]:.2f}"]
            else:
                row += ["-"] * 4
            if check:
                row += [f"{check['seconds']:.1f}", f"{check['cpu_seconds']:.1f} + {check['hosts_cpu_seconds']:.1f}",
                        cell(per_host_shape(check["per_host"]))]
            else:
                row += ["-"] * 3
            lines.append("| " + " | ".join(str(value) for value in row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=list(HOST_COUNTS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--name", default="provision_fleet", help="results file build/bench/<name>.json")
    parser.add_argument("--collection", type=Path, nargs="+", default=[COLLECTION_ROOT],
                        help="checkouts whose playbooks/provision.yml and roles run, interleaved (default: this one)")
    parser.add_argument("--native-only", action="store_true",
                        help="build_host_platforms: this machine's own platform (binfmt_misc untouched, no lock)")
    parser.add_argument("--modes", nargs="+", choices=("rerun", "check"), default=["rerun", "check"])
    parser.add_argument("--no-converge", action="store_true",
                        help="write each host's daemon.json as converged instead of a converging run "
                             "(the machine's packages and binfmt_misc entries must already be as the role wants)")
    args = parser.parse_args()
    results = run(tuple(args.hosts), args.repeat, tuple(args.collection), args.native_only, tuple(args.modes),
                  not args.no_converge)
    path = write_results(args.name, results)
    print(markdown(results))
    print(f"\n(results: {path}; {RESULTS_DIR})")


if __name__ == "__main__":
    main()
