"""The job state machine's decision table: :func:`einvoice.domain.jobs.transition` per outcome,
and :func:`followup_transition` for archives and e-mails.

Each delay is checked against the formula the services used inline before the domain decided
(the same seeded generator must give the same seconds), so the table changes no figure.
"""

from __future__ import annotations

import random

import pytest

from einvoice.domain.errors import IllegalTransitionError
from einvoice.domain.jobs import (
    Decision,
    EventType,
    FollowupOutcome,
    FollowupStatus,
    JobState,
    JobStatus,
    Outcome,
    RetryPolicy,
    StepOutcome,
    backoff_delay,
    followup_transition,
    transition,
)

POLICY = RetryPolicy(max_attempts=5, base=2.0, cap=300.0, recheck=5.0)
PROCESSING = JobStatus.PROCESSING


def decide(kind: Outcome, *, attempt: int = 1, own_pending: bool = False, rechecks: int = 0,
           status: JobStatus = PROCESSING, seed: int = 7, **details: object) -> Decision:
    state = JobState(status, attempt, own_pending=own_pending, dian_rechecks=rechecks)
    return transition(state, StepOutcome(kind, **details), POLICY,  # type: ignore[arg-type]
                      random.Random(seed))


# --- claim and final outcomes ---------------------------------------------------------------


@pytest.mark.parametrize("previous", [JobStatus.PENDING, JobStatus.SENT])
def test_a_claim_moves_a_due_job_to_processing(previous: JobStatus) -> None:
    # Given a due job (new, or a DIAN re-check), when a worker claims it,
    decision = decide(Outcome.CLAIMED, status=previous)
    # then it is processing, with a "claimed" event and its attempt counted.
    assert (decision.status, decision.event_type) == (PROCESSING, EventType.CLAIMED)
    assert decision.count_attempt
    assert decision.delay is None


def test_acceptance_is_final_and_clears_the_error() -> None:
    decision = decide(Outcome.ACCEPTED, code="ignored")
    assert (decision.status, decision.event_type, decision.error_code) == (
        JobStatus.ACCEPTED, EventType.ACCEPTED, None)
    assert decision.final
    assert not decision.outcome_unknown
    assert decision.delay is None


@pytest.mark.parametrize(("kind", "status", "code"), [
    (Outcome.REJECTED, JobStatus.REJECTED, "payload_invalid"),
    (Outcome.REJECTED, JobStatus.REJECTED, "dian_rejected:FAD06"),
    (Outcome.FAILED, JobStatus.FAILED, "dian_already_processed"),
    (Outcome.FAILED, JobStatus.FAILED, "authentication_failed"),
])
def test_a_refusal_or_a_permanent_error_ends_the_job_with_its_reason(
        kind: Outcome, status: JobStatus, code: str) -> None:
    decision = decide(kind, code=code)
    assert (decision.status, decision.event_type, decision.error_code) == (status, status, code)
    assert decision.final
    assert decision.count_attempt
    assert not decision.gave_up


def test_a_failure_that_may_have_reached_factus_keeps_the_outcome_unknown() -> None:
    # Given an internal error after the request may have left (or DIAN pending past the bound),
    decision = decide(Outcome.FAILED, code="dian_timeout", outcome_unknown=True)
    # then the job fails but an operator's retry will look the reference up first.
    assert decision.status == JobStatus.FAILED
    assert decision.outcome_unknown


def test_a_claim_past_the_last_attempt_fails_attempts_exhausted() -> None:
    decision = decide(Outcome.ATTEMPTS_EXHAUSTED, attempt=6)
    assert (decision.status, decision.error_code, decision.event_type) == (
        JobStatus.FAILED, "attempts_exhausted", EventType.FAILED)


# --- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_a_transient_error_with_attempts_left_backs_off_with_full_jitter(attempt: int) -> None:
    # Given attempt n of 5 failed with a 5xx or a timeout,
    decision = decide(Outcome.RETRYABLE, attempt=attempt, code="server_error", seed=attempt)
    # then the job is pending again, its attempt counted, due after the one backoff formula.
    expected = backoff_delay(attempt, base=2.0, cap=300.0, rng=random.Random(attempt))
    assert (decision.status, decision.event_type, decision.error_code) == (
        JobStatus.PENDING, EventType.RETRY_SCHEDULED, "server_error")
    assert decision.delay == (expected or 1.0)
    assert decision.count_attempt
    assert not decision.gave_up
    assert not decision.last_look


def test_a_retry_of_a_document_pending_at_dian_stays_sent() -> None:
    # Given a re-check whose own document is pending at DIAN, when Factus answers a 5xx,
    decision = decide(Outcome.RETRYABLE, own_pending=True, code="server_error")
    # then it stays sent: the account's other jobs keep waiting for its document.
    assert decision.status == JobStatus.SENT


def test_the_last_transient_error_with_a_known_outcome_gives_up() -> None:
    decision = decide(Outcome.RETRYABLE, attempt=5, code="server_error")
    assert (decision.status, decision.error_code, decision.event_type) == (
        JobStatus.FAILED, "server_error", EventType.FAILED)
    assert decision.gave_up
    assert not decision.outcome_unknown


def test_the_last_transient_error_with_an_unknown_outcome_gets_one_lookup_pass() -> None:
    # Given the 5th of 5 attempts timed out after the request left,
    decision = decide(Outcome.RETRYABLE, attempt=5, code="timeout", outcome_unknown=True)
    # then one more (counted) pass is scheduled, which only looks the reference up.
    assert decision.status == JobStatus.PENDING
    assert decision.last_look
    assert decision.count_attempt
    assert decision.outcome_unknown
    assert not decision.gave_up


def test_a_409_for_a_foreign_document_backs_off_from_at_least_five_seconds() -> None:
    decision = decide(Outcome.FOREIGN_CONFLICT, attempt=3, code="pending_document", seed=3)
    expected = backoff_delay(3, base=5.0, cap=300.0, rng=random.Random(3))
    assert decision.delay == (expected or 1.0)
    assert decision.count_attempt
    assert decision.error_code == "pending_document"


@pytest.mark.parametrize("attempt", [1, 5, 9])
def test_a_held_step_waits_what_it_was_told_without_spending_an_attempt(attempt: int) -> None:
    # Given a 429 with Retry-After 12 s (or a 409 behind our own pending document), at any
    # attempt, even past the last,
    decision = decide(Outcome.HELD, attempt=attempt, code="rate_limited", wait=12.0)
    # then the job waits 12 s, its attempt given back.
    assert (decision.status, decision.delay, decision.count_attempt) == (
        JobStatus.PENDING, 12.0, False)
    assert decision.event_type == EventType.RETRY_SCHEDULED


@pytest.mark.parametrize("spread", [1.0, 2.0])
def test_a_step_that_sent_nothing_retries_soon(spread: float) -> None:
    # Given Redis vanished or the lease could not be confirmed (spread 1), or a 409 was settled
    # (spread 2),
    decision = decide(Outcome.RETRY_SOON, code="redis_unavailable", spread=spread, seed=11)
    # then it retries after base * (1 + spread * U), uncounted.
    assert decision.delay == pytest.approx(2.0 * (1 + spread * random.Random(11).random()))
    assert not decision.count_attempt
    assert decision.status == JobStatus.PENDING


# --- waits without an attempt ---------------------------------------------------------------


@pytest.mark.parametrize("rechecks", [0, 1, 4, 20])
def test_dian_slow_puts_the_job_sent_and_rechecks_with_growing_waits(rechecks: int) -> None:
    # Given DIAN answered "pending" (201, status 0) for the (k+1)-th time,
    decision = decide(Outcome.DIAN_PENDING, rechecks=rechecks, seed=rechecks)
    # then the job is sent, re-checked after min(cap, 5 s * 2^k) +-20 %, uncounted.
    jitter = 0.8 + 0.4 * random.Random(rechecks).random()
    expected = min(5.0 * 2 ** min(rechecks, 16), 300.0) * jitter
    assert (decision.status, decision.event_type, decision.error_code) == (
        JobStatus.SENT, EventType.DIAN_SLOW, "dian_slow")
    assert decision.delay == pytest.approx(expected)
    assert not decision.count_attempt
    assert not decision.outcome_unknown


def test_a_waiting_job_is_pending_after_the_given_wait_uncounted() -> None:
    decision = decide(Outcome.WAITING, code="waiting_for_invoice", wait=5.0, attempt=9)
    assert (decision.status, decision.event_type, decision.error_code, decision.delay) == (
        JobStatus.PENDING, EventType.WAITING, "waiting_for_invoice", 5.0)
    assert not decision.count_attempt


def test_an_api_version_switch_is_due_at_once_uncounted() -> None:
    decision = decide(Outcome.VERSION_SWITCHED, code="factus_version_not_enabled")
    assert (decision.status, decision.delay, decision.error_code) == (
        JobStatus.PENDING, 0.0, "api_version_switched")
    assert not decision.count_attempt


def test_an_expired_lease_hands_the_job_back_due_now_keeping_its_attempt() -> None:
    decision = decide(Outcome.LEASE_EXPIRED, outcome_unknown=True)
    assert (decision.status, decision.event_type, decision.delay) == (
        JobStatus.PENDING, EventType.LEASE_EXPIRED, 0.0)
    assert decision.count_attempt
    assert decision.outcome_unknown


def test_the_policy_waits_behind_a_blocker_until_its_recheck_then_spreads() -> None:
    assert POLICY.behind(30.0, random.Random(5)) == pytest.approx(
        30.0 + 5.0 * (0.5 + random.Random(5).random()))


# --- operator actions -----------------------------------------------------------------------


@pytest.mark.parametrize("previous", [JobStatus.FAILED, JobStatus.REJECTED])
def test_an_operator_retry_requeues_a_final_job_due_now(previous: JobStatus) -> None:
    decision = decide(Outcome.OPERATOR_RETRY, status=previous)
    assert (decision.status, decision.event_type, decision.delay) == (
        JobStatus.PENDING, EventType.OPERATOR_RETRY, 0.0)
    assert decision.reset_attempts


@pytest.mark.parametrize("previous", [JobStatus.PENDING, JobStatus.FAILED, JobStatus.REJECTED])
def test_an_operator_cancel_ends_a_job_that_has_no_document(previous: JobStatus) -> None:
    decision = decide(Outcome.CANCEL, status=previous)
    assert (decision.status, decision.event_type) == (JobStatus.CANCELLED, EventType.CANCELLED)


def test_a_sent_job_is_cancelled_only_once_factus_confirmed_its_document_gone() -> None:
    # Given a job whose document is pending at DIAN,
    # when an operator cancels it before the document was deleted, then it is refused;
    with pytest.raises(IllegalTransitionError):
        decide(Outcome.CANCEL, status=JobStatus.SENT)
    # when Factus confirmed the document is gone (deleted, or a 404), then it is cancelled.
    decision = decide(Outcome.CANCEL, status=JobStatus.SENT, document_gone=True)
    assert decision.status == JobStatus.CANCELLED


# --- illegal transitions ----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [
    (JobStatus.ACCEPTED, Outcome.OPERATOR_RETRY),  # an accepted document is never sent again
    (JobStatus.ACCEPTED, Outcome.CANCEL),  # the way back is a credit note
    (JobStatus.CANCELLED, Outcome.OPERATOR_RETRY),
    (JobStatus.PROCESSING, Outcome.CANCEL),  # a worker is mid-request
    (JobStatus.PENDING, Outcome.OPERATOR_RETRY),  # already queued
    (JobStatus.PENDING, Outcome.ACCEPTED),  # acceptance only comes from a processed attempt
    (JobStatus.FAILED, Outcome.RETRYABLE),  # a final job is not retried by a worker
    (JobStatus.PROCESSING, Outcome.CLAIMED),  # claimed twice
    (JobStatus.ACCEPTED, Outcome.CLAIMED),
])
def test_an_outcome_the_state_machine_forbids_raises(status: JobStatus, kind: Outcome) -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        decide(kind, status=status)
    assert caught.value.reason == "illegal_transition"
    assert caught.value.current == status


# --- follow-ups ------------------------------------------------------------------------------


def test_a_followup_done_or_failed_is_final() -> None:
    assert followup_transition(1, FollowupOutcome.DONE, POLICY).status == FollowupStatus.DONE
    assert followup_transition(1, FollowupOutcome.FAILED, POLICY).status == FollowupStatus.FAILED
    exhausted = followup_transition(6, FollowupOutcome.ATTEMPTS_EXHAUSTED, POLICY)
    assert exhausted.status == FollowupStatus.FAILED


def test_a_followup_transient_error_backs_off_like_a_job_then_gives_up() -> None:
    # Given an archive download answered 503 at attempt 2 of 5,
    retry = followup_transition(2, FollowupOutcome.RETRYABLE, POLICY, rng=random.Random(4))
    # then it is pending after the jobs' backoff, its attempt counted;
    assert retry.status == FollowupStatus.PENDING
    assert retry.count_attempt
    assert retry.delay == backoff_delay(2, base=2.0, cap=300.0, rng=random.Random(4))
    # and at attempt 5 of 5 it gives up.
    last = followup_transition(5, FollowupOutcome.RETRYABLE, POLICY)
    assert (last.status, last.gave_up) == (FollowupStatus.FAILED, True)


def test_a_followup_rate_limited_waits_retry_after_uncounted_even_at_the_last_attempt() -> None:
    held = followup_transition(5, FollowupOutcome.HELD, POLICY, wait=0.2)
    assert (held.status, held.delay, held.count_attempt) == (FollowupStatus.PENDING, 1.0, False)


def test_an_expired_followup_lease_is_due_now_counted() -> None:
    expired = followup_transition(3, FollowupOutcome.LEASE_EXPIRED, POLICY)
    assert (expired.status, expired.delay, expired.count_attempt) == (
        FollowupStatus.PENDING, 0.0, True)
