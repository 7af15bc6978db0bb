"""Start Debian's dockerd without a service manager, on a private socket, for one test.

    with Dockerd(insecure_registries=["127.0.0.1:5000"]) as daemon:
        daemon.docker("load", "-i", tarball)
        out = daemon.docker("run", "--rm", "--platform", "linux/arm64", "--network", "none",
                            "img", "uname", "-m").stdout

Everything lives in one temporary directory (data root, exec root, pid file, socket,
daemon.json, log), networking is off (``--bridge=none``, no iptables), and stop()
terminates the daemon (and the containerd it started) and removes the directory.
The daemon never reads /etc/docker/daemon.json, so concurrent daemons and a host
docker service do not interfere.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


def remove_tree(root: Path) -> None:
    """Unmount (lazily, deepest first) whatever a daemon left mounted under ``root``, then delete ``root``."""
    try:
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    except OSError:
        mounts = []
    for target in sorted((m for m in mounts if m.startswith(str(root) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


class DockerdError(RuntimeError):
    pass


class Dockerd:
    def __init__(self, insecure_registries=(), config=None, storage_driver=None,
                 start_timeout=60.0, base_dir=None, config_file=None):
        self.insecure_registries = list(insecure_registries)
        self.config = dict(config or {})
        self.storage_driver = storage_driver
        self.start_timeout = start_timeout
        self.base_dir = base_dir
        self._config_file = Path(config_file) if config_file else None
        self.root = None
        self.proc = None
        self.host = None

    # Unix socket paths are limited to 108 bytes: keep the directory short.
    def _make_root(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="afd-", dir=self.base_dir or "/tmp"))

    @property
    def config_file(self) -> Path:
        """daemon.json: the one given (kept), else a fresh one in the private directory."""
        return self._config_file or self.root / "daemon.json"

    @property
    def log_file(self) -> Path:
        return self.root / "dockerd.log"

    def start(self) -> "Dockerd":
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not os.path.exists(dockerd):
            raise DockerdError("dockerd is not installed (Debian package docker.io)")
        self.root = self._make_root()
        config = dict(self.config)
        if self.insecure_registries:
            config["insecure-registries"] = sorted(
                set(config.get("insecure-registries", [])) | set(self.insecure_registries))
        if not self.config_file.exists() or self._config_file is None:
            self.config_file.parent.mkdir(parents=True, exist_ok=True)
            self.config_file.write_text(json.dumps(config, indent=2))
        sock = self.root / "docker.sock"
        self.host = f"unix://{sock}"
        cmd = [
            dockerd,
            "--host", self.host,
            "--config-file", str(self.config_file),
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "--bridge=none", "--iptables=false", "--ip6tables=false",
            "--ip-masq=false",
        ]
        if self.storage_driver:
            cmd += ["--storage-driver", self.storage_driver]
        log = open(self.log_file, "wb")
        # New session: the daemon survives nothing but us, and we can signal its group.
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.log_file.read_text(errors="replace")[-4000:]
                self._cleanup()
                raise DockerdError(f"dockerd exited with {self.proc.returncode}:\n{out}")
            if sock.exists() and self.docker("info", "--format", "{{.ID}}", check=False).returncode == 0:
                return self
            time.sleep(0.3)
        out = self.log_file.read_text(errors="replace")[-4000:]
        self.stop()
        raise DockerdError(f"dockerd did not answer within {self.start_timeout}s:\n{out}")

    def docker(self, *args, check=True, timeout=300, input=None) -> subprocess.CompletedProcess:
        env = dict(os.environ, DOCKER_HOST=self.host)
        env.pop("DOCKER_CONTEXT", None)
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=env,
                              timeout=timeout, input=input, check=False)
        if check and proc.returncode != 0:
            raise DockerdError(f"docker {' '.join(args)} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")
        return proc

    def reload(self) -> None:
        """Make dockerd re-read daemon.json (SIGHUP), e.g. after a role rewrote it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.proc is not None:
            # dockerd's managed containerd (and shims) are in its session: make sure none stay.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._cleanup()

    def _cleanup(self) -> None:
        if self.root is None:
            return
        # Leftover mounts under the root (overlay, netns, shm) would make rmtree fail.
        remove_tree(self.root)
        self.root = None

    def __enter__(self) -> "Dockerd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
