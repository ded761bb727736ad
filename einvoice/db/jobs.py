"""The worker's job statements: claim, lease, record, events and the pending-document blocker.

Every query one submission (:mod:`einvoice.services.submit`) runs on
``electronic_invoicing_jobs`` and ``electronic_invoicing_events``. The other statements on those
tables live beside it, one module per caller: :mod:`einvoice.db.producer` (enqueueing),
:mod:`einvoice.db.dispatcher` (publishing wake-ups, the lease sweeper) and
:mod:`einvoice.db.operator_jobs` (the operator's views and actions).

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
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from einvoice.db import raw
from einvoice.db.models import ElectronicInvoicingEvent, ElectronicInvoicingJob
from einvoice.domain.jobs import JobStatus

Job = ElectronicInvoicingJob
DUE_STATUSES = (JobStatus.PENDING, JobStatus.SENT)


def get_job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> Job | None:
    """The job with ``job_id`` (row-locked with ``for_update``), or None."""
    stmt = select(Job).where(Job.id == job_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


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


def job_by_reference(session: Session, reference_code: str) -> Job | None:
    """The job whose Factus ``reference_code`` is ``reference_code``, or None (not ours).

    A job that inherited the code of its invoice's earlier job (outcome unknown) shares it with
    that job: the newest of them is returned, the one that stands for the document now.
    """
    return session.scalars(select(Job).where(Job.reference_code == reference_code)
                           .order_by(Job.created_at.desc()).limit(1)).one_or_none()


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
#: ``attempt_count`` one lower: a claimed attempt given back (a wait is not an attempt).
ATTEMPT_GIVEN_BACK = Sql("attempt_count - 1")


def due_in(seconds: float) -> Sql:
    """``next_retry_at`` ``seconds`` from the database's ``now()`` (UTC), for :func:`update_job`."""
    return Sql("now() + make_interval(secs => :delay)", delay=float(seconds))


#: The invoice's side of an acceptance, written by :func:`update_job`'s statement: the CUFE (or
#: CUDE) into ``xml_uuid``, the Factus ``number``, the QR ``qr_image`` (data-URI PNG) and DIAN's
#: ``validated_at`` (now() when None), ``status`` ``validated``, and the outcome columns of
#: migration 0010 (the job, no error) that the ``einvoice_job_outcome`` trigger would otherwise
#: write in a second update of the same row (the columns
#: :class:`einvoice.db.models.InvoiceSale` documents). One update: a row the transaction already
#: updated is re-checked against its foreign keys when updated again, and an ERP's rows written
#: before the tenant keys would fail that check.
_MARK_VALIDATED_OF_JOB = """, validated AS (
    UPDATE invoice_sales
       SET xml_uuid = :m_cufe, number = :m_number, qr_image = :m_qr_image,
           validated_at = coalesce(CAST(:m_validated_at AS timestamptz), now()),
           status = 'validated', einvoice_job_id = :job_id, einvoice_error_code = NULL,
           einvoice_error_message = NULL, einvoice_outcome_at = now()
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
    # Built from our own column names and fixed fragments; every value is a bound parameter.
    job = (f"UPDATE electronic_invoicing_jobs SET {', '.join(sets)} WHERE {where} "  # noqa: S608
           "RETURNING invoice_id") if sets else (
           f"SELECT invoice_id FROM electronic_invoicing_jobs WHERE {where}")  # noqa: S608
    sql = f"WITH {_LOCK_JOB + ', ' if lease is not None else ''}job AS ({job})"
    if events:
        rows = ", ".join(f"(:e_t{i}, :e_c{i}, :e_m{i}, CAST(:e_d{i} AS jsonb), {i})"
                         for i in range(len(events)))
        sql += (", events AS (INSERT INTO electronic_invoicing_events (job_id, event_type, "  # noqa: S608
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
