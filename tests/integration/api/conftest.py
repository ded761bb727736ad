"""HTTP API fixtures: a real uvicorn server on a free port, against a real PostgreSQL and Redis.

``api`` (module): one server per test module on a database of its own (a copy of the migrated
template), with a 1-second key cache so that a revoked key is refused within a second. Each test
takes a fresh organization from ``org`` so tests sharing the database never see each other's
rows. :func:`running_api` starts another server when a test needs other settings (a dead Redis,
the simulator's Factus account).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.api import create_app
from einvoice.db.engine import make_engine, make_session_factory
from einvoice.devservices import DevServices, free_port
from einvoice.services.api_keys import create_key
from einvoice.settings import load_settings
from tests.fixtures.services import create_database, drop_database
from tests.integration.pipeline.conftest import (  # make_pipeline: the end-to-end test's
    make_pipeline,  # noqa: F401 - a fixture, shared with the pipeline tests
    seed_invoice,
    seed_organization,
)

_orgs = itertools.count(100)


@contextmanager
def running_api(db_url: str, redis_url: str, *, key_cache_seconds: float = 1.0,
                **settings: Any) -> Iterator[str]:
    """Serve :func:`einvoice.api.create_app` with uvicorn in a thread; yields the base URL."""
    app = create_app(load_settings(database_url=db_url, redis_url=redis_url, **settings),
                     key_cache_seconds=key_cache_seconds, pool_size=5, max_overflow=10)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@dataclass
class Api:
    """A running API server and the database it serves."""

    base_url: str
    db_url: str
    factory: sessionmaker[Session]

    def key(self, organization_id: int, name: str = "test") -> str:
        """A new API key of ``organization_id`` (committed)."""
        with self.factory() as session:
            created = create_key(session, organization_id, name)
            session.commit()
        return created.key

    def client(self, key: str | None = None) -> httpx.Client:
        """An HTTP client of the server, authenticated with ``key`` when given."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value read with ``sql`` (the test's own check of the rows)."""
        with self.factory() as session:
            return session.execute(text(sql), params).scalar()


@dataclass
class Org:
    """A fresh organization with an active invoice range and an API key."""

    id: int
    key: str
    api: Api

    def client(self) -> httpx.Client:
        """An HTTP client authenticated as this organization."""
        return self.api.client(self.key)

    def invoice(self, **kwargs: Any) -> uuid.UUID:
        """A seeded tax-included invoice of this organization (committed)."""
        with self.api.factory() as session:
            invoice_id = seed_invoice(session, self.id, **kwargs)
            session.commit()
        return invoice_id


@pytest.fixture(scope="module")
def api_engine(services: DevServices, template_db: str) -> Iterator[tuple[str, Engine]]:
    """A database of the module's own (copied from the migrated template) and its engine."""
    name, url = create_database(services, template_db)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()
    drop_database(services, name)


@pytest.fixture(scope="module")
def api(services: DevServices, api_engine: tuple[str, Engine]) -> Iterator[Api]:
    """The module's running API server."""
    url, engine = api_engine
    with running_api(url, services.redis.url) as base_url:
        yield Api(base_url=base_url, db_url=url, factory=make_session_factory(engine))


def new_org(api: Api) -> Org:
    """Seed a fresh organization (with its SETP invoice range) and give it a key."""
    org_id = next(_orgs)
    with api.factory() as session:
        seed_organization(session, org_id)
        session.commit()
    return Org(id=org_id, key=api.key(org_id), api=api)


@pytest.fixture
def org(api: Api) -> Org:
    """A fresh organization of the module's database, with an API key."""
    return new_org(api)


@pytest.fixture
def other_org(api: Api) -> Org:
    """A second fresh organization (for isolation tests)."""
    return new_org(api)
