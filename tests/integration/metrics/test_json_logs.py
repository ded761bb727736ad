"""``EINVOICE_LOG_FORMAT=json``: every log line of a worker and of ``einvoice api serve`` is one
JSON object, and carries the job or the request it belongs to.

Both processes are started as an operator starts them (``celery -A workers worker``,
``einvoice api serve``) and their output is read back, line by line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from einvoice.devservices import free_port
from einvoice.launch import ChildProcess, ProcessGroup, einvoice_command
from tests.integration.pipeline.conftest import (
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)


def json_lines(log: str) -> list[dict[str, Any]]:
    """The lines of ``log`` that are JSON objects (Celery's start banner is printed, not
    logged)."""
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_a_json_worker_line_carries_the_job_its_organization_and_reference_code(
        make_pipeline: Any, session_factory: sessionmaker[Session]) -> None:
    # Given a worker logging JSON
    pipeline = make_pipeline(EINVOICE_LOG_FORMAT="json")
    worker = pipeline.launcher.started[0]
    # When it gets an invoice accepted
    with session_factory() as session:
        seed_organization(session)
        invoice = seed_invoice(session)
        session.commit()
    with session_factory() as session:
        job_id = insert_job_sql(session, invoice)
    [job] = wait_for_jobs(session_factory, [job_id])
    assert job.status == "accepted"

    lines = json_lines(worker.log())
    # Then its logged lines are JSON with time, level, logger and message (Celery's own too)
    assert any(line["logger"].startswith("celery") and "ready." in line["message"]
               for line in lines)
    assert all({"time", "level", "logger", "message", "job_id", "organization_id",
                "reference_code", "request_id"} <= line.keys() for line in lines)
    # And the lines of the job's run carry its id, organization and reference code
    mine = [line for line in lines if line["job_id"] == str(job_id)]
    validate = [line for line in mine
                if line["logger"] == "einvoice.factus" and "/bills/validate" in line["message"]]
    assert validate, [line["message"] for line in mine]
    assert (validate[0]["organization_id"], validate[0]["reference_code"]) == (
        1, job.reference_code)
    assert validate[0]["factus_status"] == 201
    assert any(line["logger"] == "einvoice.services.submit" and "accepted" in line["message"]
               and line["reference_code"] == job.reference_code for line in mine)
    # And no other job's id leaks into lines logged outside the run
    assert {line["job_id"] for line in lines} <= {None, str(job_id)}


def test_a_json_api_line_carries_the_request_id_echoed_to_the_caller(
        db_url: str, tmp_path: Path) -> None:
    # Given `einvoice api serve` logging JSON, its Redis down (so /readyz logs a warning from
    # inside the route, in the thread pool)
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url,
           "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "EINVOICE_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
    group = ProcessGroup()
    api = group.spawn(ChildProcess("api", einvoice_command("api", "serve", "--port", str(port)),
                                   env, tmp_path / "api.log"))
    try:
        api.wait_for("Application startup complete", timeout=60)
        base_url = f"http://127.0.0.1:{port}"
        # When one request names its id and another does not
        named = httpx.get(f"{base_url}/healthz", headers={"X-Request-ID": "erp-req-42"})
        unnamed = httpx.get(f"{base_url}/readyz")
        unsafe = httpx.get(f"{base_url}/healthz", headers={"X-Request-ID": "x" * 200})
    finally:
        group.stop_all()
    # Then each answer carries an id: the caller's, or a new one for a missing or unusable one
    assert named.headers["x-request-id"] == "erp-req-42"
    generated = unnamed.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])
    # And the access line of each request carries the same id
    lines = json_lines(api.log())
    access = {line["request_id"]: line for line in lines if line["logger"] == "einvoice.api.access"}
    assert access["erp-req-42"]["http_path"] == "/healthz"
    assert access["erp-req-42"]["http_status"] == 200
    assert (access[generated]["http_path"], access[generated]["http_status"]) == ("/readyz", 503)
    # And so does a line the route itself logged while serving it
    [warning] = [line for line in lines if line["logger"] == "einvoice.api.health"]
    assert warning["request_id"] == generated
    assert warning["level"] == "WARNING"
    # And uvicorn's own lines are JSON too, outside any request
    started = [line for line in lines if "Application startup complete" in line["message"]]
    assert started
    assert started[0]["request_id"] is None
    assert all(line.startswith("{") for line in api.log().splitlines() if line.strip()), \
        api.log()[-2000:]
