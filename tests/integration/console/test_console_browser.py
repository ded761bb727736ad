"""The console in a real browser (Playwright driving Debian's chromium), on a real pipeline.

One scene for the module: the sample ERP (two organizations, some invoices wrong on purpose)
sent through a real Celery worker to the Factus simulator until every job is final, then the
HTTP API's uvicorn serving ``/console``. One browser for the module. Skipped where chromium or
Playwright is missing (``apt-get install chromium``; Playwright comes with the ``dev`` extra).

Scenario (the console's acceptance): an operator signs in, sees the overview with the run's
numbers, filters to rejected jobs, opens one, reads the Spanish explanation, retries without
fixing anything, and sees the retry (with their name) and the new rejection appear; a viewer
cannot retry; a form without its CSRF token is refused.
"""

from __future__ import annotations

import importlib.util
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.db.engine import make_engine, make_session_factory
from einvoice.devservices import DevServices
from einvoice.domain.catalogue import explain
from einvoice.sample import generate_sample
from einvoice.services.console_auth import create_user
from einvoice.services.enqueue import enqueue_invoices
from scripts.console_screenshots import capture, chromium_browser, find_chromium, sign_in
from tests.fixtures.services import create_database, drop_database
from tests.fixtures.worker import CeleryLauncher, pipeline_environment
from tests.integration.api.conftest import running_api
from tests.integration.console.conftest import PASSWORD

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="playwright is not installed"),
]

FINAL = ("accepted", "rejected", "failed", "cancelled")


@dataclass
class Scene:
    """The finished run and the console serving it."""

    base_url: str
    factory: sessionmaker[Session]
    users: dict[str, str]

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value read with ``sql``."""
        with self.factory() as session:
            return session.execute(text(sql), params).scalar()

    def events(self, job_id: str) -> list[tuple[str, str | None]]:
        """(event_type, event_message) of the job, oldest first."""
        with self.factory() as session:
            return [(r[0], r[1]) for r in session.execute(text(
                "SELECT event_type, event_message FROM electronic_invoicing_events "
                "WHERE job_id = :j ORDER BY created_at, id"), {"j": job_id})]


def _wait_final(factory: sessionmaker[Session], expected: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with factory() as session:
            done = session.execute(text(
                "SELECT count(*) FROM electronic_invoicing_jobs WHERE status IN "
                "('accepted', 'rejected', 'failed', 'cancelled')")).scalar_one()
        if done >= expected:
            return
        if time.monotonic() > deadline:
            with factory() as session:
                states = session.execute(text(
                    "SELECT status, error_code, error_message FROM electronic_invoicing_jobs "
                    "WHERE status NOT IN ('accepted', 'rejected', 'failed', 'cancelled')")).all()
            raise AssertionError(f"{done} of {expected} jobs final after {timeout} s: {states}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def scene(services: DevServices, template_db: str, sandbox: Any,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """The sample run, finished, and the console over it (see the module docstring)."""
    sandbox.reset(drop_added_accounts=True)
    redis.Redis.from_url(services.redis.url).flushall()
    name, url = create_database(services, template_db)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as session:
        sample = generate_sample(session, seed=11, organizations=2, customers=16, invoices=16,
                                 wrong_share=0.25, credit_notes=0, api_version="v1")
        users = {}
        for role in ("admin", "operator", "viewer"):
            users[role] = f"{role}-{uuid.uuid4().hex[:6]}"
            create_user(session, username=users[role], password=PASSWORD, role=role)
        session.commit()
    env = pipeline_environment(url, services.redis.url, sandbox.base_url,
                               FACTUS_API_VERSION="v1")
    launcher = CeleryLauncher(env=env, workdir=tmp_path_factory.mktemp("console-pipeline"))
    try:
        launcher.worker(concurrency=4)
        launcher.beat()
        with factory() as session:
            enqueue_invoices(session, list(sample.invoice_ids))
            session.commit()
        _wait_final(factory, len(sample.invoice_ids))
        with running_api(url, services.redis.url) as base_url:
            yield Scene(base_url=base_url, factory=factory, users=users)
    finally:
        launcher.stop_all()
        engine.dispose()
        drop_database(services, name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium for the module."""
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def page_of(browser: Any, scene: Scene) -> Iterator[Any]:
    """``page_of(role)``: a new browser context signed in as that role's account."""
    contexts: list[Any] = []

    def make(role: str) -> Any:
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        contexts.append(context)
        page = context.new_page()
        sign_in(page, scene.base_url, scene.users[role], PASSWORD)
        return page

    yield make
    for context in contexts:
        context.close()


def _kpi(page: Any, status: str) -> int:
    return int(re.sub(r"\D", "", page.inner_text(f"#kpi-{status} .value")))


def test_an_operator_finds_a_rejected_job_reads_why_and_retries_it(
        scene: Scene, page_of: Any) -> None:
    # Given the finished run, and an operator signed in on the overview
    page = page_of("operator")
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.goto(f"{scene.base_url}/console/overview")
    accepted = scene.scalar("SELECT count(*) FROM electronic_invoicing_jobs "
                            "WHERE status = 'accepted'")
    rejected = scene.scalar("SELECT count(*) FROM electronic_invoicing_jobs "
                            "WHERE status = 'rejected'")

    # Then the overview shows the run's numbers, in Spanish
    assert page.inner_text("h1") == "Resumen"
    assert _kpi(page, "accepted") == accepted > 0
    assert _kpi(page, "rejected") == rejected > 0
    assert page.inner_text("#health")
    # And it refreshes itself (htmx, every 10 s) without a reload, with nothing the page's
    # Content-Security-Policy had to block
    with page.expect_response(lambda r: r.url.endswith("/console/overview/live"),
                              timeout=15_000) as live:
        pass
    assert live.value.status == 200
    assert page.inner_text("h1") == "Resumen"
    assert errors == []

    # When they filter the job table to rejected jobs
    page.click("nav >> text=Trabajos")
    page.check("input[name=status][value=rejected]")
    page.click("button:has-text('Filtrar')")
    rows = page.query_selector_all("#jobs tbody tr[data-job]")
    assert len(rows) == rejected
    assert all(row.inner_text().count("rechazado") == 1 for row in rows)

    # and open the first one
    job_id = rows[0].get_attribute("data-job")
    rows[0].query_selector("a").click()
    page.wait_for_load_state("networkidle")
    code = scene.scalar("SELECT error_code FROM electronic_invoicing_jobs WHERE id = :j",
                        j=job_id)

    # Then its Spanish explanation is there
    explanation = explain(code, "es")
    assert explanation is not None
    assert explanation.message in page.inner_text("#explanation")
    assert "Qué salió mal" in page.inner_text("#explanation")

    # When they retry it without fixing anything, confirming on the confirmation page
    page.click("#action-retry")
    assert "¿Enviar de nuevo este trabajo a Factus?" in page.inner_text("main")
    page.click("#confirm")
    page.wait_for_load_state("networkidle")

    # Then the job page says so and the timeline shows the retry in their name
    assert page.inner_text("#done")
    assert scene.users["operator"] in page.inner_text("#timeline")
    # And the worker rejects it again (nothing was fixed): the new event appears on reload
    deadline = time.monotonic() + 60
    while [t for t, _ in scene.events(job_id)].count("rejected") < 2:
        assert time.monotonic() < deadline, scene.events(job_id)
        time.sleep(0.3)
    page.reload()
    timeline = page.inner_text("#timeline")
    assert timeline.count("Rechazado") >= 2
    assert page.inner_text("#job-status") == "rechazado"


def test_a_viewer_sees_no_retry_and_is_refused_the_action(scene: Scene, page_of: Any) -> None:
    job_id = scene.scalar("SELECT id FROM electronic_invoicing_jobs WHERE status = 'rejected' "
                          "ORDER BY created_at LIMIT 1")
    page = page_of("viewer")

    page.goto(f"{scene.base_url}/console/jobs/{job_id}")
    no_button = page.query_selector("#action-retry") is None
    actions = page.inner_text("#actions")
    answer = page.goto(f"{scene.base_url}/console/jobs/{job_id}/confirm/retry")

    assert no_button
    assert "Su rol (consulta) solo permite leer." in actions
    assert answer.status == 403
    assert "No permitido" in page.inner_text("h1")


def test_a_form_without_its_csrf_token_is_refused(scene: Scene, page_of: Any) -> None:
    job_id = scene.scalar("SELECT id FROM electronic_invoicing_jobs WHERE status = 'rejected' "
                          "ORDER BY created_at DESC LIMIT 1")
    before = len(scene.events(str(job_id)))
    page = page_of("operator")
    page.goto(f"{scene.base_url}/console/jobs/{job_id}/confirm/retry")

    # When the form loses its hidden token before it is sent
    page.evaluate("document.querySelector(`form[action$='/retry'] input[name=csrf_token]`)"
                  ".remove()")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#confirm")

    assert posted.value.status == 403
    assert "Formulario vencido" in page.inner_text("h1")
    assert len(scene.events(str(job_id))) == before


def test_an_accepted_job_shows_its_qr_and_downloads_its_pdf(scene: Scene, page_of: Any) -> None:
    # Given an accepted job whose PDF the worker archived
    deadline = time.monotonic() + 60
    while (job_id := scene.scalar(
            "SELECT j.id FROM electronic_invoicing_jobs j JOIN electronic_invoicing_documents d "
            "ON d.job_id = j.id AND d.kind = 'pdf' WHERE j.status = 'accepted' LIMIT 1")) is None:
        assert time.monotonic() < deadline, "no archived PDF"
        time.sleep(0.3)
    number = scene.scalar("SELECT document_number FROM electronic_invoicing_jobs WHERE id = :j",
                          j=job_id)
    page = page_of("viewer")

    # When a viewer opens it and downloads the PDF
    page.goto(f"{scene.base_url}/console/jobs/{job_id}")
    with page.expect_download() as download:
        page.click("text=Descargar PDF")

    # Then the page shows the number, the CUFE and the QR, and the file is the PDF
    assert page.inner_text("#document-number") == number
    assert len(page.inner_text("#cufe")) == 96
    assert page.get_attribute("#qr", "src").startswith("data:image/")
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")


def test_screenshots_of_every_page(scene: Scene, browser: Any, tmp_path: Path) -> None:
    files = capture(scene.base_url, scene.users["admin"], PASSWORD, tmp_path, browser=browser)

    names = [f.stem for f in files]
    assert names[:4] == ["00-sign-in", "01-overview", "02-jobs", "03-jobs-rejected"]
    assert {"04-job", "05-confirm-retry", "20-config-accounts"} <= set(names)
    assert all(f.read_bytes().startswith(b"\x89PNG") for f in files)
