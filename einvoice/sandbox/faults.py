"""Fault injection: what a test or benchmark asks the simulator to get wrong, and when.

The faults are the ones "The simulator" section of FACTUS_API.md lists. Shares are probabilities
(0..1) drawn per request from a seeded ``random.Random``, so a run with a ``seed`` gets the same
sequence of faults for the same sequence of requests.

Two independent draws decide a request's fate, so the shares of each group must add up to ≤ 1:

- **transport** (every API request, token calls included): ``error_500``, ``error_503``,
  ``rate_limit_429`` and ``expired_token`` (only on ``/v1`` routes: the bearer token is expired on the
  spot, so the client must renew it).
- **outcome** (only ``POST .../validate`` of a new document): ``timeout_after_store`` (store and
  validate, then hang ``timeout_hang_seconds`` and drop the connection), ``dian_rejection`` (DIAN
  rule FAD06, 422, document stored with status 0), ``dian_slow`` (201 with status 0 and no errors; a
  resend with the same ``reference_code`` validates it), ``dian_stuck`` (as ``dian_slow``, but
  every resend is answered "pending" again: DIAN never answers), ``invalid_cufe`` (the document is
  stored and validated, but the 201 carries a CUFE/CUDE that is not 96 hex characters: its first
  64; a lookup by reference shows the real one).

``token_latency_ms`` delays only ``POST /oauth/token`` (a slow identity provider), on top of
``latency_ms``.

Latency (``latency_ms`` ± uniform ``latency_jitter_ms``) is drawn from a second generator so that
changing it does not shift the fault sequence.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

TRANSPORT_FAULTS = ("error_500", "error_503", "rate_limit_429", "expired_token")
OUTCOME_FAULTS = ("timeout_after_store", "dian_rejection", "dian_slow", "dian_stuck",
                  "invalid_cufe")
DEFAULT_RATE_LIMIT = 80  # requests per minute per account, FACTUS_API.md §9


class FaultConfigError(ValueError):
    """A fault setting is unknown or out of range; the message names the field."""


@dataclass(frozen=True)
class FaultConfig:
    """One run's faults and limits.

    Attributes:
        latency_ms: added delay before every API request is answered, in milliseconds.
        latency_jitter_ms: uniform ± jitter on top of ``latency_ms``, in milliseconds.
        token_latency_ms: extra delay of every ``POST /oauth/token``, in milliseconds.
        error_500, error_503, rate_limit_429, expired_token: transport shares, 0..1.
        timeout_after_store, dian_rejection, dian_slow, dian_stuck, invalid_cufe:
            validate-outcome shares, 0..1.
        rate_limit_per_minute: real limit per account (None disables it).
        token_expires_in: lifetime of new access tokens, in seconds.
        timeout_hang_seconds: how long ``timeout_after_store`` hangs before dropping the connection
            (default 35 s: past the 30 s read timeout FACTUS_API.md Decision 6 recommends).
        retry_after_seconds: ``Retry-After`` of an injected 429 (a real 429 says when the window ends).
        seed: seed of the fault draws; None draws from OS entropy.
    """

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    token_latency_ms: float = 0.0
    error_500: float = 0.0
    error_503: float = 0.0
    rate_limit_429: float = 0.0
    expired_token: float = 0.0
    timeout_after_store: float = 0.0
    dian_rejection: float = 0.0
    dian_slow: float = 0.0
    dian_stuck: float = 0.0
    invalid_cufe: float = 0.0
    rate_limit_per_minute: int | None = DEFAULT_RATE_LIMIT
    token_expires_in: int = 3600
    timeout_hang_seconds: float = 35.0
    retry_after_seconds: int = 1
    seed: int | None = None

    def updated(self, changes: Mapping[str, Any]) -> FaultConfig:
        """Return a copy with ``changes`` applied (fields not named keep their value).

        Raises:
            FaultConfigError: an unknown field, a wrong type, a share outside 0..1, a group whose
                shares add up to more than 1, or a negative duration/limit.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise FaultConfigError(f"unknown fault setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in changes.items():
            values[name] = _coerce(name, value)
        config = replace(self, **values)
        for group in (TRANSPORT_FAULTS, OUTCOME_FAULTS):
            if sum(getattr(config, name) for name in group) > 1.0 + 1e-9:
                raise FaultConfigError(f"the shares of {', '.join(group)} add up to more than 1")
        return config

    def as_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (``GET /__sandbox/faults``)."""
        return asdict(self)


def _coerce(name: str, value: Any) -> Any:
    if name in TRANSPORT_FAULTS or name in OUTCOME_FAULTS:
        share = _number(name, value)
        if not 0.0 <= share <= 1.0:
            raise FaultConfigError(f"{name} must be a share between 0 and 1, got {value!r}")
        return share
    if name in ("latency_ms", "latency_jitter_ms", "token_latency_ms", "timeout_hang_seconds"):
        amount = _number(name, value)
        if amount < 0:
            raise FaultConfigError(f"{name} must not be negative, got {value!r}")
        return amount
    if name == "rate_limit_per_minute" and value is None:
        return None
    if name == "seed" and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultConfigError(f"{name} must be an integer, got {value!r}")
    if name != "seed" and value < (1 if name != "retry_after_seconds" else 0):
        raise FaultConfigError(f"{name} must be positive, got {value!r}")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


class FaultInjector:
    """Draws faults and latency for requests, from the current :class:`FaultConfig`. Thread-safe."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._faults = random.Random(config.seed)
        self._latency = random.Random(None if config.seed is None else config.seed + 1)

    @property
    def config(self) -> FaultConfig:
        """The config in force."""
        return self._config

    def configure(self, config: FaultConfig, *, reseed: bool) -> None:
        """Put ``config`` in force; with ``reseed`` (a seed was given, or a reset) restart the draws."""
        with self._lock:
            self._config = config
            if reseed:
                self._faults = random.Random(config.seed)
                self._latency = random.Random(None if config.seed is None else config.seed + 1)

    def latency_seconds(self) -> float:
        """Draw the delay to add to one request, in seconds (≥ 0)."""
        with self._lock:
            config = self._config
            if not config.latency_ms and not config.latency_jitter_ms:
                return 0.0
            jitter = self._latency.uniform(-config.latency_jitter_ms, config.latency_jitter_ms)
        return max(0.0, config.latency_ms + jitter) / 1000.0

    def transport_fault(self) -> str | None:
        """Draw one request's transport fault: a name from :data:`TRANSPORT_FAULTS` or None."""
        return self._draw(TRANSPORT_FAULTS)

    def outcome_fault(self) -> str | None:
        """Draw one new document's validation outcome fault: a name from :data:`OUTCOME_FAULTS` or None."""
        return self._draw(OUTCOME_FAULTS)

    def _draw(self, group: tuple[str, ...]) -> str | None:
        with self._lock:
            config = self._config
            roll = self._faults.random()
        edge = 0.0
        for name in group:
            edge += getattr(config, name)
            if roll < edge:
                return name
        return None
