"""Request counts of docker_manifest_info's ``referrers`` option: off, tag-schema fallback, Referrers API.

Seeds N repositories (default 10) with the supply-chain fixtures (tests/integration/harness/referrers.py):
per repository an image with a signature and an SBOM (``:signed``) and an index of two platforms whose
index and amd64 entry have a referrer (``:release``); the referrers are in the tag schema, as a client
writes them on a registry without the API. Then inspects the 2N references in one task three times,
through a counting proxy: ``referrers: false``; ``referrers: true`` against Debian's docker-registry
(no Referrers API: the 404 fallback); ``referrers: true`` with the harness Referrers API in the proxy.
Prints a Markdown table of the requests the proxy saw (subjects = images + platform entries).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
RESULTS = Path(__file__).resolve().parents[1] / "build" / "bench"

from harness.ansible_run import play, run_playbook, task  # noqa: E402
from harness.proxy import Proxy  # noqa: E402
from harness.referrers import ReferrersApi, build_supply_chain  # noqa: E402
from harness.registry import Registry  # noqa: E402


def measure(registry, references_of, fault, referrers):
    with Proxy(registry, fault=fault) as proxy:
        run = run_playbook(play(task("inspect", "docker_manifest_info", images=references_of(proxy.host),
                                     referrers=referrers)))
        assert run.rc == 0, run.output
        log = list(proxy.log)
    kinds = {"referrers API": sum(1 for r in log if "/referrers/" in r.path),
             "tag-schema GET": sum(1 for r in log if r.method == "GET" and "/manifests/sha256-" in r.path),
             "tag list": sum(1 for r in log if "/tags/list" in r.path),
             "total": len(log)}
    return kinds


def run(repositories: int = 10) -> dict:
    """Seed ``repositories`` supply chains, inspect them three ways; returns the counts per run."""
    with Registry() as registry:
        repos = [f"bench/app-{index:02d}" for index in range(repositories)]
        for repo in repos:
            build_supply_chain(registry, repo)

        def references(host):
            return [f"{host}/{repo}:{tag}" for repo in repos for tag in ("signed", "release")]
        rows = {"referrers: false": measure(registry, references, None, False),
                "referrers: true, no API (tag schema)": measure(registry, references, None, True),
                "referrers: true, Referrers API": measure(registry, references, ReferrersApi(registry), True)}
    # subjects: per repository the image, the index and its two platform entries
    return {"benchmark": "referrers", "repositories": repositories, "references": repositories * 2,
            "subjects": repositories * (1 + 3), "runs": rows}


def markdown(results: dict) -> str:
    rows, subjects = results["runs"], results["subjects"]
    base = rows["referrers: false"]["total"]
    lines = [f"{results['references']} references, {subjects} subjects, {results['repositories']} repositories", "",
             "| run | requests | referrers API | tag-schema GETs | tag lists | extra per subject |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, kinds in rows.items():
        extra = (kinds["total"] - base) / subjects
        lines.append(f"| {name} | {kinds['total']} | {kinds['referrers API']} | {kinds['tag-schema GET']} | "
                     f"{kinds['tag list']} | {extra:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repositories", type=int, default=10)
    args = parser.parse_args()
    results = run(args.repositories)
    print(markdown(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "referrers.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
