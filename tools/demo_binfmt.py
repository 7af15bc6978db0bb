"""Remember the QEMU binfmt_misc state before `make demo`, and put it back on `make demo-stop`.

`make demo` provisions this machine as a build host: the build_host role registers QEMU emulators
with binfmt_misc and persists them in /etc/binfmt.d. `save` records, once, which qemu-* entries and
/etc/binfmt.d files existed before the first demo run; `restore` removes the entries and files the
demo added (entries that existed before are left as they are) and reports what it removed.
Needs root, as the demo does.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BINFMT = Path("/proc/sys/fs/binfmt_misc")
BINFMT_D = Path("/etc/binfmt.d")
STATE = "binfmt-before.json"


def current() -> dict:
    entries = sorted(p.name for p in BINFMT.glob("qemu-*")) if (BINFMT / "register").exists() else []
    files = sorted(p.name for p in BINFMT_D.glob("qemu-*.conf")) if BINFMT_D.is_dir() else []
    return {"entries": entries, "files": files}


def save(directory: Path) -> None:
    path = directory / STATE
    if path.exists():
        return  # the state before the first demo run is the one to come back to
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current(), indent=1))


def restore(directory: Path) -> int:
    path = directory / STATE
    if not path.exists():
        print("demo-stop: no record of the binfmt_misc state before the demo; emulators left as they are")
        return 0
    before = json.loads(path.read_text())
    now = current()
    removed = []
    for name in now["entries"]:
        if name not in before["entries"]:
            (BINFMT / name).write_text("-1")
            removed.append(name)
    for name in now["files"]:
        if name not in before["files"]:
            (BINFMT_D / name).unlink()
            removed.append(str(BINFMT_D / name))
    path.unlink()
    print("demo-stop: removed the emulators the demo registered: %s" % (", ".join(removed) or "none"))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("action", choices=["save", "restore"])
    parser.add_argument("--dir", required=True, type=Path, help="the demo directory (build/demo)")
    args = parser.parse_args()
    if args.action == "save":
        save(args.dir)
        return 0
    return restore(args.dir)


if __name__ == "__main__":
    sys.exit(main())
