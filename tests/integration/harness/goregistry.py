"""Registries built from Go sources by tools/peers.sh, with the surface of harness.registry.Registry.

``DistributionRegistry``: CNCF distribution v3 (peer ``distribution-3``). It reads the same configuration
as Debian's 2.8 and is started the same way, so every variant of :class:`~harness.registry.Registry`
works (open, ``auth="htpasswd"``, ``auth="token"`` with harness.tokenserver, ``tls=True``); its access log
has the same format.

``GgcrRegistry``: go-containerregistry's in-memory registry with its Referrers API on (peer
``ggcr-registry``, the project's own main in tests/peers/ggcr-registry). Open and plain HTTP only;
blobs on disk in its temporary directory, manifests in memory. Its main writes an access log in
distribution's format, so :meth:`Registry.access_log` parses it too.

Both are started like ``Registry``: 127.0.0.1, a free port, a temporary directory removed on stop, the
log in ``.log_path``, killed with the thread that started them.

A peer that cannot be built because Go is missing or too old raises :class:`PeerUnavailable` carrying
peers.sh's one sentence (the fixtures turn it into a skip, or a failure under ARCHFLEET_REQUIRE_PEERS=1).
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from .registry import Registry

PEERS_SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "peers.sh"
GO_MISSING = 3          # peers.sh's exit status when Go is missing or too old
BUILD_TIMEOUT = 1800


class PeerUnavailable(RuntimeError):
    """A peer cannot be built here (no Go, or too old a Go); the message is peers.sh's sentence."""


@functools.lru_cache(maxsize=None)
def peer_binary(name: str) -> str:
    """The path of peer ``name``'s binary, built by tools/peers.sh if it is not in the cache yet.

    Raises PeerUnavailable (peers.sh exit 3) or RuntimeError (a failed build, with peers.sh's output).
    """
    proc = subprocess.run([str(PEERS_SCRIPT), name], capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                          check=False)
    if proc.returncode == GO_MISSING:
        raise PeerUnavailable(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        raise RuntimeError(f"tools/peers.sh {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


@functools.lru_cache(maxsize=None)
def peer_version(name: str) -> str:
    """The pinned version of peer ``name``, from ``tools/peers.sh --list`` (``name package version`` lines)."""
    out = subprocess.run([str(PEERS_SCRIPT), "--list"], capture_output=True, text=True, check=True).stdout
    versions = {fields[0]: fields[2] for fields in (line.split() for line in out.splitlines()) if len(fields) == 3}
    return versions[name]


class DistributionRegistry(Registry):
    """distribution v3's ``registry``, any variant of Registry (see the module docstring)."""

    implementation = "distribution-3"
    peer = "distribution-3"

    def __init__(self, **kwargs):
        kwargs.setdefault("binary", peer_binary(self.peer))
        super().__init__(**kwargs)

    @property
    def version(self) -> str:
        return peer_version(self.peer)


class GgcrRegistry(Registry):
    """go-containerregistry's registry with the Referrers API: open, plain HTTP, blobs under ``dir/blobs``."""

    implementation = "ggcr"
    peer = "ggcr-registry"

    def __init__(self, *, start: bool = True, **kwargs):
        if kwargs.get("auth") or kwargs.get("tls") or kwargs.get("client_certs"):
            raise ValueError("the ggcr registry is open and plain HTTP only (no auth, no TLS)")
        super().__init__(binary=peer_binary(self.peer), start=start, **kwargs)

    @property
    def version(self) -> str:
        """The go-containerregistry version the peer's go.mod pins."""
        return peer_version(self.peer)

    def _command(self, port: int) -> list[str]:
        assert self.dir is not None
        (self.dir / "blobs").mkdir(exist_ok=True)
        return [self.binary, "-addr", f"127.0.0.1:{port}", "-disk", str(self.dir / "blobs")]
