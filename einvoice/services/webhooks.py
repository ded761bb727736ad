"""Outcome webhooks: endpoints, deliveries, and the run of one delivery.

An organization registers endpoints (:func:`add_endpoint`: a URL, the event types it wants, a
``whsec_`` secret shown once and stored encrypted with ``EINVOICE_SECRET_KEY``). Each final
transition of one of its jobs inserts one delivery per enabled, subscribed endpoint: a follow-up
of kind ``webhook`` written by the ``einvoice_job_outcome`` trigger (migration 0010) in the
transition's own transaction, its Standard Webhooks body ``{type, timestamp, data}`` and its
event id (``msg_...``) frozen there.

A delivery runs with the follow-ups' guarantees (:mod:`einvoice.services.documents`, STYLE.md
habits 3-5): :func:`deliver` claims it with a compare-and-set and a lease in one short
transaction, POSTs outside any transaction (:class:`einvoice.webhooks.sender.WebhookSender`),
and records in another transaction, only while it still holds the lease: one row in
``webhook_delivery_attempts`` per attempt, and the follow-up's next state as
:func:`einvoice.domain.jobs.followup_transition` decides with the jobs' retry policy
(``EINVOICE_RETRY_BASE_SECONDS`` doubling, full jitter, capped at ``EINVOICE_RETRY_CAP_SECONDS``)
up to the row's ``max_attempts`` (20). Delivery is at least once: a worker that dies mid-POST
leaves its lease to expire and the delivery is sent again (:func:`dispatch_due_deliveries`);
receivers deduplicate on ``webhook-id``.

Outcomes (the follow-up's ``status`` / ``error_code``, and an event on the job):

* a ``2xx``: ``done``, event ``webhook_delivered``;
* ``410 Gone``: ``failed`` / ``webhook_gone`` at once, event ``webhook_failed``; the endpoint
  stays enabled (disabling is the operator's decision: ``einvoice webhooks disable``);
* anything else (another status, a timeout, no connection): ``pending`` again with backoff (no
  event: the attempt log has every try); after ``max_attempts``: ``failed`` /
  ``webhook_undeliverable`` with the last answer, event ``webhook_failed``;
* the endpoint disabled before the delivery ran: ``failed`` / ``endpoint_disabled``, nothing sent.

:func:`redeliver` sends a delivery again from attempt 1 with the same event id;
:func:`send_test` queues a ``webhook.test`` message through the same machinery.

Wake-ups: every delivery goes to the ``webhooks`` queue (``einvoice.deliver_webhook``), so a
slow or dead endpoint never delays a submission or the archive. New deliveries are published by
:func:`dispatch_deliveries_for_jobs` (the job listener, when PostgreSQL notifies it of final
transitions) or, at the latest, by the beat dispatcher :func:`dispatch_due_deliveries`, which
also publishes retries when due and recovers expired leases.

Secrets never leave this module in clear except inside the signed request: not in logs, events,
task arguments, ``repr`` or the attempt log.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from einvoice.crypto import SecretBox
from einvoice.db import followups as followup_repo
from einvoice.db import jobs as job_repo
from einvoice.db import webhooks as repo
from einvoice.db.models import ElectronicInvoicingFollowup, WebhookEndpoint
from einvoice.db.uow import UnitOfWork, add_after_commit
from einvoice.db.webhooks import DeliveryRow
from einvoice.domain.jobs import FollowupOutcome, FollowupStatus, followup_transition
from einvoice.errors import ConfigError
from einvoice.queueing import default_publisher
from einvoice.services.runner import (
    WorkerContext,
    record_retrying,
    retry_policy,
    thread_worker_id,
)
from einvoice.settings import Settings
from einvoice.webhooks import EVENT_TYPES, OUTCOME_EVENT_TYPES, TEST_EVENT_TYPE, WebhookError
from einvoice.webhooks.sender import SendResult, Verdict, WebhookSender, default_sender, encode_body
from einvoice.webhooks.sender import new_secret as _new_secret

log = logging.getLogger(__name__)

Followup = ElectronicInvoicingFollowup

#: Attempts of a delivery before it fails (the trigger's value for outcome deliveries).
MAX_ATTEMPTS = 20
#: Events written on the job.
EVENT_DELIVERED = "webhook_delivered"
EVENT_FAILED = "webhook_failed"
EVENT_REDELIVERY = "webhook_redelivery_requested"
EVENT_TEST = "webhook_test_requested"

_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)


class WebhookPublisher(Protocol):
    """Sends the wake-up of a delivery (``CeleryPublisher`` does)."""

    def publish_webhook(self, followup_id: uuid.UUID) -> None:
        """Ask a worker to run ``einvoice.deliver_webhook(followup_id)`` on the webhooks queue."""


# ------------------------------------------------------------------------------------------
# Endpoints
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as shown to an operator: everything but its secret.

    Attributes:
        id: ``webhook_endpoints.id``.
        organization_id: the organization whose outcomes it receives.
        url: where messages are POSTed.
        event_types: the types it receives; empty: all.
        description: the operator's note.
        disabled_at: when it was disabled (UTC), None while enabled.
        created_at: when it was added (UTC).
    """

    id: uuid.UUID
    organization_id: int
    url: str
    event_types: tuple[str, ...]
    description: str | None
    disabled_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> EndpointView:
        """The view of a ``webhook_endpoints`` row."""
        return cls(id=row.id, organization_id=row.organization_id, url=row.url,
                   event_types=tuple(row.event_types or ()), description=row.description,
                   disabled_at=row.disabled_at, created_at=row.created_at)


@dataclass(frozen=True)
class NewEndpoint:
    """A just-added endpoint and its secret, to be shown once (``repr`` hides the secret)."""

    endpoint: EndpointView
    secret: str = field(repr=False)


def _parse_id(value: uuid.UUID | str, what: str, reason: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise WebhookError(f"{value!r} is not a {what} id (a UUID)", reason=reason) from None


def _require_endpoint(session: Session, endpoint_id: uuid.UUID | str, *,
                      for_update: bool = False) -> WebhookEndpoint:
    key = _parse_id(endpoint_id, "webhook endpoint", "unknown_endpoint")
    endpoint = repo.get_endpoint(session, key, for_update=for_update)
    if endpoint is None:
        raise WebhookError(f"no webhook endpoint {key}", reason="unknown_endpoint")
    return endpoint


def add_endpoint(session: Session, box: SecretBox, *, organization_id: int, url: str,
                 event_types: Sequence[str] = (), description: str | None = None) -> NewEndpoint:
    """Register an endpoint of ``organization_id`` with a new secret. Does not commit.

    Args:
        session: the caller's session (flushed here, committed by the caller).
        box: encrypts the secret (``EINVOICE_SECRET_KEY``).
        organization_id: an ``organizations.id``.
        url: ``http://`` or ``https://`` URL the messages are POSTed to.
        event_types: the types wanted (:data:`einvoice.webhooks.OUTCOME_EVENT_TYPES`); empty:
            all. Duplicates are dropped.
        description: a note for operators.
    Returns:
        The endpoint and its secret (``whsec_`` + base64 of 24 random bytes), the only time the
        secret is available in clear.
    Raises:
        WebhookError: ``bad_webhook_url``, ``unknown_event_type`` or ``unknown_organization``.
    """
    url = url.strip()
    if not _URL.match(url):
        raise WebhookError(f"{url!r} is not an http:// or https:// URL", reason="bad_webhook_url")
    wanted = list(dict.fromkeys(t.strip() for t in event_types if t.strip()))
    unknown = [t for t in wanted if t not in OUTCOME_EVENT_TYPES]
    if unknown:
        raise WebhookError(f"unknown event type(s) {', '.join(unknown)}; known: "
                           f"{', '.join(OUTCOME_EVENT_TYPES)}", reason="unknown_event_type")
    if not repo.organization_exists(session, organization_id):
        raise WebhookError(f"no organization {organization_id}", reason="unknown_organization")
    secret = _new_secret()
    row = repo.insert_endpoint(session, organization_id=organization_id, url=url,
                               secret_encrypted=box.encrypt(secret), event_types=wanted,
                               description=description)
    return NewEndpoint(EndpointView.of(row), secret)


def list_endpoints(session: Session, organization_id: int | None = None) -> list[EndpointView]:
    """Endpoints of ``organization_id`` (or of every organization), without secrets."""
    return [EndpointView.of(row) for row in repo.list_endpoints(session, organization_id)]


def disable_endpoint(session: Session, endpoint_id: uuid.UUID | str) -> EndpointView:
    """Disable an endpoint: no new deliveries are created for it, and its pending ones fail
    with ``endpoint_disabled`` when they come up. Idempotent. Does not commit.

    Raises:
        WebhookError: ``unknown_endpoint``.
    """
    endpoint = _require_endpoint(session, endpoint_id, for_update=True)
    repo.disable_endpoint(endpoint)
    session.flush()
    session.refresh(endpoint)
    return EndpointView.of(endpoint)


# ------------------------------------------------------------------------------------------
# Deliveries: listing, test message, redelivery
# ------------------------------------------------------------------------------------------


def list_deliveries(session: Session, *, organization_id: int | None = None,
                    endpoint_id: uuid.UUID | str | None = None,
                    job_id: uuid.UUID | None = None, limit: int = 20) -> list[DeliveryRow]:
    """The most recent deliveries, newest first, with their last attempt's HTTP status.

    Raises:
        WebhookError: ``unknown_endpoint`` for an ``endpoint_id`` that is not a UUID.
    """
    key = (None if endpoint_id is None
           else _parse_id(endpoint_id, "webhook endpoint", "unknown_endpoint"))
    return repo.list_deliveries(session, organization_id=organization_id, endpoint_id=key,
                                job_id=job_id, limit=limit)


def delivery_attempts(session: Session, delivery_id: uuid.UUID | str) -> list[dict[str, Any]]:
    """The attempt log of a delivery: ``[{attempt, response_status, error, duration_ms,
    created_at}]``, oldest first.

    Raises:
        WebhookError: ``unknown_delivery``.
    """
    key = _parse_id(delivery_id, "delivery", "unknown_delivery")
    if repo.get_delivery(session, key) is None:
        raise WebhookError(f"no webhook delivery {key}", reason="unknown_delivery")
    return [{"attempt": a.attempt, "response_status": a.response_status, "error": a.error,
             "duration_ms": a.duration_ms, "created_at": a.created_at}
            for a in repo.attempts_of(session, key)]


def _publish_after_commit(session: Session, publisher: WebhookPublisher | None,
                          followup_id: uuid.UUID) -> None:
    def publish() -> None:
        (publisher or default_publisher()).publish_webhook(followup_id)

    add_after_commit(session, publish)


def _event_timestamp(at: datetime) -> str:
    """The body's ``timestamp``, in the trigger's format (``2026-12-07T23:01:02.345678Z``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def send_test(session: Session, endpoint_id: uuid.UUID | str, *,
              publisher: WebhookPublisher | None = None, actor: str = "operator") -> uuid.UUID:
    """Queue a ``webhook.test`` message to one endpoint, published after the caller commits.

    The delivery is an ordinary ``webhook`` follow-up (same signing, retries, attempt log).
    A follow-up belongs to a job, so it is attached to the organization's most recent job,
    which also gets its ``webhook_test_requested`` and outcome events. Body: ``{"type":
    "webhook.test", "timestamp", "data": {"endpoint_id", "organization_id", "job_id",
    "message"}}``. Does not commit.

    Returns:
        The delivery id.
    Raises:
        WebhookError: ``unknown_endpoint``, ``endpoint_disabled``, or ``no_job_for_test`` (the
            organization has no job yet to attach the delivery to).
    """
    endpoint = _require_endpoint(session, endpoint_id)
    if endpoint.disabled_at is not None:
        raise WebhookError(f"webhook endpoint {endpoint.id} is disabled",
                           reason="endpoint_disabled")
    job_id = repo.latest_job_of_organization(session, endpoint.organization_id)
    if job_id is None:
        raise WebhookError(f"organization {endpoint.organization_id} has no job yet; a test "
                           "message is attached to its latest job", reason="no_job_for_test")
    payload = {"type": TEST_EVENT_TYPE, "timestamp": _event_timestamp(datetime.now(UTC)),
               "data": {"endpoint_id": str(endpoint.id),
                        "organization_id": endpoint.organization_id, "job_id": str(job_id),
                        "message": "test message sent by an operator"}}
    delivery = repo.insert_delivery(session, job_id=job_id, endpoint_id=endpoint.id,
                                    event_type=TEST_EVENT_TYPE,
                                    event_id=f"msg_{uuid.uuid4().hex}", payload=payload,
                                    max_attempts=MAX_ATTEMPTS, dispatched=True)
    job_repo.add_event(session, job_id, EVENT_TEST, code=actor,
                       message=f"test webhook to endpoint {endpoint.id} requested by {actor}",
                       metadata={"followup_id": str(delivery.id), "endpoint_id": str(endpoint.id),
                                 "event_id": delivery.event_id, "actor": actor})
    _publish_after_commit(session, publisher, delivery.id)
    return delivery.id


def redeliver(session: Session, delivery_id: uuid.UUID | str, *,
              publisher: WebhookPublisher | None = None, actor: str = "operator") -> uuid.UUID:
    """Send a delivery again from attempt 1, with the same event id (``webhook-id``) and body,
    so a receiver that got it already deduplicates. Published after the caller commits.

    Allowed for a ``done``, ``failed`` or ``pending`` delivery (a pending one is brought
    forward and its attempts reset); its old attempts stay in the log. Does not commit.

    Returns:
        The delivery id.
    Raises:
        WebhookError: ``unknown_delivery``, ``delivery_in_flight`` (a worker is sending it
            now), or ``endpoint_disabled``.
    """
    key = _parse_id(delivery_id, "delivery", "unknown_delivery")
    delivery = repo.get_delivery(session, key, for_update=True)
    if delivery is None:
        raise WebhookError(f"no webhook delivery {key}", reason="unknown_delivery")
    if delivery.status == FollowupStatus.PROCESSING:
        raise WebhookError(f"delivery {key} is being sent right now; try again in a moment",
                           reason="delivery_in_flight")
    assert delivery.endpoint_id is not None  # a CHECK of kind webhook
    endpoint = _require_endpoint(session, delivery.endpoint_id)
    if endpoint.disabled_at is not None:
        raise WebhookError(f"webhook endpoint {endpoint.id} is disabled",
                           reason="endpoint_disabled")
    previous = delivery.status
    repo.reset_for_redelivery(session, delivery)
    job_repo.add_event(session, delivery.job_id, EVENT_REDELIVERY, code=actor,
                       message=f"redelivery of {delivery.event_type} {delivery.event_id} "
                       f"({previous}) requested by {actor}",
                       metadata={"followup_id": str(delivery.id),
                                 "endpoint_id": str(endpoint.id), "event_id": delivery.event_id,
                                 "previous_status": previous, "actor": actor})
    _publish_after_commit(session, publisher, delivery.id)
    return delivery.id


# ------------------------------------------------------------------------------------------
# Running a delivery: claim, POST, record
# ------------------------------------------------------------------------------------------


@dataclass
class _Claimed:
    followup_id: uuid.UUID
    job_id: uuid.UUID
    endpoint_id: uuid.UUID
    attempt: int
    url: str = field(repr=False)
    event_type: str
    event_id: str
    body: bytes = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    # Why no POST is made (a secret that cannot be decrypted): (code, message).
    problem: tuple[str, str] | None = None


def _event(session: Session, followup: Followup, event_type: str, *, code: str | None,
           message: str, **metadata: Any) -> None:
    job_repo.add_event(session, followup.job_id, event_type, code=code, message=message,
                       metadata={"followup_id": str(followup.id),
                                 "endpoint_id": str(followup.endpoint_id),
                                 "webhook_event_type": followup.event_type,
                                 "event_id": followup.event_id,
                                 "attempt": followup.attempt_count, **metadata})


def _fail(session: Session, followup: Followup, code: str, message: str, **metadata: Any) -> None:
    followup_repo.finish(followup, FollowupStatus.FAILED, code=code, message=message)
    _event(session, followup, EVENT_FAILED, code=code, message=message, **metadata)


def _box(ctx: WorkerContext) -> SecretBox:
    return ctx.secret_box or SecretBox.from_settings(ctx.settings)


def _claim(ctx: WorkerContext, followup_id: uuid.UUID, worker: str) -> _Claimed | str:
    with UnitOfWork(ctx.session_factory) as uow:
        session = uow.session
        followup = repo.claim_delivery(session, followup_id,
                                       lease_seconds=ctx.settings.einvoice_lease_seconds,
                                       worker=worker)
        if followup is None:
            return "not_due"  # claimed already, final, not due, unknown or not a webhook
        # CHECK electronic_invoicing_followups_webhook_check: both set on a webhook row.
        assert followup.endpoint_id is not None
        assert followup.event_id is not None
        endpoint = repo.get_endpoint(session, followup.endpoint_id)
        if followup.attempt_count > followup.max_attempts:
            _fail(session, followup, "webhook_undeliverable",
                  (f"gave up after {followup.max_attempts} attempts; last error: "
                   f"{followup.error_code or 'none'}: {followup.error_message or ''}").rstrip(": "))
        elif endpoint is None or endpoint.disabled_at is not None:
            _fail(session, followup, "endpoint_disabled",
                  "the endpoint was disabled before this delivery was sent; nothing was sent")
        else:
            claimed = _Claimed(
                followup_id=followup.id, job_id=followup.job_id, endpoint_id=endpoint.id,
                attempt=followup.attempt_count, url=endpoint.url,
                event_type=followup.event_type or "", event_id=followup.event_id,
                body=encode_body(followup.payload or {}))
            try:
                claimed.secret = _box(ctx).decrypt(endpoint.secret_encrypted)
            except ConfigError as exc:
                claimed.problem = (exc.reason, exc.message)
            uow.commit()
            return claimed
        uow.commit()
        return FollowupStatus.FAILED.value


def _send(sender: WebhookSender, claimed: _Claimed) -> SendResult:
    if claimed.problem is not None or claimed.secret is None:
        code, message = claimed.problem or ("secret_missing", "no secret")
        return SendResult(Verdict.RETRY, None, f"{code}: {message}", 0)
    return sender.send(claimed.url, claimed.secret, claimed.event_id, claimed.body)


_OUTCOMES = {Verdict.DELIVERED: FollowupOutcome.DONE, Verdict.GONE: FollowupOutcome.FAILED,
             Verdict.RETRY: FollowupOutcome.RETRYABLE}


def _record(ctx: WorkerContext, claimed: _Claimed, worker: str, result: SendResult) -> str:
    with UnitOfWork(ctx.session_factory) as uow:
        session = uow.session
        followup = repo.get_delivery(session, claimed.followup_id, for_update=True)
        if (followup is None or followup.status != FollowupStatus.PROCESSING
                or followup.leased_by != worker or followup.attempt_count != claimed.attempt):
            log.warning("webhook delivery %s: lease lost before recording %s",
                        claimed.followup_id, result.verdict)
            return "lease_lost"
        repo.insert_attempt(session, followup_id=followup.id, attempt=claimed.attempt,
                            response_status=result.status, error=result.error,
                            duration_ms=result.duration_ms)
        decision = followup_transition(followup.attempt_count, _OUTCOMES[result.verdict],
                                       retry_policy(ctx.settings, followup.max_attempts),
                                       rng=ctx.rng)
        details = {"response_status": result.status, "duration_ms": result.duration_ms}
        outcome: str = decision.status
        if decision.status == FollowupStatus.DONE:
            message = f"{claimed.event_type} delivered (HTTP {result.status})"
            followup_repo.finish(followup, FollowupStatus.DONE, code=None, message=message)
            _event(session, followup, EVENT_DELIVERED, code=str(result.status), message=message,
                   **details)
        elif decision.status == FollowupStatus.PENDING:
            code = (f"http_{result.status}" if result.status is not None
                    else (result.error or "retry").split(":", 1)[0])
            followup_repo.reschedule(followup, delay=decision.delay or 0.0, code=code,
                                     message=result.error or "", count_attempt=True)
            outcome = "retry"
        elif result.verdict is Verdict.GONE:
            _fail(session, followup, "webhook_gone",
                  "the receiver answered 410 Gone: it asked for no more deliveries; the "
                  "endpoint stays enabled until an operator disables it", **details)
        else:
            _fail(session, followup, "webhook_undeliverable",
                  f"gave up after {followup.attempt_count} attempts; last: {result.error}",
                  **details)
        uow.commit()
    return outcome


def deliver(ctx: WorkerContext, followup_id: uuid.UUID | str, *,
            sender: WebhookSender | None = None) -> str:
    """Run one delivery: claim it, POST the signed message, record the attempt and outcome.

    Args:
        ctx: the process's resources (database, settings, the secret box).
        followup_id: a ``webhook`` follow-up's id.
        sender: the HTTP sender (default: the process's :func:`default_sender`).
    Returns:
        ``not_due`` (duplicate message, final, not due, unknown, or not a webhook: nothing
        done), ``done``, ``retry``, ``failed`` or ``lease_lost``.
    Raises:
        sqlalchemy.exc.OperationalError: PostgreSQL unreachable while claiming (nothing
            changed), or for longer than 60 s while recording (the lease expires and the
            dispatcher sends the delivery again).
    """
    key = uuid.UUID(str(followup_id))
    worker = thread_worker_id(ctx)
    claimed = _claim(ctx, key, worker)
    if isinstance(claimed, str):
        return claimed
    result = _send(sender or default_sender(), claimed)
    outcome = record_retrying(lambda: _record(ctx, claimed, worker, result))
    log.info("webhook %s %s (delivery %s, endpoint %s, job %s) attempt %d: %s HTTP %s %s",
             claimed.event_type, claimed.event_id, key, claimed.endpoint_id, claimed.job_id,
             claimed.attempt, outcome, result.status, result.error or "")
    return outcome


# ------------------------------------------------------------------------------------------
# Dispatchers
# ------------------------------------------------------------------------------------------


def dispatch_due_deliveries(session_factory: sessionmaker[Session],
                            publisher: WebhookPublisher, settings: Settings) -> int:
    """Recover expired leases, then publish ``einvoice.deliver_webhook`` for due deliveries
    (beat, every ``EINVOICE_DISPATCH_INTERVAL``).

    A delivery whose worker died is logged as an attempt without answer (``lease_expired``)
    and sent again now (at least once: the receiver deduplicates on ``webhook-id``). Selection
    and marking happen in one short transaction; messages are sent after it commits (a crash in
    between is repaired after ``EINVOICE_REDISPATCH_SECONDS``).

    Returns:
        How many wake-ups were published.
    """
    with UnitOfWork(session_factory) as uow:
        session = uow.session
        for followup in repo.expired_leases(session, limit=settings.einvoice_dispatch_batch):
            holder = followup.leased_by or "unknown worker"
            message = f"lease held by {holder} expired mid-delivery; sent again"
            repo.insert_attempt(session, followup_id=followup.id,
                                attempt=followup.attempt_count, response_status=None,
                                error=f"lease_expired: {message}", duration_ms=None)
            decision = followup_transition(followup.attempt_count, FollowupOutcome.LEASE_EXPIRED,
                                           retry_policy(settings, followup.max_attempts))
            followup_repo.reschedule(followup, delay=decision.delay or 0.0,
                                     code="lease_expired", message=message,
                                     count_attempt=decision.count_attempt)
        ids = repo.select_due_for_dispatch(session, limit=settings.einvoice_dispatch_batch,
                                           redispatch_seconds=settings.einvoice_redispatch_seconds)
        uow.commit()
    for followup_id in ids:
        publisher.publish_webhook(followup_id)
    if ids:
        log.info("dispatched %d due webhook deliveries", len(ids))
    return len(ids)


def dispatch_deliveries_for_jobs(session_factory: sessionmaker[Session],
                                 publisher: WebhookPublisher,
                                 job_ids: Sequence[uuid.UUID]) -> int:
    """Publish the new deliveries of ``job_ids`` at once (the job listener calls this on
    a notification of their final transition, so a delivery does not wait for the beat
    dispatcher).

    Marks the jobs' ``pending`` deliveries that were never published (``dispatched_at`` NULL)
    as dispatched in one short transaction, then publishes them after the commit; rows another
    dispatcher holds are skipped (it publishes them).

    Returns:
        How many wake-ups were published.
    """
    with UnitOfWork(session_factory) as uow:
        ids = repo.select_new_for_jobs(uow.session, list(job_ids))
        uow.commit()
    for followup_id in ids:
        publisher.publish_webhook(followup_id)
    return len(ids)


def is_delivery(session_factory: sessionmaker[Session], followup_id: uuid.UUID) -> bool:
    """Whether follow-up ``followup_id`` is a webhook delivery (for a caller that got a
    follow-up id of unknown kind)."""
    with UnitOfWork(session_factory) as uow:
        return repo.kind_of(uow.session, followup_id) == repo.KIND


__all__ = ["EVENT_TYPES", "MAX_ATTEMPTS", "DeliveryRow", "EndpointView", "NewEndpoint",
           "WebhookPublisher", "add_endpoint", "deliver", "delivery_attempts",
           "disable_endpoint", "dispatch_deliveries_for_jobs", "dispatch_due_deliveries",
           "is_delivery", "list_deliveries", "list_endpoints", "redeliver", "send_test"]
