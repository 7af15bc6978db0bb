"""Start and stop the docker engine `make demo` builds with, and assemble the demo build context.

    demo_dockerd.py start   --dir build/demo   # detached dockerd on build/demo/docker/docker.sock
    demo_dockerd.py context --dir build/demo   # build/demo/context: Dockerfile + per-arch busybox rootfs
    demo_dockerd.py stop    --dir build/demo

The demo does not touch a docker service the host may run: its dockerd (Debian's docker.io) has
its own socket, data root and config, no bridge and no iptables rules, and the demo's containers
run with --network none. Hosts without a service manager start dockerd exactly like this.

The build context assembles a base per architecture from Debian's own static busybox (the
amd64 one from the installed busybox-static package, the others downloaded with apt-get into
build/cache, leaving the host's dpkg architectures alone).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from harness.foreign_binaries import fetch_busybox  # noqa: E402

START_TIMEOUT = 60.0
DOCKER_CLI = "/usr/bin/docker"   # Debian's CLI: BuildKit without the buildx plugin
# BuildKit's TARGETARCH + TARGETVARIANT -> QEMU target whose busybox goes there (None: the host's own)
ROOTFS = {"amd64": None, "arm64": "aarch64", "armv7": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
DOCKERFILE = """\
# The archfleet.multiarch demo image: Debian's static busybox for the target architecture.
FROM scratch
ARG TARGETARCH
ARG TARGETVARIANT
COPY rootfs/${TARGETARCH}${TARGETVARIANT}/ /
# Runs under QEMU for foreign platforms: proves emulation at build time.
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sh", "-c", "echo hello from $(uname -m)"]
"""


def paths(state_dir: Path) -> dict:
    docker = state_dir / "docker"
    # The exec root holds containerd's socket: keep it short (unix socket paths end at 108 bytes),
    # and one per demo directory so two demos never share it.
    exec_root = Path("/run") / ("archfleet-demo-" + hashlib.sha256(str(state_dir).encode()).hexdigest()[:8])
    return {"dir": docker, "socket": docker / "docker.sock", "pid": docker / "dockerd.pid",
            "log": docker / "dockerd.log", "config": docker / "daemon.json", "data": docker / "data",
            "exec_root": exec_root}


def docker_ok(socket: Path) -> bool:
    proc = subprocess.run([DOCKER_CLI, "-H", f"unix://{socket}", "info", "--format", "{{.ID}}"],
                          capture_output=True, check=False)
    return proc.returncode == 0


def running_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
        name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except (FileNotFoundError, ValueError):
        return None
    return pid if Path(name.decode()).name == "dockerd" else None


def start(state_dir: Path, insecure_registries: list[str]) -> int:
    where = paths(state_dir)
    if running_pid(where["pid"]) and docker_ok(where["socket"]):
        print(f"demo dockerd already running on unix://{where['socket']}")
        return 0
    where["dir"].mkdir(parents=True, exist_ok=True)
    where["config"].write_text(json.dumps({"insecure-registries": insecure_registries}, indent=2))
    command = ["dockerd", "--host", f"unix://{where['socket']}", "--config-file", str(where["config"]),
               "--data-root", str(where["data"]), "--exec-root", str(where["exec_root"]), "--pidfile", str(where["pid"]),
               "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"]
    with open(where["log"], "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print(f"dockerd exited with status {process.returncode}; see {where['log']}", file=sys.stderr)
            return 1
        if where["socket"].exists() and docker_ok(where["socket"]):
            print(f"demo dockerd started on unix://{where['socket']} (pid {process.pid}, log {where['log']})")
            return 0
        time.sleep(0.3)
    print(f"dockerd did not answer within {START_TIMEOUT:.0f} s; see {where['log']}", file=sys.stderr)
    return 1


def stop(state_dir: Path) -> int:
    where = paths(state_dir)
    pid = running_pid(where["pid"])
    if pid is None:
        print("demo dockerd is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and running_pid(where["pid"]) == pid:
        time.sleep(0.3)
    shutil.rmtree(where["exec_root"], ignore_errors=True)
    print(f"demo dockerd stopped (pid {pid})")
    return 0


def context(state_dir: Path) -> int:
    """Write the Dockerfile and one busybox rootfs per architecture; unchanged files are left alone."""
    root = state_dir / "context"
    foreign = fetch_busybox(tuple(t for t in ROOTFS.values() if t))
    for slug, target in ROOTFS.items():
        source = foreign[target] if target else Path(shutil.which("busybox") or "/bin/busybox")
        destination = root / "rootfs" / slug / "bin" / "busybox"
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not destination.exists() or destination.read_bytes() != source.read_bytes():
            shutil.copyfile(source, destination)
            destination.chmod(0o755)
    dockerfile = root / "Dockerfile"
    if not dockerfile.exists() or dockerfile.read_text() != DOCKERFILE:
        dockerfile.write_text(DOCKERFILE)
    print(f"demo build context ready in {root} ({', '.join(ROOTFS)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=["start", "stop", "context"])
    parser.add_argument("--dir", type=Path, default=Path("build/demo"))
    parser.add_argument("--insecure-registry", action="append", default=[])
    args = parser.parse_args(argv)
    state_dir = args.dir.resolve()
    if args.command == "start":
        return start(state_dir, args.insecure_registry)
    if args.command == "stop":
        return stop(state_dir)
    return context(state_dir)


if __name__ == "__main__":
    sys.exit(main())
