"""``GET /metrics``: behind its own token, and showing what a real worker did.

The API runs in this process (uvicorn in a thread); the worker is a real ``celery`` process
against the Factus simulator. With ``PROMETHEUS_MULTIPROC_DIR`` the worker's counters travel
through files in a folder both are given, never through this process's memory: the Factus
request counts the scrape shows are compared with what the simulator itself received.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.api.conftest import running_api
from tests.integration.metrics.conftest import TOKEN, scrape
from tests.integration.pipeline.conftest import (
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)


def test_metrics_answer_404_while_no_token_is_configured(db_url: str, redis_url: str) -> None:
    # Given an API without EINVOICE_METRICS_TOKEN
    with running_api(db_url, redis_url) as base_url:
        # When Prometheus (or anyone) asks for /metrics, even with a token
        response = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        paths = httpx.get(f"{base_url}/openapi.json").json()["paths"]
    # Then the endpoint does not exist here, and says how to turn it on
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "metrics_disabled"
    assert "EINVOICE_METRICS_TOKEN" in response.json()["detail"]
    # And it is not part of the ERPs' API document
    assert "/metrics" not in paths


def test_metrics_refuse_a_missing_or_wrong_token_and_answer_the_right_one(
        db_url: str, redis_url: str) -> None:
    with running_api(db_url, redis_url, einvoice_metrics_token=TOKEN) as base_url:
        missing = httpx.get(f"{base_url}/metrics")
        wrong = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
        basic = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Basic {TOKEN}"})
        right = scrape(base_url)
    for refused in (missing, wrong, basic):
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthorized"
        assert "# HELP" not in refused.text
    # The right token gets the metrics; an empty database has no jobs, no blocked account
    assert right.value("einvoice_metrics_source_up", source="postgres") == 1
    assert right.value("einvoice_metrics_source_up", source="redis") == 1
    assert right.value("einvoice_jobs_due_pending") == 0
    assert right.value("einvoice_jobs_oldest_sent_seconds") == 0


def test_a_dead_redis_leaves_the_database_gauges_and_says_which_source_failed(
        db_url: str) -> None:
    from einvoice.devservices import free_port

    with running_api(db_url, f"redis://127.0.0.1:{free_port()}/0",
                     einvoice_metrics_token=TOKEN) as base_url:
        started = time.monotonic()
        body = scrape(base_url)
        took = time.monotonic() - started
    assert body.value("einvoice_metrics_source_up", source="redis") == 0
    assert body.value("einvoice_metrics_source_up", source="postgres") == 1
    assert body.value("einvoice_jobs_lease_expired") == 0
    assert body.value("einvoice_beat_last_seen_seconds") is None
    assert took < 5, took


def _range_row(factory: sessionmaker[Session]) -> Any:
    with factory() as session:
        return session.execute(text(
            "SELECT id, range_start, range_end, current_number, valid_until "
            "FROM invoice_sequences WHERE organization_id = 1 AND prefix = 'SETP'")).one()


@pytest.mark.slow
def test_metrics_show_jobs_factus_requests_and_latencies_of_a_real_worker(
        make_pipeline: Any, session_factory: sessionmaker[Session], db_url: str, redis_url: str,
        tmp_path: Path) -> None:
    # Given a worker and beat writing their counters to a folder the API is given too
    folder = tmp_path / "prometheus"
    pipeline = make_pipeline(beat=True, PROMETHEUS_MULTIPROC_DIR=str(folder))
    worker = pipeline.launcher.started[0]
    # When three invoices are enqueued the way an ERP does and get accepted
    with session_factory() as session:
        seed_organization(session)
        invoices = [seed_invoice(session) for _ in range(3)]
        session.commit()
    with session_factory() as session:
        job_ids = [insert_job_sql(session, invoice) for invoice in invoices]
    jobs = wait_for_jobs(session_factory, job_ids)
    assert [job.status for job in jobs] == ["accepted"] * 3
    # And Prometheus scrapes the API
    with running_api(db_url, redis_url, einvoice_metrics_token=TOKEN,
                     prometheus_multiproc_dir=str(folder)) as base_url:
        body = scrape(base_url)

    # Then the jobs are counted by organization and status
    assert body.value("einvoice_jobs", organization="1", status="accepted") == 3
    assert body.value("einvoice_jobs", organization="1", status="pending") is None
    # And the validate requests the worker sent are the ones the simulator received, by status
    received = pipeline.requests_to("validate_bill")
    assert received.get("201", 0) >= 3, received
    for status, count in received.items():
        assert body.value("einvoice_factus_requests_total", endpoint="bill_validate",
                          version="v1", status=str(status)) == count
    # With their latencies: every request in the +Inf bucket and the count, none slower than
    # the validate timeout
    sent = sum(received.values())
    labels = {"endpoint": "bill_validate", "version": "v1"}
    assert body.value("einvoice_factus_request_duration_seconds_count", **labels) == sent
    assert body.value("einvoice_factus_request_duration_seconds_bucket", le="+Inf",
                      **labels) == sent
    assert body.value("einvoice_factus_request_duration_seconds_bucket", le="30.0",
                      **labels) == sent
    assert (body.value("einvoice_factus_token_renewals_total", grant="password", result="ok")
            or 0) >= 1
    # Which came from the worker process, through its own files in the folder
    assert any(path.name.endswith(f"-{worker.pid}.db") for path in folder.iterdir()), \
        sorted(path.name for path in folder.iterdir())
    assert body.value("einvoice_metrics_source_up", source="worker_files") == 1

    # And the range's remaining numbers and days to expiry are the row's
    row = _range_row(session_factory)
    labels = {"organization": "1", "prefix": "SETP", "range_id": str(row.id)}
    assert body.value("einvoice_range_remaining_numbers", **labels) == (
        row.range_end - row.current_number + 1)
    assert body.value("einvoice_range_size_numbers", **labels) == (
        row.range_end - row.range_start + 1)
    today = datetime.now(UTC).date()
    days = body.value("einvoice_range_days_to_expiry", **labels)
    assert days is not None
    assert abs(days - (row.valid_until - today).days) <= 1
    assert isinstance(row.valid_until, date)

    # And beat and the worker are alive, and the default account's budget shows the requests
    beat_seen = body.value("einvoice_beat_last_seen_seconds")
    assert beat_seen is not None
    assert time.time() - beat_seen < 30
    assert body.value("einvoice_workers_alive") == 1
    used = body.value("einvoice_factus_account_budget_used", account="default")
    assert used is not None
    assert used >= 3 + 1  # three validates and a token at least, within the last minute
    assert body.value("einvoice_factus_account_budget_limit", account="default") == 80
