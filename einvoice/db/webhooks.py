"""Webhook repository: every query on ``webhook_endpoints``, ``webhook_delivery_attempts`` and
the ``webhook`` follow-ups of ``electronic_invoicing_followups`` (migration 0010).

A delivery is a follow-up of kind ``webhook`` (inserted by the ``einvoice_job_outcome``
trigger, or by :func:`insert_delivery` for a test message); its claim, dispatch and lease
recovery are here, filtered on that kind, so that the archive/e-mail machinery
(:mod:`einvoice.db.followups`) and this one never take each other's rows. Services call these
functions inside a session they own; nothing here commits (STYLE.md habit 4). Times come from
PostgreSQL's ``now()``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from einvoice.db.models import (
    ElectronicInvoicingFollowup,
    ElectronicInvoicingJob,
    Organization,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from einvoice.domain.jobs import FollowupStatus

Followup = ElectronicInvoicingFollowup
Endpoint = WebhookEndpoint
Attempt = WebhookDeliveryAttempt

#: The follow-up kind of a delivery.
KIND = "webhook"


# --- endpoints --------------------------------------------------------------------------------


def organization_exists(session: Session, organization_id: int) -> bool:
    """Whether ``organizations`` has the row ``organization_id``."""
    return session.get(Organization, organization_id) is not None


def insert_endpoint(session: Session, *, organization_id: int, url: str, secret_encrypted: str,
                    event_types: Sequence[str], description: str | None) -> Endpoint:
    """Insert an enabled endpoint; returns the row (flushed, with its id and times)."""
    endpoint = Endpoint(organization_id=organization_id, url=url,
                        secret_encrypted=secret_encrypted, event_types=list(event_types),
                        description=description)
    session.add(endpoint)
    session.flush()
    session.refresh(endpoint)
    return endpoint


def get_endpoint(session: Session, endpoint_id: uuid.UUID, *,
                 for_update: bool = False) -> Endpoint | None:
    """The endpoint ``endpoint_id`` (row-locked with ``for_update``), or None."""
    stmt = select(Endpoint).where(Endpoint.id == endpoint_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def list_endpoints(session: Session, organization_id: int | None = None) -> list[Endpoint]:
    """Endpoints (of ``organization_id``, or all), by organization then creation."""
    stmt = select(Endpoint).order_by(Endpoint.organization_id, Endpoint.created_at, Endpoint.id)
    if organization_id is not None:
        stmt = stmt.where(Endpoint.organization_id == organization_id)
    return list(session.scalars(stmt))


def endpoints_for_update(session: Session) -> list[Endpoint]:
    """Every endpoint by id, locked ``FOR UPDATE`` (re-encrypting their secrets)."""
    return list(session.scalars(select(Endpoint).order_by(Endpoint.id).with_for_update()).all())


def disable_endpoint(endpoint: Endpoint) -> None:
    """Stamp ``disabled_at`` (kept when already disabled); written at the next flush."""
    if endpoint.disabled_at is None:
        endpoint.disabled_at = func.now()
        endpoint.updated_at = func.now()


# --- deliveries ---------------------------------------------------------------------------------


def latest_job_of_organization(session: Session, organization_id: int) -> uuid.UUID | None:
    """The id of the organization's most recently created job, or None."""
    return session.scalars(
        select(ElectronicInvoicingJob.id)
        .where(ElectronicInvoicingJob.organization_id == organization_id)
        .order_by(ElectronicInvoicingJob.created_at.desc(), ElectronicInvoicingJob.id.desc())
        .limit(1)
    ).first()


def insert_delivery(session: Session, *, job_id: uuid.UUID, endpoint_id: uuid.UUID,
                    event_type: str, event_id: str, payload: dict[str, Any], max_attempts: int,
                    dispatched: bool) -> Followup:
    """Insert a pending ``webhook`` follow-up, due now (the trigger inserts the outcome ones;
    this is for the operator's test message). ``dispatched`` stamps ``dispatched_at`` for a
    caller that publishes the wake-up itself. Returns the flushed row."""
    followup = Followup(job_id=job_id, kind=KIND, status=FollowupStatus.PENDING,
                        max_attempts=max_attempts, endpoint_id=endpoint_id, event_type=event_type,
                        event_id=event_id, payload=payload,
                        dispatched_at=func.now() if dispatched else None)
    session.add(followup)
    session.flush()
    session.refresh(followup)
    return followup


def get_delivery(session: Session, delivery_id: uuid.UUID, *,
                 for_update: bool = False) -> Followup | None:
    """The ``webhook`` follow-up ``delivery_id`` (row-locked with ``for_update``), or None
    (also for a follow-up of another kind)."""
    stmt = select(Followup).where(Followup.id == delivery_id, Followup.kind == KIND)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def kind_of(session: Session, followup_id: uuid.UUID) -> str | None:
    """The kind of follow-up ``followup_id`` (``archive``, ``email``, ``webhook``), or None."""
    return session.scalars(select(Followup.kind).where(Followup.id == followup_id)).first()


def claim_delivery(session: Session, followup_id: uuid.UUID, *, lease_seconds: int,
                   worker: str) -> Followup | None:
    """Atomically take a due delivery: ``pending`` → ``processing`` with a lease.

    The compare-and-set of :func:`einvoice.db.followups.claim`, limited to kind ``webhook``: a
    duplicate message, a row already claimed, final, not due, or of another kind all get None
    (STYLE.md habit 5). On success ``attempt_count`` is incremented and the row returned.
    """
    claimed = session.execute(
        update(Followup)
        .where(Followup.id == followup_id, Followup.kind == KIND,
               Followup.status == FollowupStatus.PENDING, Followup.next_retry_at <= func.now())
        .values(status=FollowupStatus.PROCESSING, attempt_count=Followup.attempt_count + 1,
                lease_expires_at=func.now() + text(f"interval '{int(lease_seconds)} seconds'"),
                leased_by=worker, updated_at=func.now())
        .returning(Followup.id)
    ).first()
    if claimed is None:
        return None
    followup = get_delivery(session, followup_id)
    if followup is not None:
        session.refresh(followup)
    return followup


def select_due_for_dispatch(session: Session, *, limit: int,
                            redispatch_seconds: int) -> list[uuid.UUID]:
    """Ids of due ``pending`` deliveries to publish now, oldest first, marked dispatched.

    The rule of :func:`einvoice.db.followups.select_due_for_dispatch` on kind ``webhook``:
    ``next_retry_at`` passed and no wake-up published within ``redispatch_seconds``; rows are
    locked ``FOR UPDATE SKIP LOCKED`` while marked, so two dispatchers never publish one twice.
    """
    stale = text(f"now() - interval '{int(redispatch_seconds)} seconds'")
    ids = list(session.scalars(
        select(Followup.id)
        .where(Followup.kind == KIND, Followup.status == FollowupStatus.PENDING,
               Followup.next_retry_at <= func.now(),
               or_(Followup.dispatched_at.is_(None), Followup.dispatched_at < stale))
        .order_by(Followup.next_retry_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ))
    _mark_dispatched(session, ids)
    return ids


def select_new_for_jobs(session: Session, job_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Ids of the jobs' ``pending`` deliveries never published (``dispatched_at`` NULL: fresh
    from the trigger), marked dispatched; rows locked ``SKIP LOCKED`` as by the dispatcher."""
    if not job_ids:
        return []
    ids = list(session.scalars(
        select(Followup.id)
        .where(Followup.kind == KIND, Followup.job_id.in_(list(job_ids)),
               Followup.status == FollowupStatus.PENDING, Followup.dispatched_at.is_(None))
        .order_by(Followup.created_at, Followup.id)
        .with_for_update(skip_locked=True)
    ))
    _mark_dispatched(session, ids)
    return ids


def _mark_dispatched(session: Session, ids: list[uuid.UUID]) -> None:
    if ids:
        session.execute(update(Followup).where(Followup.id.in_(ids))
                        .values(dispatched_at=func.now()))


def expired_leases(session: Session, *, limit: int) -> list[Followup]:
    """``processing`` deliveries whose lease expired (their worker died), row-locked
    (``SKIP LOCKED``) for the caller to put back."""
    return list(session.scalars(
        select(Followup)
        .where(Followup.kind == KIND, Followup.status == FollowupStatus.PROCESSING,
               Followup.lease_expires_at < func.now())
        .order_by(Followup.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ))


def reset_for_redelivery(session: Session, followup: Followup) -> None:
    """Send a delivery again from the start: ``pending``, attempts reset, due now, error and
    completion cleared, marked dispatched (the caller publishes after the commit). The event
    id and payload are kept, so the receiver sees the same ``webhook-id``. Flushed."""
    followup.status = FollowupStatus.PENDING
    followup.attempt_count = 0
    followup.next_retry_at = func.now()
    followup.dispatched_at = func.now()
    followup.lease_expires_at = None
    followup.leased_by = None
    followup.error_code = None
    followup.error_message = None
    followup.completed_at = None
    followup.updated_at = func.now()
    session.flush()


# --- the attempt log ------------------------------------------------------------------------------


def insert_attempt(session: Session, *, followup_id: uuid.UUID, attempt: int,
                   response_status: int | None, error: str | None,
                   duration_ms: int | None) -> None:
    """Append one row to ``webhook_delivery_attempts``."""
    session.add(Attempt(followup_id=followup_id, attempt=attempt,
                        response_status=response_status, error=error, duration_ms=duration_ms))
    session.flush()


def attempts_of(session: Session, followup_id: uuid.UUID) -> list[Attempt]:
    """The delivery's attempts, oldest first (a redelivered one starts again at attempt 1)."""
    return list(session.scalars(
        select(Attempt).where(Attempt.followup_id == followup_id)
        .order_by(Attempt.created_at, Attempt.id)))


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery with its endpoint and its last attempt (for listings).

    Attributes:
        id, job_id, endpoint_id, organization_id, url, event_type, event_id, status,
        attempt_count, max_attempts, next_retry_at, error_code, error_message, created_at,
        completed_at: the follow-up's and its endpoint's columns.
        attempts: rows in the attempt log (all redeliveries included).
        last_status: the last attempt's HTTP status (None: no answer, or no attempt yet).
        last_error: the last attempt's error.
        last_attempt_at: when the last attempt was logged.
    """

    id: uuid.UUID
    job_id: uuid.UUID
    endpoint_id: uuid.UUID
    organization_id: int
    url: str
    event_type: str
    event_id: str
    status: str
    attempt_count: int
    max_attempts: int
    next_retry_at: datetime
    error_code: str | None
    error_message: str | None
    created_at: datetime
    completed_at: datetime | None
    attempts: int
    last_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None


def list_deliveries(session: Session, *, organization_id: int | None = None,
                    endpoint_id: uuid.UUID | None = None, job_id: uuid.UUID | None = None,
                    limit: int = 50) -> list[DeliveryRow]:
    """The most recent deliveries (newest first), filtered by organization, endpoint or job,
    each with its last attempt."""
    last = (
        select(Attempt.response_status, Attempt.error, Attempt.created_at)
        .where(Attempt.followup_id == Followup.id)
        .order_by(Attempt.created_at.desc(), Attempt.id.desc())
        .limit(1)
        .lateral("last")
    )
    count = (select(func.count()).where(Attempt.followup_id == Followup.id)
             .correlate(Followup).scalar_subquery())
    stmt = (
        select(Followup.id, Followup.job_id, Followup.endpoint_id, Endpoint.organization_id,
               Endpoint.url, Followup.event_type, Followup.event_id, Followup.status,
               Followup.attempt_count, Followup.max_attempts, Followup.next_retry_at,
               Followup.error_code, Followup.error_message, Followup.created_at,
               Followup.completed_at, count.label("attempts"),
               last.c.response_status.label("last_status"), last.c.error.label("last_error"),
               last.c.created_at.label("last_attempt_at"))
        .join(Endpoint, Endpoint.id == Followup.endpoint_id)
        .outerjoin(last, text("true"))
        .where(Followup.kind == KIND)
        .order_by(Followup.created_at.desc(), Followup.id.desc())
        .limit(limit)
    )
    if organization_id is not None:
        stmt = stmt.where(Endpoint.organization_id == organization_id)
    if endpoint_id is not None:
        stmt = stmt.where(Followup.endpoint_id == endpoint_id)
    if job_id is not None:
        stmt = stmt.where(Followup.job_id == job_id)
    return [DeliveryRow(**row._asdict()) for row in session.execute(stmt)]
