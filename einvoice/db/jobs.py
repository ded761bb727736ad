"""Job and event repository: every query on ``electronic_invoicing_jobs`` and ``..._events``.

Services call these functions inside a session they own; nothing here commits (STYLE.md habit 4).
Times are UTC ``datetime`` computed by PostgreSQL (``now()``) so that every worker agrees.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.sql.elements import TextClause

from einvoice.db import raw
from einvoice.db.models import (
    NON_FINAL_JOB_STATUSES,
    ElectronicInvoicingEvent,
    ElectronicInvoicingJob,
)
from einvoice.domain.jobs import JobStatus
from einvoice.errors import JobError

Job = ElectronicInvoicingJob
DUE_STATUSES = (JobStatus.PENDING, JobStatus.SENT)


def get_job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> Job | None:
    """The job with ``job_id`` (row-locked with ``for_update``), or None."""
    stmt = select(Job).where(Job.id == job_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def active_job_for_invoice(session: Session, invoice_id: uuid.UUID, document_type: str) -> Job | None:
    """The non-final job of (invoice, document type), or None (at most one exists: unique index)."""
    return session.scalars(
        select(Job).where(
            Job.invoice_id == invoice_id,
            Job.document_type == document_type,
            Job.status.in_(NON_FINAL_JOB_STATUSES),
        )
    ).one_or_none()


# Jobs and their "enqueued" events in one statement (one round trip per producer call). The
# ON CONFLICT target names the partial unique index's predicate literally: with a bound parameter
# PostgreSQL could not match the index once psycopg prepares the statement (after 5 executions).
# Two spellings of the invoice filter: for one invoice, ``id = :invoice_id``, because PostgreSQL
# costs a generic plan of ``id = ANY(:array)`` for ten rows, finds it dearer than a custom plan
# for one and so plans the prepared statement again at every call (0.2 ms of its CPU per call in
# benchmark B4's one-job-per-transaction producer).
_INSERT_PENDING_JOBS = """
WITH new AS (
    INSERT INTO electronic_invoicing_jobs
           (organization_id, invoice_id, document_type, provider, status, max_attempts,
            dispatched_at)
    SELECT organization_id, id, :document_type, 'factus', 'pending', :max_attempts,
           CASE WHEN :dispatched THEN now() END
      FROM invoice_sales
     WHERE {invoices} AND organization_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM electronic_invoicing_jobs accepted
                        WHERE accepted.invoice_id = invoice_sales.id
                          AND accepted.document_type = :document_type
                          AND accepted.status = 'accepted')
        ON CONFLICT (invoice_id, document_type)
           WHERE status IN ('pending', 'processing', 'sent') DO NOTHING
    RETURNING *
), events AS (
    INSERT INTO electronic_invoicing_events (job_id, event_type, event_message, metadata,
                                             created_at)
    SELECT id, 'enqueued', :message,
           jsonb_build_object('to', 'pending', 'reference_code', reference_code),
           clock_timestamp()
      FROM new
)
SELECT * FROM new
"""


def insert_pending_jobs(
    session: Session,
    *,
    invoice_ids: Sequence[uuid.UUID],
    document_type: str,
    max_attempts: int,
    dispatched: bool = False,
    message: str = "enqueued",
) -> list[Job]:
    """Insert a ``pending`` factus job for each invoice, with its ``enqueued`` event, in one
    statement; return the new jobs (ORM objects in ``session``).

    ``INSERT ... SELECT`` from ``invoice_sales`` (each job takes its invoice's
    ``organization_id``) ``ON CONFLICT DO NOTHING`` on the partial unique index
    ``ux_ei_jobs_one_active_per_invoice``, so two concurrent producers cannot both insert. An
    invoice that does not exist (or has no organization), already has a non-final job of this
    document type, or already has an accepted document of it, gets no row and no event. A job
    after an ambiguous ending inherits its predecessor's ``reference_code`` and starts with
    ``outcome_unknown`` set (the insert trigger of migration 0006): ``RETURNING`` shows both.
    Each new job gets one ``enqueued`` event (``message``; metadata ``{"to": "pending",
    "reference_code": ...}``).

    Args:
        dispatched: stamp ``dispatched_at``: the caller publishes the wake-ups itself, so the
            ``NOTIFY`` trigger (migration 0004) stays silent. False: the trigger notifies the
            workers' listener when the transaction commits, and it publishes them.
    """
    if not invoice_ids:
        return []
    params: dict[str, Any] = {"document_type": document_type, "max_attempts": max_attempts,
                              "dispatched": dispatched, "message": message}
    if len(invoice_ids) == 1:
        statement, params["invoice_id"] = _INSERT_PENDING_JOB_RAW, invoice_ids[0]
    else:
        statement, params["invoice_ids"] = _INSERT_PENDING_JOBS_RAW, list(invoice_ids)
    rows = raw.execute(session, statement, params).fetchall()
    return [_loaded_job(session, row) for row in rows]


_INSERT_PENDING_JOB_RAW = raw.RawStatement.of(text(_INSERT_PENDING_JOBS.format(
    invoices="id = CAST(:invoice_id AS uuid)")))
_INSERT_PENDING_JOBS_RAW = raw.RawStatement.of(text(_INSERT_PENDING_JOBS.format(
    invoices="id = ANY(CAST(:invoice_ids AS uuid[]))")))


@functools.cache
def _job_attribute_keys() -> dict[str, str]:
    """Column name -> ``Job`` attribute name, for every column of the table."""
    mapper = Job.__mapper__
    return {column.name: mapper.get_property_by_column(column).key
            for column in Job.__table__.columns}


def _loaded_job(session: Session, row: Any) -> Job:
    """The ORM object of a whole ``electronic_invoicing_jobs`` row read through :mod:`raw`
    (``RETURNING *``), persistent in ``session`` as if a query had loaded it: no pending
    changes, in the identity map, refreshed like any loaded object.

    Benchmark B4: loading the row through ``select(Job).from_statement(...)`` cost the producer
    0.29 ms of CPU per ``enqueue_invoice`` call of 0.68 ms (SQLAlchemy's execution context and
    its match of 28 result columns by name), for one job per call.
    """
    keys = _job_attribute_keys()
    job = Job(**{keys[name]: value for name, value in zip(row._fields, row, strict=True)})
    make_transient_to_detached(job)
    session.add(job)
    return job


def current_jobs_for_invoices(session: Session, invoice_ids: Sequence[uuid.UUID],
                              document_type: str) -> list[Job]:
    """The jobs of ``document_type`` of these invoices that stand for their document: the
    accepted one, else the non-final one (at most one of each per invoice: unique indexes).

    Returns:
        At most one job per invoice; an invoice with neither is absent.
    """
    rows = session.scalars(select(Job).where(
        Job.invoice_id.in_(list(invoice_ids)), Job.document_type == document_type,
        Job.status.in_((*NON_FINAL_JOB_STATUSES, JobStatus.ACCEPTED))))
    by_invoice: dict[uuid.UUID, Job] = {}
    for job in rows:
        if job.status == JobStatus.ACCEPTED or job.invoice_id not in by_invoice:
            by_invoice[job.invoice_id] = job
    return list(by_invoice.values())


def accepted_job_for_invoice(session: Session, invoice_id: uuid.UUID,
                             document_type: str) -> Job | None:
    """The accepted job of (invoice, document type), or None (at most one: unique index)."""
    return session.scalars(select(Job).where(
        Job.invoice_id == invoice_id, Job.document_type == document_type,
        Job.status == JobStatus.ACCEPTED).limit(1)).one_or_none()


# One array parameter, not an expanding IN: a dispatcher round marks up to 500 jobs, and 500
# bound values made PostgreSQL parse and plan a new statement every round (B6's whole dispatch
# transaction, p99 20 ms on a million rows).
_MARK_DISPATCHED = text("UPDATE electronic_invoicing_jobs SET dispatched_at = now() "
                        "WHERE id = ANY(CAST(:ids AS uuid[]))")


def mark_dispatched(session: Session, job_ids: Sequence[uuid.UUID]) -> None:
    """Record that a wake-up message was published now for ``job_ids`` (``dispatched_at =
    now()``, the transaction's start, UTC). ORM objects of these jobs already loaded in
    ``session`` keep their old ``dispatched_at`` until refreshed."""
    if job_ids:
        session.execute(_MARK_DISPATCHED, {"ids": list(job_ids)})


# The dispatcher's statement (see select_due_for_dispatch for the rules and the plan). Plain SQL:
# these CTEs read better than their SQLAlchemy Core spelling, and the text is fixed (budgets are
# passed as two arrays).
_SELECT_DUE_FOR_DISPATCH = text("""
WITH due AS (
    -- Every due job, one range read of ix_ei_jobs_due, no lock. "queued": its wake-up was
    -- published within the redispatch interval, so it is in flight, not a candidate.
    SELECT ctid, organization_id, status = 'sent' AS sent, next_retry_at,
           coalesce(dispatched_at >= now() - make_interval(secs => :redispatch_seconds), false)
           AS queued
      FROM electronic_invoicing_jobs
     WHERE status IN ('pending', 'sent') AND provider = 'factus' AND next_retry_at <= now()
), processing AS MATERIALIZED (
    -- Processing jobs per organization: an index-only read of ix_ei_jobs_processing_by_org.
    -- MATERIALIZED (and in_flight too): read once. Inlined, a planner that believes the due
    -- jobs are 1 row (statistics not yet refreshed after an ERP's bulk insert) re-ran this
    -- read for every candidate: 4,635 times, 3.7 s per round in the B1 benchmark.
    SELECT organization_id, count(*) AS n
      FROM electronic_invoicing_jobs
     WHERE status = 'processing' AND provider = 'factus'
     GROUP BY organization_id
), queued AS (
    SELECT organization_id, count(*) AS n FROM due WHERE queued GROUP BY organization_id
), in_flight AS MATERIALIZED (
    SELECT organization_id, coalesce(p.n, 0) + coalesce(q.n, 0) AS n
      FROM processing p
      FULL JOIN queued q USING (organization_id)
), ranked AS (
    -- Each organization's queue of candidates: sent first, then pending, oldest first.
    -- nth = place in that queue; nth - sent_ahead = place among its pending jobs.
    SELECT ctid, organization_id, sent, next_retry_at,
           row_number() OVER queue AS nth,
           count(*) FILTER (WHERE sent) OVER queue AS sent_ahead
      FROM due
     WHERE NOT queued
    WINDOW queue AS (PARTITION BY organization_id ORDER BY sent DESC, next_retry_at)
), picked AS (
    -- At most per_organization in flight, pending jobs within the budget; then place 1 of
    -- every organization before place 2 of any, at most :limit.
    SELECT r.ctid
      FROM ranked r
      LEFT JOIN in_flight f USING (organization_id)
      LEFT JOIN unnest(CAST(:budget_orgs AS integer[]), CAST(:budget_counts AS integer[]))
                AS b(organization_id, budget) USING (organization_id)
     WHERE coalesce(f.n, 0) + r.nth <= :per_organization
       AND (r.sent OR b.budget IS NULL OR r.nth - r.sent_ahead <= b.budget)
     ORDER BY coalesce(f.n, 0) + r.nth, r.next_retry_at
     LIMIT :limit
)
-- Lock only the picked row versions, fetched by ctid (no second index read). A row another
-- dispatcher holds is skipped; a row changed since this statement's snapshot is locked in its
-- newest version and the due condition below is checked again on it.
SELECT j.id
  FROM electronic_invoicing_jobs j
 WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM picked))
   AND j.status IN ('pending', 'sent') AND j.provider = 'factus' AND j.next_retry_at <= now()
   AND (j.dispatched_at IS NULL
        OR j.dispatched_at < now() - make_interval(secs => :redispatch_seconds))
 ORDER BY j.status = 'sent' DESC, j.next_retry_at
   FOR UPDATE SKIP LOCKED
""")


def select_due_for_dispatch(
    session: Session,
    *,
    limit: int,
    per_organization: int,
    redispatch_seconds: int,
    budgets: Mapping[int, int] | None = None,
) -> list[uuid.UUID]:
    """Ids of due jobs to publish now, fair across organizations, marked as dispatched.

    Rules (``budgets`` lets the caller throttle an organization's new submissions for one
    round without holding back its DIAN re-checks):

    * A job is due when it is ``pending`` or ``sent`` (DIAN slow, awaiting re-check), its
      provider is ``factus``, its ``next_retry_at`` has passed, and no message was published for
      it within ``redispatch_seconds`` (so a Redis that lost its queue is repaired, while a job
      whose message is still queued is not published twice).
    * Each organization gets at most ``per_organization`` jobs in flight: its ``processing``
      jobs, plus its due jobs whose message is still queued, plus the jobs picked now. One
      organization's backlog cannot fill the queue ahead of another's, however old it is.
    * Within an organization, due ``sent`` jobs come first (their re-check unblocks the Factus
      account, which refuses new documents while one is pending at DIAN), then ``pending`` jobs;
      oldest ``next_retry_at`` first within each.
    * ``budgets`` (organization id -> count) caps how many of that organization's ``pending``
      jobs this round picks; ``sent`` jobs are never limited by it (a budget of 0 still lets the
      organization's re-checks through). Organizations absent from it are limited only by
      ``per_organization``.
    * When more than ``limit`` jobs qualify, place 1 of every organization's queue is taken
      before place 2 of any (places count the jobs in flight), ``next_retry_at`` breaking ties.

    Plan (one statement, one round trip; B6 target <= 5 ms p99 with 1,000,000 rows):

    1. ``due``: every due job through the partial index ``ix_ei_jobs_due`` (pending/sent factus
       rows by ``next_retry_at``), read without any lock; its queued jobs feed the in-flight
       count, the others are the candidates.
    2. ``in_flight``: processing jobs per organization, an index-only read of the partial index
       ``ix_ei_jobs_processing_by_org`` (migration 0003), plus its queued ones.
    3. ``ranked``/``picked``: one sort and one window over the candidates give each job's place
       in its organization's queue and among its pending jobs; the caps are applied, then
       ``limit``.
    4. Only the picked rows are locked, ``FOR UPDATE SKIP LOCKED``, reached directly by
       ``ctid``, with the due condition repeated: a row another dispatcher holds is skipped,
       and a row another dispatcher marked and committed meanwhile is re-checked on its new
       version and dropped. So two concurrent dispatchers never publish the same job, and the
       candidates not picked stay free for them (the former query locked up to ``4 * limit``
       candidates and ranked only those, so an old backlog of one organization could starve
       the others).

    The work grows with the number of due jobs (not with the table's final rows): a backlog of
    100,000 due jobs costs one sort of them per round.

    The picked rows get ``dispatched_at = now()`` (:func:`mark_dispatched`) in the caller's
    transaction; nothing is committed here.

    Args:
        session: the caller's session (its transaction holds the row locks until it ends).
        limit: the most ids to return.
        per_organization: the most jobs one organization may have in flight.
        redispatch_seconds: after this long, a published job that is still due is published
            again.
        budgets: optional per-organization cap on the ``pending`` jobs picked this round.

    Returns:
        The picked job ids, ``sent`` ones first, then oldest ``next_retry_at`` first.

    Raises:
        ValueError: a budget is negative.
    """
    budget_items = sorted((budgets or {}).items())
    if any(count < 0 for _, count in budget_items):
        raise ValueError(f"budgets must not be negative: {dict(budget_items)}")
    ids = list(session.scalars(_SELECT_DUE_FOR_DISPATCH, {
        "limit": int(limit),
        "per_organization": int(per_organization),
        "redispatch_seconds": int(redispatch_seconds),
        "budget_orgs": [int(org) for org, _ in budget_items],
        "budget_counts": [int(count) for _, count in budget_items],
    }))
    mark_dispatched(session, ids)
    return ids


# The hot path's statements are fixed SQL text: built once, compiled once, prepared by psycopg
# after a few executions. Building the same statements with the ORM per job cost about a third
# of a worker's CPU (benchmark B1's profile).
# Statements that change one job find its row by primary key alone, lock it, and update it by
# its physical address (a TID scan). Written as one "WHERE id = ... AND status = ..." instead,
# the status condition lets the planner pick a partial index on status (ix_ei_jobs_due for
# pending jobs, ux_ei_jobs_one_active_per_invoice for processing ones); on statistics older
# than an ERP's bulk insert it believes that index holds a handful of rows, ties it with the
# primary key, and then reads every pending job once per claim: 4,000-6,000 buffers and ~10 ms
# of PostgreSQL per call in the B1 benchmark (auto_explain). FOR NO KEY UPDATE is the lock the
# UPDATE takes anyway; taking it first means no concurrent change can move the row between the
# two steps.
_LOCK_JOB = ("target AS (SELECT ctid FROM electronic_invoicing_jobs WHERE id = :job_id "
             "FOR NO KEY UPDATE)")

# The claim's lock also reads the status the job had (``RETURNING`` gives the new one).
_CLAIM = text("""
WITH target AS (SELECT ctid, status FROM electronic_invoicing_jobs WHERE id = :job_id
                FOR NO KEY UPDATE)
UPDATE electronic_invoicing_jobs
   SET status = 'processing', attempt_count = attempt_count + 1,
       lease_expires_at = now() + make_interval(secs => :lease_seconds),
       leased_by = :worker, updated_at = now()
 WHERE ctid = (SELECT ctid FROM target) AND provider = 'factus'
   AND status IN ('pending', 'sent') AND next_retry_at <= now()
RETURNING id, organization_id, invoice_id, document_type, status, attempt_count, max_attempts,
          request_payload, error_code, error_message, outcome_unknown, reference_code,
          factus_api_version, (SELECT status FROM target) AS previous_status
""")

_CLAIM_RAW = raw.RawStatement.of(_CLAIM)


def claim(session: Session, job_id: uuid.UUID, *, lease_seconds: int, worker: str) -> Any:
    """Atomically take a due job: ``pending``/``sent`` → ``processing`` with a lease.

    A compare-and-set ``UPDATE ... WHERE status IN ('pending','sent') AND next_retry_at <= now()``:
    a second delivery of the same message, a message for a job already claimed or final, or an
    early message for a job that is not due yet, all get None and do nothing (STYLE.md habit 5).

    Returns:
        None, or the claimed row (attribute access like the ORM object: ``id``,
        ``organization_id``, ``invoice_id``, ``document_type``, ``status``, ``attempt_count``
        (already incremented), ``max_attempts``, ``request_payload``, ``error_code``,
        ``error_message``, ``outcome_unknown``, ``reference_code``, ``factus_api_version``
        (of the previous attempt, or None), and ``previous_status``: ``pending`` or ``sent``,
        the status it was claimed from).
    """
    return raw.execute(session, _CLAIM_RAW, {"job_id": job_id,
                                             "lease_seconds": int(lease_seconds),
                                             "worker": worker}).fetchone()


def release_expired_leases(session: Session, *, limit: int) -> list[tuple[uuid.UUID, str | None, bool]]:
    """Put ``processing`` jobs whose lease expired back to ``pending``, due now.

    Their worker died or hung. ``outcome_unknown`` is kept: a job that may have reached Factus is
    reconciled by reference code before any re-send. Returns (job id, former holder,
    outcome_unknown) of each released job.
    """
    expired = (
        select(Job.id)
        .where(
            Job.status == JobStatus.PROCESSING,
            Job.provider == "factus",
            Job.lease_expires_at < func.now(),
        )
        .order_by(Job.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Job)
        .where(Job.id.in_(expired.scalar_subquery()))
        .values(
            status=JobStatus.PENDING,
            next_retry_at=func.now(),
            lease_expires_at=None,
            dispatched_at=None,
            updated_at=func.now(),
        )
        .returning(Job.id, Job.leased_by, Job.outcome_unknown)
    )
    return [(r[0], r[1], bool(r[2])) for r in session.execute(stmt)]


def add_event(
    session: Session,
    job_id: uuid.UUID,
    event_type: str,
    *,
    code: str | None = None,
    message: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> ElectronicInvoicingEvent:
    """Append one row to ``electronic_invoicing_events`` (a job's history).

    Args:
        event_type: what happened (``enqueued``, ``claimed``, ``accepted``, ...).
        code: an HTTP status, a DIAN rule or einvoice's reason code.
        metadata: JSON-able details (attempt, latency_ms, from/to status, number); callers never
            put a secret or token in it.
    """
    # clock_timestamp(), not now(): now() is the same for a whole transaction, and the events
    # of one transaction must keep their order. One INSERT per event keeps that order too.
    event = ElectronicInvoicingEvent(
        job_id=job_id, event_type=event_type, event_code=code, event_message=message,
        metadata_=metadata, created_at=func.clock_timestamp(),
    )
    session.add(event)
    session.flush()
    return event


def events_for(session: Session, job_id: uuid.UUID) -> list[ElectronicInvoicingEvent]:
    """The job's events, oldest first."""
    return list(
        session.scalars(
            select(ElectronicInvoicingEvent)
            .where(ElectronicInvoicingEvent.job_id == job_id)
            .order_by(ElectronicInvoicingEvent.created_at, ElectronicInvoicingEvent.id)
        )
    )


def job_by_reference(session: Session, reference_code: str) -> Job | None:
    """The job whose Factus ``reference_code`` is ``reference_code``, or None (not ours).

    A job that inherited the code of its invoice's earlier job (outcome unknown) shares it with
    that job: the newest of them is returned, the one that stands for the document now.
    """
    return session.scalars(select(Job).where(Job.reference_code == reference_code)
                           .order_by(Job.created_at.desc()).limit(1)).one_or_none()


_MARK_NEW_DISPATCHED = text("""
WITH fresh AS (
    -- The notified jobs nobody published yet, numbered within their organization, oldest first.
    SELECT ctid, organization_id,
           row_number() OVER (PARTITION BY organization_id ORDER BY created_at, id) AS nth
      FROM electronic_invoicing_jobs
     WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'pending' AND provider = 'factus'
       AND dispatched_at IS NULL
), capped AS (
    SELECT f.ctid
      FROM fresh f
      LEFT JOIN unnest(CAST(:cap_orgs AS integer[]), CAST(:caps AS integer[]))
                AS c(organization_id, cap) USING (organization_id)
     WHERE c.cap IS NULL OR f.nth <= c.cap
)
-- The rows just read, by their physical address (a TID scan): joined back by id instead, a
-- planner whose statistics predate an ERP's bulk insert scanned the whole active-jobs index
-- once per job (1.2 million buffers for 1,000 jobs in the B1 benchmark).
UPDATE electronic_invoicing_jobs
   SET dispatched_at = now()
 WHERE ctid = ANY(ARRAY(SELECT ctid FROM capped)) AND status = 'pending'
   AND dispatched_at IS NULL
RETURNING id, organization_id, created_at
""")


def mark_new_dispatched(session: Session, job_ids: Sequence[uuid.UUID], *,
                        caps: Mapping[int, int] | None = None) -> list[uuid.UUID]:
    """Compare-and-set ``dispatched_at`` on those of ``job_ids`` that are pending and have none.

    One ``UPDATE`` for a whole batch of ``NOTIFY`` payloads. Returns the ids this call marked
    (their wake-up is the caller's to publish), each organization's first, then each one's
    second, and so on (oldest first within an organization), so that wake-ups sharing a message
    (:func:`einvoice.queueing.wakeup_chunks`) mix organizations. A job already dispatched,
    claimed or final is left alone, so two listeners or a listener and the beat dispatcher never
    publish the same job twice.

    Args:
        caps: organization id -> the most of its jobs to mark now (its account's budget,
            :func:`einvoice.services.dispatch.account_budgets`; 0 marks none); the others stay
            for the dispatcher, which hands them out as the account's window frees. Benchmark B3:
            marking a whole backlog of 3,200 jobs at once sent every worker thread to wait for
            the same few accounts' request slots while the others' stayed idle.
    """
    if not job_ids:
        return []
    cap_items = sorted((caps or {}).items())
    rows = session.execute(_MARK_NEW_DISPATCHED, {
        "ids": list(job_ids), "cap_orgs": [int(org) for org, _ in cap_items],
        "caps": [max(int(cap), 0) for _, cap in cap_items]}).all()
    nth: dict[uuid.UUID, int] = {}
    seen: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: (r.organization_id, r.created_at, r.id)):
        seen[row.organization_id] = nth[row.id] = seen.get(row.organization_id, 0) + 1
    return [row.id for row in sorted(rows, key=lambda r: (nth[r.id], r.organization_id))]


_PENDING_BLOCKER = text("""
SELECT id, greatest(extract(epoch FROM next_retry_at - now()), 0)::float AS wait_seconds
  FROM electronic_invoicing_jobs
 WHERE status = 'sent' AND factus_account = :account AND factus_environment = :environment
   AND document_type = :document_type AND id <> :exclude
 ORDER BY next_retry_at
 LIMIT 1
""")

_PENDING_BLOCKER_RAW = raw.RawStatement.of(_PENDING_BLOCKER)


def pending_blocker(
    session: Session, *, account: str, environment: str, document_type: str, exclude: uuid.UUID
) -> Any:
    """Our own job whose document waits at DIAN (``sent``) on this Factus account, if any.

    Factus refuses every create of a document type while one document of that type is pending
    (409, FACTUS_API.md §5.3), so other jobs of the account wait for it instead of calling.

    Returns:
        None, or a row with ``id`` (the blocking job) and ``wait_seconds`` (float, >= 0: until
        its re-check is due).
    """
    return raw.execute(session, _PENDING_BLOCKER_RAW, {
        "account": account, "environment": environment, "document_type": document_type,
        "exclude": exclude}).fetchone()


_WAKE_WAITERS = text("""
UPDATE electronic_invoicing_jobs
   SET next_retry_at = now(), updated_at = now()
 WHERE organization_id = :org AND status = 'pending' AND document_type = :document_type
   AND error_code IN ('account_blocked', 'pending_document') AND next_retry_at > now()
   AND NOT EXISTS (SELECT 1 FROM electronic_invoicing_jobs s
                    WHERE s.organization_id = :org AND s.status = 'sent'
                      AND s.document_type = :document_type)
""")


def wake_jobs_waiting_for_account(session: Session, organization_id: int,
                                  document_type: str) -> int:
    """Make the organization's jobs that wait for a pending document due now; return how many.

    Called when a document that was pending at DIAN is settled (its job left ``sent``): the
    jobs that waited behind it (``account_blocked``, or a 409's ``pending_document``) would
    otherwise sit out the rest of their wait, up to a re-check interval and a half, while the
    account could send. Nothing happens while another of the organization's
    documents of that type is still pending. Uses ``ix_ei_jobs_org_status``; nothing commits.
    """
    result = session.execute(_WAKE_WAITERS, {"org": organization_id,
                                             "document_type": document_type})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


#: One event to append: (event_type, code, message, metadata), as :func:`add_event` takes them.
EventSpec = tuple[str, str | None, str | None, dict[str, Any] | None]


class Sql:
    """A SQL expression as a value of :func:`update_job` (``Sql("now()")``), with its params."""

    __slots__ = ("params", "sql")

    def __init__(self, sql: str, **params: Any) -> None:
        self.sql = sql
        self.params = params


NOW = Sql("now()")


#: The invoice's side of an acceptance, written by :func:`update_job`'s statement: the CUFE (or
#: CUDE) into ``xml_uuid``, the Factus ``number``, the QR ``qr_image`` (data-URI PNG) and DIAN's
#: ``validated_at`` (now() when None), ``status`` ``validated`` (the
#: columns :class:`einvoice.db.models.InvoiceSale` documents).
_MARK_VALIDATED_OF_JOB = """, validated AS (
    UPDATE invoice_sales
       SET xml_uuid = :m_cufe, number = :m_number, qr_image = :m_qr_image,
           validated_at = coalesce(CAST(:m_validated_at AS timestamptz), now()),
           status = 'validated'
      FROM job WHERE invoice_sales.id = job.invoice_id
)"""


def update_job(session: Session, job_id: uuid.UUID, values: Mapping[str, Any], *,
               lease: tuple[str, int] | None = None, events: Sequence[EventSpec] = (),
               validated: Mapping[str, Any] | None = None) -> uuid.UUID | None:
    """``UPDATE`` one job's columns, append its events and, on acceptance, mark its invoice
    validated: one statement (data-modifying CTEs), one round trip; the hot path's replacement
    for an ORM flush and three statements (benchmark B1).

    Args:
        values: column name -> a Python value (bound; dicts are stored as JSONB) or a
            :class:`Sql` expression (e.g. :data:`NOW`, ``Sql("now() + make_interval(secs =>
            :delay)", delay=3.0)``). Column names come from our code, never from input.
        lease: (worker, attempt): update only while the job is ``processing`` under that
            worker's lease of that attempt (the row is found by primary key and locked
            first, see ``_LOCK_JOB``).
        events: appended in order (row ``i`` stamped
            ``clock_timestamp() + i µs``), only if the job matched.
        validated: ``{"cufe", "number", "qr_image", "validated_at"}`` (``validated_at`` a UTC
            ``datetime`` or None for now()): written onto the job's ``invoice_sales`` row, only
            if the job matched.
    Returns:
        The job's ``invoice_id``, or None when no row matched (unknown job, or lease lost):
        then nothing at all was written.
    """
    statement, params = update_job_statement(job_id, values, lease=lease, events=events,
                                             validated=validated)
    row = raw.execute(session, _raw_statement(statement), params).fetchone()
    return None if row is None else row.invoice_id


def update_job_statement(job_id: uuid.UUID, values: Mapping[str, Any], *,
                         lease: tuple[str, int] | None = None, events: Sequence[EventSpec] = (),
                         validated: Mapping[str, Any] | None = None,
                         ) -> tuple[TextClause, dict[str, Any]]:
    """The statement :func:`update_job` runs, and its parameters (arguments as there)."""
    params: dict[str, Any] = {"job_id": job_id}
    sets = []
    for column, value in values.items():
        if isinstance(value, Sql):
            sets.append(f"{column} = {value.sql}")
            params.update(value.params)
        else:
            sets.append(f"{column} = :v_{column}")
            params[f"v_{column}"] = Jsonb(value) if isinstance(value, dict) else value
    where = "id = :job_id"
    if lease is not None:
        where = ("ctid = (SELECT ctid FROM target) AND status = 'processing' "
                 "AND leased_by = :lease_worker AND attempt_count = :lease_attempt")
        params["lease_worker"], params["lease_attempt"] = lease
    job = (f"UPDATE electronic_invoicing_jobs SET {', '.join(sets)} WHERE {where} "
           "RETURNING invoice_id") if sets else (
           f"SELECT invoice_id FROM electronic_invoicing_jobs WHERE {where}")
    sql = f"WITH {_LOCK_JOB + ', ' if lease is not None else ''}job AS ({job})"
    if events:
        rows = ", ".join(f"(:e_t{i}, :e_c{i}, :e_m{i}, CAST(:e_d{i} AS jsonb), {i})"
                         for i in range(len(events)))
        sql += (", events AS (INSERT INTO electronic_invoicing_events (job_id, event_type, "
                "event_code, event_message, metadata, created_at) SELECT :job_id, e.t, e.c, "
                "e.m, e.d, clock_timestamp() + e.i * interval '1 microsecond' "
                f"FROM job, (VALUES {rows}) AS e(t, c, m, d, i))")
        for i, (event_type, code, message, metadata) in enumerate(events):
            params[f"e_t{i}"], params[f"e_c{i}"], params[f"e_m{i}"] = event_type, code, message
            params[f"e_d{i}"] = None if metadata is None else Jsonb(metadata)
    if validated is not None:
        sql += _MARK_VALIDATED_OF_JOB
        params.update({f"m_{key}": validated[key]
                       for key in ("cufe", "number", "qr_image", "validated_at")})
    sql += " SELECT invoice_id FROM job"
    return _statement(sql), params


@functools.lru_cache(maxsize=1024)
def _statement(sql: str) -> TextClause:
    return text(sql)


@functools.lru_cache(maxsize=1024)
def _raw_statement(statement: TextClause) -> raw.RawStatement:
    return raw.RawStatement.of(statement)


_GATE_COUNTS = text("""
SELECT organization_id,
       count(*) FILTER (WHERE status = 'sent') AS at_dian,
       count(*) FILTER (WHERE status = 'processing'
                           OR (status = 'pending'
                               AND dispatched_at >= now() - make_interval(secs => :redispatch)))
           AS in_flight
  FROM electronic_invoicing_jobs
 WHERE provider = 'factus' AND organization_id = ANY(:orgs)
   AND (status IN ('sent', 'processing')
        OR (status = 'pending' AND dispatched_at >= now() - make_interval(secs => :redispatch)))
 GROUP BY organization_id
""")


def gate_counts(session: Session, organization_ids: Sequence[int], *,
                redispatch_seconds: int) -> dict[int, tuple[int, int]]:
    """Per organization of ``organization_ids``: (documents pending at DIAN, jobs in flight).

    "At DIAN" counts ``sent`` jobs (Factus blocks the account's new documents while one is
    pending, FACTUS_API.md §5.3); "in flight" counts ``processing`` jobs and pending ones whose
    wake-up was published within ``redispatch_seconds``. Organizations with neither are absent.
    """
    if not organization_ids:
        return {}
    rows = session.execute(_GATE_COUNTS, {"orgs": list(organization_ids),
                                          "redispatch": int(redispatch_seconds)})
    return {int(org): (int(at_dian), int(in_flight)) for org, at_dian, in_flight in rows}


def count_events(session: Session, job_id: uuid.UUID, event_type: str) -> int:
    """How many ``event_type`` events the job has (index ``ix_ei_events_job_created``)."""
    return int(session.execute(
        text("SELECT count(*) FROM electronic_invoicing_events "
             "WHERE job_id = :job_id AND event_type = :event_type"),
        {"job_id": job_id, "event_type": event_type}).scalar_one())


# The lease check before a POST: the row by primary key, locked, then updated by its address
# (see _LOCK_JOB for why), only while this worker still holds this attempt.
_RENEW_LEASE = text("""
WITH target AS (SELECT ctid FROM electronic_invoicing_jobs WHERE id = :job_id
                FOR NO KEY UPDATE)
UPDATE electronic_invoicing_jobs
   SET lease_expires_at = now() + make_interval(secs => :lease_seconds), updated_at = now()
 WHERE ctid = (SELECT ctid FROM target) AND status = 'processing'
   AND leased_by = :worker AND attempt_count = :attempt
RETURNING id
""")

_RENEW_LEASE_RAW = raw.RawStatement.of(_RENEW_LEASE)


def renew_lease(session: Session, job_id: uuid.UUID, *, worker: str, attempt: int,
                lease_seconds: float) -> bool:
    """Confirm that ``worker`` still holds attempt ``attempt`` of the job, and extend its lease.

    A compare-and-set on (``status = 'processing'``, ``leased_by``, ``attempt_count``): when
    the lease expired and the sweeper released the job, or another worker claimed it since (a
    new ``attempt_count``), nothing changes and the answer is False. An expired lease that
    nobody took yet is still this worker's: it is extended. On success ``lease_expires_at``
    becomes ``now() + lease_seconds`` and ``updated_at`` ``now()`` (UTC, PostgreSQL's clock).
    Nothing commits.

    Returns:
        True when the worker holds the job (lease extended), False when it lost it.
    """
    row = raw.execute(session, _RENEW_LEASE_RAW, {
        "job_id": job_id, "worker": worker, "attempt": int(attempt),
        "lease_seconds": float(lease_seconds)}).fetchone()
    return row is not None


# Ends a job that could not be claimed (its claim's transaction failed and was rolled back),
# with the same conditions the claim has, so a job another worker holds now is left alone.
_FAIL_UNCLAIMED = text("""
WITH target AS (SELECT ctid, status FROM electronic_invoicing_jobs WHERE id = :job_id
                FOR NO KEY UPDATE),
job AS (
UPDATE electronic_invoicing_jobs
   SET status = 'failed', attempt_count = attempt_count + 1, error_code = :code,
       error_message = :message, outcome_unknown = outcome_unknown OR status = 'sent',
       leased_by = :worker, lease_expires_at = NULL, processed_at = now(), updated_at = now()
 WHERE ctid = (SELECT ctid FROM target) AND provider = 'factus'
   AND status IN ('pending', 'sent') AND next_retry_at <= now()
RETURNING id, attempt_count, outcome_unknown
), events AS (
INSERT INTO electronic_invoicing_events (job_id, event_type, event_code, event_message, metadata,
                                         created_at)
SELECT id, 'failed', :code, :message,
       CAST(:metadata AS jsonb) || jsonb_build_object(
           'attempt', attempt_count, 'from', (SELECT status FROM target), 'to', 'failed',
           'outcome_unknown', outcome_unknown),
       clock_timestamp()
  FROM job
)
SELECT id, outcome_unknown FROM job
""")


def fail_unclaimed_job(session: Session, job_id: uuid.UUID, *, worker: str, code: str,
                       message: str, metadata: Mapping[str, Any]) -> bool | None:
    """End a due job ``failed`` with ``code`` and ``message``, and its ``failed`` event.

    For a job whose claim could not be completed (its transaction rolled back, so the job is
    still ``pending`` or ``sent`` and due): the same compare-and-set as :func:`claim`, so a job
    claimed or finished by someone else meanwhile is left alone. The attempt is counted;
    ``outcome_unknown`` is kept, and set for a ``sent`` job (its document exists at Factus), so
    that an operator's retry looks the reference code up before sending. The event's metadata
    is ``metadata`` plus ``attempt``, ``from``, ``to`` and ``outcome_unknown``. Nothing commits.

    Returns:
        The job's ``outcome_unknown`` when it was ended, None when it was not due (left alone).
    """
    row = session.execute(_FAIL_UNCLAIMED, {
        "job_id": job_id, "worker": worker, "code": code, "message": message,
        "metadata": Jsonb(dict(metadata))}).fetchone()
    return None if row is None else bool(row.outcome_unknown)


_DIAN_PENDING_HISTORY = text("""
SELECT count(*) AS rechecks,
       coalesce(extract(epoch FROM now() - min(e.created_at)), 0)::float AS pending_seconds
  FROM electronic_invoicing_events e
 WHERE e.job_id = :job_id AND e.event_type = 'dian_slow'
   AND e.created_at > coalesce((SELECT max(r.created_at) FROM electronic_invoicing_events r
                                 WHERE r.job_id = :job_id AND r.event_type = 'operator_retry'),
                                '-infinity')
""")


def dian_pending_history(session: Session, job_id: uuid.UUID) -> tuple[int, float]:
    """How long the job's document has been "pending at DIAN", from its events.

    Counts the job's ``dian_slow`` events (one per "pending" answer) since its last
    ``operator_retry`` (an operator's retry starts a new bound), through the index
    ``ix_ei_events_job_created``.

    Returns:
        (pending answers, seconds since the first of them; 0.0 when there is none).
    """
    row = session.execute(_DIAN_PENDING_HISTORY, {"job_id": job_id}).one()
    return int(row.rechecks), float(row.pending_seconds)


# --------------------------------------------------------------------------------------------
# Looking a job up by an operator's id
# --------------------------------------------------------------------------------------------


def parse_job_id(job_id: uuid.UUID | str) -> uuid.UUID:
    """``job_id`` as a UUID (an operator typed it, or a caller passed one).

    Raises:
        JobError: ``bad_job_id`` when it is not a UUID.
    """
    try:
        return uuid.UUID(str(job_id))
    except ValueError:
        raise JobError(f"{job_id!r} is not a job id (a UUID)", reason="bad_job_id") from None


def require_job(session: Session, job_id: uuid.UUID | str, *, for_update: bool = False) -> Job:
    """The job ``job_id`` (row-locked with ``for_update``), for an operator action or view.

    Raises:
        JobError: ``bad_job_id`` (not a UUID) or ``job_not_found``.
    """
    key = parse_job_id(job_id)
    job = get_job(session, key, for_update=for_update)
    if job is None:
        raise JobError(f"no job {key}", reason="job_not_found")
    return job


# --------------------------------------------------------------------------------------------
# The submission's reads and writes besides the hot path's statements
# --------------------------------------------------------------------------------------------


def invoice_job_statuses(session: Session, invoice_id: uuid.UUID) -> list[str]:
    """The statuses of every ``invoice`` job of ``invoice_id`` (a credit note's corrected
    invoice), in no particular order; empty when it has none."""
    return list(session.scalars(select(Job.status).where(
        Job.invoice_id == invoice_id, Job.document_type == "invoice")))


def take_over_pending_at_dian(session: Session, job_id: uuid.UUID) -> bool:
    """Make job ``job_id``, whose document Factus lists as pending at DIAN (found by another
    job's 409), ``sent`` and due now, so that its re-check runs at once.

    Taken only when it is ``pending`` or ``sent``, or ``processing`` by a dead worker: its lease
    expired, or it was claimed over a minute ago (no live claim lasts a minute: the validate
    timeout is 30 s). Waiting for the lease sweeper (every 30 s) or for the lease itself (120 s)
    would block the account that long, and the account's other jobs would meet a 409 at every
    try meanwhile. ``outcome_unknown`` stays as it is, so its re-check looks the reference up
    first; were its worker alive after all, its late record finds the lease gone and writes
    nothing. Nothing commits.

    Returns:
        True when the job was taken over, False when it is being submitted right now (or is
        final).
    """
    took = session.execute(
        update(Job)
        .where(Job.id == job_id,
               or_(Job.status.in_(DUE_STATUSES),
                   and_(Job.status == JobStatus.PROCESSING,
                        or_(Job.lease_expires_at < func.now(),
                            Job.updated_at < func.now() - text("interval '60 seconds'")))))
        .values(status=JobStatus.SENT, error_code="dian_slow", lease_expires_at=None,
                error_message="pending at DIAN (found by a 409); re-checking",
                next_retry_at=func.now(), dispatched_at=None, updated_at=func.now())
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).first()
    return took is not None


# --------------------------------------------------------------------------------------------
# Operator views and actions
# --------------------------------------------------------------------------------------------


def counts_by_organization_and_status(session: Session) -> list[tuple[int, str, int]]:
    """``(organization_id, status, jobs)`` for every pair that has jobs."""
    rows = session.execute(select(Job.organization_id, Job.status, func.count())
                           .group_by(Job.organization_id, Job.status)).all()
    return [(org, status, int(count)) for org, status, count in rows]


def oldest_active_age_seconds(session: Session) -> float | None:
    """Seconds since the oldest ``pending``, ``processing`` or ``sent`` job was created (by
    PostgreSQL's clock), or None when there is none."""
    oldest = session.scalar(
        select(func.extract("epoch", func.now() - func.min(Job.created_at))).where(
            Job.status.in_(NON_FINAL_JOB_STATUSES)))
    return float(oldest) if oldest is not None else None


def count_recent(session: Session, status: str, *, hours: int = 1) -> int:
    """How many jobs are ``status`` and were updated within the last ``hours`` hours."""
    recent = func.now() - func.make_interval(0, 0, 0, 0, hours)
    return int(session.scalar(
        select(func.count()).where(Job.status == status, Job.updated_at >= recent)) or 0)


def newest_jobs(session: Session, *, status: str | None = None,
                organization_id: int | None = None, limit: int = 50) -> list[Job]:
    """At most ``limit`` jobs, newest first, of ``status`` and ``organization_id`` when given."""
    stmt = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if status:
        stmt = stmt.where(Job.status == status)
    if organization_id is not None:
        stmt = stmt.where(Job.organization_id == organization_id)
    return list(session.scalars(stmt))


def failed_job_ids(session: Session) -> list[uuid.UUID]:
    """Ids of every ``failed`` job, oldest first."""
    return list(session.scalars(select(Job.id).where(Job.status == JobStatus.FAILED)
                                .order_by(Job.created_at)))


def bring_forward(session: Session, job_ids: Sequence[uuid.UUID]) -> None:
    """Make the ``pending`` jobs among ``job_ids`` due now and not dispatched (the next
    dispatcher round publishes them). Nothing commits."""
    session.execute(update(Job).where(Job.id.in_(list(job_ids)), Job.status == JobStatus.PENDING)
                    .values(next_retry_at=func.now(), dispatched_at=None))


def requeue(session: Session, job: Job, status: JobStatus = JobStatus.PENDING) -> None:
    """Put a final ``job`` back to ``status`` (``pending``, as the domain decides), due now,
    with no attempt counted and no error (its ``reference_code``, ``outcome_unknown`` and
    history stay). Flushed, not committed."""
    job.status = status
    job.attempt_count = 0
    job.next_retry_at = func.now()
    job.dispatched_at = None
    job.lease_expires_at = None
    job.processed_at = None
    job.updated_at = func.now()
    job.error_code = None
    job.error_message = None
    session.flush()


def set_cancelled(session: Session, job: Job, status: JobStatus = JobStatus.CANCELLED) -> None:
    """Mark ``job`` ``cancelled`` (``status``, as the domain decides) now (its outcome no longer
    unknown). Flushed, not committed."""
    job.status = status
    job.processed_at = func.now()
    job.outcome_unknown = False
    job.updated_at = func.now()
    session.flush()
