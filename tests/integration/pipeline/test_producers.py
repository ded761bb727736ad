"""Producers and the dispatcher against a real PostgreSQL (publisher faked: our own port)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import redis
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.db import dispatcher as dispatch_repo
from einvoice.db import jobs as job_repo
from einvoice.db import operator_jobs as operator_repo
from einvoice.db.listener import LISTENER_LOCK_KEY
from einvoice.db.models import ElectronicInvoicingEvent, ElectronicInvoicingJob, InvoiceSale
from einvoice.errors import JobError
from einvoice.queueing import wakeup_chunks
from einvoice.services.dispatch import (
    account_budgets,
    dispatch_due_jobs,
    dispatch_new_jobs,
    listen_for_new_jobs,
    recover_expired_leases,
)
from einvoice.services.enqueue import enqueue_invoice, enqueue_invoices, invoices_without_job
from einvoice.services.runner import WorkerContext
from einvoice.services.submit import submit_jobs
from einvoice.settings import libpq_url, load_settings


class RecordingPublisher:
    """A fake of our own Publisher port that records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[uuid.UUID] = []
        self.messages: list[list[uuid.UUID]] = []

    def publish_submit(self, job_id: uuid.UUID) -> None:
        self.sent.append(job_id)
        self.messages.append([job_id])

    def publish_submit_many(self, job_ids: Sequence[uuid.UUID]) -> None:
        for chunk in wakeup_chunks(job_ids, 10):
            self.sent.extend(chunk)
            self.messages.append(chunk)


def _invoice(session: Session, org: int = 1) -> uuid.UUID:
    invoice = InvoiceSale(organization_id=org)
    session.add(invoice)
    session.flush()
    return invoice.id


def test_enqueue_publishes_only_after_commit(session: Session) -> None:
    publisher = RecordingPublisher()
    invoice_id = _invoice(session)

    job = enqueue_invoice(session, invoice_id, publisher=publisher)
    assert publisher.sent == []
    session.commit()

    assert publisher.sent == [job.id]
    assert job.status == "pending"
    assert job.provider == "factus"
    events = session.scalars(select(ElectronicInvoicingEvent.event_type)).all()
    assert events == ["enqueued"]


def test_enqueue_rolled_back_publishes_nothing(session: Session) -> None:
    publisher = RecordingPublisher()
    invoice_id = _invoice(session)
    session.commit()

    enqueue_invoice(session, invoice_id, publisher=publisher)
    session.rollback()
    session.commit()

    assert publisher.sent == []
    assert session.scalar(select(ElectronicInvoicingJob.id)) is None


def test_enqueue_twice_returns_the_same_job(session: Session) -> None:
    publisher = RecordingPublisher()
    invoice_id = _invoice(session)
    first = enqueue_invoice(session, invoice_id, publisher=publisher)
    session.commit()
    second = enqueue_invoice(session, invoice_id, publisher=publisher)
    session.commit()

    assert first.id == second.id
    assert publisher.sent == [first.id]


def test_enqueued_job_is_a_loaded_orm_object_of_the_callers_session(
    session_factory: sessionmaker[Session],
) -> None:
    """The job comes back as if a query had loaded it (it is read through psycopg, not the
    ORM): every column as stored, in the identity map, nothing pending, and it refreshes and
    saves like any loaded object, also in a session that expires objects on commit."""
    expiring = sessionmaker(bind=session_factory.kw["bind"], expire_on_commit=True)
    with expiring() as session:
        invoice_id = _invoice(session, org=7)
        job = enqueue_invoice(session, invoice_id, max_attempts=3)

        assert job in session
        assert not session.new
        assert not session.dirty
        assert session.get(ElectronicInvoicingJob, job.id) is job
        stored = session.execute(
            text("SELECT * FROM electronic_invoicing_jobs WHERE id = :id"), {"id": job.id}
        ).mappings().one()
        attrs = ElectronicInvoicingJob.__mapper__.column_attrs
        assert {a.columns[0].name: getattr(job, a.key) for a in attrs} == dict(stored)
        assert (job.organization_id, job.status, job.max_attempts) == (7, "pending", 3)
        assert job.reference_code
        assert job.dispatched_at is None
        session.commit()

        session.execute(text("UPDATE electronic_invoicing_jobs SET error_message = 'seen' "
                             "WHERE id = :id"), {"id": job.id})
        session.commit()
        assert job.error_message == "seen"  # expired on commit, reloaded from the row

        job.error_code = "from_the_orm"
        session.commit()
        assert session.scalar(text("SELECT error_code FROM electronic_invoicing_jobs "
                                   "WHERE id = :id"), {"id": job.id}) == "from_the_orm"


def test_enqueue_unknown_invoice_is_a_clear_error(session: Session) -> None:
    with pytest.raises(JobError, match="not found"):
        enqueue_invoice(session, uuid.uuid4(), publisher=RecordingPublisher())


def test_plain_sql_insert_is_dispatched_once_then_again_when_stale(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    settings = load_settings(einvoice_redispatch_seconds=60)
    publisher = RecordingPublisher()
    session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, document_type, provider) "
        "VALUES (1, gen_random_uuid(), 'invoice', 'factus')"))
    session.commit()

    assert dispatch_due_jobs(session_factory, publisher, settings) == 1
    assert dispatch_due_jobs(session_factory, publisher, settings) == 0  # message in flight

    # Redis lost the message: once the dispatch is stale, the job is published again.
    session.execute(text("UPDATE electronic_invoicing_jobs SET dispatched_at = now() - interval '2 minutes'"))
    session.commit()
    assert dispatch_due_jobs(session_factory, publisher, settings) == 1
    assert len(publisher.sent) == 2
    assert publisher.sent[0] == publisher.sent[1]


def test_dispatch_is_fair_across_organizations(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    settings = load_settings(einvoice_org_dispatch_share=5, einvoice_dispatch_batch=100)
    publisher = RecordingPublisher()
    # Organization 1 has a backlog of 200 older jobs; organization 2 has 3 newer ones.
    session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, next_retry_at) "
        "SELECT 1, gen_random_uuid(), now() - interval '1 hour' FROM generate_series(1, 200)"))
    session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id) "
        "SELECT 2, gen_random_uuid() FROM generate_series(1, 3)"))
    session.commit()

    dispatch_due_jobs(session_factory, publisher, settings)

    orgs = [session.get(ElectronicInvoicingJob, j).organization_id for j in publisher.sent]
    assert orgs.count(2) == 3
    assert orgs.count(1) == 5


def test_expired_lease_is_recovered_with_an_event(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    invoice_id = _invoice(session)
    job = enqueue_invoice(session, invoice_id, publisher=RecordingPublisher())
    session.commit()
    claimed = job_repo.claim(session, job.id, lease_seconds=60, worker="w1")
    assert claimed is not None
    assert claimed.status == "processing"
    assert claimed.attempt_count == 1
    assert job_repo.claim(session, job.id, lease_seconds=60, worker="w2") is None
    session.execute(text("UPDATE electronic_invoicing_jobs SET lease_expires_at = now() - interval '1 second', "
                         "outcome_unknown = true"))
    session.commit()

    assert recover_expired_leases(session_factory) == 1

    session.expire_all()
    recovered = session.get(ElectronicInvoicingJob, job.id)
    assert recovered.status == "pending"
    assert recovered.outcome_unknown is True
    types = [e.event_type for e in operator_repo.events_for(session, job.id)]
    assert types == ["enqueued", "lease_expired"]


def test_invoices_without_job_lists_only_unsent(session: Session) -> None:
    a, b = _invoice(session, org=3), _invoice(session, org=3)
    enqueue_invoice(session, a, publisher=RecordingPublisher())
    session.commit()
    assert invoices_without_job(session, 3) == [b]


def test_enqueue_many_on_one_connection_keeps_working(session: Session) -> None:
    # psycopg prepares a statement after 5 executions; the upsert must still match its index.
    publisher = RecordingPublisher()
    invoices = [_invoice(session) for _ in range(8)]
    for invoice_id in invoices:
        enqueue_invoice(session, invoice_id, publisher=publisher)
        session.commit()
    assert len(set(publisher.sent)) == 8


def _insert_plain(session: Session, count: int) -> set[uuid.UUID]:
    rows = session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id) "
        "SELECT 1, gen_random_uuid() FROM generate_series(1, :n) RETURNING id"), {"n": count})
    ids = {r[0] for r in rows}
    session.commit()
    return ids


def _wait(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_one_listener_publishes_each_plain_insert_once_and_a_standby_takes_over(
    session: Session, session_factory: sessionmaker[Session], db_url: str
) -> None:
    """Two workers' listeners: one is active, a burst is published once; kill it, the other
    takes over within its standby interval."""
    publishers = [RecordingPublisher(), RecordingPublisher()]
    batches: list[list[int]] = [[], []]
    stops = [threading.Event(), threading.Event()]

    def on_jobs(index: int) -> Callable[[list[uuid.UUID]], int]:
        def dispatch(ids: list[uuid.UUID]) -> int:
            batches[index].append(len(ids))
            return dispatch_new_jobs(session_factory, publishers[index], ids)
        return dispatch

    threads = [threading.Thread(target=listen_for_new_jobs, daemon=True,
                                args=(libpq_url(db_url), on_jobs(i), stops[i]),
                                kwargs={"poll_seconds": 0.1, "standby_seconds": 0.2})
               for i in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both connected: one holds the lock and listens

    burst = _insert_plain(session, 300)
    assert _wait(lambda: len(publishers[0].sent) + len(publishers[1].sent) >= 300)
    sent = publishers[0].sent + publishers[1].sent
    # every job once, by one listener
    assert set(sent) == burst
    assert len(sent) == 300
    active = 0 if publishers[0].sent else 1
    assert publishers[1 - active].sent == []
    assert len(batches[active]) < 300  # notifications were handed over in batches

    stops[active].set()
    threads[active].join(timeout=5)
    # The standby takes the lock within its standby interval, then LISTENs (this test gives it
    # no catch-up; the next test covers inserts made before LISTEN).
    assert _wait(lambda: bool(session.execute(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND objid = :key"), {"key": LISTENER_LOCK_KEY}).scalar()))
    session.commit()
    time.sleep(0.3)
    later = _insert_plain(session, 5)
    assert _wait(lambda: set(publishers[1 - active].sent) == later)
    stops[1 - active].set()


def test_a_listener_becoming_active_catches_up_inserts_it_could_not_hear(
    session: Session, session_factory: sessionmaker[Session], db_url: str
) -> None:
    """Inserts committed before the listener's LISTEN (a worker starting, a standby waiting for
    the lock) notified nobody: the listener dispatches them as soon as it is active, without
    waiting for beat (a deployment may run workers only). Each job is published once."""
    before = _insert_plain(session, 7)
    publisher = RecordingPublisher()
    settings = load_settings()
    stop = threading.Event()
    thread = threading.Thread(
        target=listen_for_new_jobs, daemon=True,
        args=(libpq_url(db_url), lambda ids: dispatch_new_jobs(session_factory, publisher, ids),
              stop),
        kwargs={"poll_seconds": 0.1, "standby_seconds": 0.2,
                "on_active": lambda: dispatch_due_jobs(session_factory, publisher, settings)})
    thread.start()
    try:
        assert _wait(lambda: set(publisher.sent) == before)
        after = _insert_plain(session, 3)  # heard the usual way, not caught up twice
        assert _wait(lambda: set(publisher.sent) == before | after)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert len(publisher.sent) == 10


def test_the_listener_hands_over_the_jobs_whose_outcome_created_webhook_deliveries(
    session: Session, session_factory: sessionmaker[Session], db_url: str
) -> None:
    """``NOTIFY einvoice_webhooks`` comes only from a final transition that created deliveries
    (an organization with an endpoint); the listener hands those job ids over in batches."""
    session.execute(text("INSERT INTO webhook_endpoints (organization_id, url, secret_encrypted) "
                         "VALUES (1, 'https://erp.example/hook', 'encrypted')"))
    session.commit()
    heard: list[uuid.UUID] = []
    publisher = RecordingPublisher()
    stop = threading.Event()
    thread = threading.Thread(
        target=listen_for_new_jobs, daemon=True,
        args=(libpq_url(db_url), lambda ids: dispatch_new_jobs(session_factory, publisher, ids),
              stop),
        kwargs={"poll_seconds": 0.1, "standby_seconds": 0.2, "on_webhooks": heard.extend})
    thread.start()
    try:
        assert _wait(lambda: bool(session.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objid = :key"), {"key": LISTENER_LOCK_KEY}).scalar()))
        session.commit()
        time.sleep(0.3)
        with_endpoint = _insert_plain(session, 3)
        [without] = session.execute(text(
            "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id) "
            "VALUES (2, gen_random_uuid()) RETURNING id")).scalars().all()
        session.commit()
        assert _wait(lambda: set(publisher.sent) == with_endpoint | {without})  # the usual way
        session.execute(text("UPDATE electronic_invoicing_jobs SET status = 'rejected', "
                             "error_code = 'invalid_dv' WHERE id = ANY(:ids)"),
                        {"ids": [*with_endpoint, without]})
        session.commit()
        assert _wait(lambda: set(heard) == with_endpoint)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert sorted(heard) == sorted(with_endpoint)  # organization 2 has no endpoint: no wake-up


def test_enqueue_without_a_publisher_is_woken_by_the_listener_after_commit_only(
    session: Session, session_factory: sessionmaker[Session], db_url: str
) -> None:
    """The default: the call only inserts; the trigger's NOTIFY reaches the workers' listener
    when the transaction commits, and the listener publishes the job once. A rolled-back call
    wakes nobody."""
    publisher = RecordingPublisher()
    stop = threading.Event()
    listener = threading.Thread(
        target=listen_for_new_jobs, daemon=True,
        args=(libpq_url(db_url), lambda ids: dispatch_new_jobs(session_factory, publisher, ids),
              stop), kwargs={"poll_seconds": 0.1, "standby_seconds": 0.2})
    listener.start()
    try:
        assert _wait(lambda: bool(session.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objid = :key"), {"key": LISTENER_LOCK_KEY}).scalar()))
        session.commit()
        time.sleep(0.3)  # the lock holder LISTENs right after taking the lock
        kept, dropped = _invoice(session), _invoice(session)
        session.commit()

        job = enqueue_invoice(session, kept)
        time.sleep(0.5)
        assert publisher.sent == []  # not before the commit
        session.commit()
        assert _wait(lambda: publisher.sent == [job.id])
        enqueue_invoice(session, dropped)
        session.rollback()
        time.sleep(0.5)
    finally:
        stop.set()
        listener.join(timeout=5)

    assert publisher.sent == [job.id]
    assert session.scalar(select(ElectronicInvoicingJob.dispatched_at).where(
        ElectronicInvoicingJob.id == job.id)) is not None  # the listener stamped its publish
    assert session.scalar(select(ElectronicInvoicingJob.id).where(
        ElectronicInvoicingJob.invoice_id == dropped)) is None
    [event] = session.scalars(select(ElectronicInvoicingEvent).where(
        ElectronicInvoicingEvent.job_id == job.id)).all()
    assert (event.event_type, event.metadata_) == (
        "enqueued", {"to": "pending", "reference_code": job.reference_code})


# -- select_due_for_dispatch: budgets, in-flight accounting, concurrent dispatchers ----------


def _due_jobs(session: Session, org: int, count: int, *, status: str = "pending",
              minutes_ago: int = 10, dispatched_seconds_ago: int | None = None) -> list[uuid.UUID]:
    """``count`` jobs of ``org`` due since ``minutes_ago`` (one second apart), oldest first."""
    ids = session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, provider, status, "
        "next_retry_at, dispatched_at) "
        "SELECT :org, gen_random_uuid(), 'factus', :status, "
        "now() - make_interval(mins => :minutes) + make_interval(secs => g), "
        "now() - make_interval(secs => :dispatched) "
        "FROM generate_series(1, :count) g ORDER BY g RETURNING id"),
        {"org": org, "status": status, "minutes": minutes_ago, "count": count,
         "dispatched": dispatched_seconds_ago}).scalars().all()
    session.commit()
    return list(ids)


def _pick(session: Session, **kwargs: object) -> list[uuid.UUID]:
    options: dict = {"limit": 100, "per_organization": 100, "redispatch_seconds": 60, **kwargs}
    ids = dispatch_repo.select_due_for_dispatch(session, **options)
    session.commit()
    return ids


def test_budget_caps_only_that_organizations_pending_jobs(session: Session) -> None:
    org1 = _due_jobs(session, 1, 10)
    org2 = _due_jobs(session, 2, 4)

    picked = _pick(session, budgets={1: 3})

    assert set(picked) == set(org1[:3]) | set(org2)  # org 1: its 3 oldest; org 2: not in budgets
    assert _pick(session, budgets={1: 3}) == org1[3:6]  # next round: the next 3, marked ones wait


def test_budget_zero_still_lets_the_organizations_sent_rechecks_through(session: Session) -> None:
    pending = _due_jobs(session, 1, 5, minutes_ago=30)
    sent = _due_jobs(session, 1, 2, status="sent", minutes_ago=5)

    assert set(_pick(session, budgets={1: 0})) == set(sent)
    assert set(_pick(session, budgets={1: 2})) == set(pending[:2])


def test_sent_jobs_are_picked_before_pending_and_outside_the_budget(session: Session) -> None:
    pending = _due_jobs(session, 1, 5, minutes_ago=30)  # older than the re-checks
    sent = _due_jobs(session, 1, 3, status="sent", minutes_ago=5)

    # per_organization 4: the 3 re-checks take their places first, then the oldest pending job.
    assert _pick(session, per_organization=4, budgets={1: 1}) == [*sent, pending[0]]


def test_without_budgets_sent_jobs_still_come_first_within_the_share(session: Session) -> None:
    _due_jobs(session, 1, 5, minutes_ago=30)
    sent = _due_jobs(session, 1, 2, status="sent", minutes_ago=5)

    assert _pick(session, per_organization=2) == sent


def test_processing_and_queued_jobs_count_against_the_share(session: Session) -> None:
    _due_jobs(session, 1, 2, status="processing")
    _due_jobs(session, 1, 1, dispatched_seconds_ago=10)  # its message is still queued
    waiting = _due_jobs(session, 1, 5, minutes_ago=5)
    stale = _due_jobs(session, 2, 1, dispatched_seconds_ago=120)  # Redis lost that message

    assert set(_pick(session, per_organization=4)) == {waiting[0], *stale}


def test_an_old_backlog_of_one_organization_does_not_starve_the_others(session: Session) -> None:
    _due_jobs(session, 1, 100, minutes_ago=120)  # far more old jobs than one round examines
    newer = _due_jobs(session, 2, 3, minutes_ago=1)

    picked = _pick(session, limit=10, per_organization=5)

    # 5 of organization 1, all 3 of 2
    assert len(picked) == 8
    assert set(newer) <= set(picked)


def _plan_nodes(plan: dict) -> list[dict]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _plan_nodes(child))]


def test_dispatcher_counts_the_jobs_in_flight_once_per_round_even_on_stale_statistics(
        session: Session) -> None:
    # Right after a bulk insert (no ANALYZE yet) the planner can believe the due jobs are one
    # row and re-read the processing jobs once per candidate: seconds per round in benchmark B1.
    _due_jobs(session, 1, 40, status="processing")
    _due_jobs(session, 1, 3000)
    statement = "EXPLAIN (ANALYZE, FORMAT JSON) " + dispatch_repo._SELECT_DUE_FOR_DISPATCH.text
    (plan,) = session.execute(text(statement), {
        "limit": 500, "per_organization": 100, "redispatch_seconds": 60, "budget_orgs": [],
        "budget_counts": []}).scalar_one()
    session.rollback()

    reads = [node for node in _plan_nodes(plan["Plan"])
             if node.get("Index Name") == "ix_ei_jobs_processing_by_org"]
    assert reads
    assert all(node["Actual Loops"] == 1 for node in reads)


def _burst_after_stale_statistics(session: Session, session_factory: sessionmaker[Session],
                                  count: int) -> list[uuid.UUID]:
    """Statistics taken while every job was final, then an ERP's bulk insert of ``count``
    pending jobs (no ANALYZE since): what the planner sees in the B1 benchmark."""
    done = _insert_plain(session, 300)
    session.execute(text("UPDATE electronic_invoicing_jobs SET status = 'accepted' "
                         "WHERE id = ANY(:ids)"), {"ids": list(done)})
    session.commit()
    with session_factory() as autocommit:
        autocommit.connection(execution_options={"isolation_level": "AUTOCOMMIT"}).execute(
            text("VACUUM ANALYZE electronic_invoicing_jobs"))
    return list(_insert_plain(session, count))


def _buffers(session: Session, statement: str, params: dict[str, Any]) -> tuple[int, dict]:
    """Shared buffers the statement touched, and its plan (EXPLAIN ANALYZE, rolled back)."""
    (plan,) = session.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement),
                              params).scalar_one()
    session.rollback()
    top = plan["Plan"]
    return top["Shared Hit Blocks"] + top["Shared Read Blocks"], top


def test_claim_and_record_read_one_job_even_on_stale_statistics(
        session: Session, session_factory: sessionmaker[Session]) -> None:
    # With these statistics the claim's and the record's status conditions can lead the planner
    # to a partial index on status, read through to the job: thousands of buffers and ~10 ms of
    # PostgreSQL per call, on every job (seen with auto_explain in benchmark B1).
    burst = _burst_after_stale_statistics(session, session_factory, 3000)
    job_id = burst[1500]
    claim_params = {"job_id": job_id, "lease_seconds": 60, "worker": "w1"}
    for _ in range(6):  # past psycopg's prepare threshold and PostgreSQL's custom plans
        claimed, plan = _buffers(session, job_repo._CLAIM.text, claim_params)
        assert plan["Actual Rows"] == 1, claimed
        assert claimed < 50, claimed  # 83 by the status index
    assert job_repo.claim(session, job_id, lease_seconds=60, worker="w1") is not None
    session.commit()

    statement, params = job_repo.update_job_statement(
        job_id, {"status": "accepted", "cufe": "c" * 96, "updated_at": job_repo.NOW},
        lease=("w1", 1), events=[("accepted", "SETP990000001", "validated", {"attempt": 1})],
        validated={"cufe": "c" * 96, "number": "SETP990000001", "qr_image": None,
                   "validated_at": None})
    for _ in range(6):
        recorded, plan = _buffers(session, statement.text, params)
        assert plan["Actual Rows"] == 1, recorded
        assert recorded < 80, recorded  # 2,995 by it


def test_listener_marks_a_burst_reading_each_job_once_even_on_stale_statistics(
        session: Session, session_factory: sessionmaker[Session]) -> None:
    # On statistics older than an ERP's bulk insert the planner can believe the pending jobs
    # are a handful and join the marked ones back through a full scan of the active-jobs
    # index, once per job: over a second and a million buffers per 1,000-job batch (benchmark B1).
    burst = _burst_after_stale_statistics(session, session_factory, 3000)
    statement = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + dispatch_repo._MARK_NEW_DISPATCHED.text
    (plan,) = session.execute(text(statement), {
        "ids": burst[:1000], "cap_orgs": [], "caps": []}).scalar_one()
    session.rollback()

    top = plan["Plan"]
    assert top["Actual Rows"] == 1000
    buffers = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
    assert buffers < 50 * 1000, [(node["Node Type"], node.get("Index Name"), node["Actual Loops"],
                                  node["Shared Hit Blocks"])
                                 for node in _plan_nodes(top)]


def test_a_wakeup_of_several_jobs_hands_back_those_not_started_within_its_budget(
        session_factory: sessionmaker[Session]) -> None:
    # Jobs that are not due (unknown ids here) return at once, without any Factus call.
    ctx = WorkerContext(session_factory=session_factory, clients=None,  # type: ignore[arg-type]
                        settings=load_settings(), worker_id="test")
    ids = [uuid.uuid4() for _ in range(4)]
    handed_back: list[uuid.UUID] = []

    assert submit_jobs(ctx, ids, requeue=handed_back.extend) == {"not_due": 4}
    assert handed_back == []
    # With its budget spent after the first job, the other three are published again.
    outcome = submit_jobs(ctx, [str(i) for i in ids], requeue=handed_back.extend,
                          budget_seconds=0.0)
    assert outcome == {"not_due": 1, "requeued": 3}
    assert handed_back == ids[1:]


def test_negative_budget_is_a_clear_error(session: Session) -> None:
    with pytest.raises(ValueError, match="negative"):
        dispatch_repo.select_due_for_dispatch(session, limit=10, per_organization=10,
                                              redispatch_seconds=60, budgets={1: -1})


def test_concurrent_dispatchers_never_pick_the_same_job(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    jobs = _due_jobs(session, 1, 6)
    with session_factory() as first, session_factory() as second:
        a = dispatch_repo.select_due_for_dispatch(first, limit=3, per_organization=10,
                                                  redispatch_seconds=60)
        # (first still holds its rows)
        b = dispatch_repo.select_due_for_dispatch(second, limit=3, per_organization=10,
                                                  redispatch_seconds=60)
        first.commit()
        second.commit()
        with session_factory() as third:
            c = dispatch_repo.select_due_for_dispatch(third, limit=10, per_organization=10,
                                                      redispatch_seconds=60)
            third.commit()

    assert a == jobs[:3]  # the oldest first
    assert not set(a) & set(b)
    assert not set(a) & set(c)
    assert not set(b) & set(c)
    assert set(a) | set(b) | set(c) == set(jobs)  # the rows only skipped are picked later


def _three_accounts(session: Session, redis_client: redis.Redis) -> tuple[Any, Any, uuid.UUID]:
    """Organizations 1-3 have their own Factus accounts (80 requests per window): 1 has used 75
    and has 2 jobs in flight, 2 has a document pending at DIAN, 3 is idle; each has 20 new
    pending jobs. Returns (settings, the rate limiter, organization 2's re-check job)."""
    from einvoice.crypto import SecretBox
    from einvoice.factus.ratelimit import RedisRateLimiter
    from einvoice.services.accounts import save_credentials

    settings = load_settings(einvoice_secret_key=SecretBox.generate_key())
    box = SecretBox.from_settings(settings)
    keys = {}
    session.execute(text("INSERT INTO organizations (id, name) OVERRIDING SYSTEM VALUE "
                         "VALUES (1, 'a'), (2, 'b'), (3, 'c')"))
    for org in (1, 2, 3):
        row = save_credentials(session, organization_id=org, environment=settings.factus_environment,
                               client_id=f"c{org}", client_secret="s", username=f"u{org}",
                               password="p", box=box)
        keys[org] = str(row.id)
    limiter = RedisRateLimiter.per_minute(redis_client, 80)
    for _ in range(75):
        limiter.acquire(keys[1])
    session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, status) "
        "SELECT 1, gen_random_uuid(), 'processing' FROM generate_series(1, 2)"))
    recheck = session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, status, error_code) "
        "VALUES (2, gen_random_uuid(), 'sent', 'dian_slow') RETURNING id")).scalar_one()
    session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id) "
        "SELECT org, gen_random_uuid() FROM generate_series(1, 3) org, generate_series(1, 20)"))
    session.commit()
    assert account_budgets(session, settings, limiter) == {1: 3, 2: 0, 3: 80}
    return settings, limiter, recheck


def _organizations(session: Session, job_ids: Sequence[uuid.UUID]) -> list[int]:
    return [session.get(ElectronicInvoicingJob, j).organization_id for j in job_ids]


def test_dispatcher_gives_each_account_only_what_it_can_send_and_a_blocked_one_only_its_recheck(
    session: Session, session_factory: sessionmaker[Session], redis_client: redis.Redis
) -> None:
    settings, limiter, recheck = _three_accounts(session, redis_client)
    publisher = RecordingPublisher()
    dispatch_due_jobs(session_factory, publisher, settings, limiter)

    orgs = _organizations(session, publisher.sent)
    assert (orgs.count(1), orgs.count(2), orgs.count(3)) == (3, 1, 20)
    assert recheck in publisher.sent


def test_listener_wakes_each_account_only_what_it_can_send_and_leaves_the_rest_to_the_dispatcher(
    session: Session, session_factory: sessionmaker[Session], redis_client: redis.Redis
) -> None:
    settings, limiter, _ = _three_accounts(session, redis_client)
    notified = list(session.scalars(text(
        "SELECT id FROM electronic_invoicing_jobs WHERE status = 'pending' ORDER BY created_at")))
    publisher = RecordingPublisher()

    assert dispatch_new_jobs(session_factory, publisher, notified, settings, limiter) == 23

    # Organization 1 gets the 3 requests its window has left, 2 (pending at DIAN) none, 3 all.
    orgs = _organizations(session, publisher.sent)
    assert (orgs.count(1), orgs.count(2), orgs.count(3)) == (3, 0, 20)
    assert orgs[:2] in ([1, 3], [3, 1])  # the organizations' jobs alternate, first ones first
    # The other 37 are still undispatched: the dispatcher hands them out as the windows free.
    left = session.execute(text(
        "SELECT count(*) FROM electronic_invoicing_jobs WHERE status = 'pending' "
        "AND dispatched_at IS NULL")).scalar_one()
    assert left == 37


def test_dian_rechecks_start_soon_and_back_off_to_the_cap() -> None:
    import random

    from einvoice.services.factus_call import dian_recheck_delay

    settings = load_settings(einvoice_dian_slow_recheck_seconds=5, einvoice_retry_cap_seconds=300)
    delays = [dian_recheck_delay(settings, n, random.Random(1)) for n in range(8)]
    assert 4 <= delays[0] <= 6
    assert 8 <= delays[1] <= 12
    assert 16 <= delays[2] <= 24
    assert max(delays) <= 300 * 1.2
    assert delays[-1] >= 300 * 0.8


def test_enqueue_invoices_inserts_the_new_returns_the_existing_and_publishes_after_commit(
    session: Session,
) -> None:
    publisher = RecordingPublisher()
    invoices = [_invoice(session) for _ in range(3)]
    existing = enqueue_invoice(session, invoices[0], publisher=publisher)
    session.commit()
    publisher.sent.clear()

    jobs = enqueue_invoices(session, [*invoices, invoices[1]], publisher=publisher)
    assert publisher.sent == []
    session.commit()

    assert [j.invoice_id for j in jobs] == invoices  # duplicates collapsed, order kept
    assert jobs[0].id == existing.id
    assert sorted(publisher.sent) == sorted(j.id for j in jobs[1:])  # only the new ones
    enqueued = session.scalars(select(ElectronicInvoicingEvent.job_id).where(
        ElectronicInvoicingEvent.event_type == "enqueued")).all()
    assert sorted(enqueued) == sorted(j.id for j in jobs)


def test_enqueue_invoices_names_every_unknown_invoice(session: Session) -> None:
    unknown = [uuid.uuid4(), uuid.uuid4()]
    with pytest.raises(JobError) as raised:
        enqueue_invoices(session, [_invoice(session), *unknown], publisher=RecordingPublisher())
    assert all(str(u) in str(raised.value) for u in unknown)
