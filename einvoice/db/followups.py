"""Follow-up and stored-document repository: every query on ``electronic_invoicing_followups``
and ``electronic_invoicing_documents`` (the documents archive and the e-mail resend).

Services call these functions inside a session they own; nothing here commits (STYLE.md habit 4).
Times come from PostgreSQL's ``now()`` so that every worker agrees.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, undefer

from einvoice.db.models import ElectronicInvoicingDocument, ElectronicInvoicingFollowup
from einvoice.domain.jobs import FollowupStatus
from einvoice.errors import JobError

Followup = ElectronicInvoicingFollowup

#: The time zone of Factus's "per day" e-mail quota (FACTUS_API.md §6.5; Colombia has no DST).
QUOTA_TIME_ZONE = "America/Bogota"


def get_followup(
    session: Session, followup_id: uuid.UUID, *, for_update: bool = False
) -> Followup | None:
    """The follow-up with ``followup_id`` (row-locked with ``for_update``), or None."""
    stmt = select(Followup).where(Followup.id == followup_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def followups_for_job(session: Session, job_id: uuid.UUID) -> list[Followup]:
    """Every follow-up of ``job_id``, oldest first."""
    return list(
        session.scalars(
            select(Followup)
            .where(Followup.job_id == job_id)
            .order_by(Followup.created_at, Followup.id)
        )
    )


def archive_of_job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> Followup | None:
    """The job's ``archive`` follow-up, or None (at most one exists: unique partial index)."""
    stmt = select(Followup).where(Followup.job_id == job_id, Followup.kind == "archive")
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def insert_archive(
    session: Session, job_id: uuid.UUID, *, max_attempts: int, dispatched: bool
) -> uuid.UUID | None:
    """Insert the job's ``archive`` follow-up, due now; None if the job already has one.

    ``INSERT ... ON CONFLICT DO NOTHING`` on ``ux_ei_followups_one_archive_per_job``, so two
    concurrent acceptances (a re-delivered message, a reconcile) cannot both insert.
    ``dispatched`` stamps ``dispatched_at`` for a caller that publishes the wake-up itself.
    """
    stmt = (
        insert(Followup)
        .values(
            job_id=job_id,
            kind="archive",
            status=FollowupStatus.PENDING,
            max_attempts=max_attempts,
            dispatched_at=func.now() if dispatched else None,
        )
        .on_conflict_do_nothing(
            index_elements=["job_id"],
            # A literal predicate, as for jobs: a bound one stops matching the partial index
            # once psycopg prepares the statement.
            index_where=text("kind = 'archive'"),
        )
        .returning(Followup.id)
    )
    return session.execute(stmt).scalar_one_or_none()


def insert_email(
    session: Session, job_id: uuid.UUID, *, to_address: str | None, max_attempts: int,
    dispatched: bool,
) -> Followup:
    """Insert a pending ``email`` follow-up of ``job_id`` to ``to_address`` (None = the
    customer's address at Factus); returns the row."""
    followup = Followup(
        job_id=job_id, kind="email", status=FollowupStatus.PENDING, max_attempts=max_attempts,
        to_address=to_address, dispatched_at=func.now() if dispatched else None,
    )
    session.add(followup)
    session.flush()
    session.refresh(followup)
    return followup


def claim(
    session: Session, followup_id: uuid.UUID, *, lease_seconds: int, worker: str
) -> Followup | None:
    """Atomically take a due follow-up: ``pending`` → ``processing`` with a lease.

    A compare-and-set ``UPDATE ... WHERE status = 'pending' AND next_retry_at <= now()``: a second
    delivery, a message for a row already claimed or final, or an early one, all get None
    (STYLE.md habit 5); a ``webhook`` delivery is never claimed here. On success ``attempt_count`` is incremented and the row is returned.
    """
    stmt = (
        update(Followup)
        .where(
            Followup.id == followup_id,
            Followup.status == FollowupStatus.PENDING,
            Followup.next_retry_at <= func.now(),
            # Webhook deliveries are claimed by their own runner (einvoice.db.webhooks).
            Followup.kind != "webhook",
        )
        .values(
            status=FollowupStatus.PROCESSING,
            attempt_count=Followup.attempt_count + 1,
            lease_expires_at=func.now() + text(f"interval '{int(lease_seconds)} seconds'"),
            leased_by=worker,
            updated_at=func.now(),
        )
        .returning(Followup.id)
    )
    if session.execute(stmt).first() is None:
        return None
    followup = get_followup(session, followup_id)
    if followup is not None:
        session.refresh(followup)
    return followup


def select_due_for_dispatch(
    session: Session, *, limit: int, redispatch_seconds: int
) -> list[uuid.UUID]:
    """Ids of due ``pending`` follow-ups to publish now, oldest first, marked as dispatched.

    Due: ``next_retry_at`` has passed and no message was published within
    ``redispatch_seconds`` (a message still queued is not published twice; one Redis lost is).
    Rows are locked with ``FOR UPDATE SKIP LOCKED`` while marked, so concurrent dispatchers
    never publish the same follow-up twice in one round.
    """
    stale = text(f"now() - interval '{int(redispatch_seconds)} seconds'")
    due = (
        select(Followup.id)
        .where(
            Followup.status == FollowupStatus.PENDING,
            Followup.next_retry_at <= func.now(),
            or_(Followup.dispatched_at.is_(None), Followup.dispatched_at < stale),
            # Webhook deliveries have their own dispatcher and queue (einvoice.db.webhooks).
            Followup.kind != "webhook",
        )
        .order_by(Followup.next_retry_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(due))
    if ids:
        session.execute(
            update(Followup).where(Followup.id.in_(ids)).values(dispatched_at=func.now())
        )
    return ids


def expired_leases(session: Session, *, limit: int) -> list[Followup]:
    """``processing`` follow-ups whose lease expired (their worker died), row-locked
    (``SKIP LOCKED``) for the caller to release or give up."""
    return list(
        session.scalars(
            select(Followup)
            .where(Followup.status == FollowupStatus.PROCESSING,
                   Followup.lease_expires_at < func.now(), Followup.kind != "webhook")
            .order_by(Followup.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def emails_sent_today(session: Session, job_id: uuid.UUID) -> int:
    """How many ``email`` follow-ups of ``job_id`` were sent (``done``) since midnight in Bogotá.

    Factus's quota is per document per day (FACTUS_API.md §6.5); Colombia's day is the one that
    counts (the simulator uses it too).
    """
    midnight = func.timezone(
        QUOTA_TIME_ZONE, func.date_trunc("day", func.timezone(QUOTA_TIME_ZONE, func.now()))
    )
    return int(
        session.scalar(
            select(func.count()).where(
                Followup.job_id == job_id,
                Followup.kind == "email",
                Followup.status == FollowupStatus.DONE,
                Followup.completed_at >= midnight,
            )
        )
        or 0
    )


# --- stored documents -----------------------------------------------------------------------


def stored_kinds(session: Session, job_id: uuid.UUID) -> set[str]:
    """The document kinds (``pdf``, ``xml``) already stored for ``job_id`` (bytes not loaded)."""
    return set(session.scalars(select(ElectronicInvoicingDocument.kind)
                               .where(ElectronicInvoicingDocument.job_id == job_id)))


def insert_document(
    session: Session, job_id: uuid.UUID, *, kind: str, file_name: str, content: bytes,
    sha256: str,
) -> bool:
    """Store one file of ``job_id`` unless one of that kind exists; True if this call stored it.

    ``INSERT ... ON CONFLICT (job_id, kind) DO NOTHING``: a second archive run, or two racing
    ones, store nothing new. ``size_bytes`` is ``len(content)`` (also a CHECK in the table).
    """
    stmt = (
        insert(ElectronicInvoicingDocument)
        .values(job_id=job_id, kind=kind, file_name=file_name, content=content, sha256=sha256,
                size_bytes=len(content))
        .on_conflict_do_nothing(constraint="uq_ei_documents_job_kind")
        .returning(ElectronicInvoicingDocument.id)
    )
    return session.execute(stmt).scalar_one_or_none() is not None


def get_document(session: Session, job_id: uuid.UUID,
                 kind: str) -> ElectronicInvoicingDocument | None:
    """The stored ``kind`` file of ``job_id`` with its bytes, or None."""
    return session.scalars(
        select(ElectronicInvoicingDocument)
        .options(undefer(ElectronicInvoicingDocument.content))
        .where(ElectronicInvoicingDocument.job_id == job_id,
               ElectronicInvoicingDocument.kind == kind)
    ).one_or_none()


def documents_of_job(session: Session, job_id: uuid.UUID) -> list[dict[str, Any]]:
    """Metadata of the job's stored files (no bytes): ``[{kind, file_name, sha256, size_bytes,
    created_at}]``, by kind."""
    rows = session.execute(
        select(ElectronicInvoicingDocument.kind, ElectronicInvoicingDocument.file_name,
               ElectronicInvoicingDocument.sha256, ElectronicInvoicingDocument.size_bytes,
               ElectronicInvoicingDocument.created_at)
        .where(ElectronicInvoicingDocument.job_id == job_id)
        .order_by(ElectronicInvoicingDocument.kind)
    ).all()
    return [dict(row._mapping) for row in rows]


# --- state changes of a claimed follow-up ----------------------------------------------------


def finish(followup: Followup, status: FollowupStatus, *, code: str | None, message: str) -> None:
    """Move ``followup`` to the final ``status`` (``done`` or ``failed``) now: the error columns
    keep ``code`` and ``message`` only when it failed; the lease is released. Written at the
    session's next flush (nothing commits)."""
    followup.status = status
    followup.error_code = code if status == FollowupStatus.FAILED else None
    followup.error_message = message if status == FollowupStatus.FAILED else None
    followup.lease_expires_at = None
    followup.completed_at = func.now()
    followup.updated_at = func.now()


def reschedule(followup: Followup, *, delay: float, code: str, message: str,
               count_attempt: bool) -> None:
    """Put ``followup`` back ``pending``, due in ``delay`` seconds, with ``code`` and ``message``
    as its last error; ``count_attempt=False`` gives the claimed attempt back (a wait is not an
    attempt). Not dispatched: the beat dispatcher publishes it when due. Written at the
    session's next flush (nothing commits)."""
    followup.status = FollowupStatus.PENDING
    followup.next_retry_at = func.now() + timedelta(seconds=delay)
    followup.dispatched_at = None
    followup.lease_expires_at = None
    followup.error_code = code
    followup.error_message = message
    if not count_attempt:
        followup.attempt_count = followup.attempt_count - 1
    followup.updated_at = func.now()


def rearm(session: Session, followup: Followup) -> None:
    """Give a ``failed`` follow-up a fresh start: ``pending``, attempts reset, due now and
    marked dispatched (the caller publishes its wake-up after the commit). Flushed, not
    committed."""
    followup.status = FollowupStatus.PENDING
    followup.attempt_count = 0
    followup.next_retry_at = func.now()
    followup.dispatched_at = func.now()
    followup.completed_at = None
    followup.updated_at = func.now()
    session.flush()


# --- the database document store -------------------------------------------------------------


@dataclass(frozen=True)
class StoredDocument:
    """One stored file of a job.

    Attributes:
        job_id: ``electronic_invoicing_jobs.id``.
        kind: ``pdf`` or ``xml``.
        file_name: Factus's DIAN file name plus ``.pdf``/``.xml`` (FACTUS_API.md §6.4).
        sha256: lower-case hex SHA-256 of the bytes (64 characters).
        size_bytes: length of the bytes.
        content: the bytes (None when only the metadata was asked for).
    """

    job_id: uuid.UUID
    kind: str
    file_name: str
    sha256: str
    size_bytes: int
    content: bytes | None = field(default=None, repr=False)


class DatabaseDocumentStore:
    """The documents archive's store on ``electronic_invoicing_documents`` (BYTEA), in
    ``session``'s transaction (the caller commits); it implements
    :class:`einvoice.services.documents.DocumentStore`.

    Args:
        session: the unit of work's session.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def kinds(self, job_id: uuid.UUID) -> set[str]:
        """The kinds (``pdf``, ``xml``) already stored for ``job_id``."""
        return stored_kinds(self.session, job_id)

    def put(self, job_id: uuid.UUID, kind: str, file_name: str, content: bytes) -> StoredDocument | None:
        """Store ``content`` as the job's ``kind`` file unless one is stored already
        (``INSERT ... ON CONFLICT DO NOTHING``: the first validated file is the one kept).

        Returns:
            The stored document (with SHA-256 and size), or None when the job already had that
            kind.
        """
        digest = hashlib.sha256(content).hexdigest()
        stored = insert_document(self.session, job_id, kind=kind, file_name=file_name,
                                 content=content, sha256=digest)
        if not stored:
            return None
        return StoredDocument(job_id=job_id, kind=kind, file_name=file_name, sha256=digest,
                              size_bytes=len(content))

    def get(self, job_id: uuid.UUID, kind: str) -> StoredDocument | None:
        """The job's ``kind`` file with its bytes, or None.

        Raises:
            JobError: ``document_corrupt`` when the bytes no longer match their SHA-256 or size.
        """
        row = get_document(self.session, job_id, kind)
        if row is None:
            return None
        content = bytes(row.content)
        if len(content) != row.size_bytes or hashlib.sha256(content).hexdigest() != row.sha256:
            raise JobError(f"the stored {kind.upper()} of job {job_id} does not match its SHA-256 "
                           "or size; run `einvoice docs archive` after deleting it",
                           reason="document_corrupt")
        return StoredDocument(job_id=job_id, kind=kind, file_name=row.file_name, sha256=row.sha256,
                              size_bytes=row.size_bytes, content=content)
