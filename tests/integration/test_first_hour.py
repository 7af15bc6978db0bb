"""A first hour without root: `make test-unit lint docs` in a fresh copy of the clone, with a fresh virtualenv,
as an unprivileged user (``nobody`` when the tests run as root), with nothing but Python and make.

The copy holds what git knows (tracked and new files, as tools/sanity.sh copies them), owned by that user, with
its own HOME, so nothing outside it is written. Marked ``slow``: it installs requirements-test.txt (pip's index
as the machine is configured for it) and runs three targets; the time each part took is printed.
"""
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def copy_of_the_clone(destination: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            target = destination / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def as_user():
    """(argv prefix, user name): ``runuser -u nobody --`` when root, else nothing (already unprivileged)."""
    if os.geteuid() != 0:
        return [], pwd.getpwuid(os.geteuid()).pw_name
    return ["runuser", "-u", "nobody", "--"], "nobody"


@pytest.fixture
def work():
    """A directory the unprivileged user can reach (pytest's own tmp_path is under a 0700 directory of root)."""
    path = Path(tempfile.mkdtemp(prefix="archfleet-first-hour-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_unit_lint_and_docs_need_no_root_and_no_apt(work):
    clone, home = work / "clone", work / "home"
    copy_of_the_clone(clone)
    home.mkdir()
    prefix, user = as_user()
    if prefix:
        os.chmod(work, 0o755)
        subprocess.run(["chown", "-R", "nobody:nogroup" if _has_group("nogroup") else "nobody", str(work)], check=True)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "TMPDIR": str(home)}
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
                 "https_proxy", "http_proxy", "no_proxy"):
        if name in os.environ:
            env[name] = os.environ[name]
    timings = {}
    for target in ("venv", "test-unit", "lint", "docs"):
        start = time.monotonic()
        run = subprocess.run(prefix + ["env", "-i"] + ["%s=%s" % item for item in env.items()]
                             + ["make", "-s", "-C", str(clone), target], capture_output=True, text=True, check=False)
        timings[target] = round(time.monotonic() - start)
        assert run.returncode == 0, "make %s as %s failed:\n%s\n%s" % (target, user, run.stdout[-4000:],
                                                                       run.stderr[-4000:])
    print("first hour as %s: %s" % (user, ", ".join("%s %ds" % item for item in timings.items())))
    assert not (clone / "build" / ".apt-stamp").exists()


def _has_group(name):
    import grp
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False
