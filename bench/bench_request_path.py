"""Benchmark: CPU instructions of the request path per inspected reference (callgrind), old tree and new.

What it measures: the client's own work for N inspected references, in ONE Python process per run,
counted by callgrind (``valgrind --tool=callgrind``: instructions executed in user space, the same
on a loaded or an idle machine). The work is the module's task layer,
``_inspect.ManifestFacts(client, digest_only=...).gather(refs)`` on a client built by
``_module.client_from_params`` as the module builds it, in four scenarios of N references each:
an open registry and a token registry (Bearer tokens from harness.tokenserver, with credentials),
each with ``digest_only`` false (one manifest GET per reference) and true (one HEAD). The registries
are Debian's ``docker-registry`` on loopback (harness.registry), seeded with one Docker manifest list
of 2 platforms per repository.

How the instructions are split, without trusting any profiler's attribution: each tree runs in
four modes, every mode loading the same recording of the registries' answers (made beforehand by an
uninstrumented run of the same tree):

* ``full``: the real thing, over loopback sockets;
* ``wire``: the ``HTTPAdapter``'s ``send`` answers from the recording (requests' Session, the
  collection's auth handler and counting adapter still run; urllib3, http.client and sockets do not);
* ``session``: ``Session.request`` answers from the recording (nothing of requests runs);
* ``none``: imports and the recording's load only.

Each mode runs twice, with N_small and N_large references per scenario; the difference divided by
the extra references is the cost of one more inspected reference (start-up, imports, discovery and
the first token are gone from it). Then per reference:
``HTTPAdapter.send, urllib3 and http.client = full - wire`` (requests' adapter code, building the
Response included), ``requests' Session = wire - session`` (this includes the collection's
``RegistryAuth`` and ``_WireAdapter``, which run inside requests),
``collection and the rest = session - none`` (the task layer, parsing, digests, threads).
The request path is the first two. Instructions are turned into milliseconds at this machine's rate
for the same work without valgrind: the ``full`` mode's extra user CPU time between the two sizes (the
scenarios only, timed inside the process; least of 5 runs each) against its extra instructions. On a
loaded machine the rate is low and the milliseconds high; the instruction counts do not change.

    .venv/bin/python bench/bench_request_path.py [--small 8 --large 24] [--old /tmp/af-old]

``--old`` is a checkout of the tree to compare (``git worktree add /tmp/af-old 3d22469``); without
it only the current tree is measured. Results go to build/bench/request_path.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODES = ("full", "wire", "session", "none")
SCENARIOS = (("open", False), ("open", True), ("token", False), ("token", True))
PLATFORMS = ("linux/amd64", "linux/arm64/v8")
TAG = "1.0"
VALGRIND = "valgrind"


# ---------------------------------------------------------------------------- the worker (one process)
def _collections_dir(tree: Path, scratch: Path) -> Path:
    """A directory holding ansible_collections/archfleet/multiarch -> ``tree``, for sys.path."""
    root = scratch / ("collections-" + hashlib.sha256(str(tree).encode()).hexdigest()[:12])
    link = root / "ansible_collections" / "archfleet" / "multiarch"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(tree)
        except FileExistsError:     # a worker beside this one made it
            pass
    return root


def _answer(record):
    """A requests.Response (or the exception) from a recorded answer, built without requests' machinery."""
    import requests
    from requests.structures import CaseInsensitiveDict
    if record[0] == "error":
        _kind, module, name, message = record
        raise getattr(sys.modules[module], name)(message)
    _kind, status, reason, headers, body, url = record
    response = requests.Response.__new__(requests.Response)
    response.__dict__.update(_content=body, _content_consumed=True, _next=None, status_code=status,
                             headers=CaseInsensitiveDict(headers), raw=None, url=url, encoding=None,
                             history=[], reason=reason, cookies=requests.cookies.RequestsCookieJar(),
                             elapsed=None, request=None, connection=None)
    return response


def worker(spec_path: str, tree: str, mode: str, count: int, recording: str, scratch: str) -> dict:
    """Run the scenarios of ``spec_path`` with ``count`` references each; return request counts."""
    sys.path.insert(0, str(_collections_dir(Path(tree), Path(scratch))))
    import requests  # noqa: F401 - imported before anything is counted per reference
    from ansible_collections.archfleet.multiarch.plugins.module_utils._inspect import ManifestFacts
    from ansible_collections.archfleet.multiarch.plugins.module_utils._module import client_from_params, \
        parse_references

    spec = json.loads(Path(spec_path).read_text())
    with open(recording, "rb") as handle:       # loaded in every mode, so it cancels out
        answers = pickle.load(handle) if mode != "record" else {}
    recorded = {}
    counts = {}
    started = resource.getrusage(resource.RUSAGE_SELF)     # microseconds, not os.times()'s 10 ms ticks
    for scenario in spec["scenarios"]:
        name = scenario["name"]
        params = {"username": scenario.get("username"), "password": scenario.get("password"),
                  "validate_certs": True, "concurrency": spec["concurrency"], "timeout": 30, "retries": 3}
        client = client_from_params(params, pool_size=spec["concurrency"])
        session = client.transport.session
        if mode == "session":
            session.request = lambda method, url, **_kw: _answer(answers[(name, method, url)])
        elif mode == "wire":
            for adapter in set(session.adapters.values()):
                target = getattr(adapter, "inner", adapter)   # the new tree's counting adapter wraps one

                def send(request, _target=target, **_kw):
                    response = _answer(answers[(name, request.method, request.url)])
                    response.request, response.connection = request, _target
                    return response
                target.send = send
        elif mode == "record":
            real = session.request

            def record(method, url, _real=real, **kwargs):
                try:
                    response = _real(method, url, **kwargs)
                except Exception as exc:
                    recorded[(name, method, url)] = ("error", type(exc).__module__, type(exc).__name__, str(exc))
                    raise
                recorded[(name, method, url)] = ("answer", response.status_code, response.reason,
                                                 list(response.headers.items()), response.content, response.url)
                return response
            session.request = record
        refs = parse_references(scenario["refs"][:count], "images")
        if mode != "none":
            facts = ManifestFacts(client, digest_only=scenario["digest_only"]).gather(
                refs, concurrency=spec["concurrency"])
            missing = [f["reference"] for f in facts if not f["exists"]]
            if missing:
                raise RuntimeError(f"{name}: not found: {missing}")
        counts[name] = client.stats()["total_requests"]
        client.close()
    ended = resource.getrusage(resource.RUSAGE_SELF)
    if mode == "record":
        with open(recording, "wb") as handle:
            pickle.dump(recorded, handle)
    return {"requests": counts, "user_seconds": ended.ru_utime - started.ru_utime,
            "system_seconds": ended.ru_stime - started.ru_stime}


# ---------------------------------------------------------------------------- the driver
def seed(registry, count: int) -> list[str]:
    from benchlib import concurrently
    from harness.images import push_image, push_index
    auth = registry.auth_tuple
    repositories = [f"bench/req-{index:03d}" for index in range(count)]

    def push_list(repository: str) -> None:
        labels = {"org.opencontainers.image.title": repository}
        children = [push_image(registry.url, repository, platform=platform, media="docker", labels=labels,
                               auth=auth) for platform in PLATFORMS]
        push_index(registry.url, repository, TAG, children, media="docker", auth=auth)

    concurrently(push_list, repositories, workers=8)
    return [f"{registry.host}/{repository}:{TAG}" for repository in repositories]


def _worker_argv(spec: Path, tree: Path, mode: str, count: int, recording: Path, scratch: Path, out: Path):
    return [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec), "--tree", str(tree),
            "--mode", mode, "--count", str(count), "--recording", str(recording), "--scratch", str(scratch),
            "--out", str(out)]


def callgrind(argv: list[str], out_file: Path) -> int:
    """Instructions (Ir) of ``argv`` under callgrind; the profile stays in ``out_file``."""
    result = subprocess.run([VALGRIND, "--tool=callgrind", f"--callgrind-out-file={out_file}", *argv],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"callgrind run failed: {' '.join(argv)}\n{result.stderr[-3000:]}")
    for line in out_file.read_text(errors="replace").splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out_file}")


def native_seconds(argv: list[str], out: Path, repeat: int = 5) -> float:
    """The least user-space CPU time the scenarios took (imports and set-up left out) in ``repeat`` runs of
    ``argv`` without valgrind (callgrind counts user space only, so kernel time is left out of the rate)."""
    best = None
    for _run in range(repeat):
        subprocess.run(argv, check=True, capture_output=True)
        cpu = json.loads(out.read_text())["user_seconds"]
        best = cpu if best is None else min(best, cpu)
    return best


def measure_tree(label: str, tree: Path, spec: Path, small: int, large: int, scratch: Path, jobs: int) -> dict:
    recordings = {}
    for count in (small, large):    # token requests name every repository of a scenario: one recording per size
        recordings[count] = scratch / f"recording-{label}-{count}.pickle"
        recordings[count].write_bytes(pickle.dumps({}))
        subprocess.run(_worker_argv(spec, tree, "record", count, recordings[count], scratch,
                                    scratch / f"record-{label}.json"), check=True)
    runs = [(mode, count) for mode in MODES for count in (small, large)]

    def one(run):
        mode, count = run
        counts_file = scratch / f"counts-{label}-{mode}-{count}.json"
        instructions = callgrind(_worker_argv(spec, tree, mode, count, recordings[count], scratch, counts_file),
                                 scratch / f"callgrind.out.{label}.{mode}.{count}")
        return run, instructions, json.loads(counts_file.read_text())["requests"]

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, runs))
    instructions = {f"{mode}/{count}": value for (mode, count), value, _counts in results}
    counts = {f"{mode}/{count}": c for (mode, count), _value, c in results}
    extra_refs = (large - small) * len(SCENARIOS)
    extra_requests = sum(counts[f"full/{large}"].values()) - sum(counts[f"full/{small}"].values())

    def marginal(mode):
        return (instructions[f"{mode}/{large}"] - instructions[f"{mode}/{small}"]) / extra_refs
    per_ref = {mode: marginal(mode) for mode in MODES}
    split = {"adapter_urllib3_http_client": per_ref["full"] - per_ref["wire"],
             "requests": per_ref["wire"] - per_ref["session"],
             "collection_and_rest": per_ref["session"] - per_ref["none"]}
    split["request_path"] = split["adapter_urllib3_http_client"] + split["requests"]
    # The machine's rate for this very work, natively: the extra user CPU time of the scenarios (imports and
    # set-up are not in it) between the two sizes, least of 5 runs each, against the extra instructions.
    native = scratch / "native.json"
    seconds = {count: native_seconds(_worker_argv(spec, tree, "full", count, recordings[count], scratch, native),
                                     native) for count in (small, large)}
    rate = (instructions[f"full/{large}"] - instructions[f"full/{small}"]) / max(seconds[large] - seconds[small], 1e-6)
    return {"tree": str(tree), "instructions": instructions, "requests": counts, "extra_references": extra_refs,
            "extra_requests": extra_requests, "requests_per_reference": extra_requests / extra_refs,
            "per_reference": per_ref, "split_per_reference": split,
            "request_path_per_request": split["request_path"] * extra_refs / extra_requests,
            "native_cpu_seconds": seconds, "instructions_per_second": rate}


def run(small: int = 8, large: int = 24, old: str | None = None, jobs: int = 2) -> dict:
    from harness.registry import Registry
    old = old or os.environ.get("BENCH_REQUEST_PATH_OLD") or None
    scratch = Path(tempfile.mkdtemp(prefix="bench-request-path-"))
    with Registry() as open_registry, Registry(auth="token") as token_registry:
        open_refs = seed(open_registry, large)
        token_refs = seed(token_registry, large)
        user, password = token_registry.username, token_registry.password
        scenarios = []
        for kind, digest_only in SCENARIOS:
            scenario = {"name": f"{kind}, digest_only={str(digest_only).lower()}", "digest_only": digest_only,
                        "refs": open_refs if kind == "open" else token_refs}
            if kind == "token":
                scenario.update(username=user, password=password)
            scenarios.append(scenario)
        spec = scratch / "spec.json"
        spec.write_text(json.dumps({"scenarios": scenarios, "concurrency": 1}))
        trees = [("new", REPO)] + ([("old", Path(old).resolve())] if old else [])
        results = {"small": small, "large": large, "scenarios": [s["name"] for s in scenarios],
                   "concurrency": 1, "scratch": str(scratch), "trees": {}}
        for label, tree in trees:
            results["trees"][label] = measure_tree(label, tree, spec, small, large, scratch, jobs)
    return results


def markdown(results: dict) -> str:
    lines = [f"Instructions per inspected reference (callgrind; marginal between {results['small']} and "
             f"{results['large']} references in each of {len(results['scenarios'])} scenarios: "
             f"{'; '.join(results['scenarios'])}):", "",
             "| Tree | Requests / ref | HTTPAdapter.send, urllib3, http.client | requests Session (incl. auth hook) "
             "| Request path / ref | Request path / request | Collection and the rest / ref | Whole client / ref "
             "| Instr/s | Request path / ref (ms) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, tree in results["trees"].items():
        split = tree["split_per_reference"]
        rate = tree["instructions_per_second"]
        lines.append(f"| {label} | {tree['requests_per_reference']:.3f} | "
                     f"{split['adapter_urllib3_http_client']:,.0f} | {split['requests']:,.0f} | "
                     f"{split['request_path']:,.0f} | "
                     f"{tree['request_path_per_request']:,.0f} | {split['collection_and_rest']:,.0f} | "
                     f"{tree['per_reference']['full'] - tree['per_reference']['none']:,.0f} | {rate / 1e9:.2f} G | "
                     f"{split['request_path'] / rate * 1000:.3f} |")
    if "old" in results["trees"] and "new" in results["trees"]:
        old = results["trees"]["old"]["split_per_reference"]["request_path"]
        new = results["trees"]["new"]["split_per_reference"]["request_path"]
        lines += ["", f"Request path, new / old: {new / old:.2f} "
                      f"(target <= 0.50: {'met' if new <= old / 2 else 'MISSED'})"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--small", type=int, default=8, help="references per scenario, first run (default 8)")
    parser.add_argument("--large", type=int, default=24, help="references per scenario, second run (default 24)")
    parser.add_argument("--old", help="a checkout of the tree to compare with (e.g. a worktree of 3d22469)")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs at once (default 2)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--recording", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        Path(args.out).write_text(json.dumps(worker(args.worker, args.tree, args.mode, args.count, args.recording,
                                                    args.scratch)))
        return
    sys.path.insert(0, str(HERE))
    from benchlib import write_results
    results = run(args.small, args.large, args.old, args.jobs)
    path = write_results("request_path", results)
    print(markdown(results))
    print(f"\n(results written to {path})")


if __name__ == "__main__":
    main()
