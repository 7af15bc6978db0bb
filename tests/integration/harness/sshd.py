"""Real sshd instances on loopback ports, for tests that reach "hosts" over SSH.

    keys = ClientKey.generate(tmp / "client")
    with Sshd(tmp / "host1", keys.public_path) as host1:
        inventory: ansible_host=127.0.0.1 ansible_port={host1.port} ansible_user=root
                   ansible_ssh_private_key_file={keys.private_path}

Each instance runs Debian's /usr/sbin/sshd in the foreground (``-D -e``) as root, with its
own host key, config, pid file and authorized_keys in its directory (all made at test time),
password and PAM authentication off, and internal-sftp for file transfers. stop() ends it;
the kernel also SIGTERMs it when the thread that started it exits (see harness.registry).
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .registry import _die_with_parent, free_port, stop_process

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 15.0
PRIVSEP_DIR = Path("/run/sshd")   # sshd refuses to start without its privilege separation directory


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)


@dataclass(frozen=True)
class ClientKey:
    private_path: Path

    @property
    def public_path(self) -> Path:
        return self.private_path.with_suffix(".pub")

    @classmethod
    def generate(cls, directory: Path) -> "ClientKey":
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "id_ed25519"
        _keygen(path, "archfleet-test-client")
        return cls(path)


class Sshd:
    def __init__(self, directory: Path, authorized_key: Path):
        self.dir = Path(directory)
        self.authorized_key = Path(authorized_key)
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "sshd.log"

    def _config(self, port: int) -> str:
        return "\n".join([
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.dir / 'host_key'}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "MaxStartups 50",
            "MaxSessions 50",
            "Subsystem sftp internal-sftp",
            "",
        ])

    def start(self) -> "Sshd":
        if not os.path.exists(SSHD):
            raise RuntimeError(f"{SSHD} is not installed (Debian package openssh-server)")
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        _keygen(self.dir / "host_key", "archfleet-test-host")
        (self.dir / "authorized_keys").write_text(self.authorized_key.read_text())
        self.port = free_port()
        config = self.dir / "sshd_config"
        config.write_text(self._config(self.port))
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self._proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    if conn.recv(64).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sshd did not answer on port {self.port}:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None

    def __enter__(self) -> "Sshd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def close_control_masters(control_path_dir: Path) -> None:
    """Ask every OpenSSH ControlMaster with a socket in ``control_path_dir`` to exit.

    ansible-playbook leaves its multiplexing masters running for ControlPersist seconds;
    point ANSIBLE_SSH_CONTROL_PATH_DIR at a test directory and call this to end them.
    """
    for socket_path in Path(control_path_dir).glob("*"):
        if socket_path.is_socket():
            subprocess.run(["ssh", "-S", str(socket_path), "-O", "exit", "127.0.0.1"],
                           capture_output=True, timeout=10, check=False)
