"""The aggregate reads behind the scrape-time gauges of ``GET /metrics`` (read-only).

:func:`read_state` runs every query in one read-only transaction with a statement timeout, so a
scrape never writes, never waits on a lock and never runs long. Each query stays on an index
(measured with ``EXPLAIN ANALYZE`` on 1,000,000 job rows and 400,000 follow-ups, see
docs/metrics.md):

* jobs by organization and status: an index-only scan of ``ix_ei_jobs_org_status`` (about 60 ms
  for a million rows; every row of the table, whatever its provider, as the console counts);
* final outcomes by code: ``ix_ei_jobs_status_created`` over the rejected, failed and cancelled
  rows only (accepted ones carry no code);
* the oldest due pending job, the expired leases, the documents pending at DIAN: the partial
  indexes ``ix_ei_jobs_due``, ``ix_ei_jobs_lease`` and ``ix_ei_jobs_sent_account`` (a handful of
  rows each), the pending document's first "pending" answer through ``ix_ei_events_job_created``;
* the webhook backlog: ``ix_ei_followups_due`` and ``ix_ei_followups_lease`` (one query each:
  an ``IN`` of both statuses would scan the table), the last day's deliveries per endpoint
  through ``ix_ei_followups_endpoint``;
* the numbering ranges: ``invoice_sequences`` (a few rows per organization).

Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

#: The longest any one statement of a scrape may run (PostgreSQL's ``statement_timeout``).
STATEMENT_TIMEOUT_MS = 5000

_SETUP = text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
# A scrape's aggregates are quick; JIT compilation would cost more than it saves.
_NO_JIT = text("SET LOCAL jit = off")
_READ_ONLY = text("SET TRANSACTION READ ONLY")

_JOBS_BY_ORG_STATUS = text("""
SELECT organization_id, status, count(*) AS jobs
  FROM electronic_invoicing_jobs
 GROUP BY organization_id, status
""")

_OUTCOMES = text("""
SELECT status, coalesce(error_code, '') AS code, count(*) AS jobs
  FROM electronic_invoicing_jobs
 WHERE status IN ('rejected', 'failed', 'cancelled')
 GROUP BY status, coalesce(error_code, '')
""")

_DUE_PENDING = text("""
SELECT count(*) AS due,
       coalesce(extract(epoch FROM now() - min(next_retry_at)), 0)::float AS oldest_seconds
  FROM electronic_invoicing_jobs
 WHERE status = 'pending' AND provider = 'factus' AND next_retry_at <= now()
""")

_EXPIRED_LEASES = text("""
SELECT count(*) AS expired,
       coalesce(extract(epoch FROM now() - min(lease_expires_at)), 0)::float AS oldest_seconds
  FROM electronic_invoicing_jobs
 WHERE status = 'processing' AND provider = 'factus' AND lease_expires_at < now()
""")

# Since when each document has been pending at DIAN: its job's first "pending" answer (a
# dian_slow event), else the job's last change.
_PENDING_AT_DIAN = text("""
SELECT j.organization_id, j.document_type, count(*) AS documents,
       max(extract(epoch FROM now() - coalesce(p.since, j.updated_at)))::float AS oldest_seconds
  FROM electronic_invoicing_jobs j
  LEFT JOIN LATERAL (SELECT min(e.created_at) AS since
                       FROM electronic_invoicing_events e
                      WHERE e.job_id = j.id AND e.event_type = 'dian_slow') p ON true
 WHERE j.status = 'sent' AND j.provider = 'factus'
 GROUP BY j.organization_id, j.document_type
""")

_ACTIVE_RANGES = text("""
SELECT id, organization_id, coalesce(document_type, '') AS document_type,
       coalesce(prefix, '') AS prefix, range_start, range_end, current_number, valid_until
  FROM invoice_sequences
 WHERE is_active
""")

_WEBHOOK_BACKLOG = text("""
SELECT 'pending' AS status, count(*) AS deliveries,
       extract(epoch FROM now() - min(created_at))::float AS oldest_seconds
  FROM electronic_invoicing_followups
 WHERE status = 'pending' AND kind = 'webhook'
UNION ALL
SELECT 'processing', count(*),
       extract(epoch FROM now() - min(created_at))::float
  FROM electronic_invoicing_followups
 WHERE status = 'processing' AND kind = 'webhook'
""")

_WEBHOOKS_LAST_DAY = text("""
SELECT f.status, count(*) AS deliveries
  FROM webhook_endpoints w
 CROSS JOIN LATERAL (SELECT status FROM electronic_invoicing_followups f
                      WHERE f.endpoint_id = w.id
                        AND f.created_at > now() - interval '24 hours') f
 GROUP BY f.status
""")

_TODAY_IN_BOGOTA = text("SELECT (now() AT TIME ZONE 'America/Bogota')::date")


@dataclass(frozen=True)
class RangeRow:
    """An active numbering range (``invoice_sequences``) and where it stands.

    Attributes:
        id, organization_id, document_type, prefix: the row.
        remaining: numbers left (``range_end - current_number + 1``, never below 0), None when
            the row lacks either bound.
        size: numbers in the range (``range_end - range_start + 1``), None when unknown.
        days_to_expiry: days from today (Bogotá) to ``valid_until`` (negative once expired),
            None without a date.
    """

    id: int
    organization_id: int
    document_type: str
    prefix: str
    remaining: int | None
    size: int | None
    days_to_expiry: int | None


@dataclass
class StateSnapshot:
    """What the database says at one instant, for the scrape-time gauges.

    Attributes:
        jobs: ``(organization_id, status) -> jobs``.
        outcomes: ``(status, error_code or "") -> jobs`` of rejected, failed and cancelled jobs.
        due_pending / oldest_due_pending_seconds: factus jobs pending and due now, and how long
            the longest-waiting one has been due (0.0 when none).
        expired_leases / oldest_expired_lease_seconds: processing jobs whose lease ran out, and
            how long ago the oldest did (0.0 when none).
        pending_at_dian: ``(organization_id, document_type) -> (documents, seconds since the
            oldest one's first "pending" answer)``: each blocks its Factus account for that
            document type.
        ranges: the active numbering ranges.
        webhooks_backlog: ``status -> deliveries`` (pending, processing).
        webhook_lag_seconds: age of the oldest undelivered delivery (0.0 when none).
        webhooks_last_day: ``status -> deliveries`` created in the last 24 hours.
    """

    jobs: dict[tuple[int, str], int] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    due_pending: int = 0
    oldest_due_pending_seconds: float = 0.0
    expired_leases: int = 0
    oldest_expired_lease_seconds: float = 0.0
    pending_at_dian: dict[tuple[int, str], tuple[int, float]] = field(default_factory=dict)
    ranges: list[RangeRow] = field(default_factory=list)
    webhooks_backlog: dict[str, int] = field(default_factory=dict)
    webhook_lag_seconds: float = 0.0
    webhooks_last_day: dict[str, int] = field(default_factory=dict)


def _range_row(row: Any, today: date) -> RangeRow:
    """A :class:`RangeRow` of one ``_ACTIVE_RANGES`` row."""
    start, end, current = row.range_start, row.range_end, row.current_number
    return RangeRow(
        id=int(row.id), organization_id=int(row.organization_id or 0),
        document_type=str(row.document_type), prefix=str(row.prefix),
        remaining=max(end - current + 1, 0) if end is not None and current is not None else None,
        size=end - start + 1 if end is not None and start is not None else None,
        days_to_expiry=(row.valid_until - today).days if row.valid_until is not None else None,
    )


def read_state(session: Session) -> StateSnapshot:
    """Run the scrape's aggregates in one read-only transaction (the caller's session; this
    function issues ``SET TRANSACTION READ ONLY`` first, so the session must not have run
    anything yet). Nothing commits.

    Raises:
        sqlalchemy.exc.DBAPIError: PostgreSQL unreachable, or a statement past
            :data:`STATEMENT_TIMEOUT_MS`.
    """
    session.execute(_READ_ONLY)
    session.execute(_SETUP)
    session.execute(_NO_JIT)
    snap = StateSnapshot()
    # Comprehensions, not dict(...): a Result row is not a pair.
    snap.jobs = {(int(r.organization_id), str(r.status)): int(r.jobs)
                 for r in session.execute(_JOBS_BY_ORG_STATUS)}
    snap.outcomes = {(str(r.status), str(r.code)): int(r.jobs)
                     for r in session.execute(_OUTCOMES)}
    due = session.execute(_DUE_PENDING).one()
    snap.due_pending, snap.oldest_due_pending_seconds = int(due.due), float(due.oldest_seconds)
    leases = session.execute(_EXPIRED_LEASES).one()
    snap.expired_leases = int(leases.expired)
    snap.oldest_expired_lease_seconds = float(leases.oldest_seconds)
    snap.pending_at_dian = {
        (int(r.organization_id), str(r.document_type)): (int(r.documents),
                                                         float(r.oldest_seconds or 0.0))
        for r in session.execute(_PENDING_AT_DIAN)}
    today = session.execute(_TODAY_IN_BOGOTA).scalar_one()
    snap.ranges = [_range_row(r, today) for r in session.execute(_ACTIVE_RANGES)]
    for r in session.execute(_WEBHOOK_BACKLOG):
        snap.webhooks_backlog[str(r.status)] = int(r.deliveries)
        if r.oldest_seconds is not None:
            snap.webhook_lag_seconds = max(snap.webhook_lag_seconds, float(r.oldest_seconds))
    snap.webhooks_last_day = {str(r.status): int(r.deliveries)
                              for r in session.execute(_WEBHOOKS_LAST_DAY)}
    return snap
