"""One submission attempt's deadline and the fence before a POST, against a scripted Factus.

The job layer sets a deadline per attempt (einvoice.factus.deadline) so that the waits before a
POST (a ``Retry-After``, a backoff, the token lock) cannot outlast the job's lease, and passes a
``fence`` that confirms the lease right before the request leaves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from factus_double import ScriptedFactus, Sleeps, answer, bill_body

from einvoice.domain.jobs import is_valid_unique_code
from einvoice.factus import deadline
from einvoice.factus.client import FactusClient
from einvoice.factus.errors import RateLimitedError, TokenUnavailableError
from einvoice.factus.tokens import ThreadRenewalLocks

MakeClient = Callable[..., FactusClient]
PAYLOAD = {"reference_code": "POS-1", "customer": {}, "items": []}
VALIDATE = ("POST", "/v1/bills/validate")
TOO_MANY = {"message": "Too Many Attempts."}


class _Lost(Exception):
    """What a job layer's fence raises when its worker lost the job."""


def test_a_retry_after_that_ends_past_the_attempts_deadline_is_not_slept_through(
    factus: ScriptedFactus, make_client: MakeClient, sleeps: Sleeps
) -> None:
    # Given Factus answers 429 with a Retry-After of 20 s (the client would sleep through it)
    factus.on(*VALIDATE, answer(429, TOO_MANY, {"Retry-After": "20"}), answer(201, bill_body()))
    client = make_client()
    client.tokens.access_token()

    # When the attempt has 5 s left
    with deadline.attempt_deadline(time.monotonic() + 5), pytest.raises(RateLimitedError) as caught:
        client.validate_bill(PAYLOAD)

    # Then the 429 goes to the job layer at once: no sleep, one POST
    assert caught.value.retry_after == 20.0
    assert sleeps.calls == []
    assert len(factus.api_requests()) == 1


def test_without_a_deadline_the_same_retry_after_is_honoured(
    factus: ScriptedFactus, make_client: MakeClient, sleeps: Sleeps
) -> None:
    factus.on(*VALIDATE, answer(429, TOO_MANY, {"Retry-After": "20"}), answer(201, bill_body()))

    assert make_client().validate_bill(PAYLOAD).is_validated
    assert sleeps.calls == [20.0]


def test_the_fence_runs_before_every_send_and_stops_the_request_unsent(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    # Given a POST that meets a short 429 and is repeated after it
    factus.on(*VALIDATE, answer(429, TOO_MANY, {"Retry-After": "1"}), answer(201, bill_body()))
    client = make_client()
    checks: list[int] = []

    def fence() -> None:
        checks.append(len(factus.api_requests()))
        if len(checks) == 2:
            raise _Lost  # the worker lost the job while it waited out the Retry-After

    # When the fence fails before the repeat
    with pytest.raises(_Lost):
        client.validate_bill(PAYLOAD, fence=fence)

    # Then it was asked before each send, and the repeat never left
    assert checks == [0, 1]
    assert len(factus.api_requests()) == 1


def test_a_token_lock_held_elsewhere_is_waited_for_only_until_the_deadline() -> None:
    locks = ThreadRenewalLocks()
    taken, release = threading.Event(), threading.Event()

    def holder() -> None:
        with locks.hold("acct"):
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    taken.wait(5)
    started = time.monotonic()
    try:
        with (
            deadline.attempt_deadline(time.monotonic() + 0.2),
            pytest.raises(TokenUnavailableError),
            locks.hold("acct"),
        ):
            pass
    finally:
        release.set()
        thread.join()
    assert time.monotonic() - started < 2.0


def test_nested_deadlines_keep_the_earlier_one() -> None:
    soon = time.monotonic() + 1
    with deadline.attempt_deadline(soon), deadline.attempt_deadline(soon + 100):
        left = deadline.remaining()
        assert left is not None
        assert left <= 1
        assert deadline.cap(50) <= 1
    assert deadline.remaining() is None
    assert deadline.cap(50) == 50


@pytest.mark.parametrize(("code", "valid"), [
    ("a" * 96, True),
    ("0123456789ABCDEF" * 6, True),
    ("a" * 64, False),   # a SHA-256, not DIAN's SHA-384
    ("a" * 97, False),
    ("g" * 96, False),
    ("", False),
    (None, False),
    (12345, False),
])
def test_a_cufe_or_cude_is_96_hex_characters(code: object, valid: bool) -> None:
    assert is_valid_unique_code(code) is valid
