"""Follow-ups of accepted jobs: the documents archive and the e-mail resend.

A follow-up is a row of ``electronic_invoicing_followups`` with the pipeline's guarantees
(STYLE.md habits 3-5): a wake-up message carries only its id; :func:`run_followup` claims it with a
compare-and-set and a lease in one short transaction, calls Factus outside any transaction, and
records the outcome in another, only while it still holds the lease (the runner it shares with
the submissions, :mod:`einvoice.services.runner`); transient failures are
retried as :func:`einvoice.domain.jobs.followup_transition` decides (the jobs' one backoff
formula) at ``next_retry_at`` (the beat dispatcher
:func:`dispatch_due_followups` publishes due ones and recovers expired leases); every step is an
event on the parent job. A follow-up never changes the job itself: an accepted job stays
accepted whatever happens to its PDF or its e-mails.

``archive`` (one per job, scheduled by :func:`schedule_archive` when the job is accepted):
downloads the PDF and the XML (FACTUS_API.md §6.4, §7.1) and stores each once, with its SHA-256
and size, through a :class:`DocumentStore` (:class:`einvoice.db.followups.DatabaseDocumentStore`). Only the missing files are downloaded, and storing is
``ON CONFLICT DO NOTHING``: a second run stores nothing new. Events: ``archived``,
``archive_retry``, ``archive_failed``, ``archive_requested``.

``email`` (one per operator request, :func:`request_email_resend`): one
``POST /v1/bills/send-email/{number}`` (§6.5). Factus allows 2 e-mails per document per day (§6.5,
an SDK comment; the simulator enforces it with a 409): a request past that is failed with
``email_daily_limit`` before any call, and a 409 from Factus ends the same way. An e-mail whose
answer never came (read timeout, dropped connection, a worker killed mid-call) may have gone
out, so it is failed with ``email_outcome_unknown`` instead of being sent again. Events:
``email_requested``, ``email_sent``, ``email_retry``, ``email_failed``.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from einvoice.db import followups as followup_repo
from einvoice.db import jobs as job_repo
from einvoice.db import operator_jobs as operator_repo
from einvoice.db.followups import DatabaseDocumentStore, StoredDocument
from einvoice.db.models import (
    STORED_DOCUMENT_KINDS,
    ElectronicInvoicingFollowup,
    ElectronicInvoicingJob,
)
from einvoice.db.uow import UnitOfWork, add_after_commit
from einvoice.domain.jobs import (
    FollowupOutcome,
    FollowupStatus,
    JobStatus,
    followup_transition,
)
from einvoice.errors import ConfigError, JobError
from einvoice.factus.client import FactusClient
from einvoice.factus.errors import (
    ConflictError,
    FactusError,
    RateLimitedError,
    TransportError,
)
from einvoice.factus.schemas import DownloadedFile
from einvoice.factus.tokens import FactusAccount
from einvoice.queueing import default_publisher
from einvoice.services import webhooks
from einvoice.services.accounts import account_for_organization
from einvoice.services.runner import (
    WorkerContext,
    record_retrying,
    retry_policy,
    thread_worker_id,
)
from einvoice.settings import Settings, get_settings

log = logging.getLogger(__name__)

Followup = ElectronicInvoicingFollowup
Job = ElectronicInvoicingJob

#: Factus's e-mail quota per document per Bogotá day (FACTUS_API.md §6.5: FJS1 "max 2 per bill
#: per day", an SDK comment; the simulator answers the 3rd with 409).
EMAILS_PER_DOCUMENT_PER_DAY = 2
#: Document types whose file downloads the client offers (§6.4 bills, §7.1 credit notes).
ARCHIVABLE_TYPES = ("invoice", "credit_note")
#: Document types whose e-mail can be resent (§6.5 bills, §7.1 credit notes).
EMAIL_TYPES = ("invoice", "credit_note")

# A 409 on send-email for a document Factus has not validated yet ("El documento X no ha sido
# validado", §5.3) settles on its own; any other 409 there is the daily quota.
_NOT_VALIDATED = re.compile(r"no\s+ha\s+sido\s+validad", re.IGNORECASE)
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class FollowupPublisher(Protocol):
    """Sends the wake-up message of a follow-up (``CeleryPublisher`` does)."""

    def publish_followup(self, followup_id: uuid.UUID) -> None:
        """Ask a worker to run ``einvoice.run_followup(followup_id)``."""


# ------------------------------------------------------------------------------------------
# The file store
# ------------------------------------------------------------------------------------------


class DocumentStore(Protocol):
    """Where the archive keeps a job's files (a port: the database today, a bucket tomorrow)."""

    def kinds(self, job_id: uuid.UUID) -> set[str]:
        """The kinds (``pdf``, ``xml``) already stored for ``job_id``."""

    def put(self, job_id: uuid.UUID, kind: str, file_name: str, content: bytes) -> StoredDocument | None:
        """Store ``content`` as the job's ``kind`` file unless one is stored already.

        Returns the stored document (with SHA-256 and size), or None when the job already had
        that kind (nothing is overwritten: the first validated file is the one kept).
        """

    def get(self, job_id: uuid.UUID, kind: str) -> StoredDocument | None:
        """The job's ``kind`` file with its bytes, or None. Raises ``JobError``
        (``document_corrupt``) when the bytes no longer match their SHA-256 or size."""


# ------------------------------------------------------------------------------------------
# Producers: schedule the archive, request an e-mail
# ------------------------------------------------------------------------------------------


def _publish_after_commit(session: Session, publisher: FollowupPublisher | None,
                          followup_id: uuid.UUID) -> None:
    def publish() -> None:
        (publisher or default_publisher()).publish_followup(followup_id)

    add_after_commit(session, publish)


def schedule_archive(
    session: Session,
    job_id: uuid.UUID,
    *,
    publisher: FollowupPublisher | None = None,
    max_attempts: int | None = None,
) -> uuid.UUID | None:
    """Insert the job's ``archive`` follow-up (due now) and publish it after the commit.

    Called when a job is accepted, in the transaction that records the acceptance: a rollback
    drops both. Idempotent: a job that already has an archive follow-up gets nothing new.

    Args:
        session: the caller's session (flushed, never committed here).
        job_id: an accepted job's id.
        publisher: where the wake-up goes (default: the process's Celery publisher).
        max_attempts: download attempts before giving up (default ``EINVOICE_MAX_ATTEMPTS``).
    Returns:
        The new follow-up's id, or None when the job already had one.
    """
    attempts = max_attempts or get_settings().einvoice_max_attempts
    followup_id = followup_repo.insert_archive(session, job_id, max_attempts=attempts,
                                               dispatched=True)
    if followup_id is not None:
        _publish_after_commit(session, publisher, followup_id)
    return followup_id


def _accepted_job(session: Session, job_id: uuid.UUID | str, action: str) -> Job:
    job = operator_repo.require_job(session, job_id, for_update=True)
    if job.status != JobStatus.ACCEPTED or not job.document_number:
        raise JobError(f"job {job.id} is {job.status}; only an accepted job's document can be "
                       f"{action}", reason="not_accepted")
    return job


def request_archive(
    session: Session,
    job_id: uuid.UUID | str,
    *,
    publisher: FollowupPublisher | None = None,
    actor: str = "operator",
) -> Followup:
    """Archive an accepted job's documents now: schedule it (a job accepted before the archive
    existed) or re-arm a ``failed`` archive (attempts reset, due now). Does not commit.

    Returns:
        The archive follow-up (``pending``, or ``processing`` if one is running already).
    Raises:
        JobError: unknown job, a job not accepted (``not_accepted``), or an archive that is
            already ``done`` (``already_archived``).
    """
    job = _accepted_job(session, job_id, "archived")
    followup = followup_repo.archive_of_job(session, job.id, for_update=True)
    if followup is None:
        schedule_archive(session, job.id, publisher=publisher)
        followup = followup_repo.archive_of_job(session, job.id)
        assert followup is not None
    elif followup.status == FollowupStatus.DONE:
        raise JobError(f"job {job.id}'s PDF and XML are stored already", reason="already_archived")
    elif followup.status == FollowupStatus.FAILED:
        followup_repo.rearm(session, followup)
        _publish_after_commit(session, publisher, followup.id)
    else:
        return followup
    job_repo.add_event(session, job.id, "archive_requested", code=actor,
                       message=f"archive of the PDF and XML requested by {actor}",
                       metadata={"followup_id": str(followup.id), "actor": actor})
    return followup


def request_email_resend(
    session: Session,
    job_id: uuid.UUID | str,
    to: str | None = None,
    *,
    publisher: FollowupPublisher | None = None,
    actor: str = "operator",
) -> Followup:
    """Queue one e-mail of an accepted job's document (``POST /v1/bills/send-email/{number}``,
    FACTUS_API.md §6.5), published after the caller commits. Does not commit.

    Args:
        job_id: an accepted invoice or credit-note job.
        to: the address to send to; None: the customer's address in the document that was
            sent (``request_payload.customer.email``; Factus requires an address).
        actor: who asked (recorded in the ``email_requested`` event).
    Returns:
        The new ``email`` follow-up (``pending``).
    Raises:
        JobError: unknown job, a job that is not ``accepted`` (``not_accepted``), a document
            type Factus cannot e-mail (``email_unsupported``), a malformed address
            (``bad_email_address``), or no address given and none in the document
            (``no_email_address``).
    """
    job = _accepted_job(session, job_id, "e-mailed")
    if job.document_type not in EMAIL_TYPES:
        raise JobError(f"job {job.id} is a {job.document_type}; e-mail resend is supported for "
                       "invoices and credit notes", reason="email_unsupported")
    customer = (job.request_payload or {}).get("customer") or {}
    address = to.strip() if to else str(customer.get("email") or "").strip() or None
    if address is None:
        raise JobError(f"job {job.id}: no address given and the document's customer has no "
                       "e-mail; give one with --to", reason="no_email_address")
    if not _ADDRESS.match(address):
        raise JobError(f"{address!r} is not an e-mail address", reason="bad_email_address")
    followup = followup_repo.insert_email(session, job.id, to_address=address,
                                          max_attempts=get_settings().einvoice_max_attempts,
                                          dispatched=True)
    job_repo.add_event(session, job.id, "email_requested", code=actor,
                       message=f"e-mail of {job.document_number} to "
                       f"{address or 'the customer'} requested by {actor}",
                       metadata={"followup_id": str(followup.id), "to": address, "actor": actor})
    _publish_after_commit(session, publisher, followup.id)
    return followup


# ------------------------------------------------------------------------------------------
# Reading the archive
# ------------------------------------------------------------------------------------------


def get_document(
    session: Session, job_id: uuid.UUID | str, kind: str, *, store: DocumentStore | None = None
) -> tuple[str, bytes]:
    """The stored ``kind`` (``pdf`` | ``xml``) file of a job: ``(file_name, bytes)``.

    Raises:
        JobError: bad or unknown job id, an unknown kind, nothing stored yet (the message says
            where the archive stands), or bytes that no longer match their SHA-256.
    """
    if kind not in STORED_DOCUMENT_KINDS:
        raise JobError(f"unknown document kind {kind!r} (pdf or xml)", reason="bad_document_kind")
    job = operator_repo.require_job(session, job_id)
    key = job.id
    document = (store or DatabaseDocumentStore(session)).get(key, kind)
    if document is None or document.content is None:
        raise JobError(f"job {key} has no stored {kind.upper()}: {_archive_state(session, job)}",
                       reason="document_not_stored")
    return document.file_name, document.content


def _archive_state(session: Session, job: Job) -> str:
    if job.status != JobStatus.ACCEPTED:
        return f"the job is {job.status}; documents are archived after acceptance"
    archive = followup_repo.archive_of_job(session, job.id)
    if archive is None:
        return "no archive scheduled (accepted before the archive existed); run `einvoice docs archive`"
    state = f"archive {archive.status}, attempt {archive.attempt_count}/{archive.max_attempts}"
    if archive.error_code:
        state += f", last error {archive.error_code}: {archive.error_message or ''}".rstrip(": ")
    return state


def followup_report(session: Session, job_id: uuid.UUID | str) -> dict[str, Any]:
    """What an operator sees of a job's follow-ups.

    Returns ``{"job_id", "status", "number", "documents": [{kind, file_name, sha256, size_bytes,
    created_at}], "followups": [{id, kind, status, attempt_count, max_attempts, to_address,
    next_retry_at, error_code, error_message, completed_at, created_at}]}``.
    Raises ``JobError`` for a bad or unknown job id.
    """
    job = operator_repo.require_job(session, job_id)
    key = job.id
    return {
        "job_id": str(job.id), "status": job.status, "number": job.document_number,
        "documents": followup_repo.documents_of_job(session, key),
        "followups": [
            {"id": str(f.id), "kind": f.kind, "status": f.status,
             "attempt_count": f.attempt_count, "max_attempts": f.max_attempts,
             "to_address": f.to_address, "next_retry_at": f.next_retry_at,
             "error_code": f.error_code, "error_message": f.error_message,
             "completed_at": f.completed_at, "created_at": f.created_at}
            for f in followup_repo.followups_for_job(session, key)
        ],
    }


# ------------------------------------------------------------------------------------------
# Running a follow-up: claim, call Factus, record
# ------------------------------------------------------------------------------------------


@dataclass
class _Claimed:
    followup_id: uuid.UUID
    job_id: uuid.UUID
    kind: str
    attempt: int
    document_type: str
    number: str
    account: FactusAccount
    to_address: str | None
    missing: list[str]


@dataclass
class _Outcome:
    """What the Factus step learned; the record step writes it."""

    kind: FollowupOutcome
    code: str | None = None
    message: str = ""
    # ``held``: the wait Factus asked for (Retry-After); other delays are the domain's.
    delay: float = 0.0
    files: dict[str, DownloadedFile] = field(default_factory=dict)


#: The event written on the parent job for each (kind, status) a follow-up reaches.
EVENT_TYPES = {
    ("archive", FollowupStatus.DONE): "archived",
    ("archive", FollowupStatus.PENDING): "archive_retry",
    ("archive", FollowupStatus.FAILED): "archive_failed",
    ("email", FollowupStatus.DONE): "email_sent",
    ("email", FollowupStatus.PENDING): "email_retry",
    ("email", FollowupStatus.FAILED): "email_failed",
}


def _event(session: Session, followup: Followup, *, code: str | None, message: str,
           **metadata: Any) -> None:
    job_repo.add_event(session, followup.job_id,
                       EVENT_TYPES[(followup.kind, FollowupStatus(followup.status))],
                       code=code, message=message,
                       metadata={"followup_id": str(followup.id),
                                 "attempt": followup.attempt_count, **metadata})


def _finish(session: Session, followup: Followup, status: FollowupStatus, *, code: str | None,
            message: str, **metadata: Any) -> None:
    """Move a claimed follow-up to ``done`` or ``failed`` with an event on the job."""
    followup_repo.finish(followup, status, code=code, message=message)
    _event(session, followup, code=code, message=message, **metadata)


def _reschedule(session: Session, followup: Followup, *, delay: float, code: str, message: str,
                count_attempt: bool, **metadata: Any) -> None:
    """Back to ``pending``, due in ``delay`` seconds, with an ``*_retry`` event on the job."""
    followup_repo.reschedule(followup, delay=delay, code=code, message=message,
                             count_attempt=count_attempt)
    _event(session, followup, code=code, message=message, delay_s=round(delay, 3), **metadata)


def _claim(ctx: WorkerContext, followup_id: uuid.UUID, worker: str) -> _Claimed | str:
    with UnitOfWork(ctx.session_factory) as uow:
        session = uow.session
        followup = followup_repo.claim(session, followup_id,
                                       lease_seconds=ctx.settings.einvoice_lease_seconds,
                                       worker=worker)
        if followup is None:
            return "not_due"  # already claimed, final, not due, or unknown: nothing to do
        work = _work(ctx, session, followup)
        if isinstance(work, tuple):
            status, code, message = work
            _finish(session, followup, status, code=code, message=message)
            uow.commit()
            return status
        uow.commit()
        return work


def _work(ctx: WorkerContext, session: Session,
             followup: Followup) -> _Claimed | tuple[FollowupStatus, str | None, str]:
    """The claimed work, or (final status, code, message) when no call must be made."""
    if followup.attempt_count > followup.max_attempts:
        return (FollowupStatus.FAILED, "attempts_exhausted",
                (f"gave up after {followup.max_attempts} attempts; last error: "
                 f"{followup.error_code or 'none'}: {followup.error_message or ''}").rstrip(": "))
    job = job_repo.get_job(session, followup.job_id)
    if job is None or job.status != JobStatus.ACCEPTED or not job.document_number:
        return (FollowupStatus.FAILED, "job_not_accepted",
                f"the job is {job.status if job else 'gone'}; only accepted documents qualify")
    supported = ARCHIVABLE_TYPES if followup.kind == "archive" else EMAIL_TYPES
    if job.document_type not in supported:
        return (FollowupStatus.FAILED, "unsupported_document_type",
                f"no Factus {followup.kind} call for a {job.document_type}")
    missing: list[str] = []
    if followup.kind == "archive":
        stored = DatabaseDocumentStore(session).kinds(job.id)
        missing = [kind for kind in STORED_DOCUMENT_KINDS if kind not in stored]
        if not missing:
            return (FollowupStatus.DONE, None,
                    "the PDF and XML were stored already; nothing downloaded")
    else:
        sent = followup_repo.emails_sent_today(session, job.id)
        if sent >= EMAILS_PER_DOCUMENT_PER_DAY:
            return (FollowupStatus.FAILED, "email_daily_limit",
                    (f"{job.document_number} was e-mailed {sent} times today; Factus allows "
                     f"{EMAILS_PER_DOCUMENT_PER_DAY} e-mails per document per day (Bogotá time), "
                     "so this one was not sent; request it again tomorrow"))
    try:
        account = account_for_organization(session, job.organization_id, ctx.settings,
                                           ctx.secret_box)
    except ConfigError as exc:
        return (FollowupStatus.FAILED, "no_factus_account", exc.message)
    return _Claimed(
        followup_id=followup.id, job_id=job.id, kind=followup.kind,
        attempt=followup.attempt_count, document_type=job.document_type,
        number=job.document_number, account=account, to_address=followup.to_address,
        missing=missing,
    )


def _download(client: FactusClient, document_type: str, kind: str, number: str) -> DownloadedFile:
    if document_type == "credit_note":
        fetch = client.download_credit_note_pdf if kind == "pdf" else client.download_credit_note_xml
    else:
        fetch = client.download_bill_pdf if kind == "pdf" else client.download_bill_xml
    return fetch(number)


def _retry(exc: FactusError) -> _Outcome:
    """A transient error: retried with the policy's backoff (:func:`followup_transition`)."""
    return _Outcome(FollowupOutcome.RETRYABLE, code=exc.reason, message=str(exc))


def _transient(exc: FactusError) -> _Outcome:
    if isinstance(exc, RateLimitedError):
        # Refused unprocessed: wait out the window without spending an attempt.
        return _Outcome(FollowupOutcome.HELD, code=exc.reason, message=str(exc),
                        delay=exc.retry_after)
    return _retry(exc)


def _run_archive(ctx: WorkerContext, client: FactusClient, claimed: _Claimed) -> _Outcome:
    files: dict[str, DownloadedFile] = {}
    try:
        for kind in claimed.missing:
            files[kind] = _download(client, claimed.document_type, kind, claimed.number)
    except ConflictError as exc:
        # Accepted means validated, so a "not validated" 409 can only be Factus catching up.
        outcome = _retry(exc)
    except FactusError as exc:
        outcome = (_transient(exc) if exc.transient
                   else _Outcome(FollowupOutcome.FAILED, code=exc.reason, message=str(exc)))
    else:
        outcome = _Outcome(FollowupOutcome.DONE)
    outcome.files = files  # what did arrive is kept even when the rest failed
    return outcome


def _run_email(ctx: WorkerContext, client: FactusClient, claimed: _Claimed) -> _Outcome:
    to = claimed.to_address
    if not to:  # queued without an address: Factus requires one
        return _Outcome(FollowupOutcome.FAILED, code="no_email_address",
                        message=f"no address to e-mail {claimed.number} to; request it again "
                        "with --to")
    try:
        send = (client.send_credit_note_email if claimed.document_type == "credit_note"
                else client.send_bill_email)
        answer = send(claimed.number, to)
    except ConflictError as exc:
        if _NOT_VALIDATED.search(exc.message):
            return _retry(exc)
        return _Outcome(FollowupOutcome.FAILED, code="email_daily_limit",
                        message=f"Factus refused the e-mail of {claimed.number} (409: {exc}); it "
                        f"allows {EMAILS_PER_DOCUMENT_PER_DAY} e-mails per document per day, "
                        "request it again tomorrow")
    except TransportError as exc:
        if exc.may_have_reached:
            return _Outcome(FollowupOutcome.FAILED, code="email_outcome_unknown",
                            message=f"no answer from Factus ({exc.reason}); the e-mail to {to} may "
                            "have been sent, so it is not repeated automatically")
        return _transient(exc)
    except FactusError as exc:
        # A 5xx is an answer saying the send failed: retried, unlike a missing answer.
        if exc.transient:
            return _transient(exc)
        return _Outcome(FollowupOutcome.FAILED, code=exc.reason, message=str(exc))
    return _Outcome(FollowupOutcome.DONE,
                    message=f"{claimed.number} e-mailed to {to}: {answer}".rstrip(": "))


def _record(ctx: WorkerContext, claimed: _Claimed, worker: str, outcome: _Outcome) -> str:
    with UnitOfWork(ctx.session_factory) as uow:
        session = uow.session
        followup = followup_repo.get_followup(session, claimed.followup_id, for_update=True)
        if (followup is None or followup.status != FollowupStatus.PROCESSING
                or followup.leased_by != worker
                or followup.attempt_count != claimed.attempt):
            log.warning("follow-up %s: lease lost before recording %s", claimed.followup_id,
                        outcome.kind)
            return "lease_lost"
        store = DatabaseDocumentStore(session)
        stored: dict[str, dict[str, Any]] = {}
        for kind, file in outcome.files.items():
            name = f"{file.file_name or claimed.number}.{kind}"
            document = store.put(claimed.job_id, kind, name, file.content)
            if document is not None:
                stored[kind] = {"file_name": document.file_name, "sha256": document.sha256,
                                "size_bytes": document.size_bytes}
        details: dict[str, Any] = ({"to": claimed.to_address} if claimed.kind == "email"
                                   else {"stored": stored})
        decision = followup_transition(
            followup.attempt_count, outcome.kind,
            retry_policy(ctx.settings, followup.max_attempts), wait=outcome.delay, rng=ctx.rng)
        result: str = decision.status
        if decision.status == FollowupStatus.DONE:
            message = outcome.message or (
                "stored " + ", ".join(f"{k.upper()} {v['file_name']} ({v['size_bytes']} bytes)"
                                      for k, v in stored.items())
                if stored else "nothing new to store (another run stored the files)")
            _finish(session, followup, decision.status, code=None, message=message, **details)
        elif decision.status == FollowupStatus.PENDING:
            _reschedule(session, followup, delay=decision.delay or 0.0,
                        code=outcome.code or "retry", message=outcome.message,
                        count_attempt=decision.count_attempt, **details)
            result = "retry"
        else:
            message = outcome.message
            if decision.gave_up:
                message = f"gave up after {followup.attempt_count} attempts: {message}"
            _finish(session, followup, decision.status, code=outcome.code, message=message,
                    **details)
        uow.commit()
    return result


def run_followup(ctx: WorkerContext, followup_id: uuid.UUID | str) -> str:
    """Run one follow-up of an accepted job: archive its files or send one e-mail (a webhook
    delivery is handed to :func:`einvoice.services.webhooks.deliver`).

    Args:
        ctx: the process's resources.
        followup_id: ``electronic_invoicing_followups.id``.
    Returns:
        ``not_due`` (duplicate delivery, final, not due or unknown: nothing done), ``done``,
        ``retry`` (rescheduled with backoff), ``failed`` or ``lease_lost``.
    Raises:
        sqlalchemy.exc.OperationalError: PostgreSQL unreachable while claiming (nothing changed),
            or for longer than 60 s while recording (the lease expires and the dispatcher
            recovers the row).
    """
    key = uuid.UUID(str(followup_id))
    worker = thread_worker_id(ctx)
    claimed = _claim(ctx, key, worker)
    if isinstance(claimed, str):
        # The archive's claim never takes a webhook delivery, which has its own claim, sender
        # and record; only then is the kind looked up (no extra query for archives and e-mails).
        if claimed == "not_due" and webhooks.is_delivery(ctx.session_factory, key):
            return webhooks.deliver(ctx, key)
        return claimed
    client = ctx.clients.for_account(claimed.account)
    if claimed.kind == "archive":
        outcome = _run_archive(ctx, client, claimed)
    else:
        outcome = _run_email(ctx, client, claimed)
    result = record_retrying(lambda: _record(ctx, claimed, worker, outcome))
    log.info("follow-up %s (%s of job %s) attempt %d: %s %s", key, claimed.kind, claimed.job_id,
             claimed.attempt, result, outcome.code or "")
    return result


# ------------------------------------------------------------------------------------------
# The beat dispatcher
# ------------------------------------------------------------------------------------------


def dispatch_due_followups(
    session_factory: sessionmaker[Session], publisher: FollowupPublisher, settings: Settings
) -> int:
    """Recover expired leases, then publish ``einvoice.run_followup`` for due follow-ups.

    An ``archive`` whose worker died goes back to ``pending`` (downloads are reads, safe to
    repeat); an ``email`` whose worker died is failed with ``email_outcome_unknown`` (the
    e-mail may have left). Selection and marking happen in one short transaction; messages are
    sent after it commits (a crash in between is repaired after ``EINVOICE_REDISPATCH_SECONDS``).
    Returns how many messages were published.
    """
    with UnitOfWork(session_factory) as uow:
        session = uow.session
        for followup in followup_repo.expired_leases(session, limit=settings.einvoice_dispatch_batch):
            holder = followup.leased_by or "unknown worker"
            # An archive only reads (safe to repeat); an e-mail may have left: never repeated.
            decision = followup_transition(
                followup.attempt_count,
                FollowupOutcome.LEASE_EXPIRED if followup.kind == "archive"
                else FollowupOutcome.FAILED, retry_policy(settings, followup.max_attempts))
            if decision.status == FollowupStatus.PENDING:
                _reschedule(session, followup, delay=decision.delay or 0.0, code="lease_expired",
                            message=f"lease held by {holder} expired; archive re-queued",
                            count_attempt=decision.count_attempt, leased_by=holder)
            else:
                _finish(session, followup, decision.status, code="email_outcome_unknown",
                        message=f"lease held by {holder} expired mid-send; the e-mail may have "
                        "been sent, so it is not repeated automatically", leased_by=holder)
        ids = followup_repo.select_due_for_dispatch(
            session, limit=settings.einvoice_dispatch_batch,
            redispatch_seconds=settings.einvoice_redispatch_seconds,
        )
        uow.commit()
    for followup_id in ids:
        publisher.publish_followup(followup_id)
    if ids:
        log.info("dispatched %d due follow-ups", len(ids))
    return len(ids)
