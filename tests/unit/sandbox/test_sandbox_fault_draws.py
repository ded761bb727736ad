"""Fault settings and their seeded draws."""

from __future__ import annotations

import pytest

from einvoice.sandbox.faults import FaultConfig, FaultConfigError, FaultInjector


def _sequence(injector: FaultInjector, n: int) -> list[str | None]:
    return [injector.transport_fault() for _ in range(n)]


def test_the_same_seed_gives_the_same_faults_in_the_same_order():
    config = FaultConfig().updated({"error_500": 0.3, "error_503": 0.3, "seed": 42})

    first = _sequence(FaultInjector(config), 50)
    second = _sequence(FaultInjector(config), 50)

    assert first == second
    assert {"error_500", "error_503", None} == set(first)


def test_latency_draws_do_not_shift_the_fault_sequence():
    config = FaultConfig().updated(
        {"error_500": 0.5, "latency_ms": 10, "latency_jitter_ms": 5, "seed": 7}
    )
    plain, noisy = FaultInjector(config), FaultInjector(config)

    for _ in range(10):
        noisy.latency_seconds()

    assert _sequence(plain, 20) == _sequence(noisy, 20)


def test_latency_stays_within_its_jitter():
    injector = FaultInjector(
        FaultConfig().updated({"latency_ms": 200, "latency_jitter_ms": 50, "seed": 1})
    )

    delays = [injector.latency_seconds() for _ in range(200)]

    assert all(0.15 <= d <= 0.25 for d in delays)


def test_a_share_of_one_always_fires_and_zero_never_does():
    always = FaultInjector(FaultConfig().updated({"dian_slow": 1.0}))
    never = FaultInjector(FaultConfig())

    assert {always.outcome_fault() for _ in range(20)} == {"dian_slow"}
    assert {never.outcome_fault() for _ in range(20)} == {None}


@pytest.mark.parametrize(
    "changes",
    [
        {"error_500": 1.5},
        {"error_500": -0.1},
        {"error_500": 0.6, "error_503": 0.6},
        {"nonsense": 1},
        {"rate_limit_per_minute": 0},
        {"latency_ms": -1},
        {"token_expires_in": "60"},
    ],
)
def test_out_of_range_or_unknown_settings_are_refused(changes: dict[str, object]):
    with pytest.raises(FaultConfigError):
        FaultConfig().updated(changes)


def test_the_rate_limit_can_be_switched_off_and_the_defaults_are_realistic():
    config = FaultConfig()

    assert (config.rate_limit_per_minute, config.token_expires_in) == (80, 3600)
    assert FaultConfig().updated({"rate_limit_per_minute": None}).rate_limit_per_minute is None
