"""`make bench` runs every benchmark: bench/run.py's BENCHMARKS lists each bench/bench_*.py or
RUN_ON_THEIR_OWN names it (run as its own script after the others), each in BENCHMARKS has ``run()`` and
``markdown()`` and each of the others runs as a script; and the
plumbing of the peer contenders (bench/cli_peers.py) that needs no registry: byte-exact splitting of
concatenated manifests, the network floor, the publish command lines.
No timings are asserted here: the benchmarks report figures, they do not pass or fail on them."""
from __future__ import annotations

import ast
import hashlib
import importlib
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _functions(path: Path) -> set[str]:
    return {node.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef)}


def _assigned(name: str):
    tree = ast.parse((BENCH / "run.py").read_text())
    return next(node.value for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name)


def _listed() -> set[str]:
    return {entry.elts[1].id for entry in _assigned("BENCHMARKS").elts}


def test_run_lists_every_benchmark():
    apart = {key.value for key in _assigned("RUN_ON_THEIR_OWN").keys}
    assert not _listed() & apart
    assert _listed() | apart == {path.stem for path in BENCH.glob("bench_*.py")}


def test_the_benchmarks_run_on_their_own_are_scripts():
    for key in _assigned("RUN_ON_THEIR_OWN").keys:
        assert 'if __name__ == "__main__":' in (BENCH / f"{key.value}.py").read_text(), key.value


def test_every_listed_benchmark_has_run_and_markdown():
    for name in _listed():
        assert {"run", "markdown"} <= _functions(BENCH / f"{name}.py"), name


def _cli_peers():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("cli_peers")


def test_split_documents_is_byte_exact():
    cli_peers = _cli_peers()
    first = b'{\n   "schemaVersion": 2,\n   "manifests": []\n}'
    second = b'{"schemaVersion":2,"manifests":[{"digest":"sha256:00"}]}'
    for stream in (first + second, first + b"\n" + second + b"\n"):
        documents = cli_peers.split_documents(stream)
        assert documents == [first, second]
        wanted = ["sha256:" + hashlib.sha256(document).hexdigest() for document in (first, second)]
        assert [cli_peers.sha256(document) for document in documents] == wanted


def test_network_floor_is_requests_over_concurrency_times_delay():
    cli_peers = _cli_peers()
    assert cli_peers.network_floor(200, 16, 0.02) == 200 / 16 * 0.02
    assert cli_peers.network_floor(10, 0, 0.02) == 10 * 0.02   # no request in flight seen: one at a time


def test_publish_command_lines_build_a_docker_manifest_list():
    cli_peers = _cli_peers()
    sources = ["h/builds/a:amd64", "h/builds/a:arm64"]
    crane = cli_peers.Peer("crane", "v0", binary="crane")
    regctl = cli_peers.Peer("regctl", "v0", binary="regctl")
    assert cli_peers.publish_argv(crane, "h/release/a:1.0", sources) == (
        ["index", "append", "--insecure", "--docker-empty-base"],
        ["-m", sources[0], "-m", sources[1], "-t", "h/release/a:1.0"])
    assert cli_peers.publish_argv(regctl, "h/release/a:1.0", sources) == (
        ["index", "create", "--media-type", cli_peers.DOCKER_LIST],
        ["h/release/a:1.0", "--ref", sources[0], "--ref", sources[1]])


def test_a_peer_that_cannot_be_built_is_named_not_run(monkeypatch, tmp_path):
    """Without Go 1.26 on PATH and with an empty cache, tools/peers.sh cannot build crane or regctl: each is
    returned with peers.sh's sentence as the reason, and the table names it under the rows (the benchmark
    runs the rest)."""
    cli_peers = _cli_peers()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("ARCHFLEET_CACHE", str(tmp_path))
    cli_peers.peer_binary.cache_clear()
    try:
        peers = cli_peers.find_peers()
    finally:
        cli_peers.peer_binary.cache_clear()
    assert [(peer.name, peer.binary) for peer in peers] == [("crane", None), ("regctl", None)]
    assert all(peer.missing.startswith("peers.sh: Go ") for peer in peers)  # not installed, or too old
    table = cli_peers.markdown_rows([], cli_peers.missing_note(peers))
    assert f"Not a contender in this run: crane {peers[0].version}: {peers[0].missing}" in table
