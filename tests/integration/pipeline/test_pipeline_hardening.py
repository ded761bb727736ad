"""The submission pipeline against rows, answers and timing that used to break it.

Real PostgreSQL, Redis and simulator throughout; a real Celery worker where the scenario is
about what a deployment does, the submit service in the test's own process where the scenario
needs exact timing (two workers racing for one job) or a fault no row can produce.

- A row that crashes the payload build ends its job ``failed`` (``internal_error``) instead of
  being re-published forever, and the other jobs of the same wake-up message go on.
- A 201 "validated" without a valid CUFE is not trusted: the document is looked up by reference.
- A document DIAN keeps pending ends ``failed`` (``dian_timeout``) after the bound.
- A POST never leaves once its worker lost the job's lease: one POST per document.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.db.models import ElectronicInvoicingJob
from einvoice.db.uow import UnitOfWork
from einvoice.factus.client import FactusClients, create_factus_clients
from einvoice.factus.tokens import InMemoryTokenStore, ThreadRenewalLocks
from einvoice.services import claim, dispatch, operator, record
from einvoice.services.runner import WorkerContext
from einvoice.services.submit import submit_job, submit_jobs
from einvoice.settings import Settings, load_settings
from tests.integration.pipeline.conftest import (
    Pipeline,
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)

pytestmark = pytest.mark.slow


# --- helpers -------------------------------------------------------------------------------


def _validate_posts(pipeline: Pipeline) -> int:
    return int(pipeline.sandbox.stats()["global"]["validate_posts"]["bill"])


def _validations(pipeline: Pipeline, reference: str) -> int:
    stats = pipeline.sandbox.stats()["global"]["validations_by_reference"]["bill"]
    return int(stats.get(reference, 0))


def _event_rows(pipeline: Pipeline, job_id: Any) -> list[Any]:
    with pipeline.factory() as session:
        return list(session.execute(text(
            "SELECT event_type, event_code, event_message, metadata "
            "FROM electronic_invoicing_events WHERE job_id = :j ORDER BY created_at, id"),
            {"j": job_id}))


def _job(pipeline: Pipeline, job_id: Any) -> ElectronicInvoicingJob:
    with pipeline.factory() as session:
        job = session.get(ElectronicInvoicingJob, job_id)
        assert job is not None
        return job


class _Contexts:
    """Worker resources built in the test's process (closed at teardown)."""

    def __init__(self) -> None:
        self._clients: list[FactusClients] = []

    def settings(self, pipeline: Pipeline, **overrides: Any) -> Settings:
        values: dict[str, Any] = {k.lower(): v for k, v in pipeline.env.items()
                                  if k.startswith(("FACTUS_", "EINVOICE_", "REDIS_URL",
                                                   "DATABASE_URL"))}
        values.update(overrides)
        return load_settings(**values)

    def context(self, pipeline: Pipeline, worker_id: str, *, own_tokens: bool = False,
                **overrides: Any) -> WorkerContext:
        """A worker's resources; ``own_tokens``: a token store and renewal locks of its own
        (a worker that does not share the others' token)."""
        settings = self.settings(pipeline, **overrides)
        extra: dict[str, Any] = ({"token_store": InMemoryTokenStore(),
                                  "renewal_locks": ThreadRenewalLocks()} if own_tokens else {})
        clients = create_factus_clients(settings, **extra)
        self._clients.append(clients)
        return WorkerContext(session_factory=pipeline.factory, clients=clients,
                             settings=settings, worker_id=worker_id)

    def close(self) -> None:
        for clients in self._clients:
            clients.close()


@pytest.fixture
def contexts() -> Iterator[_Contexts]:
    made = _Contexts()
    yield made
    made.close()


# --- 4. no poison rows -----------------------------------------------------------------------


def test_a_row_postgresql_cannot_hand_to_python_fails_its_job_once_and_the_next_job_goes_on(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given an ERP invoice whose issue date is 'infinity' (legal in PostgreSQL; Python's
    # datetime cannot hold it, so reading the row raises a DataError), and a sound invoice
    pipeline = make_pipeline(beat=True)
    seed_organization(session)
    poison, sound = seed_invoice(session), seed_invoice(session)
    session.execute(text("UPDATE invoice_sales SET issue_date = 'infinity' WHERE id = :id"),
                    {"id": poison})
    session.commit()

    # When the ERP inserts a job for each
    jobs = [insert_job_sql(session, poison), insert_job_sql(session, sound)]

    # Then the poison job ends failed with internal_error after one attempt, its event naming
    # the exception, and nothing was sent for it; the sound one is accepted
    bad, good = wait_for_jobs(pipeline.factory, jobs, timeout=40)
    assert (bad.status, bad.error_code, bad.attempt_count) == ("failed", "internal_error", 1)
    assert "DataError" in bad.error_message
    failed = [row for row in _event_rows(pipeline, bad.id) if row.event_type == "failed"]
    assert len(failed) == 1
    assert failed[0].event_code == "internal_error"
    assert failed[0].metadata["step"] == "claim"
    assert "DataError" in failed[0].metadata["exception"]
    assert good.status == "accepted"
    assert _validate_posts(pipeline) == 1
    # And it stays failed: the dispatcher does not re-publish it minute after minute
    time.sleep(3)
    again = _job(pipeline, bad.id)
    assert (again.status, again.attempt_count) == ("failed", 1)


def test_a_job_whose_build_raises_leaves_the_other_jobs_of_its_message_untouched(
    make_pipeline: Callable[..., Pipeline], session: Session, contexts: _Contexts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given three jobs woken by one burst message, the second of which trips a bug in the
    # payload build (a fault no row in the schema can produce, hence the patch)
    pipeline = make_pipeline(start=False)
    seed_organization(session)
    invoices = [seed_invoice(session) for _ in range(3)]
    session.commit()
    jobs = [insert_job_sql(session, invoice) for invoice in invoices]
    build = claim._build_payload

    def build_or_crash(ctx: WorkerContext, sess: Session, job: Any,
                       api_version: str) -> dict[str, Any]:
        if job.invoice_id == invoices[1]:
            raise ZeroDivisionError("decimal division by zero in line 1")
        return build(ctx, sess, job, api_version)

    monkeypatch.setattr(claim, "_build_payload", build_or_crash)
    requeued: list[list[uuid.UUID]] = []

    # When a worker runs the message
    outcomes = submit_jobs(contexts.context(pipeline, "w1"), jobs, requeue=requeued.append)

    # Then the first and third are accepted, the second failed with internal_error, the
    # exception's type and message in its event
    assert outcomes == {"accepted": 2, "internal_error": 1}
    assert requeued == []
    statuses = [(j.status, j.error_code) for j in (_job(pipeline, j) for j in jobs)]
    assert statuses == [("accepted", None), ("failed", "internal_error"), ("accepted", None)]
    [failed] = [r for r in _event_rows(pipeline, jobs[1]) if r.event_type == "failed"]
    assert "ZeroDivisionError: decimal division by zero in line 1" in failed.event_message
    assert _validate_posts(pipeline) == 2


def test_an_exception_while_recording_after_the_post_keeps_the_outcome_unknown(
    make_pipeline: Callable[..., Pipeline], session: Session, contexts: _Contexts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given recording the acceptance raises (after Factus validated the document)
    pipeline = make_pipeline(start=False)
    seed_organization(session)
    job_id = insert_job_sql(session, seed_invoice(session))
    session.commit()
    accepted_change = record._accepted_change

    def broken(*args: Any) -> None:
        raise ValueError("cannot record this answer")

    monkeypatch.setattr(record, "_accepted_change", broken)
    ctx = contexts.context(pipeline, "w1")

    # When the job is submitted
    assert submit_job(ctx, job_id) == "internal_error"

    # Then it is failed with internal_error and its outcome unknown (one POST went out)
    job = _job(pipeline, job_id)
    assert (job.status, job.error_code, job.outcome_unknown) == ("failed", "internal_error", True)
    assert "ValueError: cannot record this answer" in job.error_message
    assert _validate_posts(pipeline) == 1

    # And an operator's retry looks the reference up and adopts the document: no second POST
    monkeypatch.setattr(record, "_accepted_change", accepted_change)
    with UnitOfWork(pipeline.factory) as uow:
        operator.retry_job(uow.session, job_id)
        uow.commit()
    assert submit_job(ctx, job_id) == "accepted"
    job = _job(pipeline, job_id)
    assert job.status == "accepted"
    assert job.cufe is not None
    assert len(job.cufe) == 96
    assert ("reconciled", "found") in [(r.event_type, r.event_code)
                                       for r in _event_rows(pipeline, job_id)]
    assert _validate_posts(pipeline) == 1


# --- 6. a 201 without a valid CUFE ----------------------------------------------------------


def test_a_201_without_a_valid_cufe_is_looked_up_and_accepted_with_the_real_cufe(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given Factus validates the document but its answer carries a 64-character "CUFE"
    pipeline = make_pipeline()
    pipeline.sandbox.set_faults(invalid_cufe=1.0, seed=11)
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()

    # When the job is submitted
    [job] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, invoice_id)], timeout=30)

    # Then it is accepted with the CUFE Factus shows for the reference code, POSTed once
    assert job.status == "accepted", (job.error_code, job.error_message)
    assert job.cufe is not None
    assert len(job.cufe) == 96
    assert job.response_payload["bill"]["cufe"] == job.cufe
    assert _validate_posts(pipeline) == 1
    assert _validations(pipeline, job.reference_code) == 1
    codes = [(r.event_type, r.event_code) for r in _event_rows(pipeline, job.id)]
    assert codes.index(("invalid_cufe", "201")) < codes.index(("reconciled", "found"))
    assert codes.index(("reconciled", "found")) < codes.index(("accepted", job.document_number))
    session.expire_all()
    xml_uuid = session.execute(text("SELECT xml_uuid FROM invoice_sales WHERE id = :id"),
                               {"id": invoice_id}).scalar_one()
    assert xml_uuid == job.cufe


# --- 7. pending at DIAN, but not forever ----------------------------------------------------


def test_a_document_dian_keeps_pending_ends_dian_timeout_and_stops_blocking_the_account(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given DIAN never answers the first document (every re-send is "pending" again) and a
    # bound of 3 s on re-checks
    pipeline = make_pipeline(beat=True, EINVOICE_DIAN_PENDING_TIMEOUT_SECONDS="3")
    pipeline.sandbox.set_faults(dian_stuck=1.0, seed=12)
    seed_organization(session)
    first, second = seed_invoice(session), seed_invoice(session)
    session.commit()

    # When its job is submitted
    stuck_id = insert_job_sql(session, first)

    # Then it is re-checked with backoff, then ends failed with dian_timeout, outcome unknown
    [stuck] = wait_for_jobs(pipeline.factory, [stuck_id], timeout=40)
    assert (stuck.status, stuck.error_code) == ("failed", "dian_timeout"), stuck.error_message
    assert stuck.outcome_unknown is True
    assert "einvoice jobs retry" in stuck.error_message
    codes = [(r.event_type, r.event_code) for r in _event_rows(pipeline, stuck_id)]
    assert codes.count(("dian_slow", "dian_slow")) >= 2
    assert codes[-1] == ("failed", "dian_timeout")
    reference = stuck.reference_code

    # And the account keeps working: the next invoice is accepted (Factus's 409 for the
    # stuck document is settled by the existing rules: its job is final)
    pipeline.sandbox.set_faults(dian_stuck=0.0)
    [nxt] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, second)], timeout=40)
    assert nxt.status == "accepted", (nxt.error_code, nxt.error_message)

    # And the operator's retry re-checks by the same reference code: one document, validated
    with UnitOfWork(pipeline.factory) as uow:
        operator.retry_job(uow.session, stuck_id)
        uow.commit()
    [retried] = wait_for_jobs(pipeline.factory, [stuck_id], timeout=40)
    assert retried.status == "accepted"
    assert retried.reference_code == reference
    assert _validations(pipeline, reference) == 1
    assert ("reconciled", "absent") in [(r.event_type, r.event_code)
                                        for r in _event_rows(pipeline, stuck_id)]


# --- 8. leases that fence -------------------------------------------------------------------


def test_a_worker_that_lost_its_lease_during_a_slow_token_call_does_not_post(
    make_pipeline: Callable[..., Pipeline], session: Session, contexts: _Contexts,
) -> None:
    # Given a 10 s lease, worker A without a token while the token endpoint takes 14 s, and
    # worker B holding a token already
    pipeline = make_pipeline(start=False)
    seed_organization(session)
    job_id = insert_job_sql(session, seed_invoice(session))
    session.commit()
    slow = contexts.context(pipeline, "worker-a", own_tokens=True, einvoice_lease_seconds=10)
    fast = contexts.context(pipeline, "worker-b", own_tokens=True, einvoice_lease_seconds=10)
    fast.clients.default().tokens.access_token()
    pipeline.sandbox.set_faults(token_latency_ms=14000)
    results: dict[str, str] = {}

    # When A claims the job and waits for its token past the lease,
    worker_a = threading.Thread(target=lambda: results.update(a=submit_job(slow, job_id)))
    worker_a.start()
    deadline = time.monotonic() + 20
    while True:
        with pipeline.factory() as s:
            expired = s.execute(text(
                "SELECT lease_expires_at < now() FROM electronic_invoicing_jobs WHERE id = :j"),
                {"j": job_id}).scalar_one()
        if expired:
            break
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.2)
    # the sweeper hands the job back, and B claims and submits it
    assert dispatch.recover_expired_leases(pipeline.factory) == 1
    results["b"] = submit_job(fast, job_id)
    worker_a.join(40)

    # Then B's POST is the only one: A found its lease gone and sent nothing
    assert results == {"a": "lease_lost", "b": "accepted"}
    job = _job(pipeline, job_id)
    assert (job.status, job.attempt_count, job.leased_by.startswith("worker-b")) == (
        "accepted", 2, True)
    assert _validate_posts(pipeline) == 1
    assert _validations(pipeline, job.reference_code) == 1
