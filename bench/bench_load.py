"""Benchmark: load. docker_manifest_info over 1,000 references, docker_manifest_create of 100 indexes.

Against a local registry (no delay) through the counting proxy, each module runs as its own
process (``python MODULE args.json``, exactly the code a playbook runs, without ansible-playbook
around it) so its peak resident memory can be read with getrusage. Both scale in steps (a quarter,
half, all of the count): memory must stay flat as the count grows, i.e. nothing buffers the whole
registry or every manifest of the run, and the request count must grow linearly.

Seeding: ``--indexes`` (default 100) repositories ``load/app-NNN``, each with one 4-platform
Docker manifest list; the 1,000 references are ten tags per list (so each reference is a real
manifest GET). The 100 published indexes go to ``load-out/app-NNN``, one per source list.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO, concurrently, write_results

from harness.images import push_image, push_index
from harness.proxy import Proxy
from harness.registry import Registry

PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le")
TAGS_PER_INDEX = 10
MODULES = REPO / "plugins" / "modules"
COLLECTIONS = REPO / "build" / "collections"


def seed(registry: Registry, indexes: int, tags_per_index: int = TAGS_PER_INDEX) -> list[str]:
    """One Docker manifest list per repository, under ``TAGS_PER_INDEX`` tags; returns the repositories."""
    repositories = [f"load/app-{index:03d}" for index in range(indexes)]

    def push(repository: str) -> None:
        children = [push_image(registry.url, repository, platform=platform, media="docker",
                               labels={"org.opencontainers.image.title": repository}) for platform in PLATFORMS]
        for tag in range(tags_per_index):
            push_index(registry.url, repository, f"v{tag}", children, media="docker")

    concurrently(push, repositories)
    return repositories


def run_module(name: str, args: dict) -> dict:
    """Run one module as a process of its own; returns its result plus wall time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="af-load-") as tmp:
        args_file = Path(tmp) / "args.json"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        # A fresh interpreter that runs the module and reports the module's own peak RSS: VmHWM of its
        # own address space (getrusage's ru_maxrss would include the benchmark's, kept across execve).
        probe = ("import runpy, sys\n"
                 "sys.argv = [sys.argv[1], sys.argv[2]]\n"
                 "try:\n"
                 "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
                 "finally:\n"
                 "    peak = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
                 "    sys.stderr.write('PEAK_RSS_KIB=%s\\n' % peak[0])\n")
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", probe, str(MODULES / f"{name}.py"), str(args_file)],
                              capture_output=True, text=True, check=False, timeout=1800,
                              env={**os.environ, "PYTHONPATH": str(COLLECTIONS)})
        seconds = time.monotonic() - started
    peak = [int(line.split("=")[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KIB=")]
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"{name} printed no result (rc {proc.returncode}):\n{proc.stdout[-2000:]}"
                           f"{proc.stderr[-2000:]}")
    if result.get("failed"):
        raise RuntimeError(f"{name} failed: {result.get('msg')}")
    return {"result": result, "seconds": seconds, "peak_rss_mib": peak[0] / 1024 if peak else None}


def step(proxy: Proxy, name: str, args: dict, units: int) -> dict:
    proxy.reset()
    outcome = run_module(name, args)
    requests = dict(proxy.counts)
    return {"units": units, "seconds": round(outcome["seconds"], 2),
            "peak_rss_mib": round(outcome["peak_rss_mib"], 1),
            "requests": sum(requests.values()),
            "requests_per_unit": round(sum(requests.values()) / units, 3),
            "writes": proxy.writes,
            "result": outcome["result"]}


def run(indexes: int = 100, tags_per_index: int = TAGS_PER_INDEX) -> dict:
    references = indexes * tags_per_index
    with Registry() as registry:
        started = time.monotonic()
        repositories = seed(registry, indexes, tags_per_index)
        seed_seconds = time.monotonic() - started
        with Proxy(registry) as proxy:
            host = proxy.host
            refs = [f"{host}/{repo}:v{tag}" for tag in range(tags_per_index) for repo in repositories]
            info_steps = []
            for count in (references // 4, references // 2, references):
                measured = step(proxy, "docker_manifest_info", {"images": refs[:count], "concurrency": 16}, count)
                images = measured.pop("result")["images"]
                if len(images) != count or not all(image["exists"] for image in images):
                    raise RuntimeError("docker_manifest_info did not find every reference")
                info_steps.append(measured)
            digest_steps = []
            for count in (references // 4, references // 2, references):
                measured = step(proxy, "docker_manifest_info", {"images": refs[:count], "concurrency": 16,
                                                                "digest_only": True}, count)
                images = measured.pop("result")["images"]
                if len(images) != count or not all(image["exists"] for image in images):
                    raise RuntimeError("docker_manifest_info (digest_only) did not find every reference")
                digest_steps.append(measured)
            create_steps = []
            for count in (indexes // 4, indexes // 2, indexes):
                batch = [{"name": f"{host}/load-out/step{count}-{repo.rsplit('/', 1)[1]}:1",
                          "sources": [f"{host}/{repo}:v0"]} for repo in repositories[:count]]
                measured = step(proxy, "docker_manifest_create", {"indexes": batch, "concurrency": 16}, count)
                published = measured.pop("result")["indexes"]
                if len(published) != count or not all(entry["changed"] for entry in published):
                    raise RuntimeError("docker_manifest_create did not publish every index")
                create_steps.append(measured)
    return {"benchmark": "load", "seed_seconds": round(seed_seconds, 1), "load_average_1min": os.getloadavg()[0],
            "info": info_steps, "digest_only": digest_steps, "create": create_steps,
            "memory_growth": {
                "info_mib": round(info_steps[-1]["peak_rss_mib"] - info_steps[0]["peak_rss_mib"], 1),
                "digest_only_mib": round(digest_steps[-1]["peak_rss_mib"] - digest_steps[0]["peak_rss_mib"], 1),
                "create_mib": round(create_steps[-1]["peak_rss_mib"] - create_steps[0]["peak_rss_mib"], 1)}}


def markdown(results: dict) -> str:
    lines = ["Each module as its own process against a local registry through the counting proxy (no delay); "
             f"load average {results['load_average_1min']:.1f} after the run.", "",
             "| Operation | Count | Wall time (s) | Peak RSS (MiB) | Requests | Requests / unit | Writes |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for title, key, unit in (("docker_manifest_info", "info", "references"),
                             ("docker_manifest_info (digest_only)", "digest_only", "references"),
                             ("docker_manifest_create (indexes)", "create", "indexes")):
        for entry in results[key]:
            lines.append(f"| {title} | {entry['units']} {unit} | {entry['seconds']:.2f} | {entry['peak_rss_mib']:.1f} "
                         f"| {entry['requests']} | {entry['requests_per_unit']:.2f} | {entry['writes']} |")
    growth = results["memory_growth"]
    lines += ["", f"Peak memory growth from a quarter to the whole count: info {growth['info_mib']:+.1f} MiB, "
                  f"digest_only {growth['digest_only_mib']:+.1f} MiB, create {growth['create_mib']:+.1f} MiB."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--indexes", type=int, default=100, help="manifest lists to seed and publish")
    parser.add_argument("--tags-per-index", type=int, default=TAGS_PER_INDEX,
                        help="tags per list; the references inspected are indexes x tags")
    args = parser.parse_args()
    results = run(args.indexes, args.tags_per_index)
    write_results("load", results)
    print(markdown(results))


if __name__ == "__main__":
    main()
