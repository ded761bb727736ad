"""Job state machine, retry policy (full-jitter backoff) and reference codes."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from einvoice.domain.errors import IllegalTransitionError
from einvoice.domain.jobs import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    DocumentType,
    EventType,
    JobStatus,
    RetryPolicy,
    backoff_delay,
    can_transition,
    check_transition,
    new_reference_code,
)
from einvoice.errors import EinvoiceError, JobError

NOW = datetime(2025, 3, 14, 15, 0, tzinfo=UTC)


def test_statuses_and_document_types_are_the_seed_values() -> None:
    assert {s.value for s in JobStatus} == {
        "pending",
        "processing",
        "sent",
        "accepted",
        "rejected",
        "failed",
        "cancelled",
    }
    assert {d.value for d in DocumentType} == {
        "invoice",
        "credit_note",
        "debit_note",
        "support_document",
    }
    assert DocumentType.CREDIT_NOTE.numbering_range_document_code == "22"


def test_every_status_is_either_active_or_final() -> None:
    assert set(JobStatus) == ACTIVE_STATUSES | FINAL_STATUSES
    assert not ACTIVE_STATUSES & FINAL_STATUSES


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("pending", "processing"),
        ("pending", "cancelled"),
        ("pending", "rejected"),
        ("processing", "accepted"),
        ("processing", "sent"),
        ("processing", "rejected"),
        ("processing", "failed"),
        ("processing", "pending"),
        ("sent", "processing"),
        ("sent", "accepted"),
        ("sent", "pending"),
        ("failed", "pending"),
        ("rejected", "pending"),
        ("rejected", "cancelled"),
    ],
)
def test_allowed_transitions_pass(current: str, target: str) -> None:
    assert check_transition(current, target) is JobStatus(target)
    assert can_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("accepted", "pending"),  # an accepted invoice is never sent again
        ("accepted", "cancelled"),
        ("cancelled", "pending"),
        ("sent", "cancelled"),  # the document may already exist at Factus
        ("processing", "cancelled"),  # a worker is mid-request
        ("pending", "accepted"),  # acceptance only comes from a processed attempt
        ("pending", "pending"),
        ("failed", "accepted"),
    ],
)
def test_illegal_transitions_raise_a_job_error(current: str, target: str) -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        check_transition(current, target)
    error = caught.value
    assert isinstance(error, JobError)
    assert isinstance(error, EinvoiceError)
    assert error.reason == "illegal_transition"
    assert (error.current, error.target) == (current, target)
    assert f"{current!r} cannot move to {target!r}" in str(error)
    assert not can_transition(current, target)


def test_final_statuses_only_leave_by_operator_action() -> None:
    assert ALLOWED_TRANSITIONS[JobStatus.ACCEPTED] == frozenset()
    assert ALLOWED_TRANSITIONS[JobStatus.CANCELLED] == frozenset()
    for status in (JobStatus.REJECTED, JobStatus.FAILED):
        assert ALLOWED_TRANSITIONS[status] == {JobStatus.PENDING, JobStatus.CANCELLED}


def test_unknown_status_text_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'done' is not a valid JobStatus"):
        check_transition("pending", "done")


def test_event_names_cover_the_pipeline() -> None:
    expected = {
        "enqueued",
        "claimed",
        "submitted",
        "accepted",
        "dian_notification",
        "rejected",
        "retry_scheduled",
        "failed",
        "reconciled",
        "lease_expired",
        "cancelled",
        "dian_slow",
        "pending_conflict",
        "operator_retry",
    }
    assert expected <= {event.value for event in EventType}


def test_backoff_stays_within_the_exponential_ceiling() -> None:
    rng = random.Random(20250314)
    for attempt in range(1, 9):
        ceiling = min(300.0, 2.0 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, base=2.0, cap=300.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays), attempt
        # full jitter spreads over the whole interval, not just near the ceiling
        assert min(delays) < ceiling * 0.1, attempt
        assert max(delays) > ceiling * 0.9, attempt


def test_backoff_is_capped_even_after_very_many_attempts() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(5000, base=2.0, cap=300.0, rng=rng) for _ in range(200)]
    assert all(0.0 <= delay <= 300.0 for delay in delays)
    assert max(delays) > 270.0


def test_backoff_is_reproducible_with_a_seeded_generator() -> None:
    first = [backoff_delay(4, base=1.0, cap=60.0, rng=random.Random(1)) for _ in range(3)]
    second = [backoff_delay(4, base=1.0, cap=60.0, rng=random.Random(1)) for _ in range(3)]
    assert first == second


@pytest.mark.parametrize(
    ("attempt", "base", "cap"), [(0, 2.0, 300.0), (1, 0.0, 300.0), (1, 2.0, -1.0)]
)
def test_backoff_refuses_meaningless_arguments(attempt: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError, match=r"attempt counts from 1|must be positive"):
        backoff_delay(attempt, base=base, cap=cap)


def test_retry_policy_schedules_until_max_attempts_then_stops() -> None:
    policy = RetryPolicy(max_attempts=3, base=10.0, cap=60.0)
    rng = random.Random(3)
    first = policy.next_retry_at(NOW, 1, rng=rng)
    second = policy.next_retry_at(NOW, 2, rng=rng)
    assert first is not None
    assert NOW <= first <= NOW + timedelta(seconds=10)
    assert second is not None
    assert NOW <= second <= NOW + timedelta(seconds=20)
    # the third attempt was the last one allowed: no more retries, the job should fail
    assert policy.next_retry_at(NOW, 3, rng=rng) is None
    assert policy.can_retry(2)
    assert not policy.can_retry(3)


def test_retry_policy_defaults_match_the_settings_defaults() -> None:
    assert RetryPolicy() == RetryPolicy(max_attempts=5, base=2.0, cap=300.0)


def test_retry_policy_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RetryPolicy().next_retry_at(datetime(2025, 3, 14, 15, 0), 1)  # noqa: DTZ001 - naive on purpose


def test_retry_policy_refuses_zero_attempts() -> None:
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        RetryPolicy(max_attempts=0)


def test_reference_codes_are_short_url_safe_and_distinct() -> None:
    codes = {new_reference_code() for _ in range(1000)}
    assert len(codes) == 1000
    for code in codes:
        assert len(code) <= 20
        assert re.fullmatch(r"EI[A-Z2-7]{16}", code)
