"""`make try`: the registry side of the collection, tried without changing anything outside the clone.

    try_it.py --port 5055 --dir build/try

Starts a registry from the clone (Debian's docker-registry, storage, config, pid and log under --dir), pushes
three small per-architecture images (try/app:1.0-amd64, -arm64, -armv7, made in Python: no docker, no
emulator), runs playbooks/try.yml (publish the multi-arch tag try/app:1.0, inspect it, audit it into
--dir/report), and stops the registry again, whatever happened. Nothing runs afterwards.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tools"))

import demo_registry  # noqa: E402
from harness.images import push_image  # noqa: E402
from harness.registry import REGISTRY_BINARY  # noqa: E402

REPOSITORY = "try/app"
PLATFORMS = {"amd64": "linux/amd64", "arm64": "linux/arm64", "armv7": "linux/arm/v7"}


def push_per_platform_images(port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    for suffix, platform in PLATFORMS.items():
        pushed = push_image(url, REPOSITORY, f"1.0-{suffix}", platform=platform,
                            labels={"org.opencontainers.image.title": "archfleet.multiarch try"},
                            payload=f"try {platform}\n".encode())
        print(f"pushed {REPOSITORY}:1.0-{suffix}  {pushed['digest']}  ({platform})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--dir", type=Path, default=ROOT / "build" / "try")
    args = parser.parse_args(argv)
    state_dir = args.dir.resolve()
    if not Path(f"/usr/bin/{REGISTRY_BINARY}").exists():
        print(f"make try needs the registry itself, Debian's package docker-registry (/usr/bin/{REGISTRY_BINARY}): "
              "install it with 'apt-get install docker-registry' (the one change to this machine), then run make try "
              "again", file=sys.stderr)
        return 3
    if demo_registry.start(args.port, state_dir) != 0:
        return 1
    try:
        push_per_platform_images(args.port)
        playbook = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
             str(ROOT / "playbooks" / "try.yml"), "-e", f"try_registry=127.0.0.1:{args.port}",
             "-e", f"try_report_dir={state_dir / 'report'}"], cwd=ROOT, env=os.environ, check=False)
        if playbook.returncode != 0:
            return playbook.returncode
    finally:
        demo_registry.stop(state_dir)
    print(f"report: {state_dir / 'report' / 'audit.html'} (open it in a browser); the registry is stopped, its "
          f"storage is in {state_dir / 'storage'}; rm -rf {state_dir} removes everything make try made")
    return 0


if __name__ == "__main__":
    sys.exit(main())
