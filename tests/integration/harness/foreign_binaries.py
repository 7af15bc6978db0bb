"""Foreign-architecture test binaries from Debian, and the binfmt_misc state around tests.

* ``busybox(target)`` returns the path of Debian's static busybox for a QEMU target
  (``aarch64``, ``arm``, ``s390x``, ``ppc64le``), downloaded once into
  ``build/cache/foreign`` with apt-get against a private apt state (its own lists
  and APT::Architectures), so the host's dpkg architectures and apt lists stay as
  they are. Later calls only check the cache.
* ``busybox_image_tar(target, tag, dest)`` writes a ``docker load`` tarball of a
  one-layer image holding that busybox, with the platform set in its config, so a
  test can ``docker run --platform linux/arm64 --network none TAG uname -m``.
* ``BinfmtState.capture()`` / ``.restore()`` snapshot and restore every
  binfmt_misc entry and ``/etc/binfmt.d`` file, so tests leave the kernel as found.
  ``capture()`` first takes an exclusive flock on ``BINFMT_LOCK``, held until
  ``restore()``: binfmt_misc is one kernel-wide table, and every test and script of
  the project that changes or relies on it (``tools/arm64_vm.sh`` too) holds that lock,
  so two of them never run beside each other. ``binfmt_held()`` is the same as a
  context manager; the ``binfmt_state`` fixture of conftest uses it.
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HARNESS = Path(__file__).resolve().parent
COLLECTION_ROOT = HARNESS.parents[2]
CACHE = COLLECTION_ROOT / "build" / "cache" / "foreign"

# QEMU target -> (Debian architecture, OCI architecture, OCI variant, `uname -m` under QEMU)
TARGETS = {
    "aarch64": ("arm64", "arm64", "", "aarch64"),
    "arm": ("armhf", "arm", "v7", "armv7l"),
    "s390x": ("s390x", "s390x", "", "s390x"),
    "ppc64le": ("ppc64el", "ppc64le", "", "ppc64le"),
}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# Shared with tools/arm64_vm.sh (flock(1) on the same path): one holder of binfmt_misc at a time.
BINFMT_LOCK = Path(os.environ.get("ARCHFLEET_BINFMT_LOCK", "/run/lock/archfleet-binfmt.lock"))
# This process's hold on BINFMT_LOCK: flock on a second open file blocks even in the process that holds the
# lock, so nested captures (a fixture's and a test's) share one open file and count how deep they are.
_HOLD = {"file": None, "depth": 0}


def _acquire_binfmt_lock():
    if _HOLD["depth"] == 0:
        BINFMT_LOCK.parent.mkdir(parents=True, exist_ok=True)
        lock = open(BINFMT_LOCK, "a", encoding="utf-8")  # pylint: disable=consider-using-with  # until released
        fcntl.flock(lock, fcntl.LOCK_EX)
        _HOLD["file"] = lock
    _HOLD["depth"] += 1


def binfmt_lock_depth() -> int:
    """How many captures of this process hold the binfmt_misc lock now (0: not held)."""
    return _HOLD["depth"]


def _release_binfmt_lock():
    _HOLD["depth"] -= 1
    if _HOLD["depth"] == 0:
        _HOLD["file"].close()  # closing the file releases the flock
        _HOLD["file"] = None


BINFMT_D = Path("/etc/binfmt.d")


def platform_of(target: str) -> str:
    _debian_arch, arch, variant, _qemu = TARGETS[target]
    return "linux/" + arch + ("/" + variant if variant else "")


def uname_of(target: str) -> str:
    return TARGETS[target][3]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apt_options(state: Path, archs) -> list:
    sources = "/etc/apt/sources.list.d/debian.sources"
    if not os.path.exists(sources):
        sources = "/etc/apt/sources.list"
    opts = [
        "-o", f"Dir::State::Lists={state / 'lists'}",
        "-o", f"Dir::Cache::archives={state / 'archives'}",
        "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
        "-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=-",
        "-o", "APT::Sandbox::User=root", "-o", "Acquire::Retries=3",
    ]
    for arch in archs:
        opts += ["-o", f"APT::Architectures::={arch}"]
    return opts


def fetch_busybox(targets=tuple(TARGETS)) -> dict:
    """Download and unpack busybox-static for ``targets``; returns {target: path}."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE / ".lock"):
        missing = [t for t in targets if not (CACHE / t / "bin" / "busybox").exists()]
        if missing:
            state = CACHE / "apt"
            for sub in ("lists/partial", "archives/partial"):
                (state / sub).mkdir(parents=True, exist_ok=True)
            archs = [TARGETS[t][0] for t in missing]
            opts = _apt_options(state, archs)
            # A failing security or updates index must not stop us: busybox is in main.
            subprocess.run(["apt-get", "-q", *opts, "update"], capture_output=True, text=True, check=False)
            debs = CACHE / "debs"
            debs.mkdir(exist_ok=True)
            pkgs = [f"busybox-static:{a}" for a in archs]
            proc = subprocess.run(["apt-get", "-q", *opts, "download", *pkgs], cwd=debs,
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"apt-get download {' '.join(pkgs)} failed:\n{proc.stdout}{proc.stderr}")
            for target in missing:
                arch = TARGETS[target][0]
                deb = sorted(glob.glob(str(debs / f"busybox-static_*_{arch}.deb")))[-1]
                tmp = CACHE / f".{target}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                subprocess.run(["dpkg-deb", "-x", deb, str(tmp)], check=True)
                shutil.rmtree(CACHE / target, ignore_errors=True)
                tmp.rename(CACHE / target)
    return {t: CACHE / t / "bin" / "busybox" for t in targets}


def busybox(target: str) -> Path:
    return fetch_busybox((target,))[target]


def _tar_bytes(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def busybox_image_tar(target: str, tag: str, dest: Path) -> Path:
    """Write a ``docker load`` archive: busybox as /bin/busybox with sh and uname links."""
    binary = busybox(target).read_bytes()
    members = []
    bin_dir = tarfile.TarInfo("bin")
    bin_dir.type, bin_dir.mode = tarfile.DIRTYPE, 0o755
    members.append((bin_dir, None))
    info = tarfile.TarInfo("bin/busybox")
    info.size, info.mode = len(binary), 0o755
    members.append((info, binary))
    for applet in ("sh", "uname", "echo", "cat"):
        link = tarfile.TarInfo("bin/" + applet)
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        members.append((link, None))
    layer = _tar_bytes(members)
    layer_digest = hashlib.sha256(layer).hexdigest()
    _debian_arch, arch, variant, _qemu = TARGETS[target]
    config = {
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_digest]},
        "history": [{"created_by": "archfleet test harness: Debian busybox-static"}],
    }
    if variant:
        config["variant"] = variant
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag],
                            "Layers": [layer_digest + "/layer.tar"]}]).encode()
    entries = []
    for name, data in ((config_name, config_bytes), (layer_digest + "/layer.tar", layer),
                       ("manifest.json", manifest)):
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        entries.append((info, data))
    dest = Path(dest)
    dest.write_bytes(_tar_bytes(entries))
    return dest


# --- binfmt_misc state ---------------------------------------------------------

# A build context that works for every platform without a registry: FROM scratch, the platform's busybox
# (copied in by write_busybox_context) installs its applets, and the image records what `uname -m` said.
BUSYBOX_DOCKERFILE = """\
FROM scratch
ARG TARGETARCH
ARG TARGETVARIANT
COPY rootfs/${TARGETARCH}${TARGETVARIANT}/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN uname -m > /etc/machine
CMD ["cat", "/etc/machine"]
"""


def write_busybox_context(directory: Path, binaries: dict) -> Path:
    """A build context in ``directory``: BUSYBOX_DOCKERFILE and ``rootfs/<arch><variant>/bin/busybox``
    for each ``{platform: busybox binary}``; returns ``directory``."""
    for platform, binary in binaries.items():
        bin_dir = directory / "rootfs" / "".join(platform.split("/")[1:]) / "bin"
        bin_dir.mkdir(parents=True)
        shutil.copy(binary, bin_dir / "busybox")
    (directory / "Dockerfile").write_text(BUSYBOX_DOCKERFILE)
    return directory


def _read_entries() -> dict:
    entries = {}
    if not (BINFMT_DIR / "register").exists():
        return entries
    for path in BINFMT_DIR.iterdir():
        if path.name in ("register", "status"):
            continue
        try:
            entries[path.name] = path.read_text()
        except OSError:
            continue
    return entries


def _parse(text: str) -> dict:
    info = {"enabled": False, "flags": "", "offset": "0", "magic": "", "mask": "", "extension": None}
    for line in text.splitlines():
        line = line.strip()
        if line in ("enabled", "disabled"):
            info["enabled"] = line == "enabled"
        elif line.startswith("flags:"):
            info["flags"] = line[len("flags:"):].strip()
        elif " " in line:
            key, value = line.split(" ", 1)
            info[key] = value
    return info


def _register_line(name: str, text: str) -> str:
    info = _parse(text)

    def esc(hexstr):
        return "".join("\\x" + hexstr[i:i + 2] for i in range(0, len(hexstr), 2))

    flags = info["flags"].replace("O", "") if "C" in info["flags"] else info["flags"]
    if info.get("extension"):
        return f":{name}:E::{info['extension'].lstrip('.')}::{info['interpreter']}:{flags}"
    return (f":{name}:M:{info['offset']}:{esc(info['magic'])}:{esc(info['mask'])}:"
            f"{info['interpreter']}:{flags}")


@dataclass
class BinfmtState:
    mounted: bool
    entries: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    locked: bool = False

    @classmethod
    def capture(cls) -> "BinfmtState":
        """Take the binfmt_misc lock (waits for another process holding it; nested captures in this process
        share it), then snapshot the entries and /etc/binfmt.d."""
        _acquire_binfmt_lock()
        try:
            if not (BINFMT_DIR / "register").exists():
                subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], check=True)
            files = {}
            if BINFMT_D.is_dir():
                # A symlink (a mask such as -> /dev/null) is kept as ("symlink", target).
                files = {p.name: ("symlink", os.readlink(p)) if p.is_symlink() else p.read_bytes()
                         for p in BINFMT_D.iterdir() if p.is_symlink() or p.is_file()}
            return cls((BINFMT_DIR / "register").exists(), _read_entries(), files, True)
        except BaseException:
            _release_binfmt_lock()
            raise

    def restore(self) -> list:
        """Put back what was captured, touching only entries that differ, and release the lock.
        Returns the names fixed."""
        try:
            return self._restore()
        finally:
            if self.locked:
                self.locked = False
                _release_binfmt_lock()

    def _restore(self) -> list:
        if not (BINFMT_DIR / "register").exists():
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], check=True)
        fixed = []
        now = _read_entries()
        for name in set(now) - set(self.entries):
            (BINFMT_DIR / name).write_text("-1")
            fixed.append(name)
        for name, text in self.entries.items():
            if now.get(name) == text:
                continue
            if name in now:
                (BINFMT_DIR / name).write_text("-1")
            (BINFMT_DIR / "register").write_text(_register_line(name, text))
            if not _parse(text)["enabled"]:
                (BINFMT_DIR / name).write_text("0")
            fixed.append(name)
        if BINFMT_D.is_dir() or self.files:
            BINFMT_D.mkdir(parents=True, exist_ok=True)
            for path in BINFMT_D.iterdir():
                if (path.is_symlink() or path.is_file()) and path.name not in self.files:
                    path.unlink()
            for name, data in self.files.items():
                path = BINFMT_D / name
                if isinstance(data, tuple):
                    if not path.is_symlink() or os.readlink(path) != data[1]:
                        if path.is_symlink() or path.exists():
                            path.unlink()
                        path.symlink_to(data[1])
                    continue
                if path.is_symlink():
                    path.unlink()
                if not path.exists() or path.read_bytes() != data:
                    path.write_bytes(data)
        after = _read_entries()
        if after != self.entries:
            raise RuntimeError(f"binfmt_misc state not restored: {sorted(set(after) ^ set(self.entries))}")
        return fixed


@contextmanager
def binfmt_held():
    """``with binfmt_held() as state:`` holds the binfmt_misc lock and restores the captured state on exit."""
    state = BinfmtState.capture()
    try:
        yield state
    finally:
        state.restore()


def remove_entry(name: str) -> None:
    path = BINFMT_DIR / name
    if path.exists():
        path.write_text("-1")


def register(line: str) -> None:
    (BINFMT_DIR / "register").write_text(line)


def ensure_emulators(targets, package_dir: Path = Path("/usr/lib/binfmt.d")) -> None:
    """Register Debian's own qemu-user-static entries (``/usr/lib/binfmt.d/qemu-<target>.conf``) for
    ``targets`` whose kernel entry is missing or disabled, as binfmt-support does at boot.

    For tests that need working emulation but do not test registering it: on a machine where
    binfmt_misc was not mounted when the package was installed, nothing is registered yet.
    Callers capture a BinfmtState first and restore it afterwards.
    """
    if not (BINFMT_DIR / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], check=True)
    for target in targets:
        name = f"qemu-{target}"
        entry = BINFMT_DIR / name
        if entry.exists() and _parse(entry.read_text())["enabled"]:
            continue
        line = next(line for line in (package_dir / f"{name}.conf").read_text().splitlines()
                    if line.startswith(":"))
        if entry.exists():
            entry.write_text("-1")
        register(line)
