"""Fixtures of the Factus client's unit tests (the scripted Factus lives in ``factus_double``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from factus_double import BASE_URL, CLIENT_SECRET, PASSWORD, ScriptedFactus, Sleeps
from pydantic import SecretStr

from einvoice.factus.client import FactusClient, RetryPolicy, Timeouts
from einvoice.factus.ratelimit import NoRateLimit
from einvoice.factus.tokens import FactusAccount


@pytest.fixture
def account(request: pytest.FixtureRequest) -> FactusAccount:
    """A test account whose secrets are easy to look for in logs and messages; it speaks v1
    unless a test parametrizes it indirectly with ``"v2"``."""
    return FactusAccount(
        key="default",
        environment="sandbox",
        base_url=BASE_URL,
        client_id="client-id-1",
        client_secret=SecretStr(CLIENT_SECRET),
        username="user@einvoice.test",
        password=SecretStr(PASSWORD),
        api_version=getattr(request, "param", "v1"),
    )


@pytest.fixture
def factus() -> ScriptedFactus:
    """The scripted Factus of one test."""
    return ScriptedFactus()


@pytest.fixture
def sleeps() -> Sleeps:
    """The retry waits of one test."""
    return Sleeps()


@pytest.fixture
def make_client(
    account: FactusAccount, factus: ScriptedFactus, sleeps: Sleeps
) -> Iterator[Callable[..., FactusClient]]:
    """Build a :class:`FactusClient` over the scripted Factus (keyword overrides allowed)."""
    opened: list[httpx.Client] = []

    def build(**overrides: Any) -> FactusClient:
        http = httpx.Client(transport=httpx.MockTransport(factus))
        opened.append(http)
        options: dict[str, Any] = {
            "http": http,
            "limiter": NoRateLimit(),
            "timeouts": Timeouts(connect=2.0, read=7.0, validate=31.0),
            "retry": RetryPolicy(attempts=3, backoff_initial=0.1, backoff_max=1.0),
            "sleep": sleeps,
        }
        options.update(overrides)
        return FactusClient(account, **options)

    yield build
    for http in opened:
        http.close()
