"""The dispatcher's job statements: pick the due jobs to publish, mark them dispatched, count
each organization's jobs in flight, and release expired leases (the sweeper).

Called by :mod:`einvoice.services.dispatch` (beat rounds and the ``NOTIFY`` listener); nothing
here commits (STYLE.md habit 4). Times are PostgreSQL's ``now()`` (UTC). The worker's
statements are :mod:`einvoice.db.jobs`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from einvoice.db.models import ElectronicInvoicingJob
from einvoice.domain.jobs import JobStatus

Job = ElectronicInvoicingJob


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
