"""Deploy fixtures: a real worker and a real Flower, run as docker-compose.yml runs them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from einvoice.devservices import DevServices
from einvoice.sandbox.server import SandboxServer
from scripts.flower_screenshot import (
    TASK_EVENTS_ENABLED,
    FlowerServer,
    seed_and_enqueue,
    wait_for_final_jobs,
)
from tests.fixtures.services import create_database, drop_database
from tests.fixtures.worker import CeleryLauncher, pipeline_environment

FLOWER_CREDENTIALS = ("ops", "flower-test-password")
JOBS = 3


@dataclass
class FlowerScene:
    """Flower watching a worker that has run one ``einvoice.submit_invoice`` per job."""

    flower: FlowerServer
    job_ids: list[str]
    job_statuses: dict[str, str]
    workdir: Path


@pytest.fixture(scope="module")
def flower_scene(
    services: DevServices,
    template_db: str,
    sandbox: SandboxServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FlowerScene]:
    """A fresh database, a threads-pool worker, Flower behind basic auth, and 3 finished jobs.

    Module-scoped so the HTTP and browser tests share one (slow) start. Flower gets the flags of
    docker-compose.yml's flower service and its credentials through ``FLOWER_BASIC_AUTH``.
    """
    name, db_url = create_database(services, template_db)
    # Messages other tests left in the broker would reach this worker and show up in Flower.
    client = redis.Redis.from_url(services.redis.url)
    client.flushall()
    client.close()
    sandbox.reset(drop_added_accounts=True)
    env = pipeline_environment(db_url, services.redis.url, sandbox.base_url)
    workdir = tmp_path_factory.mktemp("flower")
    launcher = CeleryLauncher(env=env, workdir=workdir)
    flower = FlowerServer(env=env, workdir=workdir, credentials=FLOWER_CREDENTIALS)
    try:
        worker = launcher.worker(concurrency=4)
        flower.start()
        flower.wait_for_worker()
        # Task events are off by default (celeryconfig); Flower switches them on by remote control.
        worker.wait_for(TASK_EVENTS_ENABLED, timeout=30)
        job_ids = seed_and_enqueue(db_url, services.redis.url, JOBS)
        statuses = wait_for_final_jobs(db_url, job_ids, timeout=30)
        yield FlowerScene(flower, job_ids, statuses, workdir)
    finally:
        flower.stop()
        launcher.stop_all()
        drop_database(services, name)
