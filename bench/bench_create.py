"""Benchmark: publishing multi-arch images with docker_manifest_create vs docker manifest create + push.

Seeds per-architecture builds the way a CI pipeline leaves them: N (default 20) repositories
``builds/app-NN`` with one Docker image per platform tag (``:amd64``, ``:arm64``, ``:armv7``,
``:ppc64le``). Each contender then publishes every app as a 4-platform manifest list into a
repository of its own (``release/app-NN:1.0`` for the module, ``release-cli/app-NN:1.0`` for
the docker CLI), so every blob is a cross-repository mount. All traffic goes through a
delaying, counting proxy (~20 ms per request, a model of a remote registry).

* ``docker_manifest_create``, one task: ONE ansible-playbook with ONE task publishing the N apps
  through ``indexes`` (one module run, one session, concurrent): how a release should be published.
* ``docker_manifest_create``, loop: ONE task looping over the N apps (one module run per app, into
  ``release-loop/``), to show what Ansible's per-item start-up costs.
* docker CLI 20.10: ``docker manifest create --insecure`` + ``docker manifest push --insecure``
  per app, with a fresh DOCKER_CONFIG (empty manifest cache) per run, as on a fresh CI runner.
* crane (``crane index append --docker-empty-base -m SRC... -t TARGET``) and regctl (``regctl index create
  --media-type <Docker list> TARGET --ref SRC...``) per app, bench/cli_peers.py: one process after another
  and 16 at a time (``xargs -P 16 -L 1``), each into repositories of its own (``release-crane-par-r0/``, ...).
  Their rounds interleave with the module's repeated first runs: round N runs the module once, then each
  peer contender's first run and re-run. A peer that cannot be built is named and left out.
* in the same rounds, the module as a process of its own (``python MODULE args.json`` with ``indexes``, into
  ``release-alone-rN/``): the collection's code without ansible-playbook around it.

Each contender runs twice: the first run publishes, the re-run publishes the same sources
again (nothing changed). Results go to build/bench/create.json and Markdown to stdout.
"""
from __future__ import annotations

import argparse
import os
import time

from benchlib import Measurement, concurrently, contender_name, measure, median, ratio, run_command, \
    timed_playbook, verdict, write_results
from cli_peers import DOCKER_LIST, MODULE_ALONE, MODES, PARALLEL, SEQUENTIAL, PeerHomes, against_parallel_peers, \
    contender_row, find_peers, markdown_against, markdown_rows, missing_note, module_alone, peer_rows, publish
from harness.ansible_run import play
from harness.images import DOCKER_CLI, PushClient, docker_cli_env, push_image
from harness.proxy import Proxy
from harness.registry import Registry

PLATFORM_TAGS = {"amd64": "linux/amd64", "arm64": "linux/arm64/v8", "armv7": "linux/arm/v7",
                 "ppc64le": "linux/ppc64le"}
RELEASE_TAG = "1.0"
TARGET_VS_DOCKER = 10.0
WIDE = 32   # the one-task contender again with this concurrency (the default is 16), into release-wide/


def seed(registry: Registry, apps: int) -> dict[str, dict[str, str]]:
    """Push every app's per-platform builds; return ``{app: {platform tag: child digest}}``.

    Straight to the registry, concurrently. Docker media types with 3-space indentation
    (push_image's ``media="docker"``), because docker CLI 20.10 re-indents the children it
    copies and can only read Docker v2 children. A per-app label gives each app its own digests.
    """
    names = [f"app-{index:02d}" for index in range(apps)]
    jobs = [(name, tag) for name in names for tag in PLATFORM_TAGS]

    def push(job: tuple[str, str]) -> str:
        name, tag = job
        return push_image(registry.url, f"builds/{name}", tag, platform=PLATFORM_TAGS[tag], media="docker",
                          labels={"org.opencontainers.image.title": name})["digest"]

    digests = dict(zip(jobs, concurrently(push, jobs)))
    return {name: {tag: digests[(name, tag)] for tag in PLATFORM_TAGS} for name in names}


def sources(host: str, app: str) -> list[str]:
    return [f"{host}/builds/{app}:{tag}" for tag in PLATFORM_TAGS]


def publish_with_module(host: str, apps: list[str], expect_changed: bool,
                        batch: bool, concurrency: int | None = None,
                        repository: str | None = None) -> tuple[list[dict], float]:
    """One playbook with one task: all apps in ``indexes`` (batch), or a loop of one app per item.

    Returns (each app's result, task seconds). Targets are per contender, so both publish from scratch;
    ``repository`` overrides the contender's repository prefix (the repeated first runs).
    """
    repository = repository or (("release-wide" if concurrency else "release") if batch else "release-loop")
    items = [{"name": f"{host}/{repository}/{app}:{RELEASE_TAG}", "sources": sources(host, app)} for app in apps]
    if batch:
        options = {"concurrency": concurrency} if concurrency else {}
        publish = {"name": "publish", "archfleet.multiarch.docker_manifest_create": {"indexes": items, **options}}
    else:
        publish = {"name": "publish", "archfleet.multiarch.docker_manifest_create":
                   {"name": "{{ item.name }}", "sources": "{{ item.sources }}"},
                   "loop": items, "loop_control": {"label": "{{ item.name }}"}}
    run, timings = timed_playbook(play(publish))
    results = run.result("publish")["indexes" if batch else "results"]
    unexpected = [r["tags"][0] for r in results if r["changed"] is not expect_changed]
    if unexpected:
        raise RuntimeError(f"docker_manifest_create: changed was not {expect_changed} for {unexpected}")
    return results, timings["publish"]


def publish_with_docker(host: str, apps: list[str]) -> None:
    """`docker manifest create` + `push` per app, from an empty manifest cache (fresh DOCKER_CONFIG)."""
    with docker_cli_env(host) as env:
        for app in apps:
            target = f"{host}/release-cli/{app}:{RELEASE_TAG}"
            run_command([DOCKER_CLI, "manifest", "create", "--insecure", target, *sources(host, app)], env=env)
            run_command([DOCKER_CLI, "manifest", "push", "--insecure", target], env=env)


def check_published(registry: Registry, builds: dict[str, dict[str, str]], peer_prefixes: list[str] = ()) -> None:
    """Every contender's lists hold exactly the builds' digests (read straight from the registry); the
    peers' lists are also Docker manifest lists with the builds' platforms, as docker_manifest_create writes."""
    wanted_platforms = sorted(PLATFORM_TAGS.values())
    with PushClient(registry.url) as client:
        for app, children in builds.items():
            for prefix in ("release", "release-wide", "release-loop", "release-cli", *peer_prefixes):
                repository = f"{prefix}/{app}"
                published = client.get_manifest(repository, RELEASE_TAG).json()
                if sorted(m["digest"] for m in published["manifests"]) != sorted(children.values()):
                    raise RuntimeError(f"{repository}:{RELEASE_TAG} does not hold the builds of {app}")
                platforms = sorted("/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"],
                                                          m["platform"].get("variant"))))
                                   for m in published["manifests"])
                if prefix in peer_prefixes and (published.get("mediaType") != DOCKER_LIST or
                                                platforms != wanted_platforms):
                    raise RuntimeError(f"{repository}:{RELEASE_TAG} is not a Docker manifest list of "
                                       f"{wanted_platforms}: {published.get('mediaType')}, {platforms}")


def peer_round(proxy, available: list, host: str, apps: list[str], round_number: int,
               runs: dict[tuple[str, str, str], list[Measurement]], prefixes: list[str]) -> None:
    """The module process alone, then each peer contender, publishes every app into repositories of its own
    (first run), then again (re-run)."""
    prefix = f"release-alone-r{round_number}"
    prefixes.append(prefix)
    items = [{"name": f"{host}/{prefix}/{app}:{RELEASE_TAG}", "sources": sources(host, app)} for app in apps]
    for run_name, expect_changed in (("first run", True), ("re-run", False)):
        measured, result = measure(f"docker_manifest_create, {MODULE_ALONE}, {run_name}", proxy,
                                   lambda: module_alone("docker_manifest_create", {"indexes": items}))
        if result["changed"] is not expect_changed:
            raise RuntimeError(f"docker_manifest_create alone, {run_name}: changed is {result['changed']}")
        runs.setdefault(("docker_manifest_create", MODULE_ALONE, run_name), []).append(measured)
    for peer in available:
        for mode in MODES:
            prefix = f"release-{peer.name}-{'seq' if mode == SEQUENTIAL else 'par'}-r{round_number}"
            prefixes.append(prefix)
            jobs = [(f"{host}/{prefix}/{app}:{RELEASE_TAG}", sources(host, app)) for app in apps]
            for run_name in ("first run", "re-run"):
                measured = measure(f"{peer.label}, {mode}, {run_name}", proxy,
                                   lambda peer=peer, mode=mode, jobs=jobs: publish(peer, mode, jobs))[0]
                runs.setdefault((peer.label, mode, run_name), []).append(measured)


def run(apps: int = 20, delay: float = 0.02, repeat: int = 3) -> dict:
    peers = find_peers()
    peer_runs: dict[tuple[str, str, str], list[Measurement]] = {}
    peer_prefixes: list[str] = []
    with Registry() as registry:
        started = time.monotonic()
        builds = seed(registry, apps)
        seed_seconds = time.monotonic() - started
        names = list(builds)
        with Proxy(registry, delay=delay) as proxy, PeerHomes(peers, proxy.host) as available:
            host = proxy.host
            first_samples_runs = []
            measurements = {}
            for run_name, expect_changed in (("first run", True), ("re-run", False)):
                contenders = []
                for label, batch, concurrency in (("one task, indexes", True, None),
                                                  (f"one task, indexes, concurrency: {WIDE}", True, WIDE),
                                                  ("loop, one task item per image", False, None)):
                    ours, (results, task_seconds) = measure(
                        f"docker_manifest_create {label}, {run_name}", proxy,
                        lambda expect=expect_changed, batch=batch, concurrency=concurrency:
                        publish_with_module(host, names, expect, batch, concurrency))
                    ours.module_seconds = task_seconds
                    contenders.append(ours)
                if expect_changed:
                    # The one-task first run again into fresh repositories: the median of all its runs counts.
                    # Each round also runs every peer contender (first run and re-run), so load hits all alike.
                    samples = [contenders[0]]
                    peer_round(proxy, available, host, names, 0, peer_runs, peer_prefixes)
                    for round_number in range(1, repeat):
                        again, (results, task_seconds) = measure(
                            f"docker_manifest_create one task, indexes, {run_name}", proxy,
                            lambda round_number=round_number: publish_with_module(
                                host, names, True, True, None, f"release-r{round_number}"))
                        again.module_seconds = task_seconds
                        samples.append(again)
                        peer_round(proxy, available, host, names, round_number, peer_runs, peer_prefixes)
                    first_samples_runs = samples
                    first_samples = [m.seconds for m in samples]
                    contenders[0] = median(samples)
                docker = measure(f"docker manifest create + push, {run_name}", proxy,
                                 lambda: publish_with_docker(host, names))[0]
                measurements[run_name] = (*contenders, docker)
        check_published(registry, builds, peer_prefixes)
    results = summarise(apps, delay, seed_seconds, measurements)
    if repeat > 1:
        results["samples"] = {"first_run_one_task_seconds": first_samples}
    rows, against = [], {}
    for run_name in ("first run", "re-run"):
        workload = f"publish {apps} lists, {run_name}"
        ours_runs = first_samples_runs if run_name == "first run" else [measurements[run_name][0]]
        ours = contender_row(workload, "docker_manifest_create", "one task, indexes, concurrency 16 "
                             "(whole ansible-playbook)", PARALLEL, ours_runs, delay)
        peer_rows_now = peer_rows(workload, {(label, mode): runs for (label, mode, name), runs in peer_runs.items()
                                             if name == run_name and mode != MODULE_ALONE}, delay)
        alone = contender_row(workload, "docker_manifest_create", MODULE_ALONE + ", indexes", PARALLEL,
                              peer_runs[("docker_manifest_create", MODULE_ALONE, run_name)], delay)
        rows += [ours,
                 contender_row(workload, "docker_manifest_create", f"one task, indexes, concurrency {WIDE}", WIDE,
                               [measurements[run_name][1]], delay),
                 contender_row(workload, "docker_manifest_create", "loop, one task item per image", 1,
                               [measurements[run_name][2]], delay),
                 alone,
                 *peer_rows_now,
                 contender_row(workload, "docker CLI 20.10 manifest create + push", SEQUENTIAL, 1,
                               [measurements[run_name][3]], delay)]
        against[run_name] = against_parallel_peers(peer_rows_now, ours, alone)
    results["peers"] = {"rows": rows, "missing": missing_note(peers), "against_parallel": against}
    return results


def summarise(apps: int, delay: float, seed_seconds: float,
              measurements: dict[str, tuple[Measurement, Measurement, Measurement, Measurement]]) -> dict:
    first_ours, first_wide, first_loop, first_docker = measurements["first run"]
    rerun_ours = measurements["re-run"][0]
    speedup = ratio(first_docker.seconds, first_ours.seconds)
    heads = rerun_ours.requests.get("HEAD manifest", 0) / apps
    other_manifest = (rerun_ours.manifest_requests - rerun_ours.requests.get("HEAD manifest", 0)) / apps
    return {
        "benchmark": "create",
        "publishes": apps,
        "platforms_per_publish": len(PLATFORM_TAGS),
        "delay_seconds": delay,
        "seed_seconds": seed_seconds,
        "load_average_1min": os.getloadavg()[0],
        "runs": {run_name: [m.as_dict(apps) for m in pair] for run_name, pair in measurements.items()},
        "ratios": {
            "first_run_docker_vs_playbook": speedup,
            "first_run_docker_vs_task": ratio(first_docker.seconds, first_ours.module_seconds),
            "first_run_docker_vs_loop": ratio(first_docker.seconds, first_loop.seconds),
            "first_run_docker_vs_wide": ratio(first_docker.seconds, first_wide.seconds),
            "rerun_docker_vs_playbook": ratio(measurements["re-run"][3].seconds, rerun_ours.seconds),
        },
        "targets": {
            "first_run_10x": {"target": TARGET_VS_DOCKER, "actual": speedup, "met": speedup >= TARGET_VS_DOCKER},
            "rerun_zero_writes": {"target": 0, "actual": rerun_ours.writes, "met": rerun_ours.writes == 0},
            "rerun_heads_per_source": {"target": 1, "actual": heads / len(PLATFORM_TAGS),
                                       "met": heads <= len(PLATFORM_TAGS)},
            "rerun_tag_requests": {"target": 1, "actual": other_manifest, "met": other_manifest <= 1},
        },
    }


def markdown(results: dict) -> str:
    count = results["publishes"]
    samples = (results.get("samples") or {}).get("first_run_one_task_seconds")
    lines = [f"Publishing {count} images of {results['platforms_per_publish']} platforms each "
             f"(cross-repository sources), {results['delay_seconds'] * 1000:.0f} ms per request at the proxy "
             f"(load average {results['load_average_1min']:.1f} after the run)"
             + (f"; the one-task first run is the median of {len(samples)} runs "
                f"({', '.join(f'{s:.2f}' for s in samples)} s)" if samples else "") + ":", "",
             "| Contender | Wall time (s) | Requests / publish | Manifest req. / publish | HEAD manifest / publish "
             "| Writes / publish | Requests by kind (total) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for contenders in results["runs"].values():
        for contender in contenders:
            per = contender["per_unit"]
            name = contender_name(contender)
            kinds = ", ".join(f"{key} {n}" for key, n in contender["requests"].items())
            lines.append(f"| {name} | {contender['seconds']:.2f} | {per['total']:.2f} | {per['manifest']:.2f} | "
                         f"{contender['requests'].get('HEAD manifest', 0) / count:.2f} | {per['writes']:.2f} "
                         f"| {kinds} |")
    ratios, targets = results["ratios"], results["targets"]
    lines += ["", "| Target | Wanted | Actual | Verdict |", "|---|---:|---:|---|",
              f"| first run, docker CLI / ours (whole ansible-playbook) | >= {TARGET_VS_DOCKER:.0f}x | "
              f"{ratios['first_run_docker_vs_playbook']:.1f}x | {verdict(targets['first_run_10x']['met'])} |",
              f"| first run, docker CLI / ours (task alone) | | {ratios['first_run_docker_vs_task']:.1f}x | |",
              f"| first run, docker CLI / ours with concurrency: {WIDE} (whole ansible-playbook) | | "
              f"{ratios['first_run_docker_vs_wide']:.1f}x | |",
              f"| first run, docker CLI / ours as a loop of 20 task items | | "
              f"{ratios['first_run_docker_vs_loop']:.1f}x | |",
              f"| re-run writes | 0 | {targets['rerun_zero_writes']['actual']} | "
              f"{verdict(targets['rerun_zero_writes']['met'])} |",
              f"| re-run HEAD per source | <= 1 | {targets['rerun_heads_per_source']['actual']:.2f} | "
              f"{verdict(targets['rerun_heads_per_source']['met'])} |",
              f"| re-run other manifest requests per publish (the tag) | <= 1 | "
              f"{targets['rerun_tag_requests']['actual']:.2f} | {verdict(targets['rerun_tag_requests']['met'])} |"]
    if "peers" in results:
        lines += ["", "Every contender beside its network floor (requests / concurrency x delay):", "",
                  markdown_rows(results["peers"]["rows"], results["peers"]["missing"])]
        for run_name, against in results["peers"]["against_parallel"].items():
            if against:
                lines += ["", f"{run_name}:", "", markdown_against(against)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--apps", type=int, default=20, help="multi-arch images to publish (default 20)")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds the proxy waits per request")
    parser.add_argument("--repeat", type=int, default=3,
                        help="first runs of the one-task contender (into fresh repositories); the median counts")
    args = parser.parse_args()
    results = run(args.apps, args.delay, args.repeat)
    path = write_results("create", results)
    print(markdown(results))
    print(f"\n(results written to {path})")


if __name__ == "__main__":
    main()
