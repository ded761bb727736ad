"""The harness shared by ``scripts/bench.py`` and ``scripts/chaos.py``.

It runs the whole product on this machine, as production would, only smaller:

* :class:`Stack`: PostgreSQL and Redis from :mod:`einvoice.devservices` in a throw-away folder
  (``.einvoice/<name>-<pid>``) on free ports, a schema migrated once into a template database,
  and one fresh database per scenario (``CREATE DATABASE ... TEMPLATE``);
* :class:`CeleryProcess`: ``celery -A workers worker --pool threads`` and ``celery beat``
  subprocesses (:mod:`einvoice.launch`, as the demo and the tests start them) with the
  scenario's environment, killed or restarted on demand; a worker counts as
  ready when its job listener's connection shows in ``pg_stat_activity`` (the listener
  starts on Celery's ``worker_ready``), which needs no INFO logging;
* :class:`Database`: the scenario's database, with the ERP data helpers (sample organizations and
  invoices from :mod:`einvoice.sample`, cloned in bulk with ``INSERT ... SELECT`` so that tens of
  thousands of invoices take seconds) and the read-outs the scripts report (job states, latencies);
* :class:`CpuMeter`: CPU seconds used by each part (workers, simulator, PostgreSQL, Redis, this
  driver) over a phase, which names the resource that limits a run.

SQL here is the ERP's side and the observer's side (inserting invoices and jobs, reading job rows);
the product's own queries stay in ``einvoice.db``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # celeryconfig lives at the project root
    sys.path.insert(0, str(ROOT))

# The imports below need ROOT on sys.path (``einvoice`` from a checkout without install).
import psutil
import psycopg
import redis
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from stdnum.co import nit as co_nit

from einvoice.crypto import SecretBox
from einvoice.db import migrate
from einvoice.db.engine import make_engine, make_session_factory
from einvoice.devservices import DevServices, free_port
from einvoice.launch import (
    ALL_QUEUES,
    ChildProcess,
    ProcessGroup,
    beat_args,
    celery_command,
    worker_args,
)
from einvoice.sample import make_invoice, sample_organization
from einvoice.services.accounts import save_credentials
from einvoice.settings import libpq_url

FINAL_STATUSES = ("accepted", "rejected", "failed", "cancelled")
TEMPLATE_DB = "proof_template"

# The simulator's default account (einvoice.sandbox.state.DEFAULT_ACCOUNT): organizations without
# a factus_credentials row submit with it through the FACTUS_* variables.
DEFAULT_FACTUS = {
    "FACTUS_CLIENT_ID": "sandbox-client",
    "FACTUS_CLIENT_SECRET": "sandbox-secret",
    "FACTUS_USERNAME": "sandbox@einvoice.test",
    "FACTUS_PASSWORD": "sandbox-password",
}


def log(message: str) -> None:
    """Print one progress line (``# ...``) at once, so a long run shows where it is."""
    print(f"# {message}", flush=True)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (0-100) of ``values`` by linear interpolation (numpy's default).

    Returns NaN for an empty sequence.
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ------------------------------------------------------------------------------------------
# Celery processes
# ------------------------------------------------------------------------------------------


class QueuedJobs:
    """Jobs woken up by the messages of a Celery queue that nobody consumes (B4).

    A wake-up message carries one job (``einvoice.submit_invoice``) or several
    (``einvoice.submit_invoices``, :func:`einvoice.queueing.wakeup_chunks`), so the list's length
    is not the job count. Kombu pushes new messages at the head of the Redis list (LPUSH), so
    each :meth:`count` reads only the messages added since the previous one, addressed from the
    tail: counted from the head, a message pushed between the ``LLEN`` and the ``LRANGE`` would
    shift the range, one message would be counted twice and another never (a B4 run waited its
    whole 120 s for jobs that were in the queue all along).
    """

    def __init__(self, redis_url: str, queue: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.queue = queue
        self.messages = 0
        self.jobs = 0

    def count(self) -> int:
        """Jobs in the queue's messages so far."""
        length = int(self.client.llen(self.queue))
        if length > self.messages:
            for raw in self.client.lrange(self.queue, -length, -(self.messages + 1)):
                self.jobs += self.jobs_in(raw)
            self.messages = length
        return self.jobs

    @staticmethod
    def jobs_in(raw: bytes) -> int:
        """How many jobs one Celery message (kombu's Redis JSON envelope, protocol 2) wakes."""
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        many = message["headers"].get("task") == "einvoice.submit_invoices"
        return len(args[0]) if many else 1

    def close(self) -> None:
        """Close the Redis connection."""
        self.client.close()


class CeleryProcess(ChildProcess):
    """One ``celery -A workers ...`` subprocess (a worker with the threads pool, or beat): an
    :class:`einvoice.launch.ChildProcess` whose log is appended to at each restart, with the
    measurements the scripts take of it.

    Args:
        name: label used in logs and reports (``worker-1``, ``beat``).
        args: the celery arguments after ``-A workers``.
        env: its environment.
        log_path: where its stdout/stderr go.
    """

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, celery_command(*args), env, log_path, append=True, cwd=ROOT)

    def rss_bytes(self) -> int:
        """Resident set size of the process (and of any children it forked), in bytes."""
        try:
            process = psutil.Process(self.pid)
            return process.memory_info().rss + sum(
                c.memory_info().rss for c in process.children(recursive=True))
        except psutil.NoSuchProcess:
            return 0

    def local_ports(self) -> set[int]:
        """Local TCP ports of the process's connections (to find its PostgreSQL backends)."""
        try:
            return {c.laddr.port for c in psutil.Process(self.pid).net_connections("tcp")
                    if c.laddr}
        except psutil.NoSuchProcess:
            return set()


# ------------------------------------------------------------------------------------------
# The database of one scenario
# ------------------------------------------------------------------------------------------


@dataclass
class Database:
    """One scenario's database: its URLs, an engine, and the helpers the scripts use.

    Attributes:
        name: the database name.
        url: SQLAlchemy URL (``postgresql+psycopg://``).
        engine / factory: a small pool for the driver's own sessions.
    """

    name: str
    url: str
    engine: Engine
    factory: sessionmaker[Session]

    @property
    def libpq(self) -> str:
        """The libpq URL (``postgresql://``) for psycopg."""
        return libpq_url(self.url)

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit psycopg connection (caller closes it)."""
        return psycopg.connect(self.libpq, autocommit=True, connect_timeout=5)

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        """Run one query on a short-lived connection and return the first column of the first row."""
        with self.connect() as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    # -- ERP data -----------------------------------------------------------------------------

    def seed_organizations(self, count: int, *, secret_key: str | None = None,
                           accounts: Sequence[dict[str, str]] | None = None,
                           today: date | None = None) -> dict[int, list[uuid.UUID]]:
        """Insert ``count`` issuers, each with a few varied template invoices; return their ids.

        Issuers come from :func:`einvoice.sample.sample_organization` (the three sample issuers
        in turn, each with its own NIT), without branches. Templates per issuer, built with
        :func:`einvoice.sample.make_invoice`: the default two-line sale (5 % and 19 % IVA, a 10 %
        discount), an IVA-included one-line sale, a sale on credit (30 days), and a sale to a
        company (NIT with its DV, legal person).

        Args:
            accounts: when given, one Factus account per issuer (``client_id``,
                ``client_secret``, ``username``, ``password``), stored as that issuer's
                ``factus_credentials`` row encrypted with ``secret_key`` (the workers' key).
        Returns:
            ``{organization_id: [template invoice ids]}`` in creation order.
        """
        if accounts is not None and (len(accounts) != count or secret_key is None):
            raise ValueError("one account per organization, and the secret key, are needed")
        templates: dict[int, list[uuid.UUID]] = {}
        box = SecretBox(secret_key) if secret_key else None
        with self.factory() as session:
            for index in range(count):
                nit = f"{900200000 + index * 1013}"
                org = sample_organization(session, index=index % 3, today=today,
                                          with_branches=False, nit=nit)
                company_nit = f"{800100000 + index * 7919}"
                templates[org.id] = [
                    make_invoice(session, org=org, today=today),
                    make_invoice(session, org=org, today=today, tax_included=True,
                                 items=[{"description": "Bulto de concentrado 40 kg",
                                         "code_reference": "CON-40", "qty": 3,
                                         "unit_price": "98500", "tax_rate": "5"}]),
                    make_invoice(session, org=org, today=today, payment_form="2"),
                    make_invoice(session, org=org, today=today, customer_overrides={
                        "identification_type": "NIT", "identification_number": company_nit,
                        "dv": int(co_nit.calc_check_digit(company_nit)),
                        "company_name": f"Distribuciones Andinas {index} S.A.S.",
                        "first_name": None, "last_name": None, "legal_organization_id": 1,
                        "email": f"compras{index}@andinas.example.co"}),
                ]
                if accounts is not None and box is not None:
                    account = accounts[index]
                    save_credentials(session, organization_id=org.id, environment="sandbox",
                                     client_id=account["client_id"],
                                     client_secret=account["client_secret"],
                                     username=account["username"], password=account["password"],
                                     box=box)
            session.commit()
        return templates

    def clone_invoices(self, templates: dict[int, list[uuid.UUID]], per_organization: int,
                       ) -> list[uuid.UUID]:
        """Copy template invoices (with their items) until each issuer has ``per_organization`` new
        ones; return the new ids interleaved across issuers (org 1, org 2, ..., org 1, ...).

        The copies keep everything (customer, items, totals) but the id: to the product they are
        distinct sales. One ``INSERT ... SELECT`` per table, so 100,000 invoices take seconds.
        """
        rows: list[tuple[uuid.UUID, uuid.UUID, int]] = []  # (template, new id, order key)
        orgs = list(templates)
        for n in range(per_organization):
            for position, org_id in enumerate(orgs):
                org_templates = templates[org_id]
                rows.append((org_templates[n % len(org_templates)], uuid.uuid4(),
                             n * len(orgs) + position))
        with self.connect() as conn, conn.transaction():
            conn.execute("CREATE TEMP TABLE clone_map (template_id uuid, new_id uuid, ord bigint) "
                         "ON COMMIT DROP")
            with conn.cursor().copy("COPY clone_map FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.execute("CREATE TEMP TABLE inv ON COMMIT DROP AS SELECT m.new_id AS clone_id, s.* "
                         "FROM invoice_sales s JOIN clone_map m ON s.id = m.template_id")
            conn.execute("UPDATE inv SET id = clone_id")
            conn.execute("ALTER TABLE inv DROP COLUMN clone_id")
            conn.execute("INSERT INTO invoice_sales SELECT * FROM inv")
            conn.execute("CREATE TEMP TABLE itm ON COMMIT DROP AS SELECT m.new_id AS clone_id, i.* "
                         "FROM invoice_items i JOIN clone_map m ON i.invoice_id = m.template_id")
            conn.execute("UPDATE itm SET invoice_id = clone_id, id = gen_random_uuid()")
            conn.execute("ALTER TABLE itm DROP COLUMN clone_id")
            conn.execute("INSERT INTO invoice_items SELECT * FROM itm")
        with self.connect() as conn:
            conn.execute("ANALYZE invoice_sales")
            conn.execute("ANALYZE invoice_items")
        return [new_id for _, new_id, _ in sorted(rows, key=lambda r: r[2])]

    # -- jobs ---------------------------------------------------------------------------------

    def insert_jobs(self, invoice_ids: Sequence[uuid.UUID],
                    conn: psycopg.Connection[Any] | None = None) -> list[uuid.UUID]:
        """What an ERP in any language does: plain SQL inserts of pending jobs, one transaction.

        Only ``organization_id``, ``invoice_id``, ``document_type`` and ``provider`` are given; the
        schema's defaults fill in the rest and its trigger sends ``NOTIFY einvoice_jobs`` at
        commit. Returns the job ids in ``invoice_ids`` order.
        """
        sql = ("INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, document_type, "
               "provider) SELECT s.organization_id, s.id, 'invoice', 'factus' "
               "FROM unnest(%s::uuid[]) WITH ORDINALITY AS u(id, ord) "
               "JOIN invoice_sales s ON s.id = u.id ORDER BY u.ord RETURNING id")
        if conn is not None:
            return [r[0] for r in conn.execute(sql, (list(invoice_ids),)).fetchall()]
        with self.connect() as own:
            return [r[0] for r in own.execute(sql, (list(invoice_ids),)).fetchall()]

    def status_counts(self, job_ids: Sequence[uuid.UUID] | None = None) -> dict[str, int]:
        """``{status: count}`` of the given jobs (all jobs when None)."""
        with self.connect() as conn:
            if job_ids is None:
                rows = conn.execute("SELECT status, count(*) FROM electronic_invoicing_jobs "
                                    "GROUP BY status").fetchall()
            else:
                rows = conn.execute("SELECT status, count(*) FROM electronic_invoicing_jobs "
                                    "WHERE id = ANY(%s) GROUP BY status",
                                    (list(job_ids),)).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def wait_final(self, job_ids: Sequence[uuid.UUID] | None, timeout: float,
                   poll: float = 0.25, on_poll: Callable[[dict[str, int]], None] | None = None,
                   ) -> tuple[bool, dict[str, int]]:
        """Poll until every job (of ``job_ids``, or every job) is final, or ``timeout`` seconds.

        Returns (all final, status counts at the end).
        """
        deadline = time.monotonic() + timeout
        while True:
            counts = self.status_counts(job_ids)
            if on_poll is not None:
                on_poll(counts)
            pending = sum(v for k, v in counts.items() if k not in FINAL_STATUSES)
            if pending == 0 and (job_ids is None or sum(counts.values()) >= len(job_ids)):
                return True, counts
            if time.monotonic() > deadline:
                return False, counts
            time.sleep(poll)

    def latencies_ms(self, job_ids: Sequence[uuid.UUID]) -> list[float]:
        """Insert-to-final milliseconds (``processed_at - created_at``, both PostgreSQL clocks) of
        the accepted jobs among ``job_ids``."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM processed_at - created_at) * 1000 "
                "FROM electronic_invoicing_jobs WHERE id = ANY(%s) AND status = 'accepted'",
                (list(job_ids),)).fetchall()
        return [float(r[0]) for r in rows]

    def stage_medians_ms(self, job_ids: Sequence[uuid.UUID]) -> dict[str, float]:
        """Median milliseconds of each stage of accepted jobs, from their rows and events:
        ``insert→dispatched`` (the wake-up was published), ``dispatched→claimed`` (Redis and the
        worker's queue), ``claimed→accepted`` (build, POST and record) and ``POST`` (the
        ``submitted`` event's measured call latency)."""
        with self.connect() as conn:
            row = conn.execute(
                """
                WITH j AS (
                    SELECT j.id, j.created_at, j.dispatched_at, j.processed_at,
                           (SELECT max(e.created_at) FROM electronic_invoicing_events e
                             WHERE e.job_id = j.id AND e.event_type = 'claimed') AS claimed_at,
                           (SELECT max((e.metadata->>'latency_ms')::float)
                              FROM electronic_invoicing_events e
                             WHERE e.job_id = j.id AND e.event_type = 'submitted') AS post_ms
                      FROM electronic_invoicing_jobs j
                     WHERE j.id = ANY(%s) AND j.status = 'accepted')
                SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY
                           extract(epoch FROM dispatched_at - created_at) * 1000),
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY
                           extract(epoch FROM claimed_at - dispatched_at) * 1000),
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY
                           extract(epoch FROM processed_at - claimed_at) * 1000),
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY post_ms)
                  FROM j
                """, (list(job_ids),)).fetchone()
        keys = ("insert→dispatched", "dispatched→claimed", "claimed→accepted", "POST")
        assert row is not None
        return {k: float(v) if v is not None else float("nan") for k, v in zip(keys, row, strict=True)}


# ------------------------------------------------------------------------------------------
# The stack: services, databases, simulator environment, Celery processes
# ------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """PostgreSQL + Redis for one script run, and the Celery processes it started.

    Args:
        name: folder prefix under ``.einvoice/``.
        redis_persistence: Redis append-only file on (production; the chaos run needs it).
        fast_db: PostgreSQL without fsync (off by default: figures are measured durable).
        keep: leave the folder (logs, data) after :meth:`down`.
    """

    name: str
    redis_persistence: bool = False
    fast_db: bool = False
    keep: bool = False
    base_dir: Path = field(init=False)
    services: DevServices = field(init=False)
    secret_key: str = field(init=False)
    processes: list[CeleryProcess] = field(default_factory=list)
    databases: list[Database] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base_dir = ROOT / ".einvoice" / f"{self.name}-{os.getpid()}"
        self.services = DevServices(base_dir=self.base_dir, pg_port=free_port(),
                                    redis_port=free_port(), fast=self.fast_db,
                                    redis_persistence=self.redis_persistence)
        self.secret_key = Fernet.generate_key().decode()
        (self.base_dir / "logs").mkdir(parents=True, exist_ok=True)

    @property
    def redis_url(self) -> str:
        """The broker and cache URL."""
        return self.services.redis.url

    def up(self) -> Stack:
        """Start PostgreSQL and Redis, and migrate the template database once."""
        self.services.up()
        self.services.postgres.ensure_database(TEMPLATE_DB)
        migrate.upgrade(self._url(TEMPLATE_DB))
        return self

    def _url(self, name: str) -> str:
        return self.services.postgres.url.rsplit("/", 1)[0] + f"/{name}"

    def new_database(self, name: str) -> Database:
        """A fresh database copied from the migrated template (dropped first if it exists)."""
        with psycopg.connect(self.services.postgres.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        url = self._url(name)
        engine = make_engine(url, pool_size=4, max_overflow=8)
        database = Database(name, url, engine, make_session_factory(engine))
        self.databases.append(database)
        return database

    def flush_redis(self) -> None:
        """Empty Redis (queues, tokens, rate-limit windows) between scenarios."""
        client = redis.Redis.from_url(self.redis_url)
        client.flushall()
        client.close()

    def queue_length(self, queue: str = "submission") -> int:
        """Messages waiting in a Celery queue (the Redis list of that name)."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            return int(client.llen(queue))
        finally:
            client.close()

    def queued_jobs(self, queue: str = "submission") -> QueuedJobs:
        """A counter of the jobs whose wake-ups wait in ``queue`` (see :class:`QueuedJobs`)."""
        return QueuedJobs(self.redis_url, queue)

    def worker_env(self, database: Database, factus_base_url: str, **extra: str) -> dict[str, str]:
        """The environment of a worker or beat for ``database`` and a simulator at
        ``factus_base_url`` with the default account; ``extra`` adds or overrides variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTUS_", "EINVOICE_"))}
        env.update(DEFAULT_FACTUS)
        env.update(
            DATABASE_URL=database.url, REDIS_URL=self.redis_url, CELERY_BROKER_URL=self.redis_url,
            FACTUS_BASE_URL=factus_base_url, FACTUS_ENVIRONMENT="sandbox",
            EINVOICE_SECRET_KEY=self.secret_key, PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def use_in_this_process(self, database: Database, factus_base_url: str, **extra: str) -> None:
        """Point this process's settings (and so ``celeryconfig`` and producers) at the stack.

        Must run before anything reads :func:`einvoice.settings.get_settings`; later calls only
        clear its cache, and the Celery publisher keeps the broker URL it was built with.
        """
        from einvoice.settings import get_settings

        os.environ.update(self.worker_env(database, factus_base_url, **extra))
        get_settings.cache_clear()

    def worker(self, env: dict[str, str], *, concurrency: int, index: int,
               queues: str = ALL_QUEUES, extra_args: Sequence[str] = ()) -> CeleryProcess:
        """A threads-pool worker process (not started). Logs at WARNING: INFO costs CPU per task.

        ``extra_args`` are more ``celery worker`` options (e.g. ``--prefetch-multiplier 4``).
        """
        process = CeleryProcess(
            name=f"worker-{index}",
            args=worker_args(concurrency=concurrency, queues=queues,
                             name=f"{self.name}{index}-{uuid.uuid4().hex[:4]}@%h",
                             log_level="warning", without_heartbeat=True, extra=extra_args),
            env=env, log_path=self.base_dir / "logs" / f"worker-{index}.log")
        self.processes.append(process)
        return process

    def start_workers(self, env: dict[str, str], database: Database, *, processes: int,
                      concurrency: int, queues: str = ALL_QUEUES,
                      extra_args: Sequence[str] = (), timeout: float = 90.0,
                      ) -> list[CeleryProcess]:
        """Start ``processes`` workers of ``concurrency`` threads and wait until all are ready."""
        workers = [self.worker(env, concurrency=concurrency, index=i, queues=queues,
                               extra_args=extra_args)
                   for i in range(processes)]
        for process in workers:
            process.start()
        for process in workers:
            self.wait_ready(process, database, timeout)
        return workers

    def wait_ready(self, process: CeleryProcess, database: Database, timeout: float = 90.0) -> None:
        """Wait until ``process``'s job listener is connected: listening (its last statement is
        ``LISTEN einvoice_jobs`` or ``LISTEN einvoice_webhooks``) or standing by for the listener
        lock (one worker of all listens at a time).

        Raises:
            RuntimeError: the process exited, or was not ready within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            try:
                with database.connect() as conn:
                    ports = {r[0] for r in conn.execute(
                        "SELECT client_port FROM pg_stat_activity WHERE datname = %s "
                        "AND (query IN ('LISTEN einvoice_jobs', 'LISTEN einvoice_webhooks') "
                        "OR query LIKE 'SELECT pg_try_advisory_lock%%')",
                        (database.name,)).fetchall()}
            except psycopg.OperationalError:
                ports = set()
            if ports & process.local_ports():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{process.name} not ready within {timeout:.0f} s:\n{process.tail()}")

    def start_beat(self, env: dict[str, str]) -> CeleryProcess:
        """Start ``celery beat`` (the dispatcher and lease-sweeper schedules)."""
        process = CeleryProcess(
            name="beat",
            args=beat_args(self.base_dir / f"beat-schedule-{uuid.uuid4().hex[:6]}",
                           log_level="warning"),
            env=env, log_path=self.base_dir / "logs" / "beat.log")
        self.processes.append(process)
        process.start()
        return process

    def stop_processes(self) -> None:
        """Stop every Celery process this stack started (warm shutdown, then SIGKILL)."""
        ProcessGroup(self.processes).stop_all(timeout=10)

    def down(self) -> None:
        """Stop everything; delete the folder unless ``keep``."""
        self.stop_processes()
        for database in self.databases:
            database.engine.dispose()
        self.services.down()
        if not self.keep:
            shutil.rmtree(self.base_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# CPU accounting
# ------------------------------------------------------------------------------------------


def _tree(pid: int | None) -> list[psutil.Process]:
    """The process ``pid`` and its descendants; a negative ``pid`` means that process alone."""
    if pid is None:
        return []
    try:
        root = psutil.Process(abs(pid))
        return [root] if pid < 0 else [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def postgres_pid(stack: Stack) -> int | None:
    """The postmaster's pid (first line of ``postmaster.pid``), or None."""
    try:
        return int((stack.services.postgres.datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def simulator_pid() -> int | None:
    """The pid of this process's simulator child (``python -m einvoice.sandbox``), or None."""
    for child in psutil.Process().children(recursive=True):
        try:
            if "einvoice.sandbox" in " ".join(child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    return None


class CpuMeter:
    """CPU seconds per part of the system over one phase, as shares of one core.

    ``parts`` maps a label to a function returning the root pids of that part (children are
    included; a negative pid counts that process alone, e.g. ``-os.getpid()`` for the driver).
    :meth:`stop` returns ``{label: percent of one core}`` plus ``other``: the rest of the host's
    busy time (other users' processes, the kernel), so that the shares add up to the machine's
    use (200 = both cores busy).
    """

    def __init__(self, parts: dict[str, Callable[[], Iterable[int | None]]]) -> None:
        self.parts = parts
        self._start: dict[str, dict[int, float]] = {}
        self._machine = 0.0
        self._wall = 0.0
        self.elapsed = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        sample: dict[str, dict[int, float]] = {}
        for label, pids in self.parts.items():
            seen: dict[int, float] = {}
            for pid in pids():
                for process in _tree(pid):
                    try:
                        times = process.cpu_times()
                        seen[process.pid] = times.user + times.system
                    except psutil.Error:
                        continue
            sample[label] = seen
        return sample

    def start(self) -> None:
        """Take the starting sample."""
        self._start = self._sample()
        times = psutil.cpu_times()
        self._machine = times.user + times.system + times.nice + getattr(times, "softirq", 0.0) \
            + getattr(times, "irq", 0.0)
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Percent of one core used by each part since :meth:`start` (processes that exited in
        between are not counted); sets :attr:`elapsed` to the wall seconds measured."""
        end = self._sample()
        wall = max(time.monotonic() - self._wall, 1e-6)
        self.elapsed = wall
        result: dict[str, float] = {}
        for label, seen in end.items():
            before = self._start.get(label, {})
            used = sum(v - before.get(pid, 0.0) for pid, v in seen.items())
            result[label] = 100.0 * used / wall
        times = psutil.cpu_times()
        machine = times.user + times.system + times.nice + getattr(times, "softirq", 0.0) \
            + getattr(times, "irq", 0.0)
        result["other"] = max(0.0, 100.0 * (machine - self._machine) / wall - sum(result.values()))
        return result


def format_cpu(shares: dict[str, float]) -> str:
    """``workers 120%, simulator 45%, ...`` (percent of one core; the machine has 2 cores)."""
    return ", ".join(f"{k} {v:.0f}%" for k, v in shares.items())


def summarize(values: Sequence[float]) -> str:
    """``p50/p95/p99/max`` of ``values`` in whole units."""
    if not values:
        return "no values"
    return (f"p50 {percentile(values, 50):.0f}, p95 {percentile(values, 95):.0f}, "
            f"p99 {percentile(values, 99):.0f}, max {max(values):.0f} (n={len(values)}, "
            f"mean {statistics.fmean(values):.0f})")
