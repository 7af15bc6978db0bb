"""Run every benchmark in bench/ (what `make bench` does) and print the results as Markdown.

Each benchmark starts its own registry and proxy and stops them before the next one
starts, so they do not compete for the machine's cores. Results also go to
build/bench/info.json, build/bench/enumerate.json, build/bench/create.json,
build/bench/load.json, build/bench/referrers.json and build/bench/request_path.json (the request
path under callgrind; set BENCH_REQUEST_PATH_OLD to a checkout of an older tree to measure it beside
this one). The inspect, enumerate and publish benchmarks run crane and regctl (tools/peers.sh) as
contenders, one process after another and ``xargs -P 16``, in the same run (bench/cli_peers.py); a peer
that cannot be built is named in the output and the rest runs. Every bench/bench_*.py is listed in
BENCHMARKS or, with the reason, in RUN_ON_THEIR_OWN (tests/unit/test_bench_run.py checks it).
"""
from __future__ import annotations

import bench_create
import bench_enumerate
import bench_info
import bench_load
import bench_referrers
import bench_request_path
from benchlib import write_results


# (title, module, results name): every bench/bench_*.py, in the order `make bench` runs them.
BENCHMARKS = (("docker_manifest_info", bench_info, "info"),
              ("docker_manifest_info: repositories and digest_only", bench_enumerate, "enumerate"),
              ("docker_manifest_create", bench_create, "create"),
              ("load", bench_load, "load"),
              ("referrers: request counts", bench_referrers, "referrers"),
              ("request path CPU (callgrind)", bench_request_path, "request_path"))

# bench/bench_*.py that `make bench` does not run, each with the reason and how to run it (named in the output).
RUN_ON_THEIR_OWN = {
    "bench_concurrent_merges": "a stress run of mode=merge (16 ansible-playbook writers x 20 rounds, about 25 minutes "
                               "on 2 cores), not a comparison: .venv/bin/python bench/bench_concurrent_merges.py",
}


def main() -> None:
    sections = []
    for title, benchmark, name in BENCHMARKS:
        results = benchmark.run()
        path = write_results(name, results)
        sections.append(f"## {title}\n\n{benchmark.markdown(results)}\n\n(results: {path})")
    sections += [f"Not run by make bench: bench/{name}.py, {reason}" for name, reason in RUN_ON_THEIR_OWN.items()]
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
