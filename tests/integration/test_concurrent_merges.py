"""Concurrent amends converge: eight ansible-playbook runs started together, each merging one platform
into the same tag (per-architecture CI jobs amending one release), over several rounds.

Without the read-back every round lost platforms (the race ``buildx imagetools create --append``
users report); with it, every run succeeds and the index ends with all eight platforms.
"""
from __future__ import annotations

import itertools
import json
import os
from concurrent.futures import ThreadPoolExecutor

import requests

from harness.ansible_run import play, task
from harness.images import ALL_MANIFEST_TYPES, push_image

PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/ppc64le", "linux/s390x",
             "linux/riscv64", "linux/386"]
# More rounds for a stress run: CONCURRENT_MERGE_ROUNDS=40 (about 8 minutes).
ROUNDS = int(os.environ.get("CONCURRENT_MERGE_ROUNDS", "3"))
_counter = itertools.count()


def test_eight_concurrent_merges_lose_no_platform(playbook, open_registry):
    h = open_registry.host
    repo = f"concurrent/app-{next(_counter)}"
    for platform in PLATFORMS:
        push_image(open_registry.url, repo, "build-" + platform.replace("/", "-"), platform=platform)
    for round_number in range(ROUNDS):
        target = f"{h}/{repo}:round{round_number}"

        def amend(platform):
            source = f"{h}/{repo}:build-" + platform.replace("/", "-")
            return playbook(play(task("amend", "docker_manifest_create", name=target, sources=[source],
                                      mode="merge")))
        with ThreadPoolExecutor(max_workers=len(PLATFORMS)) as pool:
            runs = list(pool.map(amend, PLATFORMS))
        for platform, run in zip(PLATFORMS, runs):
            assert run.rc == 0, (round_number, platform, run.result("amend").get("msg"))
        answer = requests.get(f"{open_registry.url}/v2/{repo}/manifests/round{round_number}",
                              headers={"Accept": ALL_MANIFEST_TYPES}, timeout=10)
        document = json.loads(answer.content)
        written = ["/".join(p for p in (m["platform"]["os"], m["platform"]["architecture"],
                                        m["platform"].get("variant")) if p) for m in document["manifests"]]
        assert sorted(written) == sorted(PLATFORMS), (round_number, written,
                                                      [r.result("amend").get("merge_rewrites") for r in runs])
