"""Flower in a real browser: ``celery -A workers flower`` with our config shows our tasks.

What it does, on this machine and without Docker:

1. starts PostgreSQL and Redis (:mod:`einvoice.devservices`, in a throw-away folder on free
   ports), migrates a fresh database and starts the Factus simulator;
2. loads one sample issuer with ``--jobs`` invoices, starts a worker (threads pool, the three
   queues, ``tests/fixtures/worker.py``) and Flower behind basic auth (credentials from
   ``FLOWER_BASIC_AUTH``, as docker-compose.yml passes them) on a free port;
3. enqueues one job per invoice and waits until every job is final;
4. checks over HTTP that ``/api/tasks`` answers 401 without credentials and, with them, lists an
   ``einvoice.submit_invoice`` task for every job, each with that job id as its only argument;
5. when chromium is installed, renders Flower's tasks page headless, checks that the rendered
   page shows the task name and the job ids, and saves a screenshot to ``--out``.

Usage::

    .venv/bin/python scripts/flower_screenshot.py [--jobs 4] [--out .einvoice/flower-tasks.png]

Prints a JSON report on stdout; exit status 0 when every check passed, 1 otherwise. The helpers
(:class:`FlowerServer`, :func:`seed_and_enqueue`, :func:`wait_for_final_jobs`,
:func:`wait_for_job_tasks`, :func:`submit_task_job_ids`, :func:`render_dom`, :func:`screenshot`)
are what ``tests/integration/deploy/test_flower.py`` uses.

Flower facts this relies on (Flower 2.x, ``flower/api/__init__.py`` and ``views/__init__.py``):
with basic auth configured, the ``/api`` handlers are served to authenticated clients, so
``FLOWER_UNAUTHENTICATED_API`` is not needed (it only opens the API when there is no auth at all);
``/healthcheck`` and ``/metrics`` answer without credentials. Flower learns about tasks from
events, so it must be connected before the tasks run: :meth:`FlowerServer.wait_for_worker` waits
until a worker's heartbeat event reached it.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from celery import Celery

from einvoice.db import migrate
from einvoice.db.engine import make_engine, make_session_factory
from einvoice.db.jobs import get_job
from einvoice.devservices import DevServices, free_port, project_root
from einvoice.domain.jobs import FINAL_STATUSES
from einvoice.queueing import CeleryPublisher
from einvoice.sample.generator import make_invoice, sample_organization
from einvoice.sandbox.server import SandboxServer
from einvoice.services.enqueue import enqueue_invoice

TASK_SUBMIT = "einvoice.submit_invoice"
# What a worker logs (at INFO) when Flower's ``enable_events`` broadcast turned its task events on.
TASK_EVENTS_ENABLED = "Events of group {task} enabled by remote"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
WINDOW_SIZE = (1400, 900)


class CheckFailed(AssertionError):
    """A check of Flower's behaviour failed; the message says which and what was seen."""


def compose_flower_options() -> list[str]:
    """The flower service's flags in docker-compose.yml, without ``--port`` and ``--address``.

    Raises :class:`CheckFailed` when the compose file has no ``celery -A workers flower`` command.
    """
    compose = yaml.safe_load((project_root() / "docker-compose.yml").read_text())
    command = [str(part) for part in compose["services"]["flower"]["command"]]
    if command[:4] != ["celery", "-A", "workers", "flower"]:
        raise CheckFailed(f"docker-compose.yml: flower runs {command!r}")
    return [arg for arg in command[4:] if not arg.startswith(("--port", "--address"))]


@dataclass
class FlowerServer:
    """A ``celery -A workers flower`` child process behind basic auth.

    Inputs:
        env: the environment of a worker of the same broker (``DATABASE_URL``, ``REDIS_URL``,
            ``CELERY_BROKER_URL``, ...); ``FLOWER_BASIC_AUTH`` is added from ``credentials``.
        workdir: folder for ``flower.log``.
        credentials: (user, password) Flower will demand; by default a random password, made
            for this run only (it shows in chromium's argv, never in the report).
        port: TCP port on 127.0.0.1 (a free one by default).
        options: further Flower flags; by default those of docker-compose.yml's flower service,
            so the check runs Flower as production does.
    """

    env: dict[str, str]
    workdir: Path
    credentials: tuple[str, str] = field(
        default_factory=lambda: ("flower", secrets.token_urlsafe(16))
    )
    port: int = field(default_factory=free_port)
    options: list[str] = field(default_factory=compose_flower_options)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> httpx.BasicAuth:
        """The basic-auth credentials Flower accepts."""
        return httpx.BasicAuth(*self.credentials)

    @property
    def log_path(self) -> Path:
        """Flower's combined stdout and stderr."""
        return self.workdir / "flower.log"

    def log(self) -> str:
        """Everything Flower printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 30.0) -> FlowerServer:
        """Start Flower and wait until ``/healthcheck`` answers; returns ``self``.

        The password travels in the environment (``FLOWER_BASIC_AUTH``), never in argv, as in
        docker-compose.yml. Raises :class:`CheckFailed` with the log's tail when Flower exits
        or does not answer within ``timeout`` seconds.
        """
        env = {**self.env, "FLOWER_BASIC_AUTH": ":".join(self.credentials)}
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as handle:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "workers",
                    "flower",
                    f"--port={self.port}",
                    "--address=127.0.0.1",
                    *self.options,
                ],
                cwd=project_root(),
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._poll(
            lambda: httpx.get(f"{self.base_url}/healthcheck", timeout=1).text == "OK",
            timeout,
            "Flower did not answer /healthcheck",
        )
        return self

    def wait_for_worker(self, timeout: float = 30.0) -> None:
        """Wait until Flower received a heartbeat event from a worker (its event stream works).

        Reads ``flower_worker_online`` from ``/metrics``, which Flower sets from worker events.
        Raises :class:`CheckFailed` after ``timeout`` seconds.
        """

        def online() -> bool:
            metrics = httpx.get(f"{self.base_url}/metrics", timeout=2).text
            return any(
                line.startswith("flower_worker_online{") and line.endswith(" 1.0")
                for line in metrics.splitlines()
            )

        self._poll(online, timeout, "Flower saw no worker heartbeat")

    def stop(self) -> None:
        """SIGTERM Flower's process group, SIGKILL if it lingers. Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def _poll(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                break
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.2)
        raise CheckFailed(f"{what} within {timeout} s; log tail:\n{self.log()[-3000:]}")


def submit_task_job_ids(task: dict[str, Any]) -> list[str]:
    """The positional arguments of one task of ``/api/tasks`` (Flower sends them as a repr).

    Raises :class:`CheckFailed` when the task has keyword arguments: our tasks take job ids only.
    """
    kwargs = ast.literal_eval(task.get("kwargs") or "{}")
    if kwargs:
        raise CheckFailed(f"task {task.get('uuid')} has keyword arguments {kwargs!r}")
    return [str(arg) for arg in ast.literal_eval(task.get("args") or "()")]


def wait_for_job_tasks(
    flower: FlowerServer, job_ids: list[str], timeout: float = 30.0
) -> dict[str, dict[str, Any]]:
    """Poll ``/api/tasks`` until every job has a successful ``einvoice.submit_invoice`` task.

    Output: Flower's ``einvoice.submit_invoice`` tasks, ``{task uuid: task}``. Raises
    :class:`CheckFailed` after ``timeout`` seconds, naming the jobs still missing.
    """
    deadline = time.monotonic() + timeout
    missing = set(job_ids)
    while True:
        answer = httpx.get(
            f"{flower.base_url}/api/tasks",
            params={"taskname": TASK_SUBMIT},
            auth=flower.auth,
            timeout=5,
        )
        answer.raise_for_status()
        tasks: dict[str, dict[str, Any]] = answer.json()
        done = {
            job
            for task in tasks.values()
            if task.get("state") == "SUCCESS"
            for job in submit_task_job_ids(task)
        }
        missing = set(job_ids) - done
        if not missing:
            return tasks
        if time.monotonic() > deadline:
            raise CheckFailed(f"no successful {TASK_SUBMIT} task in Flower for jobs {missing}")
        time.sleep(0.3)


def find_chromium() -> str | None:
    """The path of a chromium/chrome binary, or None when none is installed."""
    for candidate in CHROMIUM_CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def _chromium(chromium: str, url: str, *extra: str, timeout: float = 60.0) -> str:
    """Run headless chromium on ``url`` with a throw-away profile; return its stdout."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        run = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                # Virtual time lets the tasks table's AJAX request finish before the page is read.
                "--virtual-time-budget=8000",
                *extra,
                url,
            ],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    if run.returncode != 0:
        raise CheckFailed(f"chromium exited {run.returncode}: {run.stderr.decode()[-2000:]}")
    return run.stdout.decode(errors="replace")


def _page_url(flower: FlowerServer, path: str) -> str:
    user, password = flower.credentials
    return f"http://{user}:{password}@127.0.0.1:{flower.port}{path}"


def render_dom(flower: FlowerServer, chromium: str, path: str = "/tasks") -> str:
    """The DOM of Flower's ``path`` page after its scripts ran, as chromium renders it."""
    return _chromium(chromium, _page_url(flower, path), "--dump-dom")


def screenshot(flower: FlowerServer, chromium: str, out: Path, path: str = "/tasks") -> Path:
    """Save a PNG of Flower's ``path`` page (1400x900 px) to ``out``; return ``out``.

    Raises :class:`CheckFailed` when chromium fails or writes no PNG.
    """
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    width, height = WINDOW_SIZE
    _chromium(
        chromium, _page_url(flower, path), f"--screenshot={out}", f"--window-size={width},{height}"
    )
    if not out.exists() or out.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        raise CheckFailed(f"chromium wrote no PNG at {out}")
    return out


def check_flower(flower: FlowerServer, job_ids: list[str], timeout: float = 30.0) -> dict[str, Any]:
    """Run the HTTP checks against a Flower whose worker processed ``job_ids``.

    Output: ``{"unauthenticated_status", "wrong_password_status", "submit_tasks",
    "jobs_seen"}``. Raises :class:`CheckFailed` on the first failed check.
    """
    anonymous = httpx.get(f"{flower.base_url}/api/tasks", timeout=5)
    wrong = httpx.get(
        f"{flower.base_url}/api/tasks", auth=(flower.credentials[0], "wrong"), timeout=5
    )
    if anonymous.status_code != 401 or wrong.status_code != 401:
        raise CheckFailed(
            f"/api/tasks answered {anonymous.status_code} without credentials and "
            f"{wrong.status_code} with a wrong password; expected 401"
        )
    tasks = wait_for_job_tasks(flower, job_ids, timeout)
    for task in tasks.values():
        arguments = submit_task_job_ids(task)
        if len(arguments) != 1 or arguments[0] not in job_ids:
            raise CheckFailed(
                f"task {task.get('uuid')} has arguments {arguments!r}, "
                "expected exactly one of our job ids"
            )
    return {
        "unauthenticated_status": anonymous.status_code,
        "wrong_password_status": wrong.status_code,
        "submit_tasks": len(tasks),
        "jobs_seen": len(job_ids),
    }


def seed_and_enqueue(db_url: str, broker_url: str, count: int) -> list[str]:
    """Insert one sample issuer with ``count`` invoices and enqueue one job for each.

    Inputs: the database URL (migrated), the Redis broker URL, how many invoices. Output: the new
    jobs' ids as strings, in enqueue order. Everything is committed; each job's wake-up message
    is published after its commit (``einvoice.services.enqueue``).
    """
    app = Celery("flower-check")
    app.config_from_object("celeryconfig")
    app.conf.broker_url = broker_url
    publisher = CeleryPublisher(app)
    engine = make_engine(db_url)
    try:
        factory = make_session_factory(engine)
        with factory() as session:
            org = sample_organization(session, with_branches=False)
            invoices = [
                make_invoice(
                    session,
                    org=org,
                    customer_overrides={"identification_number": f"10987654{index:02d}"},
                )
                for index in range(count)
            ]
            session.commit()
        job_ids = []
        for invoice_id in invoices:
            with factory() as session:
                job = enqueue_invoice(session, invoice_id, publisher=publisher)
                session.commit()
                job_ids.append(str(job.id))
        return job_ids
    finally:
        engine.dispose()


def wait_for_final_jobs(db_url: str, job_ids: list[str], timeout: float) -> dict[str, str]:
    """Poll until every job is in a final status; return ``{job id: status}``.

    Raises :class:`CheckFailed` after ``timeout`` seconds with the statuses seen.
    """
    engine = make_engine(db_url)
    try:
        factory = make_session_factory(engine)
        deadline = time.monotonic() + timeout
        while True:
            with factory() as session:
                jobs = {job: get_job(session, uuid.UUID(job)) for job in job_ids}
            statuses = {job: row.status if row else "missing" for job, row in jobs.items()}
            if all(status in FINAL_STATUSES for status in statuses.values()):
                return statuses
            if time.monotonic() > deadline:
                raise CheckFailed(f"jobs not final after {timeout} s: {statuses}")
            time.sleep(0.2)
    finally:
        engine.dispose()


def run(jobs: int, out: Path) -> dict[str, Any]:
    """Steps 1-5 of the module docstring; returns the report. Raises :class:`CheckFailed`."""
    # Imported here: run as a file, the checkout's root is on sys.path only once main() starts.
    from tests.fixtures.worker import CeleryLauncher, pipeline_environment

    base = project_root() / ".einvoice" / f"flower-check-{os.getpid()}"
    services = DevServices(base_dir=base, pg_port=free_port(), redis_port=free_port(), fast=True)
    sandbox = SandboxServer()
    launcher: CeleryLauncher | None = None
    flower: FlowerServer | None = None
    try:
        services.up()
        with psycopg.connect(services.postgres.admin_url(), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "flower_check"')
        db_url = services.postgres.url.rsplit("/", 1)[0] + "/flower_check"
        migrate.upgrade(db_url)
        sandbox.start()
        env = pipeline_environment(db_url, services.redis.url, sandbox.base_url)
        launcher = CeleryLauncher(env=env, workdir=base)
        worker = launcher.worker(concurrency=4)
        flower = FlowerServer(env=env, workdir=base).start()
        flower.wait_for_worker()
        # Task events are off by default (celeryconfig); Flower switches them on by remote control.
        worker.wait_for(TASK_EVENTS_ENABLED, timeout=30)
        job_ids = seed_and_enqueue(db_url, services.redis.url, jobs)
        statuses = wait_for_final_jobs(db_url, job_ids, timeout=60)
        report = check_flower(flower, job_ids)
        report["job_statuses"] = sorted(statuses.values())
        chromium = find_chromium()
        report["screenshot"] = None
        if chromium is None:
            report["browser"] = "skipped: no chromium installed"
        else:
            dom = render_dom(flower, chromium)
            absent = [text for text in (TASK_SUBMIT, *job_ids) if text not in dom]
            if absent:
                raise CheckFailed(f"Flower's tasks page, as chromium renders it, lacks {absent}")
            report["browser"] = "tasks page shows the task name and every job id"
            report["screenshot"] = str(screenshot(flower, chromium, out))
        return report
    finally:
        if flower is not None:
            flower.stop()
        if launcher is not None:
            launcher.stop_all()
        sandbox.stop()
        services.down(purge=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs to enqueue (default 4)")
    parser.add_argument(
        "--out",
        type=Path,
        default=project_root() / ".einvoice" / "flower-tasks.png",
        help="screenshot path (PNG)",
    )
    args = parser.parse_args(argv)
    try:
        report = run(args.jobs, args.out)
    except CheckFailed as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    print(json.dumps({"ok": True, **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(project_root()))  # for `tests.fixtures` when run as a file
    sys.exit(main())
