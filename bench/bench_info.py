"""Benchmark: inspecting many manifest lists with docker_manifest_info vs docker CLI and skopeo loops.

Seeds N (default 100) Docker manifest lists of 4 platforms each, one per repository
(``fleet/app-NNN:1.0``), straight into a local registry, then puts a delaying, counting
proxy (~20 ms per request, a model of a remote registry) in front of it and, in one run,
inspects every list three ways through the proxy:

* ``docker_manifest_info`` with all references in ONE task, by a real ansible-playbook;
* a no-op ansible-playbook (one ``ansible.builtin.ping`` task): what any playbook costs here, so
  the module's own cost is the difference;
* a sequential loop of ``docker manifest inspect --insecure`` (Debian's docker CLI 20.10);
* a sequential loop of ``skopeo inspect --raw --tls-verify=false``;
* the module as a process of its own (``python MODULE args.json``, no ansible-playbook around it);
* ``crane manifest --insecure`` and ``regctl manifest get --format raw-body`` per reference (bench/cli_peers.py),
  one process after another and 16 at a time (``xargs -P 16 -n 1``); a peer that cannot be built is named
  and left out.

The fixtures are Docker media types because docker CLI 20.10 cannot read an index whose
children are OCI manifests. Each repository's children carry their own label, so every
list has its own digest (nothing can be answered from a cache). The playbooks and the peers run
``--repeat`` times (default 3), interleaved round by round, and their median counts; the docker and
skopeo loops run once. Results go to
build/bench/info.json and a Markdown table to stdout.
"""
from __future__ import annotations

import argparse
import os
import hashlib
import time

from benchlib import Measurement, concurrently, contender_name, interleaved_rounds, measure, median, noop_playbook, \
    paired_difference, ratio, run_command, timed_playbook, verdict, write_results
from cli_peers import MODULE_ALONE, MODES, PARALLEL, SEQUENTIAL, PeerHomes, against_parallel_peers, contender_row, \
    find_peers, inspect, markdown_against, markdown_rows, missing_note, module_alone, peer_rows
from harness.ansible_run import play, task
from harness.images import DOCKER_CLI, docker_cli_env, push_image, push_index
from harness.proxy import Proxy
from harness.registry import Registry

PLATFORMS = ("linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le")
TAG = "1.0"
TARGET_VS_DOCKER = 25.0
TARGET_VS_SKOPEO = 6.0
TARGET_ABOVE_NOOP = 0.6
WIDE = 32   # a second run of the module with this concurrency (the default is 16), for comparison
TARGET_MANIFEST_PER_REF = 1.05


def seed(registry: Registry, count: int) -> list[str]:
    """Push ``count`` Docker manifest lists (4 platforms each); return their repositories.

    Straight to the registry, not through the proxy, and one thread per repository: the
    layer of a platform is the same bytes everywhere (the registry stores it once), only
    the small config differs per repository.
    """
    repositories = [f"fleet/app-{index:03d}" for index in range(count)]

    def push_list(repository: str) -> None:
        labels = {"org.opencontainers.image.title": repository}
        children = [push_image(registry.url, repository, platform=platform, media="docker", labels=labels)
                    for platform in PLATFORMS]
        push_index(registry.url, repository, TAG, children, media="docker")

    concurrently(push_list, repositories)
    return repositories


def inspect_with_module(references: list[str], concurrency: int | None = None) -> tuple[dict, float]:
    """One ansible-playbook run, one task over every reference; returns (result, task seconds)."""
    options = {"concurrency": concurrency} if concurrency else {}
    run, timings = timed_playbook(play(task("inspect", "docker_manifest_info", images=references, **options)))
    result = run.result("inspect")
    broken = [i["reference"] for i in result["images"] if not i["exists"] or len(i["platforms"]) != len(PLATFORMS)]
    if broken:
        raise RuntimeError(f"docker_manifest_info did not see every list with {len(PLATFORMS)} platforms: {broken}")
    return result, timings["inspect"]


def inspect_with_docker(references: list[str], proxy_host: str) -> None:
    # One throwaway DOCKER_CONFIG for the loop: `manifest inspect` of a remote list uses no cache.
    with docker_cli_env(proxy_host) as env:
        for reference in references:
            run_command([DOCKER_CLI, "manifest", "inspect", "--insecure", reference], env=env)


def inspect_with_skopeo(references: list[str]) -> list[str]:
    """Digests of what skopeo read (sha256 of the raw bytes), to check all contenders agree."""
    return ["sha256:" + hashlib.sha256(run_command(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"]).stdout).hexdigest()
        for reference in references]


def run(images: int = 100, delay: float = 0.02, repeat: int = 3) -> dict:
    peers = find_peers()
    with Registry() as registry:
        started = time.monotonic()
        repositories = seed(registry, images)
        seed_seconds = time.monotonic() - started
        with Proxy(registry, delay=delay) as proxy, PeerHomes(peers, proxy.host) as available:
            references = [f"{proxy.host}/{repository}:{TAG}" for repository in repositories]
            labels = ("no-op ansible-playbook (one ping task)", "docker_manifest_info (one task)",
                      f"docker_manifest_info (one task, concurrency: {WIDE})")
            peer_contenders = {(peer.label, mode): (f"{peer.label}, {mode}", lambda peer=peer, mode=mode:
                                                    (inspect(peer, mode, references), None))
                               for peer in available for mode in MODES}
            rounds = interleaved_rounds(repeat, proxy, [
                (labels[0], noop_playbook),
                (labels[1], lambda: inspect_with_module(references)),
                (labels[2], lambda: inspect_with_module(references, WIDE)),
                (MODULE_ALONE, lambda: ([i["digest"] for i in module_alone(
                    "docker_manifest_info", {"images": references})["images"]], None)),
                *peer_contenders.values()])
            noop_runs, ours_runs, wide_runs = ([measured for measured, _value in rounds[label]] for label in labels)
            module_result = rounds[labels[1]][-1][1]
            for measured, result in rounds[labels[1]]:
                measured.extra["registry_stats"] = result["registry_stats"]
            docker = measure("docker manifest inspect loop", proxy,
                             lambda: inspect_with_docker(references, proxy.host))[0]
            skopeo, skopeo_digests = measure("skopeo inspect --raw loop", proxy,
                                             lambda: inspect_with_skopeo(references))
    expected = [i["digest"] for i in module_result["images"]]
    if skopeo_digests != expected:
        raise RuntimeError("skopeo and docker_manifest_info disagree on a digest")
    peer_runs = {key: rounds[label] for key, (label, _function) in peer_contenders.items()}
    if any(digests != expected for _measured, digests in rounds[MODULE_ALONE]):
        raise RuntimeError("docker_manifest_info as a process of its own read another digest")
    for key, runs in peer_runs.items():
        for _measured, digests in runs:
            # One after another: in reference order; xargs: in completion order, so as a multiset.
            if (digests if key[1] == SEQUENTIAL else sorted(digests)) != \
                    (expected if key[1] == SEQUENTIAL else sorted(expected)):
                raise RuntimeError(f"{key[0]} ({key[1]}) and docker_manifest_info disagree on a digest")
    results = summarise(images, delay, seed_seconds, ours_runs, noop_runs, wide_runs, docker, skopeo)
    workload = f"inspect {images} lists"
    ours = contender_row(workload, "docker_manifest_info", "one task, concurrency 16 (whole ansible-playbook)",
                         PARALLEL, ours_runs, delay)
    alone = contender_row(workload, "docker_manifest_info", MODULE_ALONE, PARALLEL,
                          [measured for measured, _digests in rounds[MODULE_ALONE]], delay)
    rows = [ours,
            contender_row(workload, "docker_manifest_info", f"one task, concurrency {WIDE}", WIDE, wide_runs, delay),
            alone,
            *peer_rows(workload, {key: [measured for measured, _digests in runs] for key, runs in peer_runs.items()},
                       delay),
            contender_row(workload, "docker CLI 20.10 manifest inspect", SEQUENTIAL, 1, [docker], delay),
            contender_row(workload, "skopeo 1.9 inspect --raw", SEQUENTIAL, 1, [skopeo], delay)]
    results["peers"] = {"rows": rows, "missing": missing_note(peers),
                        "against_parallel": against_parallel_peers(rows, ours, alone)}
    return results


def summarise(images: int, delay: float, seed_seconds: float, ours_runs: list[Measurement],
              noop_runs: list[Measurement], wide_runs: list[Measurement], docker: Measurement,
              skopeo: Measurement) -> dict:
    ours, noop, wide = median(ours_runs), median(noop_runs), median(wide_runs)
    # Paired: each round's playbook minus that round's no-op playbook (they ran one after the other), median.
    above_noop = paired_difference(ours_runs, noop_runs)
    ratios = {
        "docker_vs_playbook": ratio(docker.seconds, ours.seconds),
        "skopeo_vs_playbook": ratio(skopeo.seconds, ours.seconds),
        "docker_vs_task": ratio(docker.seconds, ours.module_seconds),
        "skopeo_vs_task": ratio(skopeo.seconds, ours.module_seconds),
        "playbook_minus_noop": above_noop,
        "task_minus_noop_task": ours.module_seconds - noop.module_seconds,
        "wide_minus_noop": paired_difference(wide_runs, noop_runs),
        "docker_vs_wide": ratio(docker.seconds, wide.seconds),
        "skopeo_vs_wide": ratio(skopeo.seconds, wide.seconds),
    }
    manifest_per_ref = ours.per(images)["manifest"]
    return {
        "benchmark": "info",
        "references": images,
        "platforms_per_list": len(PLATFORMS),
        "delay_seconds": delay,
        "seed_seconds": seed_seconds,
        "load_average_1min": os.getloadavg()[0],
        "repeat": len(ours_runs),
        "contenders": [m.as_dict(images) for m in (ours, wide, noop, docker, skopeo)],
        "samples": {"ours_seconds": [m.seconds for m in ours_runs], "noop_seconds": [m.seconds for m in noop_runs],
                    "wide_seconds": [m.seconds for m in wide_runs]},
        "ratios": ratios,
        "targets": {
            "above_noop_playbook": {"target": TARGET_ABOVE_NOOP, "actual": above_noop,
                                    "met": above_noop <= TARGET_ABOVE_NOOP},
            "docker_loop_25x": {"target": TARGET_VS_DOCKER, "actual": ratios["docker_vs_playbook"],
                                "met": ratios["docker_vs_playbook"] >= TARGET_VS_DOCKER},
            "skopeo_loop_6x": {"target": TARGET_VS_SKOPEO, "actual": ratios["skopeo_vs_playbook"],
                               "met": ratios["skopeo_vs_playbook"] >= TARGET_VS_SKOPEO},
            "manifest_requests_per_reference": {"target": TARGET_MANIFEST_PER_REF, "actual": manifest_per_ref,
                                                "met": manifest_per_ref <= TARGET_MANIFEST_PER_REF},
        },
    }


def markdown(results: dict) -> str:
    """The results as the Markdown tables docs/performance.md shows."""
    count = results["references"]
    lines = [f"Inspecting {count} manifest lists ({results['platforms_per_list']} platforms each), "
             f"{results['delay_seconds'] * 1000:.0f} ms per request at the proxy"
             f"; the playbooks are the median of {results.get('repeat', 1)} runs "
             f"(load average {results['load_average_1min']:.1f} after the run):", "",
             "| Contender | Wall time (s) | Requests / ref | Manifest requests / ref | Requests (total) |",
             "|---|---:|---:|---:|---:|"]
    for contender in results["contenders"]:
        per = contender["per_unit"]
        lines.append(f"| {contender_name(contender)} | {contender['seconds']:.2f} | {per['total']:.2f} | {per['manifest']:.2f} | "
                     f"{contender['total_requests']} |")
    ratios, targets = results["ratios"], results["targets"]
    lines += ["", "| Target | Wanted | Whole ansible-playbook | Task alone | Verdict |", "|---|---:|---:|---:|---|",
              f"| ours above the no-op playbook (s) | <= {TARGET_ABOVE_NOOP} | {ratios['playbook_minus_noop']:.2f} | "
              f"{ratios['task_minus_noop_task']:.2f} | {verdict(targets['above_noop_playbook']['met'])} |",
              f"| docker loop / ours | >= {TARGET_VS_DOCKER:.0f}x | {ratios['docker_vs_playbook']:.1f}x | "
              f"{ratios['docker_vs_task']:.1f}x | {verdict(targets['docker_loop_25x']['met'])} |",
              f"| skopeo loop / ours | >= {TARGET_VS_SKOPEO:.0f}x | {ratios['skopeo_vs_playbook']:.1f}x | "
              f"{ratios['skopeo_vs_task']:.1f}x | {verdict(targets['skopeo_loop_6x']['met'])} |",
              f"| with concurrency: {WIDE}: above the no-op playbook (s) | | {ratios['wide_minus_noop']:.2f} | | |",
              f"| with concurrency: {WIDE}: docker loop / ours | | {ratios['docker_vs_wide']:.1f}x | | |",
              f"| with concurrency: {WIDE}: skopeo loop / ours | | {ratios['skopeo_vs_wide']:.1f}x | | |",
              f"| manifest requests / ref | <= {TARGET_MANIFEST_PER_REF} | "
              f"{targets['manifest_requests_per_reference']['actual']:.2f} | | "
              f"{verdict(targets['manifest_requests_per_reference']['met'])} |"]
    if "peers" in results:
        lines += ["", "Every contender beside its network floor (requests / concurrency x delay):", "",
                  markdown_rows(results["peers"]["rows"], results["peers"]["missing"]), "",
                  markdown_against(results["peers"]["against_parallel"])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--images", type=int, default=100, help="manifest lists to inspect (default 100)")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds the proxy waits per request")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each playbook contender (default 3)")
    args = parser.parse_args()
    results = run(args.images, args.delay, args.repeat)
    path = write_results("info", results)
    print(markdown(results))
    print(f"\n(results written to {path})")


if __name__ == "__main__":
    main()
