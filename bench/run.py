"""Run every benchmark in bench/ (what `make bench` does) and print the results as Markdown.

Each benchmark starts its own registry and proxy and stops them before the next one
starts, so they do not compete for the machine's cores. Results also go to
build/bench/info.json, build/bench/enumerate.json, build/bench/create.json,
build/bench/load.json, build/bench/referrers.json, build/bench/provision_fleet.json (root, sshd and dockerd; it
holds the binfmt_misc lock while it runs) and build/bench/request_path.json (the request
path under callgrind; set BENCH_REQUEST_PATH_OLD to a checkout of an older tree to measure it beside
this one). The inspect, enumerate and publish benchmarks run crane and regctl (tools/peers.sh) as
contenders, one process after another and ``xargs -P 16``, in the same run (bench/cli_peers.py); a peer
that cannot be built is named in the output and the rest runs. Every bench/bench_*.py is listed in
BENCHMARKS or in RUN_ON_THEIR_OWN (tests/unit/test_bench_run.py checks it): `make bench` runs them all,
the second kind after the first, each as its own script (``python bench/<name>.py``: stress runs and fleets
that are not one comparison and print their own report). ``BENCH=name,name`` (make bench BENCH=...) runs
only the benchmarks named.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bench_create
import bench_enumerate
import bench_info
import bench_load
import bench_provision_fleet
import bench_referrers
import bench_request_path
from benchlib import write_results


# (title, module, results name): every bench/bench_*.py, in the order `make bench` runs them.
BENCHMARKS = (("docker_manifest_info", bench_info, "info"),
              ("docker_manifest_info: repositories and digest_only", bench_enumerate, "enumerate"),
              ("docker_manifest_create", bench_create, "create"),
              ("load", bench_load, "load"),
              ("referrers: request counts", bench_referrers, "referrers"),
              ("request path CPU (callgrind)", bench_request_path, "request_path"),
              ("provision.yml over 1, 5 and 20 build hosts: a re-run with nothing to change", bench_provision_fleet,
               "provision_fleet"))

# bench/bench_*.py that `make bench` runs as scripts of their own, after BENCHMARKS, each with what it is.
RUN_ON_THEIR_OWN = {
    "bench_concurrent_merges": "a stress run of mode=merge (16 ansible-playbook writers x 20 rounds, about 25 minutes "
                               "on 2 cores), not a comparison",
}


def main() -> None:
    chosen = set(filter(None, os.environ.get("BENCH", "").split(",")))
    known = {entry[1].__name__ for entry in BENCHMARKS} | set(RUN_ON_THEIR_OWN)
    if chosen - known:
        sys.exit("BENCH names %s; the benchmarks are %s" % (sorted(chosen - known), ", ".join(sorted(known))))
    sections = []
    for title, benchmark, name in BENCHMARKS:
        if chosen and benchmark.__name__ not in chosen:
            continue
        results = benchmark.run()
        path = write_results(name, results)
        sections.append(f"## {title}\n\n{benchmark.markdown(results)}\n\n(results: {path})")
    print("\n\n".join(sections), flush=True)
    failed = []
    for name, what in RUN_ON_THEIR_OWN.items():
        if chosen and name not in chosen:
            continue
        print(f"\n## bench/{name}.py: {what}\n", flush=True)
        if subprocess.run([sys.executable, str(Path(__file__).resolve().parent / f"{name}.py")], check=False).returncode:
            failed.append(name)
    if failed:
        sys.exit("failed: %s" % ", ".join(failed))


if __name__ == "__main__":
    main()
