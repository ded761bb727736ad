"""Step 2 of a submission: what Factus's answers mean for the claimed job.

The requests of one attempt (look the reference code up, validate, delete a rejected
document) and the :class:`CallOutcome` each answer or error leads to: accepted, DIAN slow
(``sent``), rejected by the payload's checks or by DIAN (the stored document is deleted so it
does not block the account; rule 90 is never deleted), retry with backoff, or ``failed``.

What Factus answers is checked, not trusted: a 201 "validated" without a valid CUFE/CUDE is an
unknown outcome and the document is looked up by reference code at once (``invalid_cufe``); a
document DIAN keeps pending longer than ``EINVOICE_DIAN_PENDING_TIMEOUT_SECONDS`` ends the job
``failed`` (``dian_timeout``, outcome unknown kept); an ``auto`` account refused its API
version moves to the next one (:func:`version_refused`). The 409 of a pending document is
:mod:`einvoice.services.conflicts`; the order of the calls is
:func:`einvoice.services.submit.submit_job`'s.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from einvoice.domain.jobs import JobStatus, Outcome, is_valid_unique_code
from einvoice.factus import v1_body, v2_body
from einvoice.factus.client import FactusClient
from einvoice.factus.errors import (
    ApiVersionNotEnabled,
    FactusError,
    NotFoundError,
    RateLimitedError,
)
from einvoice.factus.schemas import BillResult, CreditNoteResult
from einvoice.services.claim import Claimed
from einvoice.services.runner import WorkerContext, retry_policy
from einvoice.settings import Settings

#: A document as Factus answers it (a validate answer or a lookup by reference code).
FactusDocument = BillResult | CreditNoteResult


@dataclass
class CallOutcome:
    """What step 2 learned about the claimed job; step 3 writes it
    (:func:`einvoice.services.record.record_outcome`).

    Attributes:
        kind: ``accepted``, ``dian_slow``, ``rejected``, ``retry``, ``failed``, ``wait``,
            ``lease_lost`` (nothing sent, nothing to write) or ``switch`` (an ``auto`` account
            moves to ``switch_to``).
        code: the reason code stored as ``error_code`` (a Factus error's ``reason``,
            ``dian_rejected:<rules>``, ``invalid_cufe``, ...).
        document: the document Factus answered, for ``accepted``.
        delay: seconds the cause imposes before the next try (``Retry-After``, a blocker's
            re-check), or None.
        count_attempt: False gives the claimed attempt back (a wait is not an attempt).
        outcome_unknown: the document may exist at Factus: the next attempt looks it up first.
        latency_ms, http_status: of the validate request, when one was answered.
        events: ``(event_type, code, message, metadata)`` to append before the outcome's own.
    """

    # accepted | dian_slow | rejected | retry | failed | wait | lease_lost | switch
    kind: str
    code: str | None = None
    message: str | None = None
    document: FactusDocument | None = None
    delay: float | None = None
    count_attempt: bool = True
    outcome_unknown: bool = False
    latency_ms: int | None = None
    http_status: int | None = None
    events: list[tuple[str, str | None, str | None, dict[str, Any] | None]] = field(
        default_factory=list)
    # ``switch``: the API version the account moves to.
    switch_to: str | None = None
    # ``retry``: which retry it is (the domain picks its delay from it, :func:`transition`);
    # ``delay`` is then the wait the cause imposes (``held``) and ``spread`` the jitter width
    # of a ``retry_soon``.
    step: Outcome = Outcome.RETRYABLE
    spread: float = 1.0


def is_credit_note(claimed: Claimed) -> bool:
    """Whether the claimed job sends a credit note (else an invoice, a "bill" at Factus)."""
    return claimed.document_type == "credit_note"


def _lookup(client: FactusClient, claimed: Claimed) -> FactusDocument | None:
    """The claimed job's document at Factus, found by its reference code, or None."""
    if is_credit_note(claimed):
        return client.find_credit_note_by_reference(claimed.reference_code)
    return client.find_bill_by_reference(claimed.reference_code)


def validate_document(client: FactusClient, claimed: Claimed,
                      before_send: Callable[[], None] | None,
                      fence: Callable[[], None]) -> FactusDocument:
    """POST the claimed job's payload to Factus's validate endpoint of its document type.

    Args:
        before_send: called just before the request leaves when it waited for its rate-limit
            slot (the "is the account still unblocked?" check); raises to send nothing.
        fence: called right before every send (the lease check,
            :func:`einvoice.services.claim.confirm_lease`); raises to send nothing.
    Returns:
        The document as Factus answered it (validated, rejected or pending at DIAN).
    Raises:
        FactusError: as :meth:`einvoice.factus.client.FactusClient.validate_bill`.
    """
    if is_credit_note(claimed):
        return client.validate_credit_note(claimed.payload, before_send=before_send, fence=fence)
    return client.validate_bill(claimed.payload, before_send=before_send, fence=fence)


def delete_document(client: FactusClient, claimed: Claimed, reference_code: str) -> None:
    """Delete the unvalidated document ``reference_code`` (of the claimed job's document type)
    at Factus, so that it no longer blocks the account.

    Raises:
        NotFoundError: Factus has no such document; FactusError: any other failure.
    """
    if is_credit_note(claimed):
        client.delete_credit_note(reference_code)
    else:
        client.delete_bill(reference_code)


def _payload_total(payload: dict[str, Any], api_version: str) -> Decimal:
    """The document total (COP) that a wire body of ``api_version`` implies (the version's
    ``payload_total``), for comparing with a document found at Factus."""
    total: Decimal = (v2_body if api_version == "v2" else v1_body).payload_total(payload)
    return total


def reconcile_lookup(ctx: WorkerContext, client: FactusClient,
                     claimed: Claimed) -> FactusDocument | None:
    """Look the reference code up through the version the document may have been created with
    (``claimed.lookup_version``, chosen by the claim); if the account no longer speaks that
    version, through the one it speaks now (documents belong to the account, not to a
    version). Returns the document, or None when Factus has none with that reference code.

    Raises:
        FactusError: the lookup failed.
    """
    if claimed.lookup_version == claimed.account.api_version:
        return _lookup(client, claimed)
    older = ctx.clients.for_account(replace(claimed.account, api_version=claimed.lookup_version))
    try:
        return _lookup(older, claimed)
    except ApiVersionNotEnabled:
        return _lookup(client, claimed)


def matches_payload(document: FactusDocument, claimed: Claimed, *,
                    reconciling: bool = False) -> tuple[bool, str]:
    """Does a document found at Factus carry this job's totals and customer? (Decision 3).

    Returns (match, why): the total (COP) within 0.01 and the same customer identification.
    ``reconciling``: compare with the body of the attempt that may have created it
    (``claimed.lookup_payload``, in its own API version) rather than this attempt's.
    """
    payload, version = claimed.payload, claimed.account.api_version
    if reconciling and claimed.lookup_payload is not None:
        payload, version = claimed.lookup_payload, claimed.lookup_payload_version
    expected = _payload_total(payload, version)
    found = document.totals.total
    if found is not None and abs(Decimal(found) - expected) > Decimal("0.01"):
        return False, f"total at Factus {found} differs from the payload's {expected}"
    customer = payload.get("customer") or {}
    raw_customer = (document.raw or {}).get("customer") or {}
    ident_found = str(raw_customer.get("identification") or "").strip()
    ident_expected = str(customer.get("identification") or "").strip()
    if ident_found and ident_expected and ident_found != ident_expected:
        return False, (f"customer at Factus {ident_found} differs from the payload's "
                       f"{ident_expected}")
    return True, "totals and customer match"


def document_outcome(document: FactusDocument, claimed: Claimed, latency_ms: int,
                     client: FactusClient, ctx: WorkerContext) -> CallOutcome:
    """Turn a validate answer (or a document found by reference) into an outcome.

    Validated with a valid CUFE/CUDE: ``accepted``; validated without one: a retry with the
    outcome unknown (``invalid_cufe``); rejected by DIAN: :func:`rejected_by_dian`; still
    pending: ``dian_slow`` (a re-check), or ``failed`` with ``dian_timeout`` once DIAN kept it
    pending ``EINVOICE_DIAN_PENDING_TIMEOUT_SECONDS``. ``latency_ms``: of the request.
    """
    if document.is_validated:
        code = document.cude if isinstance(document, CreditNoteResult) else document.cufe
        if not is_valid_unique_code(code):
            return _invalid_code_outcome(ctx, claimed, code, latency_ms)
        return CallOutcome(JobStatus.ACCEPTED, document=document, latency_ms=latency_ms,
                           http_status=201)
    if document.is_rejected:
        rules = document.rejections
        return rejected_by_dian(client, claimed, [r.code or "?" for r in rules],
                                "; ".join(f"{r.code}: {r.text}" for r in rules),
                                already_processed=any(r.code == "90" for r in rules))
    bound = ctx.settings.einvoice_dian_pending_timeout_seconds
    if claimed.pending_seconds >= bound:
        # Still pending after the bound: stop re-checking. The document may yet be validated
        # (or exist) at DIAN, so the outcome stays unknown and a retry looks it up first.
        return CallOutcome(
            JobStatus.FAILED, code="dian_timeout", latency_ms=latency_ms, http_status=201,
            outcome_unknown=True,
            message=f"DIAN has kept document {document.number or claimed.reference_code} pending "
            f"for {claimed.pending_seconds / 3600:.1f} h ({claimed.dian_rechecks + 1} answers; "
            f"bound EINVOICE_DIAN_PENDING_TIMEOUT_SECONDS={bound:g} s); re-checks stopped. "
            "`einvoice jobs retry` looks the reference code up again (never a new document)")
    return CallOutcome(
        "dian_slow", code="dian_slow", latency_ms=latency_ms, http_status=201,
        message="DIAN has not answered yet (status 0, no rejection); re-checking with the same "
        "reference code", count_attempt=False,
    )


def _invalid_code_outcome(ctx: WorkerContext, claimed: Claimed, code: object,
                          latency_ms: int) -> CallOutcome:
    """A "validated" answer without a valid CUFE/CUDE: the outcome is unknown, never accepted.

    Retried (counted, with backoff) with ``outcome_unknown`` set, so the next attempt looks the
    reference code up before anything else; a pass that may only look up gives up (failed,
    ``invalid_cufe``, outcome still unknown).
    """
    name = "CUDE" if is_credit_note(claimed) else "CUFE"
    shown = code if code is None else repr(str(code)[:120])
    message = (f"Factus answered \"validated\" without a valid {name} (96 hex characters; got "
               f"{shown}); the outcome is unknown: looking the document up by reference code")
    if claimed.reconcile_only:
        return CallOutcome(JobStatus.FAILED, code="invalid_cufe", latency_ms=latency_ms,
                           http_status=201, outcome_unknown=True,
                           message=f"gave up after {claimed.max_attempts} attempts: Factus "
                           f"still shows no valid {name} for this reference code (got "
                           f"{shown}); an operator must check the document at Factus")
    outcome = CallOutcome("retry", code="invalid_cufe", message=message, latency_ms=latency_ms,
                          http_status=201, outcome_unknown=True, step=Outcome.RETRYABLE)
    outcome.events.append(("invalid_cufe", "201", message, {"attempt": claimed.attempt}))
    return outcome


def look_up_after_invalid_code(ctx: WorkerContext, client: FactusClient, claimed: Claimed,
                               outcome: CallOutcome) -> CallOutcome:
    """After a 201 without a valid code (``outcome``, a retry): look the reference code up
    right away and adopt what Factus shows (FACTUS_API.md Decision 3), or keep ``outcome``
    (the next attempt looks up again) when the lookup fails or shows no valid code either."""
    try:
        found = _lookup(client, claimed)
    except FactusError as exc:
        note = f"lookup after the invalid code failed ({exc}); the next attempt looks it up again"
        outcome.events.append(("reconciled", exc.reason, note, None))
        return outcome
    if found is None:
        note = ("no document with this reference code at Factus yet; the next attempt looks it "
                "up again")
        outcome.events.append(("reconciled", "absent", note, None))
        return outcome
    ok, why = matches_payload(found, claimed)
    if found.is_validated and not ok:
        adopted = CallOutcome(JobStatus.FAILED, code="reconcile_mismatch",
                              outcome_unknown=True, latency_ms=outcome.latency_ms,
                              http_status=outcome.http_status,
                              message=f"a validated document {found.number} with this "
                              f"reference exists at Factus but {why}; an operator must decide")
    else:
        adopted = document_outcome(found, claimed, outcome.latency_ms or 0, client, ctx)
        if adopted.code == "invalid_cufe":
            return outcome
        note = f"document {found.number} found at Factus by reference code ({why})"
        adopted.events.insert(0, ("reconciled", "found", note,
                                  {"number": found.number, "status": found.status}))
    adopted.events[:0] = outcome.events
    return adopted


def dian_recheck_delay(settings: Settings, rechecks: int, rng: random.Random) -> float:
    """Seconds until the next re-check of a document DIAN has not answered yet.

    ``EINVOICE_DIAN_SLOW_RECHECK_SECONDS`` (5 s) after the first "pending" answer, doubling
    with every further one up to ``EINVOICE_RETRY_CAP_SECONDS`` (300 s), ±20 % jitter. A pending
    document blocks its whole account at Factus (409, FACTUS_API.md §5.3), so the first
    re-checks come soon; a document DIAN keeps pending for long is polled at most every 5 min.

    Args:
        rechecks: "pending" answers already recorded for this document (``dian_slow`` events).
    """
    return retry_policy(settings).recheck_delay(rechecks, rng)


def rejected_by_dian(client: FactusClient, claimed: Claimed, codes: list[str], text: str,
                     *, already_processed: bool) -> CallOutcome:
    """DIAN rejected the document: ``rejected`` with ``dian_rejected:<codes>``, after deleting
    the document at Factus so it does not block the account (a failed delete is an event; the
    next 409 settles it).

    Args:
        codes: DIAN's rule codes (e.g. ``FAD06``); text: the rules' texts, for the message.
        already_processed: rule 90 ("document processed before"): ``failed`` with
            ``dian_already_processed``, nothing deleted (FACTUS_API.md §5.4).
    """
    if already_processed:
        # Rule 90: DIAN already has this document. Never delete or re-send (FACTUS_API.md §5.4).
        return CallOutcome(JobStatus.FAILED, code="dian_already_processed", http_status=422,
                           message=f"DIAN rule 90 (document processed before): {text}; an "
                           "operator must reconcile with Factus support", outcome_unknown=False)
    outcome = CallOutcome(JobStatus.REJECTED, code="dian_rejected:" + ",".join(codes),
                          http_status=422, message=text)
    try:
        delete_document(client, claimed, claimed.reference_code)
        note = "the rejected document was deleted at Factus so it does not block the account"
        outcome.events.append(("document_deleted", "200", note, None))
    except NotFoundError:
        pass
    except FactusError as exc:
        # The document stays and will block creates (409) until settled; the 409 handler of the
        # next submission finds it (ours, final) and deletes it.
        outcome.events.append(("delete_failed", exc.reason, str(exc), None))
    return outcome


#: The version ``auto`` moves an account to when Factus refuses it the one in use. Only v1 -> v2:
#: accounts opened today are v2-only and answer 403 on /v1 (FACTUS_API.md "API v2"); a refusal
#: of v2 is never "answered" by going back, which could flip an account refused both forever.
AUTO_SWITCH = {"v1": "v2"}


def version_refused(claimed: Claimed, exc: ApiVersionNotEnabled) -> CallOutcome:
    """Factus answered a call of this attempt with "account not enabled for API <version>".

    An ``auto`` account on v1 moves to v2 (``switch``: stored by
    :func:`einvoice.services.record.record_outcome`, the job's step run again at once, no
    attempt counted). Otherwise the job fails with
    ``factus_version_not_enabled``: a configured version the account does not have is the
    operator's to fix. The refused request created nothing, so an earlier unknown outcome stays
    as it was, and nothing else.
    """
    version = claimed.account.api_version
    target = AUTO_SWITCH.get(version)
    auto = claimed.resolved is not None and claimed.resolved.is_auto
    if auto and exc.version == version and target is not None:
        return CallOutcome("switch", code=exc.reason, http_status=403, count_attempt=False,
                           outcome_unknown=claimed.reconcile_first,
                           message=f"Factus refused API {version} for account "
                           f"{claimed.account.username} ({exc}); the account speaks {target} "
                           "from now on (auto) and the job is sent again through it",
                           switch_to=target)
    where = ("FACTUS_API_VERSION" if claimed.account.key == "default"
             else "factus_credentials.api_version")
    return CallOutcome(JobStatus.FAILED, code=exc.reason, http_status=403,
                       outcome_unknown=claimed.reconcile_first,
                       message=f"Factus refused API {exc.version} for account "
                       f"{claimed.account.username} (403: {exc}); set {where} to the version "
                       "the account was opened on (or auto), then `einvoice jobs retry`")


def retry_outcome(ctx: WorkerContext, claimed: Claimed, exc: FactusError,
                  code: str | None = None) -> CallOutcome:
    """A transient Factus error ``exc``: a retry. A 429 waits its ``Retry-After`` (at least 1 s)
    with no attempt counted (``held``); any other error is a counted retry with backoff, the
    outcome unknown when the request may have reached Factus. ``code`` overrides the error's
    reason as ``error_code``."""
    if isinstance(exc, RateLimitedError):
        return CallOutcome("retry", code=exc.reason, message=str(exc),
                           http_status=exc.status_code, delay=max(exc.retry_after, 1.0),
                           count_attempt=False, outcome_unknown=False, step=Outcome.HELD)
    return CallOutcome("retry", code=code or exc.reason, message=str(exc),
                       http_status=exc.status_code, step=Outcome.RETRYABLE,
                       outcome_unknown=bool(exc.may_have_reached))
