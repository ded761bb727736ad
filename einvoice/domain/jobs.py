"""Electronic-invoicing jobs: statuses, the state machine and its decisions, event names and the
retry policy.

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
                 cancelled    operator, only once Factus confirmed its document is gone
                              (deleted or 404): :data:`GUARDED_TRANSITIONS`
    rejected     pending      operator retry after fixing the ERP data
                 cancelled    operator
    failed       pending      operator retry
                 cancelled    operator
    accepted     (none)
    cancelled    (none)

What each outcome of a step does (next status, wait, attempt counted or given back, event) is
decided in one place, :func:`transition`, with one :class:`RetryPolicy`; the services persist
its :class:`Decision`. Follow-ups (archive, e-mail) have their own statuses
(:class:`FollowupStatus`) and :func:`followup_transition`.

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
    WAITING = "waiting"  # nothing was sent: the job waits (its invoice, a key, a blocked account)
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
    ceiling = cap if exponent >= math.log2(cap / base) else min(cap, base * 2.0**exponent)
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
    recheck: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base <= 0 or self.cap <= 0 or self.recheck <= 0:
            raise ValueError(f"base, cap and recheck must be positive, got {self.base}, "
                             f"{self.cap} and {self.recheck}")

    def recheck_delay(self, rechecks: int, rng: random.Random) -> float:
        """Seconds until the next re-check of a document DIAN has not answered yet.

        ``recheck`` (``EINVOICE_DIAN_SLOW_RECHECK_SECONDS``, 5 s) after the first "pending"
        answer, doubling with every further one up to ``cap`` (300 s), ±20 % jitter. A pending
        document blocks its whole account at Factus (409, FACTUS_API.md §5.3), so the first
        re-checks come soon; a document DIAN keeps pending for long is polled at most every
        5 min. This is polling, not backoff: no attempt is spent.

        Args:
            rechecks: "pending" answers already recorded for this document.
            rng: jitter source.
        """
        base = self.recheck * float(2 ** min(rechecks, 16))
        return min(base, self.cap) * (0.8 + 0.4 * rng.random())

    def behind(self, blocker_wait: float, rng: random.Random) -> float:
        """Seconds a job waits behind another job's document pending at DIAN on its account:
        until that job's re-check is due (``blocker_wait`` s), then spread over about one
        re-check interval (``recheck * U[0.5, 1.5)``), since the re-check needs DIAN's answer."""
        return float(blocker_wait) + self.recheck * (0.5 + rng.random())

    def can_retry(self, attempt: int) -> bool:
        """Tell whether another attempt is allowed after ``attempt`` attempts (1-based)."""
        return attempt < self.max_attempts

    def backoff(self, attempt: int, rng: random.Random | None = None, *,
                min_base: float = 0.0) -> float:
        """Seconds to wait after the ``attempt``-th attempt failed transiently: the one backoff
        formula (:func:`backoff_delay`, full jitter) with this policy's ``base`` and ``cap``.

        Args:
            attempt: attempts made so far (1-based).
            rng: jitter source (seed it in tests); the module's generator when None.
            min_base: a floor for ``base`` in seconds (a 409 for a document not created by
                einvoice backs off from at least 5 s: it settles in minutes, not seconds).
        """
        return backoff_delay(attempt, base=max(self.base, min_base), cap=self.cap, rng=rng)

    def soon(self, rng: random.Random, *, spread: float = 1.0) -> float:
        """A short jittered wait of ``base * (1 + spread * U[0, 1))`` seconds, for a step that
        sent nothing and only needs a moment (Redis or PostgreSQL blinked, a 409 was settled).
        """
        return self.base * (1.0 + spread * rng.random())

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


# --- Transitions: what one step's outcome does to a job -------------------------------------


class Outcome(StrEnum):
    """What one step of a job learned: the input of :func:`transition`.

    The services turn Factus's answers and their own checks into one of these; the domain
    decides the job's next status, its wait, its error code and its event (:class:`Decision`).
    """

    CLAIMED = "claimed"  # a worker took the lease (counts an attempt)
    ACCEPTED = "accepted"  # 201 with bill.status 1 and a valid CUFE/CUDE
    REJECTED = "rejected"  # the payload was refused (before the call, or 422) or DIAN rejected it
    FAILED = "failed"  # a permanent error: no retry helps (auth, 403, rule 90, internal error...)
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"  # claimed past max_attempts, nothing to look up
    RETRYABLE = "retryable"  # a transient error (5xx, timeout, invalid CUFE): counted, backoff
    FOREIGN_CONFLICT = "foreign_conflict"  # 409 for a document not created by einvoice
    DIAN_PENDING = "dian_pending"  # 201 with status 0 and no rejection: DIAN is slow (§5.5)
    HELD = "held"  # refused unprocessed (429, 409 behind our own pending document): wait given
    RETRY_SOON = "retry_soon"  # nothing left (Redis or the lease check blinked, a 409 settled)
    WAITING = "waiting"  # nothing was sent: the job waits (its invoice, a key, a blocked account)
    VERSION_SWITCHED = "version_switched"  # an ``auto`` account moved to API v2: run again now
    LEASE_EXPIRED = "lease_expired"  # the worker vanished: the sweeper hands the job back
    OPERATOR_RETRY = "operator_retry"  # an operator re-queues a rejected or failed job
    CANCEL = "cancel"  # an operator cancels the job


@dataclass(frozen=True, slots=True)
class JobState:
    """The facts of a job that :func:`transition` needs.

    Attributes:
        status: the job's status when the step ends (``processing`` for a claimed attempt).
        attempt: ``attempt_count`` as claimed (1 after the first claim).
        own_pending: the job's own document is pending at DIAN (a re-check): a retry keeps it
            ``sent`` so that its account's other jobs keep waiting for it.
        dian_rechecks: "pending" answers DIAN already gave for its document.
    """

    status: JobStatus
    attempt: int = 1
    own_pending: bool = False
    dian_rechecks: int = 0


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """One step's outcome with its details.

    Attributes:
        kind: what happened (:class:`Outcome`).
        code: the short reason (``error_code``, event code); the decision's own code wins for
            ``dian_pending``, ``version_switched`` and ``attempts_exhausted``.
        wait: seconds the cause imposes for ``held`` and ``waiting`` (a ``Retry-After``, the
            wait behind a blocking job, the credit note's wait for its invoice).
        outcome_unknown: a request of this job may have reached Factus without an answer.
        spread: ``retry_soon`` jitter width (:meth:`RetryPolicy.soon`).
        document_gone: ``cancel`` of a ``sent`` job: Factus confirmed its document is gone
            (deleted, or a 404), so nothing at Factus remains to reconcile.
    """

    kind: Outcome
    code: str | None = None
    wait: float | None = None
    outcome_unknown: bool = False
    spread: float = 1.0
    document_gone: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """What a step does to the job (:func:`transition`); the services persist it as it is.

    Attributes:
        status: the job's new status.
        event_type: the event written for the change (:class:`EventType` values and
            ``waiting``).
        error_code: the new ``error_code`` (None clears it).
        delay: seconds until ``next_retry_at`` for a job put back to wait (``pending`` or
            ``sent``); None for a final status.
        count_attempt: whether the step keeps its claimed attempt (False gives it back:
            ``attempt_count - 1``).
        outcome_unknown: the job's new ``outcome_unknown`` flag.
        gave_up: a retryable outcome had no attempt left: the job ends ``failed``.
        last_look: a retryable outcome had no attempt left but the last one may have reached
            Factus: one more pass looks the reference up and never sends.
        reset_attempts: ``attempt_count`` starts again from 0 (an operator's retry).
    """

    status: JobStatus
    event_type: str
    error_code: str | None = None
    delay: float | None = None
    count_attempt: bool = True
    outcome_unknown: bool = False
    gave_up: bool = False
    last_look: bool = False
    reset_attempts: bool = False

    @property
    def final(self) -> bool:
        """Whether the job ends here (no worker moves it on its own)."""
        return self.status in FINAL_STATUSES


#: Arrows outside :data:`ALLOWED_TRANSITIONS` that one outcome may take, with the condition
#: :func:`transition` checks. A ``sent`` job may exist at Factus, so it is cancelled only once
#: Factus confirmed its document is gone (the operator's cancel deletes it first).
GUARDED_TRANSITIONS: Mapping[tuple[JobStatus, JobStatus], str] = MappingProxyType(
    {(JobStatus.SENT, JobStatus.CANCELLED): "document_gone"}
)

#: Outcomes that do not come from a claimed attempt (the state machine alone says from where).
_ANY_SOURCE = frozenset({Outcome.CLAIMED, Outcome.OPERATOR_RETRY, Outcome.CANCEL})

#: The jitter source when a caller gives none (a plain generator: no I/O).
_RNG = random.Random()  # noqa: S311 - retry jitter, not a secret


def transition(state: JobState, outcome: StepOutcome, policy: RetryPolicy,
               rng: random.Random | None = None) -> Decision:
    """Decide what ``outcome`` does to a job in ``state``: the one table of the state machine.

    Args:
        state: the job's facts (:class:`JobState`).
        outcome: what the step learned (:class:`StepOutcome`).
        policy: the job's retry policy (its ``max_attempts``, the settings' base, cap and
            re-check interval).
        rng: jitter source for the delays (seed it in tests); the module's generator when None.
    Returns:
        The :class:`Decision`; the table is drawn in the project's architecture notes ("The job
        state machine") and in this function's body, one branch per outcome.
    Raises:
        IllegalTransitionError: the state machine (:data:`ALLOWED_TRANSITIONS`, and
            :data:`GUARDED_TRANSITIONS` with its condition) forbids the change, e.g. a
            ``processing`` job cancelled, an ``accepted`` one retried, a step recorded for a
            job that is not ``processing``.
    Source: FACTUS_API.md Decision 4 (what to do on each answer), §5.3 (409), §5.5 (DIAN slow),
    §9 (429); Decision 3 (an unknown outcome is looked up by reference code before any send).
    """
    decision = _decide(state, outcome, policy, rng if rng is not None else _RNG)
    if outcome.kind not in _ANY_SOURCE and state.status != JobStatus.PROCESSING:
        # A worker's outcome belongs to the attempt it claimed: a job that is not processing
        # (released, final, or never claimed) is not moved by it.
        raise IllegalTransitionError(state.status.value, decision.status.value,
                                     allowed=frozenset())
    guard = GUARDED_TRANSITIONS.get((state.status, decision.status))
    if guard is None or not getattr(outcome, guard):
        check_transition(state.status, decision.status)
    return decision


def _decide(state: JobState, outcome: StepOutcome, policy: RetryPolicy,
            rng: random.Random) -> Decision:
    kind = outcome.kind
    code = outcome.code
    unknown = outcome.outcome_unknown
    if kind is Outcome.CLAIMED:
        return Decision(JobStatus.PROCESSING, EventType.CLAIMED, error_code=None,
                        outcome_unknown=unknown)
    if kind is Outcome.ACCEPTED:
        return Decision(JobStatus.ACCEPTED, EventType.ACCEPTED)
    if kind is Outcome.REJECTED:
        return Decision(JobStatus.REJECTED, EventType.REJECTED, error_code=code,
                        outcome_unknown=unknown)
    if kind is Outcome.FAILED:
        return Decision(JobStatus.FAILED, EventType.FAILED, error_code=code,
                        outcome_unknown=unknown)
    if kind is Outcome.ATTEMPTS_EXHAUSTED:
        return Decision(JobStatus.FAILED, EventType.FAILED, error_code="attempts_exhausted",
                        outcome_unknown=unknown)
    if kind is Outcome.DIAN_PENDING:
        delay = policy.recheck_delay(state.dian_rechecks, rng)
        return Decision(JobStatus.SENT, EventType.DIAN_SLOW, error_code="dian_slow",
                        delay=delay or 10.0, count_attempt=False)
    if kind is Outcome.WAITING:
        return Decision(JobStatus.PENDING, EventType.WAITING, error_code=code or "waiting",
                        delay=outcome.wait or 1.0, count_attempt=False, outcome_unknown=unknown)
    if kind is Outcome.VERSION_SWITCHED:
        # Due at once and not counted: the step runs again through the version just stored.
        return Decision(JobStatus.PENDING, EventType.RETRY_SCHEDULED,
                        error_code="api_version_switched", delay=0.0, count_attempt=False,
                        outcome_unknown=unknown)
    if kind is Outcome.LEASE_EXPIRED:
        # Due now, its attempt kept (it may have reached Factus: ``outcome_unknown`` stays, so
        # the next attempt looks the reference up first).
        return Decision(JobStatus.PENDING, EventType.LEASE_EXPIRED, error_code="lease_expired",
                        delay=0.0, outcome_unknown=unknown)
    if kind is Outcome.OPERATOR_RETRY:
        return Decision(JobStatus.PENDING, EventType.OPERATOR_RETRY, delay=0.0,
                        count_attempt=False, outcome_unknown=unknown, reset_attempts=True)
    if kind is Outcome.CANCEL:
        return Decision(JobStatus.CANCELLED, EventType.CANCELLED, error_code=code)
    return _retry(state, outcome, policy, rng)


def _retry(state: JobState, outcome: StepOutcome, policy: RetryPolicy,
           rng: random.Random) -> Decision:
    """The retry kinds: a counted transient error backs off (or gives up when no attempt is
    left); a step refused unprocessed waits without spending an attempt."""
    kind = outcome.kind
    code = outcome.code or "retry"
    if kind is Outcome.RETRYABLE:
        counted, delay = True, policy.backoff(state.attempt, rng)
    elif kind is Outcome.FOREIGN_CONFLICT:
        counted, delay = True, policy.backoff(state.attempt, rng, min_base=5.0)
    elif kind is Outcome.HELD:
        counted, delay = False, outcome.wait or 0.0
    else:  # RETRY_SOON
        counted, delay = False, policy.soon(rng, spread=outcome.spread)
    # A re-check whose document is pending at DIAN stays ``sent`` through its retries: the
    # document still blocks the account at Factus, and ``sent`` keeps the account's other
    # jobs waiting for it instead of bursting POSTs that Factus answers 409.
    status = JobStatus.SENT if state.own_pending else JobStatus.PENDING
    unknown = outcome.outcome_unknown
    if state.attempt < policy.max_attempts or not counted:
        return Decision(status, EventType.RETRY_SCHEDULED, error_code=code, delay=delay or 1.0,
                        count_attempt=counted, outcome_unknown=unknown)
    if unknown:
        # The last attempt may have reached Factus: one more pass looks the reference up
        # (and never sends) before the job is given up.
        return Decision(status, EventType.RETRY_SCHEDULED, error_code=code, delay=delay or 1.0,
                        count_attempt=True, outcome_unknown=True, last_look=True)
    return Decision(JobStatus.FAILED, EventType.FAILED, error_code=outcome.code, gave_up=True)


# --- Follow-ups (archive, e-mail) -----------------------------------------------------------


class FollowupStatus(StrEnum):
    """``electronic_invoicing_followups.status``: a follow-up of an accepted job."""

    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class FollowupOutcome(StrEnum):
    """What one run of a follow-up learned: the input of :func:`followup_transition`."""

    DONE = "done"  # the files were stored, or the e-mail was sent
    FAILED = "failed"  # a permanent error, or the e-mail's outcome is unknown (never repeated)
    RETRYABLE = "retryable"  # a transient error: counted, backoff
    HELD = "held"  # 429: refused unprocessed, wait ``Retry-After`` without spending an attempt
    LEASE_EXPIRED = "lease_expired"  # the worker vanished; an archive (a read) runs again now
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"  # claimed past max_attempts


@dataclass(frozen=True, slots=True)
class FollowupDecision:
    """What a follow-up run does to its row (:func:`followup_transition`).

    Attributes:
        status: the new ``FollowupStatus``.
        delay: seconds until ``next_retry_at`` when put back ``pending``; None when final.
        count_attempt: whether the claimed attempt is kept.
        gave_up: a retryable outcome had no attempt left.
    """

    status: FollowupStatus
    delay: float | None = None
    count_attempt: bool = True
    gave_up: bool = False


def followup_transition(attempt: int, outcome: FollowupOutcome, policy: RetryPolicy, *,
                        wait: float | None = None,
                        rng: random.Random | None = None) -> FollowupDecision:
    """Decide what a run's ``outcome`` does to a follow-up claimed at attempt ``attempt``.

    Args:
        attempt: the follow-up's ``attempt_count`` as claimed (1-based).
        outcome: what the run learned.
        policy: the follow-up's retry policy (its ``max_attempts``; the settings' base and cap).
        wait: ``held``: the seconds Factus asked for (``Retry-After``).
        rng: jitter source (seed it in tests).
    Returns:
        ``done`` / ``failed`` (final), or ``pending`` with a delay: a transient error backs off
        with the same formula as a job (:meth:`RetryPolicy.backoff`) while attempts are left;
        a 429 waits ``max(Retry-After, 1)`` s uncounted; an expired archive lease is due now
        (counted). The events a run writes on the job are the service's (``archive_retry``...).
    """
    source = rng if rng is not None else _RNG
    if outcome is FollowupOutcome.DONE:
        return FollowupDecision(FollowupStatus.DONE)
    if outcome in (FollowupOutcome.FAILED, FollowupOutcome.ATTEMPTS_EXHAUSTED):
        return FollowupDecision(FollowupStatus.FAILED)
    if outcome is FollowupOutcome.LEASE_EXPIRED:
        return FollowupDecision(FollowupStatus.PENDING, delay=0.0)
    if outcome is FollowupOutcome.HELD:
        return FollowupDecision(FollowupStatus.PENDING, delay=max(wait or 0.0, 1.0),
                                count_attempt=False)
    if attempt < policy.max_attempts:
        return FollowupDecision(FollowupStatus.PENDING, delay=policy.backoff(attempt, source))
    return FollowupDecision(FollowupStatus.FAILED, gave_up=True)


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
    return status == JobStatus.FAILED and (outcome_unknown or error_code in AMBIGUOUS_FAILURE_CODES)


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
