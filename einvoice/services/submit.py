"""Submit one job to Factus, exactly once, and record the outcome.

The flow of :func:`submit_job`, in three short steps with no transaction open during HTTP
(STYLE.md habit 4; saleor's "attempt row written before the call, updated after"):

1. **Claim** (one transaction, :mod:`einvoice.services.claim`): compare-and-set the job to
   ``processing`` with a lease; build and validate the payload from the ERP's rows (a bad
   invoice ends ``rejected`` here, with no HTTP call); store ``request_payload``; set
   ``outcome_unknown`` before calling Factus.
2. **Call Factus** (no transaction, :func:`_call_factus` here, the meaning of each answer in
   :mod:`einvoice.services.factus_call`, a 409 in :mod:`einvoice.services.conflicts`): if the
   previous attempt's outcome is unknown (a timeout after sending, a killed worker, an expired
   lease), first look the reference code up at Factus and adopt what is there (FACTUS_API.md
   Decision 3); otherwise, or when nothing is there, validate.
3. **Record** (one transaction, retried while PostgreSQL restarts,
   :mod:`einvoice.services.record`): the outcome per Decision 4: accepted, DIAN slow
   (``sent``), rejected (payload or DIAN; a stored rejected document is deleted so it does not
   block the account), retry with backoff, or ``failed``.

Outcomes are written only while this worker still holds the lease (same ``leased_by`` and
attempt), so a worker that lost its lease never overwrites a newer attempt. The lease also
fences the POST itself: right before each validate request leaves, the worker confirms in the
database that it still holds the job (and extends the lease); if it lost it, nothing is sent
(``lease_lost``). One attempt's waits (token lock, rate-limit slot, ``Retry-After``) end by a
deadline well inside the lease (:func:`~einvoice.services.claim.attempt_budget_seconds`).

What Factus answers is checked, not trusted: a 201 "validated" without a valid CUFE/CUDE is an
unknown outcome and the document is looked up by reference code at once (``invalid_cufe``); a
document DIAN keeps pending longer than ``EINVOICE_DIAN_PENDING_TIMEOUT_SECONDS`` ends the job
``failed`` (``dian_timeout``, outcome unknown kept).

No row can jam the queue: any unexpected exception while claiming, building, calling or
recording one job ends that job ``failed`` (``internal_error``, the exception in its event) and
leaves the other jobs alone. Only infrastructure errors
(:data:`~einvoice.services.runner.INFRASTRUCTURE_ERRORS`: PostgreSQL or Redis unreachable)
propagate, so that the task retries. The claim, lease and record plumbing shared with the
follow-ups is :mod:`einvoice.services.runner`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis

from einvoice.db import jobs as job_repo
from einvoice.db.uow import UnitOfWork
from einvoice.domain.jobs import JobStatus, Outcome
from einvoice.factus import deadline
from einvoice.factus.errors import (
    ApiVersionNotEnabled,
    AuthenticationError,
    DianRejectionError,
    FactusError,
    ForbiddenError,
    PayloadValidationError,
    PendingDocumentConflict,
)
from einvoice.logs import bind, log_context
from einvoice.services.claim import (
    Claimed,
    LeaseLost,
    LeaseUnconfirmed,
    attempt_budget_seconds,
    claim_job,
    confirm_lease,
    unfenced_seconds,
    wait_behind,
)
from einvoice.services.conflicts import AccountBlocked, blocker_of, settle_pending_conflict
from einvoice.services.factus_call import (
    CallOutcome,
    document_outcome,
    look_up_after_invalid_code,
    matches_payload,
    reconcile_lookup,
    rejected_by_dian,
    retry_outcome,
    validate_document,
    version_refused,
)
from einvoice.services.job_change import JobChange
from einvoice.services.record import record_outcome
from einvoice.services.runner import (
    WorkerContext,
    is_infrastructure_error,
    record_retrying,
    thread_worker_id,
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------
# Step 2: the calls to Factus, in order
# ------------------------------------------------------------------------------------------


def _call_factus(ctx: WorkerContext, claimed: Claimed, worker: str,
                 until: float | None = None, unfenced_until: float = 0.0) -> CallOutcome:
    """Step 2 for the claimed job, by ``worker``; every wait of the Factus client ends by
    ``until`` (``time.monotonic()`` seconds, :mod:`einvoice.factus.deadline`); a POST leaving
    before ``unfenced_until`` (monotonic s, :func:`~einvoice.services.claim.unfenced_seconds`)
    skips the lease check."""
    with deadline.attempt_deadline(until):
        return _call_factus_within_deadline(ctx, claimed, worker, unfenced_until)


def _call_factus_within_deadline(ctx: WorkerContext, claimed: Claimed, worker: str,
                                 unfenced_until: float = 0.0) -> CallOutcome:
    """:func:`_call_factus` once the attempt's deadline is set: look up first when the outcome
    is unknown, then validate; every answer and error becomes a :class:`CallOutcome`."""
    client = ctx.clients.for_account(claimed.account)
    events: list[tuple[str, str | None, str | None, dict[str, Any] | None]] = []
    # Set once a validate request passed the fence: from then on it may have reached Factus.
    posted = False
    own_pending = claimed.own_pending

    def still_unblocked() -> None:
        # A send that queued for its rate-limit slot looks again for a document of ours
        # pending at DIAN on the account: one may have appeared meanwhile, and Factus would
        # answer this send with a 409 (FACTUS_API.md §5.3). A job whose own document is
        # pending is never held: its re-send is what unblocks the account.
        blocker = None if own_pending else blocker_of(ctx, claimed)
        if blocker is not None:
            raise AccountBlocked(blocker)

    def fence() -> None:
        # Right before the request leaves: do we still hold the job? A claim whose lease ran
        # out during the waits may have been released and claimed again; its POST would then
        # race the new holder's (a second POST of the document).
        nonlocal posted
        if time.monotonic() >= unfenced_until:
            confirm_lease(ctx, claimed, worker)
        posted = True

    try:
        if claimed.reconcile_first:
            found = reconcile_lookup(ctx, client, claimed)
            if found is not None:
                ok, why = matches_payload(found, claimed, reconciling=True)
                if found.is_validated and not ok:
                    return CallOutcome(JobStatus.FAILED, code="reconcile_mismatch",
                                       message=f"a validated document {found.number} with "
                                       f"this reference exists at Factus but {why}; an "
                                       "operator must decide")
                if found.is_validated or found.is_rejected:
                    outcome = document_outcome(found, claimed, 0, client, ctx)
                    note = f"document {found.number} found at Factus by reference code ({why})"
                    outcome.events.insert(0, ("reconciled", "found", note,
                                              {"number": found.number, "status": found.status}))
                    return outcome
                note = (f"document {found.number} found pending at DIAN; re-sending with the "
                        "same reference code")
                events.append(("reconciled", JobStatus.PENDING, note, None))
                # A re-check from now on (see record_outcome).
                own_pending = claimed.own_pending = True
            elif claimed.reconcile_only:
                return CallOutcome(JobStatus.FAILED, code="attempts_exhausted",
                                   message=f"gave up after {claimed.max_attempts} attempts; no "
                                   "document with this reference code at Factus")
            else:
                events.append(("reconciled", "absent",
                               "no document with this reference code at Factus; sending", None))
        if claimed.reconcile_first:
            # It skipped the claim's wait for a pending document (its own might have been the
            # one); the lookup said it is not, so it now waits like any other job.
            still_unblocked()
        started = time.monotonic()
        document = validate_document(client, claimed, still_unblocked, fence)
        latency = int((time.monotonic() - started) * 1000)
        outcome = document_outcome(document, claimed, latency, client, ctx)
        if outcome.kind == "retry" and outcome.code == "invalid_cufe":
            outcome = look_up_after_invalid_code(ctx, client, claimed, outcome)
    except LeaseLost as exc:
        return CallOutcome("lease_lost", code=exc.reason, message=exc.message)
    except LeaseUnconfirmed as exc:
        # Nothing left with this request; the database will tell next time.
        outcome = CallOutcome("retry", code=exc.reason, count_attempt=False,
                              message=exc.message, step=Outcome.RETRY_SOON,
                              outcome_unknown=claimed.reconcile_first or posted)
    except PayloadValidationError as exc:
        fields = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.field_errors.items())
        outcome = CallOutcome(JobStatus.REJECTED, code="payload_invalid", http_status=422,
                              message=fields or str(exc))
    except DianRejectionError as exc:
        outcome = rejected_by_dian(
            client, claimed, exc.rule_codes or ["?"],
            "; ".join(f"{r.code}: {r.text}" for r in exc.rejections) or str(exc),
            already_processed=exc.already_processed)
    except PendingDocumentConflict as exc:
        outcome = settle_pending_conflict(ctx, client, claimed, exc)
    except redis.RedisError as exc:
        # Redis (token store, renewal locks, rate limiter) went away mid-call. Give the job
        # back now instead of leaving it ``processing`` until its lease expires (a Redis
        # restart would hold every in-flight job for the 120 s lease). Redis is only
        # used before a request goes out, but a POST may already have been answered (a
        # follow-up read failed), so once posted the outcome counts as unknown: the next
        # attempt looks the reference up before sending anything.
        outcome = CallOutcome("retry", code="redis_unavailable", count_attempt=False,
                              message=f"Redis unavailable during the Factus call: {exc}",
                              step=Outcome.RETRY_SOON,
                              outcome_unknown=claimed.reconcile_first or posted)
    except AccountBlocked as exc:
        # Nothing was sent (and a reconcile lookup, if any, found no document of ours).
        outcome = CallOutcome("wait", code=exc.reason, message=exc.message,
                              delay=wait_behind(ctx, exc.blocker), outcome_unknown=False)
    except ApiVersionNotEnabled as exc:
        outcome = version_refused(claimed, exc)
    except ForbiddenError as exc:
        outcome = CallOutcome(JobStatus.FAILED, code=exc.reason, http_status=403,
                              message=f"Factus refused account {claimed.account.username} "
                              f"(403): {exc}; fix the account's configuration, then retry the "
                              "job")
    except AuthenticationError as exc:
        outcome = CallOutcome(JobStatus.FAILED, code=exc.reason, http_status=exc.status_code,
                              message=f"Factus did not accept the credentials of "
                              f"{claimed.account.username}: {exc}")
    except FactusError as exc:
        if exc.transient and claimed.reconcile_only:
            outcome = CallOutcome(JobStatus.FAILED, code="attempts_exhausted",
                                  outcome_unknown=True,
                                  message=f"gave up after {claimed.max_attempts} attempts; the "
                                  f"last may have reached Factus and the lookup failed "
                                  f"({exc.reason}); `einvoice jobs retry` looks the reference "
                                  "up before any re-send")
        elif exc.transient:
            outcome = retry_outcome(ctx, claimed, exc)
            if not posted:
                # No validate request left (a token, rate-slot or lookup failure): only an
                # earlier attempt's unknown outcome remains, which a failed lookup does not
                # settle.
                outcome.outcome_unknown = claimed.reconcile_first
        else:
            outcome = CallOutcome(JobStatus.FAILED, code=exc.reason,
                                  http_status=exc.status_code, message=str(exc))
    outcome.events[:0] = events
    return outcome


# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------


def submit_job(ctx: WorkerContext, job_id: uuid.UUID | str) -> str:
    """Get one job's document validated by Factus, or move it one step closer.

    Args:
        ctx: the process's resources.
        job_id: ``electronic_invoicing_jobs.id``.
    Returns:
        What happened: ``not_due`` (nothing to do: duplicate delivery, job final or not due),
        ``accepted``, ``dian_slow``, ``rejected``, ``failed``, ``retry``, ``waiting``,
        ``lease_lost`` (another worker holds the job now; nothing sent or written),
        ``internal_error`` (an unexpected exception ended the job ``failed`` with
        ``error_code=internal_error``) or ``version_switched`` (Factus refused the ``auto``
        account's API version, the new one was stored, and the job, due now and with its
        attempt given back, could not be run again at once: any worker takes it).

    An ``auto`` account refused its API version is moved to the other one and the job's step
    runs again at once through it (:func:`~einvoice.services.factus_call.version_refused`), so
    its outcome is the re-run's.
    Raises:
        An infrastructure error (:data:`~einvoice.services.runner.INFRASTRUCTURE_ERRORS`, e.g.
        ``sqlalchemy.exc.OperationalError``): PostgreSQL unreachable while claiming (nothing
        changed; the task retries, and the dispatcher re-publishes the job anyway), or for
        longer than 60 s while recording (the lease expires and the sweeper reconciles the job).
        Nothing else: any other exception ends the job (``internal_error``).
    """
    job_uuid = uuid.UUID(str(job_id))
    # Every line logged for this job carries its id (and, once claimed, its organization and
    # reference code: einvoice.logs).
    with log_context(job_id=str(job_uuid)):
        result = _submit_once(ctx, job_uuid)
        if result == "version_switched":
            # The account's version was just stored (and this process's cache dropped): run
            # the step again now, through it, instead of waiting for the dispatcher. Once: a
            # second switch cannot happen (auto only moves v1 -> v2).
            result = _submit_once(ctx, job_uuid)
    return result


def _submit_once(ctx: WorkerContext, job_uuid: uuid.UUID) -> str:
    """One claim, call and record of :func:`submit_job` (its results and errors)."""
    worker = thread_worker_id(ctx)
    started = time.monotonic()
    until = started + attempt_budget_seconds(ctx.settings)
    unfenced_until = started + unfenced_seconds(ctx.settings)
    try:
        claimed = claim_job(ctx, job_uuid, worker)
    except Exception as exc:
        if is_infrastructure_error(exc):
            raise
        return _fail_unclaimed(ctx, job_uuid, worker, exc)
    if isinstance(claimed, str):
        return claimed
    bind(organization_id=claimed.organization_id, reference_code=claimed.reference_code)
    try:
        outcome = _call_factus(ctx, claimed, worker, until, unfenced_until)
    except Exception as exc:
        if is_infrastructure_error(exc):
            raise
        log.exception("job %s attempt %d: unexpected error while calling Factus",
                      job_uuid, claimed.attempt)
        # A request may have left: the outcome stays unknown, a retry looks the reference up.
        outcome = CallOutcome(JobStatus.FAILED, code="internal_error", outcome_unknown=True,
                              message=_internal_message("calling Factus", exc))
        outcome.events.append(("internal_error", type(exc).__name__, _exception_text(exc),
                               {"step": "call", "exception": _exception_type(exc)}))
    if outcome.kind == "lease_lost":
        log.warning("job %s attempt %d: %s", job_uuid, claimed.attempt, outcome.message)
        return "lease_lost"
    try:
        result = record_retrying(lambda: record_outcome(ctx, claimed, worker, outcome))
    except Exception as exc:
        if is_infrastructure_error(exc):
            raise
        result = _fail_claimed(ctx, claimed, worker, exc)
    log.info("job %s attempt %d: %s %s", job_uuid, claimed.attempt, result, outcome.code or "")
    return result


def _exception_type(exc: BaseException) -> str:
    kind = type(exc)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _exception_text(exc: BaseException, limit: int = 1000) -> str:
    """``Type: message`` of ``exc``, storable in a text column (no NUL) and at most ``limit``
    characters."""
    text_ = f"{type(exc).__name__}: {exc}".replace("\x00", "\\x00")
    return text_ if len(text_) <= limit else text_[: limit - 1] + "…"


def _internal_message(step: str, exc: BaseException) -> str:
    return (f"internal error while {step}: {_exception_text(exc, 400)}; fix the cause (the "
            "invoice's rows, or report the bug), then `einvoice jobs retry`")


def _fail_unclaimed(ctx: WorkerContext, job_id: uuid.UUID, worker: str, exc: Exception) -> str:
    """End a job whose claim or payload build raised ``exc`` (the claim was rolled back).

    Without this, the job stayed due, uncounted, and was re-published and crashed again every
    minute, forever (and a wake-up message carrying several jobs lost the ones after it).
    Returns ``internal_error``, or ``not_due`` when another worker took the job meanwhile.
    """
    log.error("job %s: unexpected error while claiming or building its payload", job_id,
              exc_info=exc)
    try:
        with UnitOfWork(ctx.session_factory) as uow:
            unknown = job_repo.fail_unclaimed_job(
                uow.session, job_id, worker=worker, code="internal_error",
                message=_internal_message("claiming the job or building its payload", exc),
                metadata={"step": "claim", "exception": _exception_type(exc),
                          "detail": _exception_text(exc)})
            uow.commit()
    except Exception as fail_exc:
        if is_infrastructure_error(fail_exc):
            raise
        log.exception("job %s: could not even mark it failed; it stays due", job_id)
        return "internal_error"
    if unknown is None:
        return "not_due"
    return "internal_error"


def _fail_claimed(ctx: WorkerContext, claimed: Claimed, worker: str, exc: Exception) -> str:
    """End a claimed job whose outcome could not be recorded because of ``exc``.

    The call to Factus may have created the document, so ``outcome_unknown`` is kept: an
    operator's retry looks the reference code up before sending anything. Written under the
    same lease guard as any outcome. Returns ``internal_error`` (or ``lease_lost``).
    """
    log.error("job %s attempt %d: unexpected error while recording its outcome",
              claimed.job_id, claimed.attempt, exc_info=exc)
    change = JobChange(claimed.attempt)
    change.finish(JobStatus.FAILED, code="internal_error",
                  message=_internal_message("recording the outcome", exc), outcome_unknown=True,
                  metadata={"step": "record", "exception": _exception_type(exc),
                            "detail": _exception_text(exc)})

    def write() -> str:
        with UnitOfWork(ctx.session_factory) as uow:
            if change.apply(uow.session, claimed.job_id,
                            lease=(worker, claimed.attempt)) is None:
                return "lease_lost"
            uow.commit()
        return "internal_error"

    try:
        return record_retrying(write)
    except Exception as fail_exc:
        if is_infrastructure_error(fail_exc):
            raise
        # The job stays ``processing`` until its lease expires; the sweeper then hands it
        # back with its outcome unknown, and the next attempt looks the reference up first.
        log.exception("job %s: could not even mark it failed", claimed.job_id)
    return "internal_error"


def submit_jobs(
    ctx: WorkerContext,
    job_ids: Sequence[uuid.UUID | str],
    *,
    requeue: Callable[[list[uuid.UUID]], None],
    budget_seconds: float = 60.0,
) -> dict[str, int]:
    """Run :func:`submit_job` for each of ``job_ids`` in turn (one wake-up message of a burst,
    :func:`einvoice.queueing.wakeup_chunks`).

    Each job is claimed, sent and recorded exactly as on its own; a job already taken or final
    is a no-op, so a message delivered twice is harmless. After ``budget_seconds`` the jobs not
    started yet are handed to ``requeue`` (published again as a new message) and this call
    returns: a message is never held unacknowledged long enough to approach the broker's
    visibility timeout (300 s), however slow Factus is.

    Args:
        ctx: the process's resources.
        job_ids: ``electronic_invoicing_jobs.id`` values.
        requeue: publishes the wake-ups of the jobs left over (e.g. the publisher's
            ``publish_submit_many``).
        budget_seconds: how long to keep starting new jobs.
    Returns:
        ``{outcome: count}`` over the jobs run (outcomes as :func:`submit_job`), plus
        ``requeued`` when some were handed back.
    Raises:
        As :func:`submit_job`: an infrastructure error stops the run; the task retries the
        whole message, whose finished jobs are then no-ops. A job's own failure (any other
        exception) ends that job ``internal_error`` and the run goes on with the next.
    """
    outcomes: dict[str, int] = {}
    started = time.monotonic()
    ids = [uuid.UUID(str(job_id)) for job_id in job_ids]
    for index, job_id in enumerate(ids):
        if index and time.monotonic() - started > budget_seconds:
            requeue(ids[index:])
            outcomes["requeued"] = len(ids) - index
            break
        outcome = submit_job(ctx, job_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
