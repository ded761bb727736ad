"""The e-mail resend through the real pipeline: `einvoice jobs resend-email` as
its own follow-up through `POST /v1/bills/send-email/{number}` (v2:
`POST /v2/bills/{number}/send-email`), within Factus's daily quota.

The scenarios that reach Factus run on both API versions (``BOTH_VERSIONS``)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.errors import JobError
from einvoice.services.accounts import account_for_organization
from einvoice.services.documents import request_email_resend
from tests.integration.followups.conftest import (
    BOTH_VERSIONS,
    InProcess,
    Pipeline,
    accepted_job,
    cli_env,
    insert_job_sql,
    run_cli,
    seed_invoice,
    seed_organization,
    wait_for_followups,
)

pytestmark = pytest.mark.slow


def _email_events(pipeline: Pipeline, job_id: object) -> list[tuple[str, str | None, dict]]:
    with pipeline.factory() as session:
        rows = session.execute(text(
            "SELECT event_type, event_message, metadata FROM electronic_invoicing_events "
            "WHERE job_id = :j AND event_type LIKE 'email%' ORDER BY created_at, id"),
            {"j": job_id}).all()
    return [(r[0], r[1], r[2] or {}) for r in rows]


@BOTH_VERSIONS
def test_resend_email_reaches_factus_once_and_is_recorded(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given an accepted invoice
    pipeline = make_pipeline()
    job_id = accepted_job(pipeline, session)

    # When an operator resends it to another address
    result = run_cli(pipeline.env, "jobs", "resend-email", str(job_id), "--to",
                     "contabilidad@cliente.co", "--json")
    assert result.returncode == 0, result.stderr
    queued = json.loads(result.stdout)
    [email] = wait_for_followups(pipeline.factory, job_id, "email", 1)

    # Then Factus was asked once, the follow-up is done, and the job's history says so
    assert str(email["id"]) == queued["followup_id"], email
    assert email["status"] == "done", email
    assert pipeline.requests_to("send_bill_email") == {"200": 1}
    events = _email_events(pipeline, job_id)
    assert [e[0] for e in events] == ["email_requested", "email_sent"]
    assert events[1][2]["to"] == "contabilidad@cliente.co"
    assert "contabilidad@cliente.co" in (events[1][1] or "")
    session.expire_all()
    assert session.execute(text("SELECT status FROM electronic_invoicing_jobs WHERE id = :j"),
                           {"j": job_id}).scalar_one() == "accepted"


def test_resend_of_a_job_that_is_not_accepted_is_refused(
    session: Session, db_url: str, redis_url: str
) -> None:
    # Given a job still pending (no worker took it)
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()
    job_id = insert_job_sql(session, invoice_id)

    # When an operator asks to resend its e-mail
    result = run_cli(cli_env(db_url, redis_url), "jobs", "resend-email", str(job_id))
    with pytest.raises(JobError) as refused:
        request_email_resend(session, job_id, "a@b.co")
    session.rollback()

    # Then it is refused in one line with the reason, and nothing is queued
    assert result.returncode == 1
    assert "is pending; only an accepted job" in result.stderr
    assert refused.value.reason == "not_accepted"
    assert session.execute(text("SELECT count(*) FROM electronic_invoicing_followups")
                           ).scalar_one() == 0


def test_third_resend_in_a_day_ends_failed_with_a_clear_reason(
    make_pipeline: Callable[..., Pipeline], session: Session, in_process: InProcess,
) -> None:
    # Given an accepted invoice already e-mailed twice today through einvoice
    pipeline = make_pipeline()
    publisher = in_process.publisher(pipeline)
    job_id = accepted_job(pipeline, session)
    for count in (1, 2):
        request_email_resend(session, job_id, publisher=publisher)
        session.commit()
        wait_for_followups(pipeline.factory, job_id, "email", count, statuses=("done",))

    # When an operator asks for a third e-mail the same day
    request_email_resend(session, job_id, publisher=publisher)
    session.commit()
    rows = wait_for_followups(pipeline.factory, job_id, "email", 3)

    # Then that one ends failed with the quota as reason, without spending a Factus call
    assert [r["status"] for r in rows] == ["done", "done", "failed"]
    assert rows[2]["error_code"] == "email_daily_limit"
    assert "2 e-mails per document per day" in str(rows[2]["error_message"])
    assert pipeline.requests_to("send_bill_email") == {"200": 2}
    assert [e[0] for e in _email_events(pipeline, job_id)] == [
        "email_requested", "email_sent", "email_requested", "email_sent", "email_requested",
        "email_failed"]


@BOTH_VERSIONS
def test_quota_used_elsewhere_is_factus_409_and_ends_failed_with_its_message(
    make_pipeline: Callable[..., Pipeline], session: Session, in_process: InProcess,
) -> None:
    # Given an accepted invoice that another system e-mailed twice today with the same account
    pipeline = make_pipeline()
    job_id = accepted_job(pipeline, session)
    number = session.execute(text(
        "SELECT document_number FROM electronic_invoicing_jobs WHERE id = :j"),
        {"j": job_id}).scalar_one()
    ctx = in_process.context(pipeline)
    # the other system speaks the account's version too (the quota is the document's anyway)
    client = ctx.clients.for_account(account_for_organization(session, 1, ctx.settings, None))
    client.send_bill_email(number, "maria@example.com")
    client.send_bill_email(number, "maria@example.com")

    # When an operator resends it through einvoice
    request_email_resend(session, job_id, "otra@cliente.co", publisher=in_process.publisher(pipeline))
    session.commit()
    [email] = wait_for_followups(pipeline.factory, job_id, "email", 1)

    # Then Factus refused it (409) and the follow-up says why, once: it is not retried
    assert email["status"] == "failed"
    assert email["attempt_count"] == 1
    assert email["error_code"] == "email_daily_limit"
    assert "2 veces hoy" in str(email["error_message"])
    assert pipeline.requests_to("send_bill_email") == {"200": 2, "409": 1}
