"""Start BuildKit's buildkitd (tools/peers.sh, moby/buildkit) rootful with runc, on a private socket, for tests.

    with Buildkitd(insecure_registries=["127.0.0.1:5000"]) as daemon:
        daemon.buildctl("build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}", ...)
        daemon.address   # unix:///tmp/abk-XXXX/buildkitd.sock, for `docker buildx create --driver remote`

Everything lives in one temporary directory (root, socket, buildkitd.toml, log): the OCI worker with runc
(Debian's runc package), no containerd worker, and the registries named plain-HTTP in buildkitd.toml
(``[registry."host:port"] http = true``). RUN steps get the host's network namespace (the
``--oci-worker-net host`` default of a rootful daemon without CNI); the builds of the tests are
``FROM scratch`` + ``COPY``, which run no process at all, so no emulator and no network are needed.
stop() terminates the daemon, unmounts what it left mounted under its root, and removes the directory.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from harness.dockerd import remove_tree
from harness.goregistry import peer_binary


class BuildkitdError(RuntimeError):
    pass


class Buildkitd:
    """One buildkitd; ``address`` is its ``unix://`` socket, ``buildctl(*args)`` runs buildctl against it."""

    def __init__(self, insecure_registries=(), start_timeout=60.0):
        self.insecure_registries = list(insecure_registries)
        self.start_timeout = start_timeout
        self.binary = peer_binary("buildkitd")
        self.buildctl_binary = peer_binary("buildctl")
        self.root = None
        self.proc = None
        self.address = None

    @property
    def log_file(self) -> Path:
        return self.root / "buildkitd.log"

    def start(self) -> "Buildkitd":
        if not shutil.which("runc"):
            raise BuildkitdError("runc is not installed (Debian package runc): buildkitd's OCI worker needs it")
        # Unix socket paths are limited to 108 bytes: keep the directory short.
        self.root = Path(tempfile.mkdtemp(prefix="abk-", dir="/tmp"))
        config = self.root / "buildkitd.toml"
        config.write_text("".join(f'[registry."{host}"]\n  http = true\n  insecure = true\n'
                                  for host in self.insecure_registries))
        self.address = f"unix://{self.root / 'buildkitd.sock'}"
        cmd = [self.binary, "--config", str(config), "--root", str(self.root / "root"), "--addr", self.address,
               "--oci-worker=true", "--containerd-worker=false", "--oci-worker-net", "host"]
        with open(self.log_file, "wb") as log:
            # A session of its own: nothing but stop() signals it, and its runc children go with its group.
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.log_file.read_text(errors="replace")[-4000:]
                self._cleanup()
                raise BuildkitdError(f"buildkitd exited with {self.proc.returncode}:\n{out}")
            if self.buildctl("debug", "workers", check=False).returncode == 0:
                return self
            time.sleep(0.3)
        out = self.log_file.read_text(errors="replace")[-4000:]
        self.stop()
        raise BuildkitdError(f"buildkitd did not answer within {self.start_timeout}s:\n{out}")

    def buildctl(self, *args, check=True, timeout=600) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.buildctl_binary, "--addr", self.address, *args], capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise BuildkitdError(f"buildctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.root is None:
            return
        # Mounts buildkitd left under its root (snapshots of an interrupted build) would keep rmtree from working.
        remove_tree(self.root)
        self.root = None

    def __enter__(self) -> "Buildkitd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
