"""crane and regctl as benchmark contenders, scripted the strongest way a user could.

The peers are the pinned builds of tools/peers.sh (go-containerregistry's ``crane``, regclient's
``regctl``), found or built through the integration harness (``harness.goregistry.peer_binary``). A
peer that cannot be had here (no Go, a failed build) is no contender: :func:`find_peers` returns it
with the reason, and the benchmark names it under its table and runs the rest.

Two modes per peer, each a real command line as a user would write it:

* ``one after another``: one process per unit (reference, tag, index), each started when the last
  has exited, as a shell ``for`` loop does;
* ``xargs -P 16``: the same command lines, 16 processes at a time (``xargs -P 16 -n 1``, ``-L 1``
  for commands with several arguments per unit), as shell pipelines (``bash -o pipefail``).

Each peer runs with its own throwaway ``HOME`` (and ``DOCKER_CONFIG``); ``crane`` talks plain HTTP
with ``--insecure``, ``regctl`` with ``regctl registry set --skip-check --tls disabled HOST`` run once
in that HOME before the first measurement (a ``regctl`` process then sends no ``/v2/`` ping).
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench_load import run_module
from benchlib import run_command
from harness.goregistry import PeerUnavailable, peer_binary, peer_version

PARALLEL = 16
SEQUENTIAL = "one after another"
XARGS = f"xargs -P {PARALLEL}"
MODES = (SEQUENTIAL, XARGS)
PEER_NAMES = ("crane", "regctl")
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


@dataclass
class Peer:
    """One peer binary with its throwaway HOME; ``missing`` is the reason it is not a contender."""

    name: str
    version: str
    binary: str | None = None
    missing: str | None = None
    home: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, HOME=str(self.home), DOCKER_CONFIG=str(self.home / ".docker"))

    def run(self, *args: str) -> bytes:
        """One process, as one line of a shell loop; a failure raises (a failed contender is no figure)."""
        return run_command([self.binary, *args], env=self.env).stdout

    def pipeline(self, script: str, stdin: str = "") -> bytes:
        """A bash pipeline (``pipefail``) with ``$PEER`` set to this peer's binary; raises on failure."""
        result = subprocess.run(["bash", "-o", "pipefail", "-c", script], input=stdin.encode(),
                                env={**self.env, "PEER": self.binary}, capture_output=True, timeout=600,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{self.name} pipeline failed ({result.returncode}): {script}\n"
                               f"{result.stderr.decode(errors='replace')[-2000:]}")
        return result.stdout


def find_peers(names: tuple[str, ...] = PEER_NAMES) -> list[Peer]:
    """Each named peer, built by tools/peers.sh if it is not cached yet, or with the reason it is missing."""
    peers = []
    for name in names:
        try:
            version = peer_version(name)
        except (KeyError, subprocess.CalledProcessError) as error:
            peers.append(Peer(name, "?", missing=f"tools/peers.sh has no recipe for it ({error})"))
            continue
        try:
            peers.append(Peer(name, version, binary=peer_binary(name)))
        except (PeerUnavailable, RuntimeError, OSError, subprocess.TimeoutExpired) as error:
            peers.append(Peer(name, version, missing=str(error).strip().splitlines()[-1]))
    return peers


class PeerHomes:
    """Throwaway HOMEs for the available peers, set up for plain HTTP to ``host``; removed on exit."""

    def __init__(self, peers: list[Peer], host: str):
        self.peers, self.host = peers, host
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-peers-")

    def __enter__(self) -> list[Peer]:
        for peer in self.peers:
            if peer.missing:
                continue
            peer.home = Path(self._tmp.name) / peer.name
            (peer.home / ".docker").mkdir(parents=True)
            if peer.name == "regctl":
                peer.run("registry", "set", "--skip-check", "--tls", "disabled", self.host)
        return [peer for peer in self.peers if not peer.missing]

    def __exit__(self, *exc) -> None:
        self._tmp.cleanup()


def missing_note(peers: list[Peer]) -> list[dict]:
    return [{"peer": peer.name, "version": peer.version, "reason": peer.missing} for peer in peers if peer.missing]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def split_documents(stream: bytes) -> list[bytes]:
    """The JSON documents of concatenated ``crane manifest`` / ``regctl manifest get`` outputs, byte-exact.

    Each process writes its manifest with one ``write`` (under PIPE_BUF here), so 16 writers to one pipe
    do not interleave; the bytes between documents (none, or a newline) are not part of either.
    """
    text, decoder, documents, index = stream.decode(), json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return [document.encode() for document in documents]
        _value, end = decoder.raw_decode(text, index)
        documents.append(text[index:end])
        index = end


# Inspect: the manifest of each reference (its digest is the sha256 of the bytes).

def inspect_argv(peer: Peer) -> list[str]:
    return {"crane": ["manifest", "--insecure"], "regctl": ["manifest", "get", "--format", "raw-body"]}[peer.name]


def inspect(peer: Peer, mode: str, references: list[str]) -> list[str]:
    """Read every reference's manifest; returns the digests (in reference order one after another,
    in completion order with xargs)."""
    argv = inspect_argv(peer)
    if mode == SEQUENTIAL:
        return [sha256(peer.run(*argv, reference)) for reference in references]
    stream = peer.pipeline(f'xargs -P {PARALLEL} -n 1 "$PEER" {shlex.join(argv)}', "\n".join(references) + "\n")
    return [sha256(document) for document in split_documents(stream)]


# Enumerate: every repository of the registry, every tag, each tag's digest (a manifest HEAD).

def enumerate_tags(peer: Peer, mode: str, host: str) -> list[str] | dict[str, str]:
    """One after another: ``{"repository:tag": digest}``. xargs: the digests (completion order), since
    ``crane digest --full-ref`` names the repository only and ``regctl image digest`` names nothing.

    crane: ``crane catalog``, ``crane ls`` per repository, ``crane digest`` per tag. regctl: ``regctl repo
    ls``, ``regctl tag ls`` per repository, ``regctl image digest`` per tag. With xargs, one pipeline: the
    tag lists are read 16 at a time and each tag goes on to the 16 digest processes as soon as it is listed.
    Each process's list reaches the pipe in whole lines: ``crane ls`` writes a line at a time, and regctl's
    list goes through ``sed`` (one ``sh`` and one ``sed`` per repository), which writes it at exit.
    """
    if peer.name == "crane":
        catalog, tags, digest = ["catalog", "--insecure", host], ["ls", "--insecure"], ["digest", "--insecure"]
    else:
        catalog, tags, digest = ["repo", "ls", host], ["tag", "ls"], ["image", "digest"]
    if mode == SEQUENTIAL:
        found = {}
        for repository in peer.run(*catalog).decode().split():
            for tag in peer.run(*tags, f"{host}/{repository}").decode().split():
                found[f"{repository}:{tag}"] = peer.run(*digest, f"{host}/{repository}:{tag}").decode().strip()
        return found
    if peer.name == "crane":
        script = (f'"$PEER" {shlex.join(catalog)} | sed "s|^|{host}/|" '
                  f'| xargs -P {PARALLEL} -n 1 "$PEER" {shlex.join(tags)} --full-ref '
                  f'| xargs -P {PARALLEL} -n 1 "$PEER" {shlex.join(digest)}')
    else:
        # regctl tag ls names the tags only; sed prefixes the repository and writes the list in one write at
        # exit (a --format template writes piece by piece, and 16 writers then interleave inside lines).
        script = (f'"$PEER" {shlex.join(catalog)} | sed "s|^|{host}/|" '
                  f'| xargs -P {PARALLEL} -I{{}} sh -c \'"$PEER" {shlex.join(tags)} "$1" | sed "s|^|$1:|"\' _ {{}} '
                  f'| xargs -P {PARALLEL} -n 1 "$PEER" {shlex.join(digest)}')
    return peer.pipeline(script).decode().split()


# Publish: one Docker manifest list per app from its per-platform builds (what docker_manifest_create writes).

def publish_argv(peer: Peer, target: str, sources: list[str]) -> tuple[list[str], list[str]]:
    """The command line of one publish, as (fixed part, this index's part).

    ``crane index append --insecure --docker-empty-base -m SRC... -t TARGET`` or ``regctl index create
    --media-type <Docker list> TARGET --ref SRC...``: a Docker manifest list of the sources (as
    docker_manifest_create writes from Docker sources), children copied into the target repository
    (cross-repository mounts), platforms read from the children's configs.
    """
    if peer.name == "crane":
        return (["index", "append", "--insecure", "--docker-empty-base"],
                [*(arg for source in sources for arg in ("-m", source)), "-t", target])
    refs = [arg for source in sources for arg in ("--ref", source)]
    return ["index", "create", "--media-type", DOCKER_LIST], [target, *refs]


def publish(peer: Peer, mode: str, jobs: list[tuple[str, list[str]]]) -> None:
    """Publish every ``(target, sources)``: one process per index, one after another or 16 at a time
    (``xargs -P 16 -L 1 crane index append ...`` with one index's arguments per input line)."""
    if mode == SEQUENTIAL:
        for target, sources in jobs:
            fixed, own = publish_argv(peer, target, sources)
            peer.run(*fixed, *own)
        return
    fixed = publish_argv(peer, "", [])[0]
    lines = "".join(shlex.join(publish_argv(peer, target, sources)[1]) + "\n" for target, sources in jobs)
    peer.pipeline(f'xargs -P {PARALLEL} -L 1 "$PEER" {shlex.join(fixed)}', lines)


def module_alone(name: str, args: dict) -> dict:
    """Run module ``name`` as a process of its own (``python MODULE args.json``, bench_load.run_module): the
    collection's code without ansible-playbook and AnsiballZ around it. Returns the module's result."""
    return run_module(name, args)["result"]


MODULE_ALONE = f"module process alone (python MODULE args.json), concurrency {PARALLEL}"


# Rows of the comparison table: every contender of a workload beside its network floor.

def network_floor(requests: int, concurrency: int, delay: float) -> float:
    """Seconds the proxy's delay alone costs: requests / concurrency x delay (perfect overlap, zero CPU)."""
    return requests / max(concurrency, 1) * delay


def contender_row(workload: str, contender: str, mode: str, concurrency: int, runs: list, delay: float) -> dict:
    """One row: the median run of ``runs`` (benchlib.Measurement), its samples, requests and floor.

    ``concurrency`` is the contender's nominal one (processes at a time, or the module's ``concurrency``);
    the floor divides by the most requests the proxy saw in flight at once in that run, which is what the
    contender really achieved: a ``crane index append`` process sends several requests at once, so with
    the nominal 1 its "floor" would be above its measured time. Either way it is a lower bound: each
    request waits ``delay`` at the proxy and no more than that many were waiting at once.
    """
    ordered = sorted(runs, key=lambda measured: measured.seconds)
    middle = ordered[len(ordered) // 2]
    return {"workload": workload, "contender": contender, "mode": mode, "concurrency": concurrency,
            "seconds": middle.seconds, "samples": [measured.seconds for measured in runs],
            "task_seconds": middle.module_seconds, "requests": middle.total_requests,
            "requests_by_kind": middle.requests, "writes": middle.writes, "most_in_flight": middle.most_in_flight,
            "client_cpu_seconds": middle.client_cpu_seconds,
            "floor": network_floor(middle.total_requests, middle.most_in_flight or concurrency, delay)}


def peer_rows(workload: str, peer_runs: dict[tuple[str, str], list], delay: float) -> list[dict]:
    """Rows for ``{(peer label, mode): [Measurement, ...]}``."""
    return [contender_row(workload, label, mode, PARALLEL if mode == XARGS else 1, runs, delay)
            for (label, mode), runs in peer_runs.items()]


def against_parallel_peers(rows: list[dict], ours: dict, alone: dict | None = None) -> dict[str, dict]:
    """For each ``xargs -P 16`` peer row: its time over ours (whole playbook, task alone, and the module
    process alone when measured) and both request counts. Above 1 means ours is faster."""
    return {row["contender"]: {"peer_seconds": row["seconds"], "ours_seconds": ours["seconds"],
                               "vs_playbook": row["seconds"] / ours["seconds"],
                               "vs_task": row["seconds"] / ours["task_seconds"] if ours["task_seconds"] else None,
                               "vs_module_alone": row["seconds"] / alone["seconds"] if alone else None,
                               "peer_requests": row["requests"], "ours_requests": ours["requests"]}
            for row in rows if row["mode"] == XARGS}


def markdown_rows(rows: list[dict], missing: list[dict]) -> str:
    """The comparison table (workload, contender, mode, wall time, requests, floor), then any missing peer."""
    lines = ["| Workload | Contender | Mode | Wall time (s) | Samples (s) | Client CPU (s) | Requests | Most in flight "
             "| Floor (s) |",
             "|---|---|---|---:|---|---:|---:|---:|---:|"]
    for row in rows:
        task = f" (task alone {row['task_seconds']:.2f})" if row.get("task_seconds") else ""
        samples = ", ".join(f"{seconds:.2f}" for seconds in row["samples"]) if len(row["samples"]) > 1 else "once"
        lines.append(f"| {row['workload']} | {row['contender']} | {row['mode']} | {row['seconds']:.2f}{task} | "
                     f"{samples} | {row.get('client_cpu_seconds', 0):.2f} | {row['requests']} | "
                     f"{row['most_in_flight']} | {row['floor']:.2f} |")
    lines += [f"\nNot a contender in this run: {entry['peer']} {entry['version']}: {entry['reason']}"
              for entry in missing]
    return "\n".join(lines)


def markdown_against(against: dict[str, dict]) -> str:
    if not against:
        return ""
    lines = ["| Parallel peer | Peer time / ours (whole ansible-playbook) | Peer time / ours (task alone) "
             "| Peer time / ours (module process alone) | Requests: peer, ours |",
             "|---|---:|---:|---:|---|"]
    for name, entry in against.items():
        task = f"{entry['vs_task']:.2f}x" if entry["vs_task"] else ""
        alone = f"{entry['vs_module_alone']:.2f}x" if entry.get("vs_module_alone") else ""
        lines.append(f"| {name} | {entry['vs_playbook']:.2f}x | {task} | {alone} | {entry['peer_requests']}, "
                     f"{entry['ours_requests']} |")
    return "\n".join(lines)
