"""The `einvoice` CLI as an operator uses it: real subprocesses on a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.integration.pipeline.conftest import seed_invoice, seed_organization


def _cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "einvoice.cli", *args], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _env(db_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTUS_", "EINVOICE_"))}
    env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url,
               EINVOICE_SECRET_KEY=Fernet.generate_key().decode(), **extra)
    return env


def test_enqueue_all_unsent_then_status_list_and_show(
    db_url: str, redis_url: str, session: Session
) -> None:
    seed_organization(session)
    invoices = [seed_invoice(session) for _ in range(3)]
    session.commit()
    env = _env(db_url, redis_url)

    created = json.loads(_cli(env, "jobs", "enqueue", "--all-unsent", "--org", "1", "--json").stdout)
    again = _cli(env, "jobs", "enqueue", "--all-unsent", "--org", "1", check=False)

    assert sorted(j["invoice_id"] for j in created) == sorted(str(i) for i in invoices)
    assert all(j["status"] == "pending" for j in created)
    # a second run finds none left
    assert again.returncode != 0
    assert "--invoice ID or --all-unsent" in again.stderr
    status = json.loads(_cli(env, "jobs", "status", "--json").stdout)
    assert status["by_status"] == {"pending": 3}
    assert status["by_organization"]["1"] == {"pending": 3}
    listed = json.loads(_cli(env, "jobs", "list", "--status", "pending", "--json").stdout)
    assert len(listed) == 3
    shown = json.loads(_cli(env, "jobs", "show", created[0]["id"], "--json").stdout)
    assert shown["job"]["reference_code"] == created[0]["reference_code"]
    assert [e["type"] for e in shown["events"]] == ["enqueued"]
    table = _cli(env, "jobs", "status").stdout
    assert "pending" in table
    assert "all" in table


def test_retry_and_cancel_are_recorded_and_guarded(
    db_url: str, redis_url: str, session: Session
) -> None:
    seed_organization(session)
    failed_invoice, accepted_invoice, pending_invoice = (seed_invoice(session) for _ in range(3))
    rows: dict[str, Any] = {}
    for name, invoice_id, status in (("failed", failed_invoice, "failed"),
                                     ("accepted", accepted_invoice, "accepted"),
                                     ("pending", pending_invoice, "pending")):
        rows[name] = session.execute(text(
            "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, status, "
            "attempt_count, error_code, document_number) VALUES (1, :i, :s, 5, :e, :n) "
            "RETURNING id, reference_code"),
            {"i": invoice_id, "s": status, "e": "server_error" if status == "failed" else None,
             "n": "SETP990000001" if status == "accepted" else None}).one()
    session.commit()
    env = _env(db_url, redis_url)

    _cli(env, "jobs", "retry", str(rows["failed"].id))
    refused = _cli(env, "jobs", "cancel", str(rows["accepted"].id), check=False)
    cancelled = _cli(env, "jobs", "cancel", str(rows["pending"].id))
    unknown = _cli(env, "jobs", "show", str(uuid.uuid4()), check=False)

    session.expire_all()
    retried = session.execute(text(
        "SELECT status, attempt_count, reference_code FROM electronic_invoicing_jobs WHERE id = :j"),
        {"j": rows["failed"].id}).one()
    assert retried == ("pending", 0, rows["failed"].reference_code)
    assert refused.returncode == 1
    assert "credit note" in refused.stderr
    assert "cancelled" in cancelled.stdout
    assert unknown.returncode == 1
    assert "no job" in unknown.stderr
    events = session.execute(text(
        "SELECT event_type FROM electronic_invoicing_events ORDER BY created_at")).scalars().all()
    assert events == ["operator_retry", "cancelled"]


def test_missing_database_url_is_one_clear_line(redis_url: str) -> None:
    env = _env("", redis_url)
    env.pop("DATABASE_URL")
    result = _cli(env, "jobs", "status", check=False)
    assert result.returncode == 3  # configuration (einvoice.cli's exit statuses)
    assert result.stderr.strip().splitlines() == [
        ("error: DATABASE_URL is not set: export a PostgreSQL URL, for example from "
         "`einvoice dev services up`")]
