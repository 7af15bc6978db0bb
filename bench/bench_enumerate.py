"""Benchmark: enumerating and digesting every tag of many repositories, docker_manifest_info vs skopeo.

Seeds R (default 40) repositories ``audit/app-NN`` with T (default 25) tags each, every tag an
OCI index of 4 platforms with its own digest (an annotation names the tag), straight into a local
registry, then puts a delaying, counting proxy (~20 ms per request, a model of a remote registry)
in front of it and, in one run, enumerates every tag of every repository and reads its digest:

* ``docker_manifest_info`` with ``repositories`` (the tags API) and ``digest_only: true`` (one
  manifest HEAD per tag) in ONE task, by a real ansible-playbook;
* a no-op ansible-playbook (one ``ansible.builtin.ping`` task): what any playbook costs here;
* a sequential loop: ``skopeo list-tags`` per repository, then ``skopeo inspect --raw`` per tag
  (the cheapest skopeo read of a digest: one manifest GET; the digest is the sha256 of the bytes);
* the module as a process of its own (``python MODULE args.json``, no ansible-playbook around it);
* crane (``crane catalog``, ``crane ls`` per repository, ``crane digest`` per tag) and regctl (``regctl repo
  ls``, ``regctl tag ls``, ``regctl image digest``), bench/cli_peers.py: 16 at a time as one pipeline of
  ``xargs -P 16`` stages (``--repeat`` runs, interleaved with the playbooks), and one process after another
  (once, like the skopeo loop: about a minute each). A peer that cannot be built is named and left out.

Every contender's digests are checked against the seeded ones. Results go to
build/bench/enumerate.json and a Markdown table to stdout.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

from benchlib import Measurement, concurrently, contender_name, interleaved_rounds, measure, median, noop_playbook, \
    paired_difference, ratio, run_command, timed_playbook, verdict, write_results
from cli_peers import MODULE_ALONE, PARALLEL, SEQUENTIAL, XARGS, PeerHomes, against_parallel_peers, contender_row, \
    enumerate_tags, find_peers, markdown_against, markdown_rows, missing_note, module_alone, peer_rows
from harness.ansible_run import play, task
from harness.images import push_image, push_index
from harness.proxy import Proxy
from harness.registry import Registry

PLATFORMS = ("linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le")
TARGET_VS_SKOPEO = 10.0
WIDE = 32   # a second run of the module with this concurrency (the default is 16), for comparison


def tag_names(count: int) -> list[str]:
    return [f"1.{index // 5}.{index % 5}" for index in range(count)]


def seed(registry: Registry, repositories: int, tags: int) -> dict[str, str]:
    """Push the fixtures; return ``{"repository:tag": digest}``. Straight to the registry, concurrently."""
    names = [f"audit/app-{index:02d}" for index in range(repositories)]

    def push_children(repository: str) -> list[dict]:
        labels = {"org.opencontainers.image.title": repository}
        return [push_image(registry.url, repository, platform=platform, labels=labels) for platform in PLATFORMS]

    children = dict(zip(names, concurrently(push_children, names)))
    jobs = [(repository, tag) for repository in names for tag in tag_names(tags)]

    def push_tag(job: tuple[str, str]) -> str:
        repository, tag = job
        return push_index(registry.url, repository, tag, children[repository],
                          annotations={"org.opencontainers.image.version": tag})["digest"]

    return {f"{repository}:{tag}": digest for (repository, tag), digest in zip(jobs, concurrently(push_tag, jobs))}


def with_module(host: str, repositories: list[str], concurrency: int | None = None
                ) -> tuple[tuple[dict[str, str], dict], float]:
    """One ansible-playbook run, one task; returns ((digests by repository:tag, registry_stats), task seconds)."""
    options = {"concurrency": concurrency} if concurrency else {}
    run, timings = timed_playbook(play(task("enumerate", "docker_manifest_info", digest_only=True,
                                            repositories=[f"{host}/{name}" for name in repositories], **options)))
    result = run.result("enumerate")
    digests = {entry["canonical"].split("/", 1)[1]: entry["digest"] for entry in result["images"]}
    return (digests, result["registry_stats"]), timings["enumerate"]


def with_skopeo(host: str, repositories: list[str]) -> dict[str, str]:
    flags = ["--tls-verify=false"]
    digests = {}
    for repository in repositories:
        listed = json.loads(run_command(["skopeo", "list-tags", *flags, f"docker://{host}/{repository}"]).stdout)
        for tag in listed["Tags"]:
            raw = run_command(["skopeo", "inspect", "--raw", *flags, f"docker://{host}/{repository}:{tag}"]).stdout
            digests[f"{repository}:{tag}"] = "sha256:" + hashlib.sha256(raw).hexdigest()
    return digests


def run(repositories: int = 40, tags: int = 25, delay: float = 0.02, repeat: int = 3) -> dict:
    peers = find_peers()
    with Registry() as registry:
        started = time.monotonic()
        seeded = seed(registry, repositories, tags)
        seed_seconds = time.monotonic() - started
        names = sorted({key.split(":")[0] for key in seeded})
        with Proxy(registry, delay=delay) as proxy, PeerHomes(peers, proxy.host) as available:
            # The cheap contenders run `repeat` times, interleaved with each other; the median counts.
            labels = ("no-op ansible-playbook (one ping task)",
                      "docker_manifest_info (repositories, digest_only; one task)",
                      f"docker_manifest_info (repositories, digest_only; one task, concurrency: {WIDE})")
            parallel = {(peer.label, XARGS): (f"{peer.label}, {XARGS}", lambda peer=peer:
                                              (enumerate_tags(peer, XARGS, proxy.host), None)) for peer in available}
            rounds = interleaved_rounds(repeat, proxy, [
                (labels[0], noop_playbook),
                (labels[1], lambda: with_module(proxy.host, names)),
                (labels[2], lambda: with_module(proxy.host, names, WIDE)),
                (MODULE_ALONE, lambda: ({entry["canonical"].split("/", 1)[1]: entry["digest"] for entry in module_alone(
                    "docker_manifest_info", {"digest_only": True, "repositories": [
                        f"{proxy.host}/{name}" for name in names]})["images"]}, None)),
                *parallel.values()])
            peer_runs = {key: rounds[label] for key, (label, _function) in parallel.items()}
            for peer in available:
                peer_runs[(peer.label, SEQUENTIAL)] = [measure(f"{peer.label}, {SEQUENTIAL}", proxy, lambda peer=peer:
                                                               enumerate_tags(peer, SEQUENTIAL, proxy.host))]
            noop_runs, ours_runs, wide_runs = ([measured for measured, _value in rounds[label]] for label in labels)
            for measured, (digests, stats) in rounds[labels[1]]:
                measured.extra["registry_stats"] = stats
                if digests != seeded:
                    raise RuntimeError("docker_manifest_info did not report every seeded tag with its digest")
            if any(digests != seeded for _measured, (digests, _stats) in rounds[labels[2]]):
                raise RuntimeError("docker_manifest_info did not report every seeded tag with its digest")
            skopeo, skopeo_digests = measure("skopeo list-tags + inspect --raw loop", proxy,
                                             lambda: with_skopeo(proxy.host, names))
            if skopeo_digests != seeded:
                raise RuntimeError("skopeo did not report every seeded tag with its digest")
    if any(found != seeded for _measured, found in rounds[MODULE_ALONE]):
        raise RuntimeError("docker_manifest_info as a process of its own did not report every seeded tag")
    for (label, mode), runs in peer_runs.items():
        for _measured, found in runs:
            # One after another: by repository:tag; xargs: the digests only (see enumerate_tags), as a multiset.
            if (found != seeded) if mode == SEQUENTIAL else (sorted(found) != sorted(seeded.values())):
                raise RuntimeError(f"{label} ({mode}) did not report every seeded tag with its digest")
    results = summarise(repositories, tags, delay, seed_seconds, ours_runs, noop_runs, wide_runs, skopeo)
    workload = f"enumerate {repositories} x {tags} tags"
    ours = contender_row(workload, "docker_manifest_info", "one task, concurrency 16 (whole ansible-playbook)",
                         PARALLEL, ours_runs, delay)
    alone = contender_row(workload, "docker_manifest_info", MODULE_ALONE, PARALLEL,
                          [measured for measured, _found in rounds[MODULE_ALONE]], delay)
    rows = [ours,
            contender_row(workload, "docker_manifest_info", f"one task, concurrency {WIDE}", WIDE, wide_runs, delay),
            alone,
            *peer_rows(workload, {key: [measured for measured, _found in runs]
                                  for key, runs in sorted(peer_runs.items())}, delay),
            contender_row(workload, "skopeo 1.9 list-tags + inspect --raw", SEQUENTIAL, 1, [skopeo], delay)]
    results["peers"] = {"rows": rows, "missing": missing_note(peers),
                        "against_parallel": against_parallel_peers(rows, ours, alone)}
    return results


def summarise(repositories: int, tags: int, delay: float, seed_seconds: float, ours_runs: list[Measurement],
              noop_runs: list[Measurement], wide_runs: list[Measurement], skopeo: Measurement) -> dict:
    units = repositories * tags
    ours, noop, wide = median(ours_runs), median(noop_runs), median(wide_runs)
    speedup = ratio(skopeo.seconds, ours.seconds)
    heads = ours.requests.get("HEAD manifest", 0) / units
    gets = ours.requests.get("GET manifest", 0)
    return {
        "benchmark": "enumerate",
        "repositories": repositories,
        "tags_per_repository": tags,
        "references": units,
        "delay_seconds": delay,
        "seed_seconds": seed_seconds,
        "load_average_1min": os.getloadavg()[0],
        "repeat": len(ours_runs),
        "contenders": [m.as_dict(units) for m in (ours, wide, noop, skopeo)],
        "samples": {"ours_seconds": [m.seconds for m in ours_runs], "noop_seconds": [m.seconds for m in noop_runs],
                    "wide_seconds": [m.seconds for m in wide_runs]},
        "ratios": {"skopeo_vs_playbook": speedup, "skopeo_vs_task": ratio(skopeo.seconds, ours.module_seconds),
                   "playbook_minus_noop": paired_difference(ours_runs, noop_runs),
                   "skopeo_vs_wide": ratio(skopeo.seconds, wide.seconds)},
        "targets": {
            "skopeo_loop_10x": {"target": TARGET_VS_SKOPEO, "actual": speedup, "met": speedup >= TARGET_VS_SKOPEO},
            "head_per_tag": {"target": 1, "actual": heads, "met": heads == 1},
            "manifest_gets": {"target": 0, "actual": gets, "met": gets == 0},
        },
    }


def markdown(results: dict) -> str:
    units = results["references"]
    lines = [f"Enumerating and digesting {results['repositories']} repositories x "
             f"{results['tags_per_repository']} tags ({units} references, each an OCI index of 4 platforms), "
             f"{results['delay_seconds'] * 1000:.0f} ms per request at the proxy; the playbooks are the median of "
             f"{results['repeat']} runs (load average {results['load_average_1min']:.1f} after the run):", "",
             "| Contender | Wall time (s) | Requests / tag | Manifest requests / tag | Requests by kind (total) |",
             "|---|---:|---:|---:|---|"]
    for contender in results["contenders"]:
        per = contender["per_unit"]
        name = contender_name(contender)
        kinds = ", ".join(f"{key} {n}" for key, n in contender["requests"].items()) or "none"
        lines.append(f"| {name} | {contender['seconds']:.2f} | {per['total']:.2f} | {per['manifest']:.2f} | {kinds} |")
    ratios, targets = results["ratios"], results["targets"]
    lines += ["", "| Target | Wanted | Actual | Verdict |", "|---|---:|---:|---|",
              f"| skopeo loop / ours (whole ansible-playbook) | >= {TARGET_VS_SKOPEO:.0f}x | "
              f"{ratios['skopeo_vs_playbook']:.1f}x | {verdict(targets['skopeo_loop_10x']['met'])} |",
              f"| skopeo loop / ours (task alone) | | {ratios['skopeo_vs_task']:.1f}x | |",
              f"| skopeo loop / ours with concurrency: {WIDE} (whole ansible-playbook) | | "
              f"{ratios['skopeo_vs_wide']:.1f}x | |",
              f"| manifest HEAD per tag | 1 | {targets['head_per_tag']['actual']:.2f} | "
              f"{verdict(targets['head_per_tag']['met'])} |",
              f"| manifest GETs | 0 | {targets['manifest_gets']['actual']} | "
              f"{verdict(targets['manifest_gets']['met'])} |",
              f"| ours above the no-op playbook | | {ratios['playbook_minus_noop']:.2f} s | |"]
    if "peers" in results:
        lines += ["", "Every contender beside its network floor (requests / concurrency x delay):", "",
                  markdown_rows(results["peers"]["rows"], results["peers"]["missing"]), "",
                  markdown_against(results["peers"]["against_parallel"])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--repositories", type=int, default=40, help="repositories (default 40)")
    parser.add_argument("--tags", type=int, default=25, help="tags per repository (default 25)")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds the proxy waits per request")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each playbook contender (default 3)")
    args = parser.parse_args()
    results = run(args.repositories, args.tags, args.delay, args.repeat)
    path = write_results("enumerate", results)
    print(markdown(results))
    print(f"\n(results written to {path})")


if __name__ == "__main__":
    main()
