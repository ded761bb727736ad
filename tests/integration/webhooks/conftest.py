"""Webhook fixtures: a real HTTP receiver that records what it gets, and one pipeline (a real
Celery worker consuming every queue, beat, the Factus simulator, PostgreSQL, Redis) shared by the
module's end-to-end tests, each on an organization of its own."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from einvoice.crypto import SecretBox
from einvoice.db.engine import make_engine, make_session_factory
from einvoice.devservices import DevServices, free_port
from tests.fixtures.services import create_database, drop_database
from tests.fixtures.worker import CeleryLauncher, pipeline_environment


@dataclass
class Received:
    """One request the receiver got: its headers (lower-case names) and raw body."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    def verify(self, secret: str) -> dict[str, Any]:
        """The body, after checking its Standard Webhooks signature with ``secret`` (raises
        ``WebhookVerificationError`` otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)  # type: ignore[no-any-return]

    @property
    def webhook_id(self) -> str:
        """The ``webhook-id`` header."""
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """An ERP's webhook endpoint on 127.0.0.1: answers each POST with the next status of
    ``answers`` (then ``default``), and records it. Not listening until :meth:`start`."""

    port: int = field(default_factory=free_port)
    answers: list[int] = field(default_factory=list)
    default: int = 200
    delay: float = 0.0  # seconds before answering
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """The endpoint's URL."""
        return f"http://127.0.0.1:{self.port}/hooks/einvoice"

    def start(self) -> Receiver:
        """Listen on :attr:`port` (the same port after a :meth:`stop`)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    status = receiver.answers.pop(0) if receiver.answers else receiver.default
                    receiver.received.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, status))
                time.sleep(receiver.delay)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", "https://elsewhere.example/hooks")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused from now on)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Poll until at least ``count`` requests arrived; return them all."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} webhook requests after {timeout} s, "
                                     f"expected {count}")
            time.sleep(0.05)
        return list(self.received)


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """``receivers(start=True, answers=[...], default=200, delay=0.0)`` makes a receiver; all
    are stopped after the test."""
    made: list[Receiver] = []

    def make(*, start: bool = True, answers: list[int] | None = None,
             default: int = 200, delay: float = 0.0) -> Receiver:
        receiver = Receiver(answers=list(answers or []), default=default, delay=delay)
        made.append(receiver)
        return receiver.start() if start else receiver

    yield make
    for receiver in made:
        receiver.stop()


def deliveries(factory: sessionmaker[Session], *, job_id: uuid.UUID | None = None,
               endpoint_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Webhook follow-ups (of a job and/or an endpoint), oldest first."""
    with factory() as session:
        rows = session.execute(text(
            "SELECT id, job_id, endpoint_id, event_type, event_id, status, attempt_count, "
            "max_attempts, error_code, error_message, payload FROM electronic_invoicing_followups "
            "WHERE kind = 'webhook' AND (CAST(:j AS uuid) IS NULL OR job_id = :j) "
            "AND (CAST(:e AS uuid) IS NULL OR endpoint_id = :e) ORDER BY created_at, id"),
            {"j": job_id, "e": endpoint_id}).mappings().all()
    return [dict(r) for r in rows]


def attempts(factory: sessionmaker[Session], delivery_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """(attempt, response_status, error) of a delivery's attempt log, oldest first."""
    with factory() as session:
        rows = session.execute(text(
            "SELECT attempt, response_status, error FROM webhook_delivery_attempts "
            "WHERE followup_id = :f ORDER BY created_at, id"), {"f": delivery_id}).all()
    return [tuple(r) for r in rows]


def wait_for_delivery(factory: sessionmaker[Session], endpoint_id: uuid.UUID,
                      statuses: tuple[str, ...] = ("done", "failed"), count: int = 1,
                      timeout: float = 30.0) -> list[dict[str, Any]]:
    """Poll until the endpoint has ``count`` deliveries, all in ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        rows = deliveries(factory, endpoint_id=endpoint_id)
        if len(rows) == count and all(r["status"] in statuses for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries not {statuses} after {timeout} s: "
                                 f"{[(r['status'], r['error_code']) for r in rows]}")
        time.sleep(0.1)


@dataclass
class WebhookPipeline:
    """The module's running worker and beat, with the database they use."""

    env: dict[str, str]
    launcher: CeleryLauncher
    factory: sessionmaker[Session]
    box: SecretBox


@pytest.fixture(scope="module")
def webhook_pipeline(services: DevServices, template_db: str, sandbox: Any,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookPipeline]:
    """A database of the module's own, a worker consuming every queue (``webhooks`` included)
    and beat, started once for the module (tests use distinct organizations)."""
    sandbox.reset(drop_added_accounts=True)
    name, db_url = create_database(services, template_db)
    client = redis.Redis.from_url(services.redis.url)
    client.flushall()
    client.close()
    env = pipeline_environment(db_url, services.redis.url, sandbox.base_url)
    launcher = CeleryLauncher(env=env, workdir=tmp_path_factory.mktemp("webhooks"))
    engine = make_engine(db_url)
    try:
        launcher.worker(concurrency=8)
        launcher.beat()
        yield WebhookPipeline(env=env, launcher=launcher, factory=make_session_factory(engine),
                              box=SecretBox(env["EINVOICE_SECRET_KEY"]))
    finally:
        launcher.stop_all()
        engine.dispose()
        drop_database(services, name)
