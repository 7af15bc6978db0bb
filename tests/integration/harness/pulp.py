"""Start a real Pulp (pulpcore + pulp-container) container registry for a test.

Pulp is the registry inside Red Hat Satellite and Private Automation Hub. :class:`PulpRegistry`
offers the surface of :class:`harness.registry.Registry` (``host``, ``url``, ``scheme``,
``auth``, ``username``/``password``, ``tls``, ``ca_path``, ``cert_dir``, ``verify``,
``auth_tuple``, ``start``/``stop``, context manager, ``log_path``, ``access_log()``), so the
tests and :func:`harness.images.seed_fixtures` run against it unchanged::

    with PulpRegistry() as pulp:            # Bearer tokens from Pulp's own /token/, user "admin"
        seed_fixtures(pulp)

What runs, all on 127.0.0.1, in one temporary directory removed by :meth:`PulpRegistry.stop`:

* a private PostgreSQL cluster (Debian's ``postgresql``, 15 on bookworm), run as the ``postgres``
  user since it refuses root; no TCP listener, only a unix socket in the temporary directory;
* ``pulpcore-api`` (gunicorn, one worker): the registry API ``/v2/``, the token server
  ``/token/`` and Pulp's REST API ``/pulp/api/v3/``, on ``.port``;
* ``pulpcore-content`` (aiohttp): blobs are answered by the API with a **302 redirect to the
  content app** on another port (``.content_port``), as in a real Pulp; clients must follow it;
* one ``pulpcore-worker``: deleting a manifest by digest is a task it runs (tagging a pushed
  manifest is an "immediate" task the API process runs itself).

Pulp's venv comes from ``tools/pulp_venv.sh`` (built once, in ``${ARCHFLEET_CACHE}/pulp/<hash>``).
A migrated database is cached next to it as a PostgreSQL data directory (``pgtemplate-*``,
keyed by the venv's recipe hash, the PostgreSQL major version and :data:`TEMPLATE_VERSION`); every
start copies it, so ``migrate`` runs once per recipe. The template holds no secret: the admin
password, SECRET_KEY, the database-field key and the token signing key are made per start.

Processes never outlive the test run (as for ``Registry``): stop() is called by the context
manager and an atexit hook, and every child gets ``PR_SET_PDEATHSIG`` (postgres set after it
drops to the ``postgres`` user, since a credential change clears it). Start it from a thread that
outlives it.

What Pulp 3.123.1 / pulp-container 2.30.0 answers, as tests/integration/test_pulp.py asserts it
(``H`` = ``.host``, the API server; ``C`` = ``.content_url``; ``R`` = a repository pushed through the
registry API, which creates a container *push* repository and a distribution with base path ``R``
on the first blob upload; every repository made that way is public: an anonymous token pulls it):

==============================================  ======================================================
operation                                       Pulp's answer
==============================================  ======================================================
``GET /v2/`` without credentials                401 ``UNAUTHORIZED``, ``WWW-Authenticate: Bearer
                                                realm="http://H/token/",service="H"``; with a token 200 ``{}``
``GET /token/?service=H&scope=...``             200 ``{"expires_in": 300, "issued_at", "token",
                                                "access_token"}`` (ES256 JWT, audience H); without Basic
                                                credentials an anonymous token (pull only); without
                                                ``service`` 400 ``{"detail": "No service name provided."}``
``HEAD /v2/R/manifests/<tag|digest>``           200 with ``Docker-Content-Digest``, the stored
                                                ``Content-Type``, ``Content-Length``; unknown: 404, no body
``GET /v2/R/manifests/<tag|digest>``            200, the bytes as pushed (same digest); no Accept header
                                                still gets an OCI index as is (no conversion); unknown tag
                                                404 ``MANIFEST_UNKNOWN``, unknown repository 404
                                                ``NAME_UNKNOWN``
``GET /v2/R/blobs/<digest>`` (and ``HEAD``)     **302** ``Location: C/pulp/container/R/blobs/<digest>?
                                                expires=...&validate_token=...`` (another port; signed, so
                                                no credentials there); that URL: 200, the bytes
``GET /v2/R/tags/list``                         200 ``{"name": R, "tags": [...]}`` sorted; ``?n=1`` adds
                                                ``Link: <http://H/v2/R/tags/list?n=1&last=T>; rel="next"``;
                                                with a manifest ``Accept`` header: **406** ``UNSUPPORTED``
                                                "Could not satisfy the request Accept header."
``GET /v2/_catalog``                            needs a ``registry:catalog:*`` token: else 401 with
                                                ``scope="registry:catalog:*",error="insufficient_scope"``;
                                                then 200 ``{"repositories": [...]}``, ``?n=`` paginates (Link)
``PUT /v2/R/manifests/<tag>`` of an OCI index   201, ``Docker-Content-Digest`` = sha256 of the body,
                                                ``Location: /v2/R/manifests/<digest>`` (relative); children
                                                are **not** checked: an index naming a manifest that does
                                                not exist is accepted (201)
``DELETE /v2/R/manifests/<tag>``                400 ``INVALID_REQUEST`` "A manifest can only be deleted
                                                by digest."
``DELETE /v2/R/manifests/<digest>``             202, body ``None`` (4 bytes, no Content-Type); a worker
                                                task removes the manifest and every tag on it, so for about
                                                a second HEAD still answers 200, then 404
``DELETE /v2/R/blobs/<digest>``                 202, body ``None`` (Pulp removes the blob from R's next
                                                repository version)
``GET /v2/R/referrers/<digest>``                404 with Django's **HTML** "Not Found" page (no such route,
                                                no OCI error body), known digest or not: use the tag schema
                                                (``sha256-<hex>`` tags), which is an ordinary tag here
``POST /v2/R2/blobs/uploads/?mount=D&from=R``   with a token for both repositories: 201, ``Location:
                                                /v2/R2/blobs/D``; unknown ``D``: 404 ``BLOB_UNKNOWN``; with
                                                a token for R2 only: 401 whose challenge has two ``scope``
                                                parameters (``scope="repository:R2:push",scope="repository:
                                                R:pull"``)
blob upload                                     ``POST .../blobs/uploads/`` 202 with a relative Location,
                                                then ``PUT <Location>?digest=`` 201 (harness.images does
                                                this); ``POST .../blobs/uploads/?digest=`` with the body:
                                                201 in one request (chunked PATCH is in Pulp's code, not
                                                exercised here)
==============================================  ======================================================

With ``auth="basic"`` (``TOKEN_AUTH_DISABLED``): ``GET /v2/`` and every push without credentials get
401 ``WWW-Authenticate: Basic realm="api"``; manifests, blobs, tags and ``_catalog`` are readable
without credentials; pushes with the admin's Basic credentials work as above.

The docker CLI (20.10) cannot talk to Pulp directly: it first sends a TLS ClientHello to any loopback
registry and expects an HTTP answer to fall back to plain HTTP; gunicorn's sync worker never answers,
so the CLI fails with "TLS handshake timeout". ``docker_cli_needs_proxy`` makes harness.images put a
:class:`harness.proxy.Proxy` (which answers the ClientHello) in front of Pulp for the CLI.
"""
from __future__ import annotations

import atexit
import base64
import ctypes
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .images import HARNESS_USER_AGENT
from .registry import AccessEntry, free_port, read_access_log

ROOT = Path(__file__).resolve().parents[3]
VENV_SCRIPT = ROOT / "tools" / "pulp_venv.sh"
# Debian's postgresql (15 on bookworm): the newest major installed.
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin/postgres"), default=Path("/usr/lib/postgresql/15/bin/postgres"),
             key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0).parent
# PostgreSQL refuses to run as root: as root, drop to Debian's postgres user; otherwise run as ourselves.
PG_USER = "postgres" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
DB_NAME = DB_USER = "pulp"
PG_PORT = 5432            # only names the unix socket (.s.PGSQL.5432) in the private directory
ADMIN = "admin"
START_TIMEOUT = 120.0
TEMP_PREFIX = "af-pulp-"
PORT_ATTEMPTS = 3
# Bump when the template's making changes (settings that reach the database, extra SQL).
TEMPLATE_VERSION = 1

# PostgreSQL for a throwaway test database: no durability, small footprint.
PG_OPTIONS = ("-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off",
              "-c", "full_page_writes=off", "-c", "shared_buffers=32MB", "-c", "max_connections=60",
              "-c", "log_min_messages=warning")

_live: set[PulpRegistry] = set()


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _as_user(user: str, deathsig: int = signal.SIGINT):
    """preexec_fn: drop to ``user`` (from root), then ask for ``deathsig`` when the parent thread dies.

    SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to disconnect).
    """
    entry = pwd.getpwnam(user)

    def preexec() -> None:
        if os.getuid() == 0:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, deathsig)     # after setuid: a credential change clears the death signal

    return preexec


def _sweep_stale() -> None:
    """Remove the directories of runs whose test process was killed (no stop(), no atexit).

    Their processes are gone already (PR_SET_PDEATHSIG); only the files remain.
    """
    for directory in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        try:
            owner = int((directory / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{owner}").exists():
            shutil.rmtree(directory, ignore_errors=True)


def pulp_venv(build: bool = True) -> Path:
    """The Pulp venv of tools/pulp_venv.sh; ``build`` lets the script build it when missing."""
    args = [str(VENV_SCRIPT)] + ([] if build else ["--check"])
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"tools/pulp_venv.sh failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _pg_major() -> str:
    out = subprocess.run([str(PG_BIN / "postgres"), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1].split(".")[0]


class PulpRegistry:
    """A running Pulp container registry; see the module docstring.

    ``auth="token"`` (the default, and Pulp's own default) answers 401 with a Bearer challenge
    pointing at Pulp's token server; ``auth="basic"`` sets ``TOKEN_AUTH_DISABLED`` (Pulp's other
    configuration: pulls are anonymous, pushes take Basic credentials of a superuser). Pulp has no
    configuration without credentials for pushes, so there is no ``auth=None``. The user is
    ``admin`` with a random password.
    """

    def __init__(self, *, auth: str = "token", venv: Path | None = None, start: bool = True):
        if auth not in ("token", "basic"):
            raise ValueError(f"auth must be 'token' or 'basic' (Pulp always wants credentials to push), not {auth!r}")
        self.auth = auth
        self.tls = False
        self.ca_path: Path | None = None
        self.cert_dir: Path | None = None
        self.client_tls = None
        # gunicorn's sync worker never answers the TLS ClientHello the docker CLI sends first, so
        # the CLI times out instead of falling back to HTTP: harness.images goes through a Proxy.
        self.docker_cli_needs_proxy = True
        self.username = ADMIN
        self.password = secrets.token_urlsafe(12)
        self.venv = venv
        self.dir: Path | None = None
        self.port: int | None = None
        self.content_port: int | None = None
        self.log_path: Path | None = None
        self.timings: dict[str, float] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, object] = {}
        if start:
            self.start()

    # -- addresses ----------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def content_url(self) -> str:
        return f"http://127.0.0.1:{self.content_port}"

    @property
    def auth_tuple(self) -> tuple[str, str]:
        return (self.username, self.password)

    @property
    def verify(self) -> str | bool:
        return True

    @property
    def version(self) -> str:
        """``pulpcore X / pulp-container Y``, as installed in the venv (for docs/registries.md)."""
        if self.venv is None:
            self.venv = pulp_venv()
        found = {}
        for dist in self.venv.glob("lib/python*/site-packages/*.dist-info"):
            name, _dash, version = dist.name[: -len(".dist-info")].partition("-")
            if name in ("pulpcore", "pulp_container"):
                found[name] = version
        return f"pulpcore {found.get('pulpcore', '?')} / pulp-container {found.get('pulp_container', '?')}"

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> PulpRegistry:
        if self._procs:
            return self
        began = time.monotonic()
        if self.venv is None:
            self.venv = pulp_venv()
        _sweep_stale()
        self.dir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        self.dir.chmod(0o755)            # the postgres user reaches its data and socket below
        (self.dir / "owner.pid").write_text(f"{os.getpid()}\n")
        _live.add(self)
        try:
            template = self._template()
            self.timings["template"] = time.monotonic() - began
            self._prepare_files()
            self._start_postgres(template)
            self.timings["postgres"] = time.monotonic() - began
            self._launch()
        except BaseException:
            self.stop()
            raise
        self.timings["ready"] = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop Pulp's processes, then PostgreSQL, and remove the temporary directory. Idempotent."""
        order = [name for name in ("api", "content", "worker", "admin") if name in self._procs]
        for name in order:
            if self._procs[name].poll() is None:
                self._procs[name].terminate()
        for name in order:
            self._reap(self._procs.pop(name), 15)
        if "postgres" in self._procs:
            proc = self._procs.pop("postgres")
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            self._reap(proc, 15)
        for handle in self._logs.values():
            handle.close()
        self._logs.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        _live.discard(self)

    @staticmethod
    def _reap(proc: subprocess.Popen, timeout: float) -> None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> PulpRegistry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<PulpRegistry {self.url} content={self.content_url} auth={self.auth}>"

    # -- observation --------------------------------------------------------------------
    def access_log(self, settle: float = 0.2) -> list[AccessEntry]:
        """Every request the API server (gunicorn, Apache combined format) logged so far."""
        assert self.log_path is not None, "registry not started"
        return read_access_log(self.log_path, settle)

    def memory_rss(self) -> dict[str, int]:
        """Resident memory in KiB per component, each with all its descendant processes."""
        return self._memory("status", "VmRSS:")

    def memory_pss(self) -> dict[str, int]:
        """Proportional set size in KiB per component (shared pages split between sharers, unlike RSS)."""
        return self._memory("smaps_rollup", "Pss:")

    def _memory(self, proc_file: str, field: str) -> dict[str, int]:
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        result = {}
        for name, proc in self._procs.items():
            total, todo = 0, [proc.pid]
            while todo:
                pid = todo.pop()
                todo.extend(children.get(pid, []))
                try:
                    for line in Path(f"/proc/{pid}/{proc_file}").read_text().splitlines():
                        if line.startswith(field):
                            total += int(line.split()[1])
                except OSError:
                    pass
            result[name] = total
        return result

    def logs(self, lines: int = 30) -> str:
        """The tail of every component's log, for failure messages."""
        if self.dir is None:
            return ""
        parts = []
        for path in sorted(self.dir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    # -- internals ----------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        assert self.dir is not None and self.venv is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULP_", "DJANGO_"))}
        env.update(PULP_SETTINGS=str(self.dir / "settings.py"),
                   PATH=f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
                   PYTHONUNBUFFERED="1")
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        return env

    def _spawn(self, name: str, args: list[str], **kwargs) -> subprocess.Popen:
        assert self.dir is not None
        log = self._logs.get(name)
        if log is None:
            log = self._logs[name] = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        kwargs.setdefault("preexec_fn", _die_with_parent)
        kwargs.setdefault("env", self._env())
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.dir, **kwargs)
        self._procs[name] = proc
        return proc

    def _run(self, name: str, args: list[str], timeout: float = 600) -> None:
        """Run a one-shot Pulp command to completion, its output appended to ``<name>.log``."""
        proc = self._spawn(name, args)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = "timeout"
        self._procs.pop(name, None)
        if rc != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({rc}); logs:\n{self.logs()}")

    def _prepare_files(self, api_port: int = 0, content_port: int = 0) -> None:
        """Keys and directories (once), then settings.py for the given ports."""
        assert self.dir is not None
        keys = self.dir / "keys"
        if not keys.exists():
            keys.mkdir()
            for sub in ("media", "tmp", "static"):
                (self.dir / sub).mkdir()
            private = ec.generate_private_key(ec.SECP256R1())
            (keys / "token-private.pem").write_bytes(private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
            (keys / "token-public.pem").write_bytes(private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
            (keys / "database_fields.symmetric.key").write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
            self._secret_key = secrets.token_urlsafe(40)
        d = self.dir
        settings = {
            "SECRET_KEY": self._secret_key,
            "DATABASES": {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": DB_NAME,
                                      "USER": DB_USER, "HOST": str(d / "pgsock"), "PORT": PG_PORT,
                                      "CONN_MAX_AGE": 0}},
            "DEPLOY_ROOT": str(d),
            "MEDIA_ROOT": str(d / "media"),
            "STATIC_ROOT": str(d / "static"),
            "WORKING_DIRECTORY": str(d / "tmp"),
            "FILE_UPLOAD_TEMP_DIR": str(d / "tmp"),
            "DB_ENCRYPTION_KEY": str(keys / "database_fields.symmetric.key"),
            "CONTENT_ORIGIN": f"http://127.0.0.1:{content_port}",
            "ALLOWED_CONTENT_CHECKSUMS": ["sha224", "sha256", "sha384", "sha512"],
            "ANALYTICS": False,
            "TOKEN_AUTH_DISABLED": self.auth == "basic",
            "TOKEN_SERVER": f"http://127.0.0.1:{api_port}/token/",
            "TOKEN_SIGNATURE_ALGORITHM": "ES256",
            "PUBLIC_KEY_PATH": str(keys / "token-public.pem"),
            "PRIVATE_KEY_PATH": str(keys / "token-private.pem"),
            # Heartbeats fast enough that the status API shows the worker soon after it starts.
            "WORKER_TTL": 30,
        }
        (d / "settings.py").write_text("".join(f"{key} = {value!r}\n" for key, value in settings.items()))

    # PostgreSQL -------------------------------------------------------------------------
    def _postgres(self, datadir: Path, sockdir: Path, log_name: str) -> subprocess.Popen:
        return self._spawn(log_name, [str(PG_BIN / "postgres"), "-D", str(datadir), "-k", str(sockdir),
                                      "-p", str(PG_PORT), *PG_OPTIONS],
                           preexec_fn=_as_user(PG_USER), env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})

    def _wait_postgres(self, sockdir: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._procs["postgres"].poll() is not None:
                break
            ready = subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", str(sockdir), "-p", str(PG_PORT),
                                    "-U", DB_USER, "-d", DB_NAME], check=False)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not start; logs:\n{self.logs()}")

    def _start_postgres(self, template: Path) -> None:
        assert self.dir is not None
        pg = pwd.getpwnam(PG_USER)
        # cp -a keeps the postgres ownership and the 0700 mode PostgreSQL insists on.
        subprocess.run(["cp", "-a", str(template), str(self.dir / "pgdata")], check=True)
        sock = self.dir / "pgsock"
        sock.mkdir()
        os.chown(sock, pg.pw_uid, pg.pw_gid)
        self._postgres(self.dir / "pgdata", sock, "postgres")
        self._wait_postgres(sock)

    def _template(self) -> Path:
        """A migrated, stopped PostgreSQL data directory for this venv; made once, under a lock."""
        assert self.venv is not None and self.dir is not None
        template = self.venv / f"pgtemplate-{_pg_major()}-v{TEMPLATE_VERSION}"
        if (template / ".archfleet-complete").exists():
            return template
        with open(self.venv / ".pgtemplate.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (template / ".archfleet-complete").exists():
                return template
            began = time.monotonic()
            pg = pwd.getpwnam(PG_USER)
            work = Path(tempfile.mkdtemp(prefix=".pgtemplate-", dir=self.venv))
            try:
                os.chown(work, pg.pw_uid, pg.pw_gid)
                data, sock = work / "data", self.dir / "pgsock"
                sock.mkdir()
                os.chown(sock, pg.pw_uid, pg.pw_gid)
                self._prepare_files()
                initdb = subprocess.run(
                    [str(PG_BIN / "initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust", "-E", "UTF8",
                     "--locale=C", "--no-sync"],
                    preexec_fn=_as_user(PG_USER), cwd=work, capture_output=True, text=True, check=False,
                    env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
                if initdb.returncode != 0:
                    raise RuntimeError(f"initdb failed: {initdb.stdout}{initdb.stderr}")
                self._postgres(data, sock, "postgres")
                self._wait_postgres(sock)
                subprocess.run([str(PG_BIN / "createdb"), "-h", str(sock), "-p", str(PG_PORT), "-U", DB_USER,
                                DB_NAME], check=True, capture_output=True)
                self._run("migrate", [str(self.venv / "bin" / "pulpcore-manager"), "migrate", "--noinput"])
                proc = self._procs.pop("postgres")
                proc.send_signal(signal.SIGINT)
                self._reap(proc, 30)
                shutil.rmtree(sock)
                (data / ".archfleet-complete").touch()
                os.rename(data, template)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            self.timings["migrate"] = time.monotonic() - began
        return template

    # Pulp -------------------------------------------------------------------------------
    def _launch(self) -> None:
        """API, content app and worker on free ports; retried on another pair if a port was taken."""
        assert self.dir is not None and self.venv is not None
        bin_dir = self.venv / "bin"
        admin = self._spawn("admin", [str(bin_dir / "pulpcore-manager"), "reset-admin-password",
                                      f"--password={self.password}"])
        last = ""
        for _attempt in range(PORT_ATTEMPTS):
            self.port, self.content_port = free_port(), free_port()
            self._prepare_files(self.port, self.content_port)
            self.log_path = self.dir / "api.log"
            self._spawn("api", [str(bin_dir / "pulpcore-api"), "--bind", self.host, "--workers", "1",
                                "--access-logfile", "-", "--no-control-socket"])
            self._spawn("content", [str(bin_dir / "pulpcore-content"), "--bind",
                                    f"127.0.0.1:{self.content_port}", "--workers", "1", "--no-control-socket"])
            if "worker" not in self._procs:
                self._spawn("worker", [str(bin_dir / "pulpcore-worker")])
            if self._wait_ready(admin):
                self._procs.pop("admin", None)
                return
            last = self.logs()
            for name in ("api", "content"):
                proc = self._procs.pop(name)
                if proc.poll() is None:
                    proc.terminate()
                self._reap(proc, 10)
            if "in use" not in last:
                break
        raise RuntimeError(f"Pulp did not start within {START_TIMEOUT:.0f}s; logs:\n{last}")

    def _wait_ready(self, admin: subprocess.Popen) -> bool:
        """True once /v2/ answers, the content app answers, a worker is online and the admin exists."""
        deadline = time.monotonic() + START_TIMEOUT
        session = requests.Session()
        session.headers["User-Agent"] = HARNESS_USER_AGENT
        v2 = content = worker = False
        while time.monotonic() < deadline:
            for name in ("api", "content", "worker"):
                if self._procs[name].poll() is not None:
                    return False
            if admin.poll() not in (None, 0):
                raise RuntimeError(f"pulpcore-manager reset-admin-password failed; logs:\n{self.logs()}")
            try:
                if not v2:
                    v2 = session.get(f"{self.url}/v2/", timeout=2).status_code in (200, 401)
                if not content:
                    content = session.get(f"{self.content_url}/pulp/content/", timeout=2).status_code < 500
                if v2 and not worker:
                    status = session.get(f"{self.url}/pulp/api/v3/status/", timeout=5).json()
                    worker = bool(status.get("online_workers"))
            except (requests.RequestException, ValueError):
                pass
            if v2 and content and worker and admin.poll() == 0:
                return True
            time.sleep(0.1)
        return False


@atexit.register
def _stop_all() -> None:
    for registry in list(_live):
        registry.stop()
