"""Start, seed and stop the local registry that `make demo` runs against.

    demo_registry.py start --port 5000 --dir build/demo   # detached; pid, config, log, storage in --dir
    demo_registry.py seed  --port 5000                    # demo/hello:amd64, :arm64 and the index :latest
    demo_registry.py stop  --dir build/demo

Every command is idempotent: start says so and succeeds when our registry already answers,
seed pushes byte-identical images (blobs already there are not uploaded again), stop
succeeds when nothing runs. Unlike the test harness's Registry, this one outlives the
command that started it, on a fixed port, with storage kept under --dir between runs.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from harness.images import HARNESS_USER_AGENT, push_image, push_index  # noqa: E402
from harness.registry import REGISTRY_BINARY, base_config  # noqa: E402

DEMO_REPO = "demo/hello"
DEMO_PLATFORMS = {"amd64": "linux/amd64", "arm64": "linux/arm64"}
START_TIMEOUT = 20.0


def answers(port: int) -> bool:
    """True when a registry API answers on 127.0.0.1:port."""
    try:
        response = requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2,
                                headers={"User-Agent": HARNESS_USER_AGENT})
    except requests.RequestException:
        return False
    return response.headers.get("Docker-Distribution-Api-Version") == "registry/2.0"


def running_pid(state_dir: Path) -> int | None:
    """The pid in the pid file if that process is still our docker-registry, else None."""
    pid_file = state_dir / "registry.pid"
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ValueError):
        return None
    # Guard against a recycled pid: it must be docker-registry serving our config.
    if Path(cmdline[0].decode()).name == REGISTRY_BINARY and str(state_dir / "config.yml").encode() in cmdline:
        return pid
    return None


def configured_port(state_dir: Path) -> int:
    return int(json.loads((state_dir / "config.yml").read_text())["http"]["addr"].rsplit(":", 1)[1])


def start(port: int, state_dir: Path) -> int:
    state_dir = state_dir.resolve()
    pid = running_pid(state_dir)
    if pid is not None:
        running_port = configured_port(state_dir)
        if running_port != port:
            print(f"the demo registry (pid {pid}) runs on port {running_port}, not {port}; "
                  f"stop it first: make demo-stop", file=sys.stderr)
            return 1
        if answers(port):
            print(f"demo registry already running on 127.0.0.1:{port} (pid {pid})")
            return 0
    elif answers(port):
        print(f"another registry already answers on 127.0.0.1:{port} (not started from {state_dir}); "
              f"choose another port, e.g. make demo DEMO_PORT=5001", file=sys.stderr)
        return 1

    state_dir.mkdir(parents=True, exist_ok=True)
    config_path = state_dir / "config.yml"
    config_path.write_text(json.dumps(base_config(state_dir / "storage", port), indent=2))
    with open(state_dir / "registry.log", "ab") as log:
        # A session of its own: the registry must survive the end of `make demo`.
        process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config_path)], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=state_dir, start_new_session=True)
    (state_dir / "registry.pid").write_text(f"{process.pid}\n")

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if answers(port):
            print(f"demo registry started on 127.0.0.1:{port} (pid {process.pid}, log {state_dir / 'registry.log'})")
            return 0
        time.sleep(0.1)
    if process.poll() is None:
        process.kill()
    (state_dir / "registry.pid").unlink(missing_ok=True)
    tail = (state_dir / "registry.log").read_text(errors="replace").splitlines()[-10:]
    print("docker-registry did not start:\n" + "\n".join(tail), file=sys.stderr)
    return 1


def seed(port: int) -> int:
    url = f"http://127.0.0.1:{port}"
    if not answers(port):
        print(f"no registry answers on 127.0.0.1:{port}; run the start command first", file=sys.stderr)
        return 1
    labels = {"org.opencontainers.image.title": "hello", "org.opencontainers.image.description": "archfleet demo"}
    children = [push_image(url, DEMO_REPO, tag, platform=platform, labels=labels)
                for tag, platform in DEMO_PLATFORMS.items()]
    index = push_index(url, DEMO_REPO, "latest", children)
    for child in children:
        print(f"{DEMO_REPO}:{child['platform']['architecture']}  {child['digest']}")
    print(f"{DEMO_REPO}:latest  {index['digest']}  (OCI index: {', '.join(DEMO_PLATFORMS.values())})")
    return 0


def stop(state_dir: Path) -> int:
    state_dir = state_dir.resolve()
    pid = running_pid(state_dir)
    if pid is None:
        (state_dir / "registry.pid").unlink(missing_ok=True)
        print("demo registry not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while running_pid(state_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if running_pid(state_dir) is not None:
        os.kill(pid, signal.SIGKILL)
    (state_dir / "registry.pid").unlink(missing_ok=True)
    print(f"demo registry stopped (pid {pid})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start the registry, detached")
    start_cmd.add_argument("--port", type=int, default=5000)
    start_cmd.add_argument("--dir", type=Path, default=Path("build/demo"))
    seed_cmd = commands.add_parser("seed", help="push the demo images")
    seed_cmd.add_argument("--port", type=int, default=5000)
    stop_cmd = commands.add_parser("stop", help="stop the registry")
    stop_cmd.add_argument("--dir", type=Path, default=Path("build/demo"))
    args = parser.parse_args(argv)
    if args.command == "start":
        return start(args.port, args.dir)
    if args.command == "seed":
        return seed(args.port)
    return stop(args.dir)


if __name__ == "__main__":
    sys.exit(main())
