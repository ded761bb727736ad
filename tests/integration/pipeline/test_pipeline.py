"""The job pipeline end to end: real PostgreSQL, Redis, a real Celery worker and the simulator.

Each test reads as a scenario an operator would recognise and asserts what they would check:
the job's status and codes, the invoice row, the events, and the simulator's own count of how many
times each reference code was validated (the proof that nothing is sent twice).

The scenarios marked ``BOTH_VERSIONS`` run once per Factus API version (the accepted invoice, DIAN's
answers, the reconcile after an unknown outcome, retries, the 409 of a pending document); the
simulator's counters of validations and posts count both versions, and a path the scenario counts
is named through ``Pipeline.endpoint``. The others run on v1 only (the default account's ``auto``)
to keep the suite's time: they exercise the worker, the broker, the database or the account's
409 bookkeeping, which the wire format does not change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.db.models import ElectronicInvoicingJob, InvoiceSale
from einvoice.queueing import CeleryPublisher
from tests.integration.pipeline.conftest import (
    BOTH_VERSIONS,
    Pipeline,
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)

pytestmark = pytest.mark.slow


def _validations(pipeline: Pipeline, reference: str) -> int:
    stats = pipeline.sandbox.stats()["global"]["validations_by_reference"]["bill"]
    return int(stats.get(reference, 0))


def _assert_accepted_and_validated_once(pipeline: Pipeline, job_ids: list[Any],
                                        timeout: float = 40) -> None:
    """Wait for the jobs to end; each must be ``accepted`` and validated exactly once at Factus."""
    done = wait_for_jobs(pipeline.factory, job_ids, timeout=timeout)
    assert [j.status for j in done] == ["accepted"] * len(job_ids)
    assert all(_validations(pipeline, j.reference_code) == 1 for j in done)


def _validate_posts(pipeline: Pipeline) -> int:
    return int(pipeline.sandbox.stats()["global"]["validate_posts"]["bill"])


def _left_pending_at_dian(pipeline: Pipeline, session: Session, invoice_id: Any,
                          seed: int) -> Any:
    """Submit the invoice while DIAN answers "pending" to everything; return its job id once it
    is ``sent`` (dian_slow), with DIAN answering normally again."""
    pipeline.sandbox.set_faults(dian_slow=1.0, seed=seed)
    job_id = insert_job_sql(session, invoice_id)
    [slow] = wait_for_jobs(pipeline.factory, [job_id], statuses=("sent",), timeout=30)
    assert slow.error_code == "dian_slow"
    pipeline.sandbox.set_faults(dian_slow=0.0)
    return job_id


def _blocked_account(pipeline: Pipeline, session: Session) -> tuple[Any, Any]:
    """Seed the organization and two invoices; leave the first's document pending at DIAN.

    Returns (the pending job's id, the second invoice's id)."""
    seed_organization(session)
    first, second = seed_invoice(session), seed_invoice(session)
    session.commit()
    return _left_pending_at_dian(pipeline, session, first, seed=5), second


def _wait_for_event(pipeline: Pipeline, job_id: Any, event: tuple[str, str | None],
                    timeout: float = 30.0, poll: float = 0.2) -> None:
    """Wait until the job has an ``(event_type, event_code)`` event (or fail with its events)."""
    deadline = time.monotonic() + timeout
    while event not in pipeline.events(job_id):
        assert time.monotonic() < deadline, pipeline.events(job_id)
        time.sleep(poll)


@BOTH_VERSIONS
def test_plain_sql_insert_ends_accepted_with_cufe_qr_and_events(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline()
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()

    job_id = insert_job_sql(session, invoice_id)

    [job] = wait_for_jobs(pipeline.factory, [job_id], timeout=30)
    assert job.status == "accepted", (job.error_code, job.error_message)
    assert job.cufe is not None
    assert len(job.cufe) == 96
    assert job.qr_code.startswith("https://catalogo-vpfe-hab.dian.gov.co/document/searchqr?documentkey=")
    assert job.document_number.startswith("SETP")
    assert job.processed_at is not None
    assert job.factus_environment == "sandbox"
    assert job.factus_account == "sandbox@einvoice.test"
    assert job.factus_api_version == pipeline.api_version
    assert pipeline.response_bill(job)["cufe"] == job.cufe
    session.expire_all()
    invoice = session.get(InvoiceSale, invoice_id)
    assert (invoice.status, invoice.xml_uuid, invoice.number) == ("validated", job.cufe,
                                                                  job.document_number)
    assert invoice.validated_at is not None
    if pipeline.api_version == "v2":  # a v2 bill has no Factus id and no QR image, only links.qr
        assert (job.factus_document_id, invoice.qr_image) == (None, None)
    else:
        assert job.factus_document_id is not None
        assert invoice.qr_image.startswith("data:image/png;base64,")
    types = [t for t, _ in pipeline.events(job_id)]
    assert types[0] == "claimed"
    assert types.index("submitted") < types.index("accepted")
    assert _validations(pipeline, job.reference_code) == 1


def test_invalid_invoice_is_rejected_with_rule_code_and_no_http_call(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # v1 only: v2 takes quantities with two decimals, so the 1.5 kg line is valid there
    pipeline = make_pipeline()
    seed_organization(session)
    wrong_dv = seed_invoice(session, identification_type="NIT", identification_number="901724254",
                            dv=7, company_name="Cliente SAS")
    fractional = seed_invoice(session, items=[("Queso", Decimal("1.5"), Decimal(10000), Decimal(5))])
    session.commit()

    jobs = [insert_job_sql(session, wrong_dv), insert_job_sql(session, fractional)]

    done = wait_for_jobs(pipeline.factory, jobs, timeout=30)
    assert [j.status for j in done] == ["rejected", "rejected"]
    assert done[0].error_code == "invalid_dv"
    assert "customers.dv" in done[0].error_message
    assert done[1].error_code == "non_integer_quantity"
    assert "1.5" in done[1].error_message
    assert _validate_posts(pipeline) == 0
    assert ("rejected", "invalid_dv") in pipeline.events(jobs[0])
    # The ERP reads the outcome on its own invoice row too.
    written = session.execute(text(
        "SELECT status, einvoice_error_code, einvoice_error_message, einvoice_job_id "
        "FROM invoice_sales WHERE id = :i"), {"i": wrong_dv}).one()
    assert written[:2] == ("rejected", "invalid_dv")
    assert "customers.dv" in written[2]
    assert written[3] == jobs[0]


@BOTH_VERSIONS
def test_dian_rejection_rejects_with_rule_code_and_deletes_the_stored_document(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline()
    pipeline.sandbox.set_faults(dian_rejection=1.0, seed=1)
    seed_organization(session)
    first, second = seed_invoice(session), seed_invoice(session)
    session.commit()

    [job] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, first)], timeout=30)

    assert job.status == "rejected"
    assert job.error_code.startswith("dian_rejected:")
    assert ("document_deleted", "200") in pipeline.events(job.id)
    # The account is not blocked: the next invoice goes through once DIAN accepts again.
    pipeline.sandbox.set_faults(dian_rejection=0.0)
    [nxt] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, second)], timeout=30)
    assert nxt.status == "accepted"


@BOTH_VERSIONS
def test_dian_slow_then_accepted_with_the_same_reference(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline(beat=True)
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()

    job_id = _left_pending_at_dian(pipeline, session, invoice_id, seed=2)

    [job] = wait_for_jobs(pipeline.factory, [job_id], timeout=30)
    assert job.status == "accepted"
    assert _validations(pipeline, job.reference_code) == 1
    assert "dian_slow" in [t for t, _ in pipeline.events(job_id)]


@BOTH_VERSIONS
def test_timeout_after_store_is_reconciled_without_a_second_document(
    make_pipeline: Callable[..., Pipeline], session: Session, api_version: str | None
) -> None:
    pipeline = make_pipeline(beat=True, FACTUS_VALIDATE_TIMEOUT="1.5")
    pipeline.sandbox.set_faults(timeout_after_store=1.0, timeout_hang_seconds=3, seed=3)
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()
    job_id = insert_job_sql(session, invoice_id)

    time.sleep(2.5)  # the first POST stored the document and timed out
    pipeline.sandbox.set_faults(timeout_after_store=0.0)
    [job] = wait_for_jobs(pipeline.factory, [job_id], timeout=40)

    assert (job.status, job.factus_api_version) == ("accepted", api_version)
    assert _validations(pipeline, job.reference_code) == 1
    codes = pipeline.events(job_id)
    assert ("reconciled", "found") in codes
    assert _validate_posts(pipeline) == 1


@BOTH_VERSIONS
def test_server_errors_are_retried_with_backoff_then_accepted(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline(beat=True)
    pipeline.sandbox.set_faults(error_503=1.0, seed=4)
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()
    job_id = insert_job_sql(session, invoice_id)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        types = [t for t, _ in pipeline.events(job_id)]
        if types.count("retry_scheduled") >= 1:
            break
        time.sleep(0.2)
    pipeline.sandbox.set_faults(error_503=0.0)

    [job] = wait_for_jobs(pipeline.factory, [job_id], timeout=30)
    assert job.status == "accepted"
    assert job.attempt_count >= 2
    assert _validations(pipeline, job.reference_code) == 1


@BOTH_VERSIONS
def test_attempts_exhausted_ends_failed_with_the_last_error(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline(beat=True)
    seed_organization(session)
    warm_up, invoice_id = seed_invoice(session), seed_invoice(session)
    session.commit()
    wait_for_jobs(pipeline.factory, [insert_job_sql(session, warm_up)], timeout=30)
    pipeline.sandbox.reset()  # counters back to zero; the token stays valid
    pipeline.sandbox.set_faults(error_500=1.0, seed=5)
    job_id = insert_job_sql(session, invoice_id)

    [job] = wait_for_jobs(pipeline.factory, [job_id], timeout=60)

    assert job.status == "failed"
    assert job.error_code == "attempts_exhausted"
    # A 500 after sending may mean the document exists: later attempts look it up first and
    # never re-send blindly, so the simulator saw a single validate POST.
    assert sum(pipeline.requests_to("validate_bill").values()) == 1
    assert job.outcome_unknown is True  # an operator's retry reconciles before sending


@BOTH_VERSIONS
def test_same_message_delivered_twice_gives_one_submission(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline(EINVOICE_LISTEN="false")
    pipeline.sandbox.set_faults(latency_ms=300)
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()
    job_id = insert_job_sql(session, invoice_id)
    publisher = CeleryPublisher()
    publisher.app.conf.broker_url = pipeline.env["CELERY_BROKER_URL"]

    for _ in range(3):
        publisher.publish_submit(job_id)

    [job] = wait_for_jobs(pipeline.factory, [job_id], timeout=30)
    time.sleep(1.0)
    assert job.status == "accepted"
    assert _validate_posts(pipeline) == 1
    assert [t for t, _ in pipeline.events(job_id)].count("claimed") == 1


@BOTH_VERSIONS
def test_a_burst_woken_in_messages_of_several_jobs_is_validated_once_each(
    make_pipeline: Callable[..., Pipeline], session: Session, redis_url: str
) -> None:
    # Given 250 pending jobs whose wake-ups are published as one burst, before any worker runs
    # (with the account's rate limit lifted, at the simulator and in the client)
    pipeline = make_pipeline(start=False, EINVOICE_LISTEN="false",
                             FACTUS_RATE_LIMIT_PER_MINUTE="100000", FACTUS_RATE_LIMIT_PER_SECOND="0")
    pipeline.sandbox.set_faults(rate_limit_per_minute=None)
    seed_organization(session)
    invoices = [seed_invoice(session) for _ in range(250)]
    session.commit()
    jobs = [insert_job_sql(session, i) for i in invoices]
    publisher = CeleryPublisher(max_jobs_per_message=10)
    publisher.app.conf.broker_url = pipeline.env["CELERY_BROKER_URL"]
    publisher.publish_submit_many(jobs)
    # the burst is 125 messages of 2 jobs (spread over at least 100 messages), not 250
    assert redis.Redis.from_url(redis_url).llen("submission") == 125

    # When a worker takes them
    pipeline.launcher.worker(concurrency=8)

    # Then every job is accepted, each sent and claimed exactly once
    done = wait_for_jobs(pipeline.factory, jobs, timeout=90)
    assert [j.status for j in done] == ["accepted"] * 250
    assert _validate_posts(pipeline) == 250
    assert len({j.cufe for j in done}) == 250
    claims = session.execute(text(
        "SELECT count(*) FROM electronic_invoicing_events WHERE event_type = 'claimed' "
        "AND job_id = ANY(:ids)"), {"ids": jobs}).scalar_one()
    assert claims == 250


def test_worker_killed_mid_call_then_restarted_validates_once(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline(beat=True, start=False, EINVOICE_LEASE_SECONDS="10")
    worker = pipeline.launcher.worker()
    seed_organization(session)
    warm_up, invoice_id = seed_invoice(session), seed_invoice(session)
    session.commit()
    # A first invoice gets the account's token, so the kill below lands in the validate call.
    wait_for_jobs(pipeline.factory, [insert_job_sql(session, warm_up)], timeout=30)
    pipeline.sandbox.set_faults(latency_ms=3000)
    job_id = insert_job_sql(session, invoice_id)
    wait_for_jobs(pipeline.factory, [job_id], statuses=("processing",), timeout=15)
    time.sleep(0.5)  # the POST is in flight (3 s simulated DIAN latency)

    worker.kill()
    pipeline.sandbox.set_faults(latency_ms=0)
    pipeline.launcher.worker()

    [job] = wait_for_jobs(pipeline.factory, [job_id], timeout=60)
    assert job.status == "accepted"
    assert _validations(pipeline, job.reference_code) == 1
    types = [t for t, _ in pipeline.events(job_id)]
    assert "lease_expired" in types or "reconciled" in types


def test_redis_flushed_with_jobs_queued_all_end_final(
    make_pipeline: Callable[..., Pipeline], session: Session, redis_url: str
) -> None:
    pipeline = make_pipeline(start=False, EINVOICE_REDISPATCH_SECONDS="2")
    seed_organization(session)
    invoices = [seed_invoice(session) for _ in range(5)]
    session.commit()
    jobs = [insert_job_sql(session, i) for i in invoices]
    # No worker yet: publish the wake-ups, then lose them all.
    publisher = CeleryPublisher()
    publisher.app.conf.broker_url = pipeline.env["CELERY_BROKER_URL"]
    for job_id in jobs:
        publisher.publish_submit(job_id)
    session.execute(text("UPDATE electronic_invoicing_jobs SET dispatched_at = now()"))
    session.commit()
    redis.Redis.from_url(redis_url).flushall()

    pipeline.launcher.worker()
    pipeline.launcher.beat()

    done = wait_for_jobs(pipeline.factory, jobs, timeout=45)
    assert [j.status for j in done] == ["accepted"] * 5


@BOTH_VERSIONS
def test_pending_document_conflict_of_our_own_rejected_document_is_settled(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline(beat=True)
    seed_organization(session)
    first, second = seed_invoice(session), seed_invoice(session)
    session.commit()
    # A DIAN rejection whose cleanup failed leaves our rejected document blocking the account.
    pipeline.sandbox.set_faults(dian_rejection=1.0, seed=6)
    [rejected] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, first)], timeout=30)
    assert rejected.status == "rejected"
    blocker_ref = "EI-BLOCKER-0001"
    session.execute(text("UPDATE electronic_invoicing_jobs SET reference_code = :r WHERE id = :j"),
                    {"r": blocker_ref, "j": rejected.id})
    session.commit()
    import httpx

    token = httpx.post(f"{pipeline.sandbox.base_url}/oauth/token", data={
        "grant_type": "password", "client_id": "sandbox-client", "client_secret": "sandbox-secret",
        "username": "sandbox@einvoice.test", "password": "sandbox-password"}).json()["access_token"]
    payload = dict(rejected.request_payload, reference_code=blocker_ref)
    path = pipeline.endpoint("validate_bill").split(" ")[1]
    answer = httpx.post(f"{pipeline.sandbox.base_url}{path}", json=payload,
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    assert answer.status_code == 422  # stored with status 0: it blocks every create now
    pipeline.sandbox.set_faults(dian_rejection=0.0)

    [job] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, second)], timeout=40)

    assert job.status == "accepted"
    assert ("pending_conflict", "409") in pipeline.events(job.id)
    assert ("document_deleted", "200") in pipeline.events(rejected.id)


@BOTH_VERSIONS
def test_two_organizations_use_their_own_accounts(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    from einvoice.crypto import SecretBox
    from einvoice.services.accounts import save_credentials

    # Organization 1 issues with the deployment's FACTUS_* account: that must be said once
    # another organization has its own row.
    pipeline = make_pipeline(start=False, EINVOICE_DEFAULT_ACCOUNT="shared")
    # Organization 2's account speaks only the scenario's version, as a real account does.
    pipeline.sandbox.add_account("org2-client", "org2-secret", "org2@einvoice.test", "org2-pass",
                                 mode=pipeline.api_version)
    seed_organization(session, 1)
    seed_organization(session, 2)
    save_credentials(session, organization_id=2, environment="sandbox", client_id="org2-client",
                     client_secret="org2-secret", username="org2@einvoice.test",
                     password="org2-pass", box=SecretBox(pipeline.env["EINVOICE_SECRET_KEY"]),
                     api_version=pipeline.api_version)
    invoices = [(1, seed_invoice(session, 1)), (2, seed_invoice(session, 2))]
    session.commit()
    stored = session.execute(text("SELECT client_secret, password_encrypted FROM factus_credentials")).one()
    assert "org2-secret" not in stored[0]
    assert "org2-pass" not in stored[1]
    pipeline.launcher.worker()

    jobs = [insert_job_sql(session, inv, org) for org, inv in invoices]
    done = wait_for_jobs(pipeline.factory, jobs, timeout=30)

    assert [j.status for j in done] == ["accepted", "accepted"]
    assert [j.factus_account for j in done] == ["sandbox@einvoice.test", "org2@einvoice.test"]
    default = pipeline.sandbox.account_stats()["validations_by_reference"]["bill"]
    org2 = pipeline.sandbox.account_stats("org2@einvoice.test", "org2-client")["validations_by_reference"]["bill"]
    assert set(default) == {done[0].reference_code}
    assert set(org2) == {done[1].reference_code}
    # The organization's tokens live in its own row, encrypted at rest.
    session.expire_all()
    tokens = session.execute(text(
        "SELECT access_token, refresh_token, token_expires_at FROM factus_credentials")).one()
    assert tokens[0]
    assert tokens[2] is not None
    assert not tokens[0].startswith("ey")


def test_token_expiring_mid_run_is_renewed(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline(FACTUS_TOKEN_MARGIN_SECONDS="0")
    pipeline.sandbox.set_faults(token_expires_in=2)
    seed_organization(session)
    invoices = [seed_invoice(session) for _ in range(3)]
    session.commit()

    jobs = []
    for invoice_id in invoices:
        jobs.append(insert_job_sql(session, invoice_id))
        time.sleep(2.5)  # the previous token has expired by now

    done = wait_for_jobs(pipeline.factory, jobs, timeout=30)
    assert [j.status for j in done] == ["accepted"] * 3


def test_postgresql_restart_mid_run_costs_retries_not_jobs(
    make_pipeline: Callable[..., Pipeline], session: Session, services: Any
) -> None:
    pipeline = make_pipeline(beat=True)
    pipeline.sandbox.set_faults(latency_ms=1500)
    seed_organization(session)
    invoices = [seed_invoice(session) for _ in range(6)]
    session.commit()
    jobs = [insert_job_sql(session, i) for i in invoices]
    wait_for_jobs(pipeline.factory, jobs[:1], statuses=("processing",), timeout=15)
    session.close()

    services.postgres.stop(mode="immediate")  # a crash: no checkpoint, connections cut
    time.sleep(2.0)
    services.postgres.start()

    done = wait_for_jobs(pipeline.factory, jobs, timeout=120)
    assert [j.status for j in done] == ["accepted"] * 6
    per_reference = pipeline.sandbox.account_stats()["validations_by_reference"]["bill"]
    assert all(per_reference.get(j.reference_code) == 1 for j in done)


@BOTH_VERSIONS
def test_resend_after_unknown_outcome_carries_the_first_payload(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline(beat=True, FACTUS_VALIDATE_TIMEOUT="1.5")
    seed_organization(session)
    warm_up, invoice_id = seed_invoice(session), seed_invoice(session)
    session.commit()
    wait_for_jobs(pipeline.factory, [insert_job_sql(session, warm_up)], timeout=30)
    # The first POST times out: its outcome is unknown ...
    pipeline.sandbox.set_faults(latency_ms=3000)
    job_id = insert_job_sql(session, invoice_id)
    deadline = time.monotonic() + 20
    while "retry_scheduled" not in [t for t, _ in pipeline.events(job_id)]:
        assert time.monotonic() < deadline, pipeline.events(job_id)
        time.sleep(0.2)
    session.expire_all()
    first = session.get(ElectronicInvoicingJob, job_id).request_payload
    assert first is not None
    # ... and meanwhile the ERP edits the invoice's customer e-mail.
    session.execute(text("UPDATE customers SET email = 'nuevo@example.com'"))
    session.commit()
    pipeline.sandbox.set_faults(latency_ms=0)

    [job] = wait_for_jobs(pipeline.factory, [job_id], timeout=40)

    assert (job.status, job.factus_api_version) == ("accepted", pipeline.api_version)
    assert job.request_payload == first
    assert job.request_payload["customer"]["email"] == "maria@example.com"
    assert _validations(pipeline, job.reference_code) == 1


def test_a_recheck_retried_after_a_missed_rate_slot_still_carries_its_first_payload(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given a job whose document DIAN left pending, whose re-check then found no rate slot (as
    # the worker leaves it: still ``sent``, the wait as its error, the outcome known)
    pipeline = make_pipeline(beat=True)
    slow_id, _ = _blocked_account(pipeline, session)
    session.execute(text(
        "UPDATE electronic_invoicing_jobs SET error_code = 'rate_limit_wait', "
        "next_retry_at = now() + interval '1 hour' WHERE id = :j AND status = 'sent'"),
        {"j": slow_id})
    session.commit()
    first = session.get(ElectronicInvoicingJob, slow_id).request_payload
    assert first is not None
    # ... and meanwhile the ERP edits the invoice's customer e-mail
    session.execute(text("UPDATE customers SET email = 'nuevo@example.com'"))
    session.execute(text("UPDATE electronic_invoicing_jobs SET next_retry_at = now() "
                         "WHERE id = :j"), {"j": slow_id})
    session.commit()

    # When the re-check runs again, then it re-sends the very payload of the first send
    # (Decision 3), and the document is validated once
    [job] = wait_for_jobs(pipeline.factory, [slow_id], timeout=30)
    assert job.status == "accepted"
    assert job.request_payload == first
    assert job.request_payload["customer"]["email"] == "maria@example.com"
    assert _validations(pipeline, job.reference_code) == 1


@BOTH_VERSIONS
def test_two_dian_pending_jobs_of_one_account_do_not_wait_for_each_other(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given two jobs that DIAN left pending on the same account (as after a crash and a
    # restart, when both re-checks are due at once)
    pipeline = make_pipeline(beat=True)
    seed_organization(session)
    invoices = [seed_invoice(session), seed_invoice(session)]
    session.commit()
    jobs = [
        session.execute(text(
            "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, status, "
            "error_code, factus_account, factus_environment, dispatched_at) VALUES "
            "(1, :i, 'sent', 'dian_slow', 'sandbox@einvoice.test', 'sandbox', now()) "
            "RETURNING id"), {"i": invoice_id}).scalar_one()
        for invoice_id in invoices
    ]
    session.commit()
    session.execute(text("UPDATE electronic_invoicing_jobs SET dispatched_at = NULL"))
    session.commit()

    # When the dispatcher re-checks them, then both end accepted, each validated once
    _assert_accepted_and_validated_once(pipeline, jobs, timeout=30)


@BOTH_VERSIONS
@pytest.mark.parametrize(("claimed_ago", "lease_left"), [
    ("2 minutes", "10 minutes"),  # claimed longer ago than any live claim lasts
    ("10 seconds", "-1 second"),  # claimed recently, but its lease has run out
], ids=["claimed-long-ago", "lease-expired"])
def test_document_left_pending_by_a_dead_worker_stops_blocking_the_account_at_the_first_409(
    make_pipeline: Callable[..., Pipeline], session: Session, claimed_ago: str, lease_left: str
) -> None:
    # Given a job whose worker died just after DIAN answered "pending": its document blocks the
    # account at Factus, and its lease either still has ten minutes to run, or has just run out
    # (before the lease sweeper's next round)
    pipeline = make_pipeline(beat=True)
    seed_organization(session)
    first, second = seed_invoice(session), seed_invoice(session)
    session.commit()
    stuck_id = _left_pending_at_dian(pipeline, session, first, seed=3)
    session.execute(text(
        "UPDATE electronic_invoicing_jobs SET status = 'processing', leased_by = 'dead-host:1:1', "
        "outcome_unknown = true, updated_at = now() - CAST(:ago AS interval), "
        "lease_expires_at = now() + CAST(:left AS interval) WHERE id = :j"),
        {"j": stuck_id, "ago": claimed_ago, "left": lease_left})
    session.commit()

    # When another invoice of the account is submitted (and gets a 409)
    [job] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, second)], timeout=40)

    # Then the dead worker's job is taken over and re-checked long before its lease ends, and
    # both documents are validated once each
    [stuck] = wait_for_jobs(pipeline.factory, [stuck_id], timeout=30)
    assert (job.status, stuck.status) == ("accepted", "accepted")
    assert ("pending_conflict", "409") in pipeline.events(job.id)
    first_conflict = session.execute(text(
        "SELECT event_message FROM electronic_invoicing_events WHERE job_id = :j "
        "AND event_type = 'pending_conflict' ORDER BY created_at LIMIT 1"),
        {"j": job.id}).scalar_one()
    assert f"re-check of job {stuck_id}" in first_conflict  # at that 409, not a later one
    assert _validations(pipeline, job.reference_code) == 1
    assert _validations(pipeline, stuck.reference_code) == 1


@BOTH_VERSIONS
def test_a_409_behind_our_own_pending_document_waits_for_it_without_listing_factus(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given a document that DIAN left pending at Factus, whose job our database does not yet
    # show as ``sent`` (as between DIAN's answer and its recording), and no pace
    pipeline = make_pipeline(FACTUS_RATE_LIMIT_PER_SECOND="0")
    slow_id, second = _blocked_account(pipeline, session)
    session.execute(text("UPDATE electronic_invoicing_jobs SET status = 'pending', "
                         "next_retry_at = now() + interval '1 hour' WHERE id = :j"),
                    {"j": slow_id})
    session.commit()
    lists_before = sum(pipeline.requests_to("list_bills").values())

    # When another job of the account is sent (slowly), and the pending one is recorded as
    # ``sent`` while that POST is on its way, so that Factus answers it 409
    pipeline.sandbox.set_faults(latency_ms=2000)
    other_id = insert_job_sql(session, second)
    _wait_for_event(pipeline, other_id, ("claimed", None), poll=0.05)
    session.execute(text("UPDATE electronic_invoicing_jobs SET status = 'sent', "
                         "next_retry_at = now() WHERE id = :j"), {"j": slow_id})
    session.commit()
    _wait_for_event(pipeline, other_id, ("pending_conflict", "409"))

    # Then it waits for that job's re-check without spending a request on listing Factus's
    # pending documents to find the blocker
    lists = pipeline.requests_to("list_bills")
    assert sum(lists.values()) == lists_before, lists
    # and once the re-checks run, both documents are validated once each
    pipeline.sandbox.set_faults(latency_ms=0)
    pipeline.launcher.beat()
    _assert_accepted_and_validated_once(pipeline, [slow_id, other_id])


def test_redis_restart_with_tasks_in_flight_leaves_the_worker_running(
    make_pipeline: Callable[..., Pipeline], session: Session, services: Any
) -> None:
    # Given a worker in the middle of six slow submissions (their messages unacknowledged)
    pipeline = make_pipeline(beat=True)
    worker = pipeline.launcher.started[0]
    pipeline.sandbox.set_faults(latency_ms=1500)
    seed_organization(session)
    invoices = [seed_invoice(session) for _ in range(7)]
    session.commit()
    jobs = [insert_job_sql(session, i) for i in invoices[:6]]
    wait_for_jobs(pipeline.factory, jobs[:1], statuses=("processing",), timeout=15)

    # When Redis stops and comes back
    services.redis.stop()
    time.sleep(2.0)
    services.redis.start()

    # Then the same worker process goes on: it finishes those jobs and takes a new one
    late = insert_job_sql(session, invoices[6])
    done = wait_for_jobs(pipeline.factory, [*jobs, late], timeout=120)
    assert [j.status for j in done] == ["accepted"] * 7
    assert worker.proc.poll() is None, worker.log()[-3000:]
    assert "Unrecoverable error" not in worker.log()
    per_reference = pipeline.sandbox.account_stats()["validations_by_reference"]["bill"]
    assert all(per_reference.get(j.reference_code) == 1 for j in done)


def test_a_send_that_queued_for_its_slot_behind_a_pending_document_waits_without_a_post(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given a job that DIAN left pending, and a pace of one request per second
    pipeline = make_pipeline(FACTUS_RATE_LIMIT_PER_SECOND="1")
    slow_id, second = _blocked_account(pipeline, session)
    posts_before = sum(pipeline.sandbox.account_stats()["requests"]
                       ["POST /v1/bills/validate"].values())

    # When another job of the account gets past the claim (its earlier outcome is unknown, so
    # it looks its reference up first) and its POST has to queue for the next second's slot
    other_id = insert_job_sql(session, second)
    session.execute(text("UPDATE electronic_invoicing_jobs SET outcome_unknown = true "
                         "WHERE id = :j"), {"j": other_id})
    session.commit()
    _wait_for_event(pipeline, other_id, ("waiting", "account_blocked"))

    # Then it looked again after the wait, found the pending document and did not send
    posts = pipeline.sandbox.account_stats()["requests"]["POST /v1/bills/validate"]
    assert sum(posts.values()) == posts_before, posts
    assert ("submitted", "409") not in pipeline.events(other_id)
    # and once the re-checks run, both documents are validated once each
    pipeline.launcher.beat()
    _assert_accepted_and_validated_once(pipeline, [slow_id, other_id])


def test_a_recheck_that_meets_a_server_error_stays_sent_and_the_account_keeps_waiting(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given a job whose document DIAN left pending, then Factus answering 503 to everything,
    # and retries that wait half a minute
    pipeline = make_pipeline(beat=True, EINVOICE_RETRY_BASE_SECONDS="30",
                             EINVOICE_RETRY_CAP_SECONDS="60")
    slow_id, second = _blocked_account(pipeline, session)
    pipeline.sandbox.set_faults(error_503=1.0)

    # When its re-check's re-send meets the 503
    _wait_for_event(pipeline, slow_id, ("retry_scheduled", "factus_maintenance"))

    # Then the job stays ``sent``: its document is still pending at DIAN ...
    to = session.execute(text(
        "SELECT metadata->>'to' FROM electronic_invoicing_events WHERE job_id = :j "
        "AND event_code = 'factus_maintenance' AND event_type = 'retry_scheduled'"),
        {"j": slow_id}).scalar_one()
    assert to == "sent"
    # ... so another job of the account waits for it instead of sending (Factus would answer
    # 409), and once Factus is back both documents are validated once each
    other_id = insert_job_sql(session, second)
    _wait_for_event(pipeline, other_id, ("waiting", "account_blocked"))
    assert not [e for e in pipeline.events(other_id) if e[0] == "submitted"]
    pipeline.sandbox.set_faults(error_503=0.0)
    session.execute(text("UPDATE electronic_invoicing_jobs SET next_retry_at = now() "
                         "WHERE id = :j"), {"j": slow_id})
    session.commit()
    _assert_accepted_and_validated_once(pipeline, [slow_id, other_id])


def test_a_409_whose_lookup_finds_no_rate_slot_stays_in_the_jobs_history(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given a document pending at DIAN on the account that einvoice does not know (its job is
    # gone), and a pace of one request per second with no waiting for a slot
    pipeline = make_pipeline(beat=True, FACTUS_RATE_LIMIT_PER_SECOND="1",
                             FACTUS_RATE_LIMIT_MAX_WAIT_SECONDS="0")
    seed_organization(session)
    first, second = seed_invoice(session), seed_invoice(session)
    session.commit()
    pipeline.sandbox.set_faults(dian_slow=1.0, seed=7)
    [slow] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, first)],
                           statuses=("sent",), timeout=30)
    session.execute(text("DELETE FROM electronic_invoicing_jobs WHERE id = :j"), {"j": slow.id})
    session.commit()

    # When another job of the account is sent: Factus answers 409, and the list of pending
    # documents that would find the blocker gets no request slot in that second
    job_id = insert_job_sql(session, second)
    _wait_for_event(pipeline, job_id, ("pending_conflict", "409"))

    # Then the job's history shows the POST's 409 and why it is retried
    events = pipeline.events(job_id)
    assert ("submitted", "409") in events
    assert ("retry_scheduled", "rate_limit_wait") in events
    message = session.execute(text(
        "SELECT event_message FROM electronic_invoicing_events WHERE job_id = :j "
        "AND event_type = 'pending_conflict' LIMIT 1"), {"j": job_id}).scalar_one()
    assert "listing the account's pending documents failed (rate_limit_wait)" in message


@BOTH_VERSIONS
def test_jobs_waiting_behind_a_pending_document_go_as_soon_as_it_is_settled(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given a job that DIAN left pending, re-checked only every 30 s
    pipeline = make_pipeline(EINVOICE_DIAN_SLOW_RECHECK_SECONDS="30")
    slow_id, second = _blocked_account(pipeline, session)
    # and another job of the account, waiting for it (until about its re-check and a half)
    other_id = insert_job_sql(session, second)
    _wait_for_event(pipeline, other_id, ("waiting", "account_blocked"))
    waits_until = session.execute(text(
        "SELECT next_retry_at FROM electronic_invoicing_jobs WHERE id = :j"),
        {"j": other_id}).scalar_one()

    # When the pending document's re-check runs now and settles it
    session.execute(text("UPDATE electronic_invoicing_jobs SET next_retry_at = now() "
                         "WHERE id = :j"), {"j": slow_id})
    session.commit()
    pipeline.launcher.beat()

    # Then the waiting job goes at once, long before its wait was due to end
    done = wait_for_jobs(pipeline.factory, [slow_id, other_id], timeout=25)
    assert [j.status for j in done] == ["accepted", "accepted"]
    assert done[1].processed_at < waits_until
    assert all(_validations(pipeline, j.reference_code) == 1 for j in done)
