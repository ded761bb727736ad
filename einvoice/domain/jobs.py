"""Electronic-invoicing jobs: statuses, the state machine, event names and the retry policy.

The status and document-type values are the seed's (seed 002 "Análisis de Tablas Existentes",
``electronic_invoicing_jobs.status`` and ``.document_type``), so they can be stored as they are.

The state machine (any change not listed raises
:class:`~einvoice.domain.errors.IllegalTransitionError`)::

    from         to
    pending      processing   a worker claimed it
                 rejected     the payload was refused before any claim
                 cancelled    operator
    processing   sent         the outcome is open: timeout after the request left, or DIAN slow
                              (201 with status 0, FACTUS_API.md §5.5)
                 accepted     201 with status 1
                 rejected     422 payload error or DIAN rejection (§5.2, §5.4)
                 failed       permanent non-payload error, or attempts exhausted
                 pending      transient error with a retry scheduled, or lease expired
    sent         processing   re-send with the same reference, or reconcile (Decision 3)
                 accepted, rejected, failed, pending   as above
    rejected     pending      operator retry after fixing the ERP data
                 cancelled    operator
    failed       pending      operator retry
                 cancelled    operator
    accepted     (none)
    cancelled    (none)

Final statuses (:data:`FINAL_STATUSES`) are those no worker moves on its own: ``accepted`` and
``cancelled`` never change again; ``rejected`` and ``failed`` change only by an operator's retry
or cancel. ``sent`` is active: the document may exist at Factus, so a sent job can never be
cancelled (FACTUS_API.md Decision 3: look it up before anything else).
"""

from __future__ import annotations

import base64
import math
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from einvoice.domain.errors import IllegalTransitionError


class JobStatus(StrEnum):
    """``electronic_invoicing_jobs.status`` (seed 002). Values are stored as these strings."""

    PENDING = "pending"
    PROCESSING = "processing"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.ACCEPTED, JobStatus.REJECTED, JobStatus.FAILED, JobStatus.CANCELLED}
)
ACTIVE_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.SENT}
)

ALLOWED_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = MappingProxyType(
    {
        JobStatus.PENDING: frozenset(
            {JobStatus.PROCESSING, JobStatus.REJECTED, JobStatus.CANCELLED}
        ),
        JobStatus.PROCESSING: frozenset(
            {
                JobStatus.SENT,
                JobStatus.ACCEPTED,
                JobStatus.REJECTED,
                JobStatus.FAILED,
                # a transient error scheduled a retry, or the lease expired and a sweeper
                # hands the job back
                JobStatus.PENDING,
            }
        ),
        JobStatus.SENT: frozenset(
            {
                JobStatus.PROCESSING,
                JobStatus.ACCEPTED,
                JobStatus.REJECTED,
                JobStatus.FAILED,
                JobStatus.PENDING,
            }
        ),
        JobStatus.REJECTED: frozenset({JobStatus.PENDING, JobStatus.CANCELLED}),
        JobStatus.FAILED: frozenset({JobStatus.PENDING, JobStatus.CANCELLED}),
        JobStatus.ACCEPTED: frozenset(),
        JobStatus.CANCELLED: frozenset(),
    }
)


def can_transition(current: JobStatus | str, target: JobStatus | str) -> bool:
    """Tell whether a job may move from ``current`` to ``target``.

    Inputs: two status values (``JobStatus`` or their strings). Output: ``True`` if the arrow is
    in :data:`ALLOWED_TRANSITIONS`. Raises ``ValueError`` for a string that is not a status.
    """
    return JobStatus(target) in ALLOWED_TRANSITIONS[JobStatus(current)]


def check_transition(current: JobStatus | str, target: JobStatus | str) -> JobStatus:
    """Validate one status change and return the target as a ``JobStatus``.

    Inputs: the job's current status and the wanted one. Output: ``JobStatus(target)``.
    Raises :class:`IllegalTransitionError` (reason ``illegal_transition``) when the state machine
    in this module's docstring forbids the change, including a change to the same status;
    ``ValueError`` for an unknown status string.
    """
    current_status = JobStatus(current)
    target_status = JobStatus(target)
    allowed = ALLOWED_TRANSITIONS[current_status]
    if target_status not in allowed:
        raise IllegalTransitionError(
            current_status.value,
            target_status.value,
            allowed=frozenset(status.value for status in allowed),
        )
    return target_status


class DocumentType(StrEnum):
    """``electronic_invoicing_jobs.document_type`` and ``invoice_sales.document_type`` (seed 002)."""

    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"
    DEBIT_NOTE = "debit_note"
    SUPPORT_DOCUMENT = "support_document"

    @property
    def numbering_range_document_code(self) -> str:
        """Factus numbering-range document code for this type (FACTUS_API.md §8.1): 21–24."""
        return _RANGE_DOCUMENT_CODES[self]


_RANGE_DOCUMENT_CODES: Mapping[DocumentType, str] = MappingProxyType(
    {
        DocumentType.INVOICE: "21",
        DocumentType.CREDIT_NOTE: "22",
        DocumentType.DEBIT_NOTE: "23",
        DocumentType.SUPPORT_DOCUMENT: "24",
    }
)


class EventType(StrEnum):
    """``electronic_invoicing_events.event_type`` values written by the pipeline.

    One per thing that happens to a job; ``event_code`` carries the detail (a rule code, an
    HTTP status, a ``reason``).
    """

    ENQUEUED = "enqueued"  # job row created (pending)
    CLAIMED = "claimed"  # a worker took the lease (processing)
    SUBMITTED = "submitted"  # validate request about to go out; written before the HTTP call
    ACCEPTED = "accepted"  # 201 with bill.status 1
    DIAN_NOTIFICATION = "dian_notification"  # a "Notificación" rule on an accepted document
    REJECTED = "rejected"  # payload error or DIAN "Rechazo" (FACTUS_API.md §5.2, §5.4)
    REJECTED_DOCUMENT_DELETED = "rejected_document_deleted"  # DELETE .../destroy/reference
    DIAN_SLOW = "dian_slow"  # 201 with status 0 and no rejection (§5.5)
    PENDING_CONFLICT = "pending_conflict"  # 409 "pendiente por enviar" (§5.3)
    RATE_LIMITED = "rate_limited"  # 429, waited Retry-After (§9)
    RETRY_SCHEDULED = "retry_scheduled"  # transient error; next_retry_at set
    FAILED = "failed"  # attempts exhausted or permanent non-payload error
    NEEDS_OPERATOR = "needs_operator"  # e.g. rule 90 "Documento procesado anteriormente"
    RECONCILED = "reconciled"  # outcome settled by looking the reference up (Decision 3)
    LEASE_EXPIRED = "lease_expired"  # a worker vanished; the sweeper released the job
    CANCELLED = "cancelled"  # operator cancelled
    OPERATOR_RETRY = "operator_retry"  # operator sent a rejected/failed job back to pending


# --- Retry policy ---------------------------------------------------------------------------


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before the next try: exponential backoff with full jitter, capped.

    Inputs: ``attempt`` = how many attempts have been made so far (1 after the first failure);
    ``base`` and ``cap`` in seconds (> 0); ``rng`` a ``random.Random`` (seed it in tests), the
    module's shared generator when ``None``.
    Output: a float uniformly drawn from ``[0, min(cap, base * 2 ** (attempt - 1))]``.
    Raises ``ValueError`` for ``attempt < 1`` or a non-positive ``base``/``cap``.
    Source: "Exponential Backoff And Jitter", AWS Architecture Blog (Marc Brooker, 2015),
    "Full Jitter": ``sleep = random_between(0, min(cap, base * 2 ** attempt))``; FACTUS_API.md
    Decision 4 (5xx, timeouts: exponential backoff with jitter).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if base <= 0 or cap <= 0:
        raise ValueError(f"base and cap must be positive seconds, got base={base} cap={cap}")
    exponent = attempt - 1
    # Compare exponents instead of computing 2 ** exponent, which overflows a float for the
    # large attempt counts a stuck job can reach.
    if exponent >= math.log2(cap / base):
        ceiling = cap
    else:
        ceiling = min(cap, base * 2.0**exponent)
    source = rng if rng is not None else random
    return source.uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long a job is retried after transient errors.

    Attributes:
        max_attempts: attempts allowed in total, the first included
            (``electronic_invoicing_jobs.max_attempts``, seed default 5).
        base: backoff base in seconds (``EINVOICE_RETRY_BASE_SECONDS``, default 2).
        cap: largest wait in seconds (``EINVOICE_RETRY_CAP_SECONDS``, default 300).
    """

    max_attempts: int = 5
    base: float = 2.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base <= 0 or self.cap <= 0:
            raise ValueError(f"base and cap must be positive, got {self.base} and {self.cap}")

    def can_retry(self, attempt: int) -> bool:
        """Tell whether another attempt is allowed after ``attempt`` attempts (1-based)."""
        return attempt < self.max_attempts

    def next_retry_at(
        self, now: datetime, attempt: int, *, rng: random.Random | None = None
    ) -> datetime | None:
        """When to try again after the ``attempt``-th attempt failed transiently.

        Inputs: ``now`` as a timezone-aware UTC ``datetime``; ``attempt`` = attempts made so far
        (``electronic_invoicing_jobs.attempt_count`` after incrementing, ≥ 1); optional ``rng``.
        Output: ``now`` plus :func:`backoff_delay`, or ``None`` when ``attempt`` has reached
        ``max_attempts`` (the job should fail instead).
        Raises ``ValueError`` for a naive ``now`` or ``attempt < 1``.
        """
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware (UTC)")
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        if not self.can_retry(attempt):
            return None
        delay = backoff_delay(attempt, base=self.base, cap=self.cap, rng=rng)
        return now + timedelta(seconds=delay)


# --- Reference codes --------------------------------------------------------------------------

REFERENCE_CODE_PREFIX = "EI"
REFERENCE_CODE_MAX_CHARS = 20


def new_reference_code() -> str:
    """A fresh Factus ``reference_code`` for a new job: ``"EI"`` + 16 base32 characters.

    Output: an 18-character string of ``A–Z`` and ``2–7`` (80 random bits), e.g.
    ``"EIMFRGGZDFMZTWQ2LK"``: safe in a URL path (``DELETE /v1/bills/destroy/reference/{ref}``)
    and within the ~20 characters FACTUS_API.md §9 advises. Draw it once when the job is created
    and reuse it on every attempt (Decision 3: it is the idempotency key).
    """
    token = base64.b32encode(secrets.token_bytes(10)).decode("ascii")
    return REFERENCE_CODE_PREFIX + token


# --- Ambiguous endings --------------------------------------------------------------------------

#: ``error_code`` values of a ``failed`` job whose document may nevertheless exist at Factus:
#: its outcome was never learnt (``outcome_unknown``, ``invalid_cufe``), DIAN kept it pending
#: past the bound (``dian_timeout``), Factus holds a validated document that does not match the
#: payload (``reconcile_mismatch``), or DIAN says it processed it before (rule 90,
#: ``dian_already_processed``). A retry or a new job of the invoice reuses that job's reference
#: code and looks it up first, so Factus's deduplication by reference code protects it; only an
#: operator's explicit ``--new-document`` draws a fresh one. A failed job with the
#: ``outcome_unknown`` flag set is ambiguous whatever its code. The database's insert trigger
#: (migration 0006) applies the same list.
AMBIGUOUS_FAILURE_CODES = ("outcome_unknown", "reconcile_mismatch", "dian_already_processed",
                           "dian_timeout", "invalid_cufe")


def is_ambiguous_ending(status: str, error_code: str | None, outcome_unknown: bool) -> bool:
    """Whether a job's ending leaves its document's existence at Factus unknown.

    Args:
        status: the job's status; only ``failed`` can be ambiguous.
        error_code: the job's ``error_code``.
        outcome_unknown: the job's ``outcome_unknown`` flag.
    Returns:
        True for a ``failed`` job with the flag set or an :data:`AMBIGUOUS_FAILURE_CODES` code.
    """
    return status == "failed" and (outcome_unknown or error_code in AMBIGUOUS_FAILURE_CODES)


# --- Trusting Factus's answer --------------------------------------------------------------------


def is_valid_unique_code(code: object) -> bool:
    """Whether ``code`` can be a DIAN CUFE (invoice) or CUDE (credit note).

    Both are the SHA-384 of the document's fields written in hexadecimal: exactly 96 characters
    ``0-9a-f`` (DIAN's Anexo Técnico de Factura Electrónica de Venta, CUFE/CUDE as SHA-384;
    Factus returns them in lowercase: FACTUS_API.md §4.1). Upper-case hex is accepted too.

    Args:
        code: the ``cufe``/``cude`` of a Factus answer (any type; None when absent).
    Returns:
        True for a 96-character hex string, False otherwise.
    """
    return (isinstance(code, str) and len(code) == 96
            and all(c in "0123456789abcdefABCDEF" for c in code))
