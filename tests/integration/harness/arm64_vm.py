"""A real Debian 12 arm64 machine under qemu-system-aarch64 (TCG), reachable over SSH on a loopback port.

    image = image_dir()                     # the image `make vm` (tools/arm64_vm.sh) cached; never built here
    with Arm64Vm(image, tmp / "vm") as vm:  # boots a copy-on-write overlay of it
        vm.forward_to_host(registry_port)   # the guest's 127.0.0.1:<port> reaches this machine's, over SSH
        inventory: ansible_host=127.0.0.1 ansible_port={vm.port} ansible_user=root
                   ansible_ssh_private_key_file={vm.key}

The image (root.qcow2, Debian's arm64 kernel, a busybox initramfs, the key root accepts, the archive's InRelease)
lives under ``${ARCHFLEET_CACHE:-/var/cache/archfleet}/vm/debian12-arm64-<recipe hash>/``; see tools/arm64_vm.sh.
Building it takes minutes, so it is built by ``make vm`` (which ``make test`` runs first), never by a test.

Each Arm64Vm boots its own qcow2 overlay (backing file: the cached image, which is never written) in its directory,
with QEMU's user-mode network in ``restrict=on`` mode: the guest's SSH port is forwarded from 127.0.0.1:<free port>
and the guest can open no connection out, not even to this machine. What the guest may reach is forwarded
explicitly, through SSH remote forwards (``forward_to_host``): a registry on this machine's 127.0.0.1:<port> then
has the same address inside the guest, so one image reference works on the controller, on the x86_64 hosts and in
the VM. ``start`` also points the guest's apt at an :class:`AptSnapshot` (an HTTP proxy on this machine that serves
the archive's InRelease as it was when the image was built), so ``apt-get update`` in the guest finds its package
lists current, as on a host with a local mirror, without the network.

stop() powers the guest off (SIGTERM to QEMU after ``STOP_TIMEOUT``) and deletes the overlay.
"""
from __future__ import annotations

import email.utils
import fcntl
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from .registry import _die_with_parent, free_port, stop_process

HARNESS = Path(__file__).resolve().parent
COLLECTION_ROOT = HARNESS.parents[2]
BUILD_SCRIPT = COLLECTION_ROOT / "tools" / "arm64_vm.sh"
BOOT_TIMEOUT = 900.0            # seconds from starting QEMU to an SSH session that runs a command (TCG, shared cores)
STOP_TIMEOUT = 60.0             # seconds for the guest's own power-off before QEMU gets SIGTERM
QEMU = "qemu-system-aarch64"
GUEST_APT_PROXY_PORT = 3142     # the guest's 127.0.0.1 port apt's proxy is forwarded on (apt-cacher-ng's port)


class VmUnavailable(Exception):
    """This machine cannot boot the arm64 VM (the message says what is missing)."""


def image_dir() -> Path:
    """The directory of the cached arm64 image (``tools/arm64_vm.sh --check``).

    Raises VmUnavailable when this machine cannot run the VM (no qemu-system-aarch64, not root), and
    RuntimeError when it can but the image was not built (``make vm`` builds it; a test never does: a fresh
    build takes many minutes).
    """
    if shutil.which(QEMU) is None:
        raise VmUnavailable(f"{QEMU} is not installed (Debian package qemu-system-arm)")
    if os.geteuid() != 0:
        raise VmUnavailable("the arm64 VM's image is built and booted as root")
    wait_for_a_build_in_progress()
    proc = subprocess.run([str(BUILD_SCRIPT), "--check"], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"no arm64 VM image for the current recipe ({proc.stderr.strip()}): `make vm` builds it "
                           "(make test runs it before the integration tests)")
    return Path(proc.stdout.strip().splitlines()[-1])


def wait_for_a_build_in_progress(timeout: float = 3600.0) -> None:
    """Wait while tools/arm64_vm.sh builds the image (it holds ``<cache>/vm/.lock`` for as long as it builds):
    `make test` starts that build beside the first integration tests, and the tests that boot the VM run last."""
    lock_path = Path(os.environ.get("ARCHFLEET_CACHE", "/var/cache/archfleet")) / "vm" / ".lock"
    if not lock_path.exists():
        return
    deadline = time.monotonic() + timeout
    with open(lock_path, "a", encoding="utf-8") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return  # no build holds it; closing the file lets go at once
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the arm64 image build (tools/arm64_vm.sh) held {lock_path} for over "
                                       f"{timeout:.0f} s") from None
                time.sleep(5)


class AptSnapshot:
    """An HTTP proxy for apt on 127.0.0.1:<free port> that answers only with the archive's InRelease files the
    image's package lists came from (``<image>/apt/<apt list name>``; If-Modified-Since gets 304) and 404 for
    anything else. ``requests`` lists the URLs asked for."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.requests: list[str] = []
        self.port: int | None = None
        self._server: http.server.ThreadingHTTPServer | None = None

    def _file_for(self, url: str) -> Path | None:
        # apt names a list file after its URL without the scheme, '/' turned into '_' (apt's URItoFileName).
        name = url.split("://", 1)[-1].replace("_", "%5f").replace("/", "_")
        path = self.dir / name
        return path if "/" not in name and path.is_file() else None

    def start(self) -> "AptSnapshot":
        snapshot = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                self._answer(body=True)

            def do_HEAD(self):  # noqa: N802
                self._answer(body=False)

            def _answer(self, body: bool) -> None:
                snapshot.requests.append(self.path)
                path = snapshot._file_for(self.path)
                if path is None:
                    self.send_error(404, "not in the image's archive snapshot")
                    return
                mtime = int(path.stat().st_mtime)
                since = self.headers.get("If-Modified-Since")
                if since:
                    try:
                        if mtime <= email.utils.parsedate_to_datetime(since).timestamp():
                            self.send_response(304)
                            self.end_headers()
                            return
                    except (TypeError, ValueError):
                        pass
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Last-Modified", email.utils.formatdate(mtime, usegmt=True))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class Arm64Vm:
    """One booted overlay of the image in ``image``; ``host``, ``port``, ``key`` (private key path), ``user``,
    ``boot_seconds`` (QEMU start to a command run over SSH)."""

    host = "127.0.0.1"
    user = "root"

    def __init__(self, image: Path, directory: Path, *, smp: int = 2, memory_mib: int = 2048):
        self.image = Path(image)
        self.dir = Path(directory)
        self.smp = smp
        self.memory_mib = memory_mib
        self.port: int | None = None
        self.boot_seconds: float | None = None
        self.apt = AptSnapshot(self.image / "apt")
        self._proc: subprocess.Popen | None = None
        self._tunnels: list[subprocess.Popen] = []

    @property
    def key(self) -> Path:
        return self.image / "id_ed25519"

    @property
    def overlay(self) -> Path:
        return self.dir / "root-overlay.qcow2"

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    def command(self, port: int) -> list:
        """QEMU's argv: cortex-a72 (it has AArch32 at EL0, as most arm64 server CPUs did until recently), TCG."""
        return [
            QEMU, "-M", "virt", "-cpu", "cortex-a72", "-smp", str(self.smp), "-m", str(self.memory_mib),
            "-display", "none", "-monitor", "none", "-no-reboot", "-serial", f"file:{self.console_log}",
            "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
            "-append", (self.image / "cmdline").read_text().strip(),
            "-drive", f"file={self.overlay},format=qcow2,if=none,id=hd0", "-device", "virtio-blk-pci,drive=hd0",
            "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-pci,netdev=n0,romfile=",
        ]

    def ssh_options(self) -> list:
        return ["-i", str(self.key), "-p", str(self.port), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
                "-o", "LogLevel=ERROR"]

    def ssh(self, *remote: str, timeout: float = 300, input_bytes: bytes = b"") -> subprocess.CompletedProcess:
        """Run ``remote`` in the guest as root over SSH (no host key checks: a fresh test VM), ``input_bytes`` on
        its stdin; ``stdout`` and ``stderr`` of the result are text."""
        done = subprocess.run(["ssh", *self.ssh_options(), f"{self.user}@{self.host}", *remote], input=input_bytes,
                              capture_output=True, timeout=timeout, check=False)
        done.stdout = done.stdout.decode(errors="replace")
        done.stderr = done.stderr.decode(errors="replace")
        return done

    def forward_to_host(self, port: int, guest_port: int | None = None) -> None:
        """Make the guest's 127.0.0.1:``guest_port`` (default: ``port``) reach this machine's 127.0.0.1:``port``,
        through an SSH remote forward (the guest's network is restricted); ended by stop()."""
        guest_port = guest_port or port
        tunnel = subprocess.Popen(
            ["ssh", *self.ssh_options(), "-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=30",
             "-R", f"127.0.0.1:{guest_port}:127.0.0.1:{port}", f"{self.user}@{self.host}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        self._tunnels.append(tunnel)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if tunnel.poll() is not None:
                raise RuntimeError(f"ssh -R {guest_port}:127.0.0.1:{port} to the arm64 VM exited: "
                                   f"{tunnel.stderr.read().decode(errors='replace')}")
            probe = self.ssh(f"exec 3<>/dev/tcp/127.0.0.1/{guest_port}", timeout=60)
            if probe.returncode == 0:
                return
            time.sleep(1)
        raise RuntimeError(f"the guest's 127.0.0.1:{guest_port} did not reach 127.0.0.1:{port} in 120 s")

    def _tail(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def start(self) -> "Arm64Vm":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.overlay.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        str(self.image / "root.qcow2"), str(self.overlay)], check=True, capture_output=True)
        self.port = free_port()
        started = time.monotonic()
        with open(self.dir / "qemu.log", "ab") as qemu_log:
            self._proc = subprocess.Popen(["nice", "-n", "10", *self.command(self.port)], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=qemu_log, preexec_fn=_die_with_parent)
        try:
            self._wait_for_ssh(started)
            self.boot_seconds = time.monotonic() - started
            self.apt.start()
            self.forward_to_host(self.apt.port, GUEST_APT_PROXY_PORT)
            # The snapshot holds the archive's InRelease and the image's Packages lists, no translations: without
            # Acquire::Languages "none" an `apt-get update` once the role's cache_valid_time has passed (an image
            # built over an hour before) asks for Translation-en and fails on the 404.
            conf = f'Acquire::http::Proxy "http://127.0.0.1:{GUEST_APT_PROXY_PORT}"; Acquire::Languages "none";'
            done = self.ssh(f"echo '{conf}' > /etc/apt/apt.conf.d/01archfleet-snapshot-proxy")
            if done.returncode != 0:
                raise RuntimeError(f"cannot configure apt in the arm64 VM: {done.stderr}")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_ssh(self, started: float) -> None:
        deadline = started + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{QEMU} exited with {self._proc.returncode}: "
                                   f"{(self.dir / 'qemu.log').read_text()}\n{self._tail()}")
            if self._ssh_banner() and self.ssh("true", timeout=60).returncode == 0:
                return
            time.sleep(3)
        raise RuntimeError(f"the arm64 VM did not answer SSH on port {self.port} in {BOOT_TIMEOUT:.0f} s:\n{self._tail()}")

    def _ssh_banner(self) -> bool:
        # QEMU accepts on the forwarded port before the guest's sshd listens: wait for the banner.
        try:
            with socket.create_connection((self.host, self.port), timeout=5) as conn:
                conn.settimeout(20)
                return conn.recv(64).startswith(b"SSH-")
        except OSError:
            return False

    def stop(self) -> None:
        for tunnel in self._tunnels:
            tunnel.terminate()
            try:
                tunnel.wait(timeout=10)
            except subprocess.TimeoutExpired:
                tunnel.kill()
                tunnel.wait()
        self._tunnels = []
        if self._proc is not None and self._proc.poll() is None:
            self.ssh("systemctl poweroff", timeout=30)
            try:
                self._proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                stop_process(self._proc)
        self._proc = None
        self.apt.stop()
        self.overlay.unlink(missing_ok=True)

    def __enter__(self) -> "Arm64Vm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def host_vars(vm: Arm64Vm) -> dict:
    """Inventory variables that reach ``vm``: root over SSH with the image's key, no host key checks."""
    return {
        "ansible_host": vm.host,
        "ansible_port": vm.port,
        "ansible_user": vm.user,
        "ansible_ssh_private_key_file": str(vm.key),
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
    }
