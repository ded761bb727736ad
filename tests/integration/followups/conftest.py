"""Follow-up fixtures: the pipeline's (real worker, Redis, simulator, and its ``api_version``
parameter with the :data:`BOTH_VERSIONS` marker) plus helpers to get an accepted job and to watch
its follow-ups."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.factus.client import FactusClients, create_factus_clients
from einvoice.queueing import CeleryPublisher
from einvoice.services.runner import WorkerContext
from einvoice.settings import load_settings
from tests.integration.pipeline.conftest import (  # noqa: F401 - fixtures re-exported
    BOTH_VERSIONS,
    Pipeline,
    api_version,
    insert_job_sql,
    make_pipeline,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)


def accepted_job(pipeline: Pipeline, session: Session) -> uuid.UUID:
    """An invoice job of organization 1 that the running worker got accepted; returns its id."""
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()
    [job] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, invoice_id)], timeout=30)
    assert job.status == "accepted", (job.error_code, job.error_message)
    return job.id


def followups(factory: sessionmaker[Session], job_id: uuid.UUID,
              kind: str | None = None) -> list[dict[str, object]]:
    """The job's follow-up rows (id, kind, status, attempt_count, error_code, error_message)."""
    with factory() as session:
        rows = session.execute(text(
            "SELECT id, kind, status, attempt_count, error_code, error_message "
            "FROM electronic_invoicing_followups WHERE job_id = :j "
            "AND (CAST(:k AS text) IS NULL OR kind = :k) ORDER BY created_at, id"),
            {"j": job_id, "k": kind}).mappings().all()
    return [dict(r) for r in rows]


def wait_for_followups(factory: sessionmaker[Session], job_id: uuid.UUID, kind: str, count: int,
                       statuses: tuple[str, ...] = ("done", "failed"),
                       timeout: float = 40.0) -> list[dict[str, object]]:
    """Poll until the job has ``count`` follow-ups of ``kind``, all in ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        rows = followups(factory, job_id, kind)
        if len(rows) == count and all(r["status"] in statuses for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{kind} follow-ups not {statuses} after {timeout} s: {rows}")
        time.sleep(0.2)


def wait_for_event(pipeline: Pipeline, job_id: uuid.UUID, event_type: str,
                   timeout: float = 30.0) -> None:
    """Poll until the job has an event of ``event_type``."""
    deadline = time.monotonic() + timeout
    while event_type not in [t for t, _ in pipeline.events(job_id)]:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {event_type} event after {timeout} s: {pipeline.events(job_id)}")
        time.sleep(0.2)


def cli_env(db_url: str, redis_url: str) -> dict[str, str]:
    """An operator's environment with only the database and Redis (no Factus account)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTUS_", "EINVOICE_"))}
    env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url)
    return env


def run_cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``einvoice ARGS`` as an operator runs it: a subprocess; the caller checks its exit code."""
    return subprocess.run([sys.executable, "-m", "einvoice.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


class InProcess:
    """Resources a test builds in its own process, aimed at a pipeline; closed at teardown."""

    def __init__(self) -> None:
        self._clients: list[FactusClients] = []
        self._apps: list[Celery] = []

    def context(self, pipeline: Pipeline) -> WorkerContext:
        """The resources a worker of this pipeline has (settings, Factus clients, sessions)."""
        settings = load_settings(**{k.lower(): v for k, v in pipeline.env.items()
                                    if k.startswith(("FACTUS_", "EINVOICE_", "REDIS_URL"))})
        clients = create_factus_clients(settings)
        self._clients.append(clients)
        return WorkerContext(session_factory=pipeline.factory, clients=clients, settings=settings,
                             worker_id="test")

    def publisher(self, pipeline: Pipeline) -> CeleryPublisher:
        """A publisher on the pipeline's broker (the test process has no REDIS_URL of its own)."""
        app = Celery("einvoice-test-producer")
        app.config_from_object("celeryconfig")
        app.conf.broker_url = pipeline.env["CELERY_BROKER_URL"]
        self._apps.append(app)
        return CeleryPublisher(app)

    def close(self) -> None:
        """Close every client and Celery app built."""
        for clients in self._clients:
            clients.close()
        for app in self._apps:
            app.close()


@pytest.fixture
def in_process() -> Iterator[InProcess]:
    """Build worker resources and publishers in the test's process (closed after the test)."""
    resources = InProcess()
    yield resources
    resources.close()
