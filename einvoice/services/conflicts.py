"""A Factus account blocked by a document pending at DIAN: the check before a POST and the 409.

Factus refuses every create of a document type while one document of that type is pending at
DIAN on the account (409, FACTUS_API.md §5.3). Before each POST a job looks for one of our own
(:func:`blocker_of`) and waits behind it (:class:`AccountBlocked`); a 409 that comes anyway is
settled by :func:`settle_pending_conflict` (FACTUS_API.md Decision 4).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from einvoice.db import jobs as job_repo
from einvoice.db.uow import UnitOfWork
from einvoice.domain.jobs import JobStatus, Outcome
from einvoice.errors import EinvoiceError
from einvoice.factus.client import FactusClient
from einvoice.factus.errors import FactusError, NotFoundError, PendingDocumentConflict
from einvoice.services.claim import Claimed, wait_behind
from einvoice.services.factus_call import (
    CallOutcome,
    delete_document,
    is_credit_note,
    retry_outcome,
)
from einvoice.services.runner import WorkerContext

log = logging.getLogger(__name__)


def blocker_of(ctx: WorkerContext, claimed: Claimed) -> Any:
    """Our ``sent`` job on the claimed job's Factus account, if any (a short read).

    Returns None, or the :func:`einvoice.db.jobs.pending_blocker` row (``id``,
    ``wait_seconds``) of a job of the same account, environment and document type whose
    document is pending at DIAN. A database error here (PostgreSQL restarting) counts as "none
    known": the check only saves a request, and a 409 that it would have avoided is handled
    like any other.
    """
    try:
        with ctx.session_factory() as session:
            return job_repo.pending_blocker(
                session, account=claimed.account.username,
                environment=claimed.account.environment,
                document_type=claimed.document_type, exclude=claimed.job_id)
    except (OperationalError, DBAPIError) as exc:
        log.warning("job %s: pre-send check for a pending document failed (%s); sending",
                    claimed.job_id, type(exc).__name__)
        return None


class AccountBlocked(EinvoiceError):
    """Raised by the pre-send check: another job's document is pending at DIAN on the account.

    ``reason`` ``account_blocked``; ``blocker``: the :func:`blocker_of` row (the job waits
    :func:`~einvoice.services.claim.wait_behind` it). Nothing was sent.
    """

    reason = "account_blocked"

    def __init__(self, blocker: Any) -> None:
        super().__init__(f"job {blocker.id} has a document pending at DIAN on this account; "
                         "waiting for it (checked just before the POST; nothing was sent)")
        self.blocker = blocker


def settle_pending_conflict(ctx: WorkerContext, client: FactusClient, claimed: Claimed,
                            exc: PendingDocumentConflict) -> CallOutcome:
    """409: find the pending document; settle it if it is ours, else back off (Decision 4).

    A 409 never names the blocking document, and a re-send of this job's own pending reference
    is accepted, so the blocker is another document. When our database already knows one (a
    ``sent`` job of the same account, typically a DIAN-slow answer to a request that was in
    flight beside this one), this job waits for that one's re-check without listing Factus's
    pending documents: the list would cost a request of the account's quota and could only
    find the same job. Otherwise it lists them and settles ours: deletes the unvalidated
    documents of our final jobs, and brings forward the re-check of our jobs whose document is
    pending (:func:`einvoice.db.jobs.take_over_pending_at_dian`).

    Returns:
        A ``retry`` with ``pending_document``: no attempt counted while ours is settled or
        waited for, a counted backoff (``foreign_conflict``) when a document not created by
        einvoice blocks the account.
    Raises:
        Nothing of Factus's (a failed list is a retry); a database error of the recording
        transaction propagates.
    """
    blocker = blocker_of(ctx, claimed)
    if blocker is not None:
        message = (f"409: job {blocker.id} has a document pending at DIAN on this account; "
                   "waiting for its re-check")
        outcome = CallOutcome("retry", code="pending_document", http_status=409,
                              message=message, delay=wait_behind(ctx, blocker),
                              count_attempt=False, step=Outcome.HELD)
        outcome.events.append(("pending_conflict", "409", message,
                               {"blocker": str(blocker.id)}))
        return outcome
    try:
        pending = (client.list_credit_notes(status=0) if is_credit_note(claimed)
                   else client.list_bills(status=0))
    except FactusError as list_error:
        # The POST's 409 stays on the record (a ``pending_conflict`` event), or a lookup that
        # found no rate slot would leave only its own ``rate_limit_wait`` in the job's history.
        # Nothing was created, so the outcome is known.
        outcome = retry_outcome(ctx, claimed, list_error, "pending_document")
        outcome.http_status, outcome.outcome_unknown = 409, False
        note = (f"409: listing the account's pending documents failed ({list_error.reason}); "
                "trying again later")
        outcome.events.append(("pending_conflict", "409", note, None))
        return outcome
    settled: list[str] = []
    foreign: list[str] = []
    # 1. Whose documents are they? (a short read; no transaction stays open during HTTP)
    final_owned: list[tuple[str, uuid.UUID]] = []
    in_flight: list[tuple[str, uuid.UUID]] = []
    with ctx.session_factory() as session:
        for doc in pending:
            ref = doc.reference_code
            owner = job_repo.job_by_reference(session, ref) if ref else None
            if owner is None:
                foreign.append(f"{doc.number or '?'} ({ref or 'no reference'})")
            elif owner.status in (JobStatus.REJECTED, JobStatus.FAILED, JobStatus.CANCELLED):
                final_owned.append((ref, owner.id))  # type: ignore[arg-type]
            elif owner.id != claimed.job_id:
                in_flight.append((ref, owner.id))  # type: ignore[arg-type]
    # 2. Delete our own documents whose jobs are final (HTTP, outside any transaction).
    deleted: list[tuple[str, uuid.UUID]] = []
    for ref, owner_id in final_owned:
        try:
            delete_document(client, claimed, ref)
            deleted.append((ref, owner_id))
            settled.append(f"deleted {ref} of final job {owner_id}")
        except NotFoundError:
            settled.append(f"{ref} of final job {owner_id} was already gone")
        except FactusError:
            foreign.append(f"{ref} (ours, delete failed)")
    # 3. Record it. Our own documents still pending at DIAN are marked ``sent`` (that is what
    #    Factus's list says they are) and re-checked now: their re-send releases the block,
    #    and meanwhile the account's other jobs wait for them without calling (``claim_job``),
    #    so 409s and settling lookups cannot eat the account's quota while the re-check starves.
    with UnitOfWork(ctx.session_factory) as uow:
        for _ref, owner_id in deleted:
            job_repo.add_event(uow.session, owner_id, "document_deleted", code="200",
                               message="deleted its unvalidated document at Factus: it "
                               f"blocked job {claimed.job_id} (409)")
        for ref, owner_id in in_flight:
            # A ``processing`` owner held by a dead worker is taken over too: waiting for its
            # lease would block the account, and its document is pending at DIAN anyway.
            if job_repo.take_over_pending_at_dian(uow.session, owner_id):
                settled.append(f"re-check of job {owner_id} ({ref}) brought forward")
            else:
                settled.append(f"job {owner_id} ({ref}) is being submitted right now")
        uow.commit()
    if settled and not foreign:
        # Spread the blocked jobs over a few seconds: the settled document needs a moment
        # (a delete, or DIAN's answer to the re-check) and they must not storm the account.
        outcome = CallOutcome("retry", code="pending_document", http_status=409,
                              message="409 pending document settled: " + "; ".join(settled),
                              count_attempt=False, step=Outcome.RETRY_SOON, spread=2.0)
    else:
        outcome = CallOutcome("retry", code="pending_document", http_status=409,
                              step=Outcome.FOREIGN_CONFLICT,
                              message="409: Factus holds a pending document not created by "
                              "einvoice: " + ", ".join(foreign or ["unknown"]) + "; backing off")
    outcome.events.append(("pending_conflict", "409", outcome.message, {"settled": settled,
                                                                        "foreign": foreign}))
    return outcome
