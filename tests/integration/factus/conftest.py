"""Fixtures of the Factus client's integration tests: a private real Redis server, and clients
of the Factus simulator (``sandbox`` / ``sandbox_clean`` are registered by the root conftest).

The Redis server is this folder's own (``redis-server`` on a free port, via
``einvoice.devservices.RedisServer``), so these tests need neither PostgreSQL nor the session's
shared services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr

from einvoice.devservices import RedisServer, free_port
from einvoice.factus.client import FactusClient, RetryPolicy
from einvoice.factus.ratelimit import NoRateLimit
from einvoice.factus.tokens import FactusAccount
from einvoice.sandbox.server import SandboxServer


@pytest.fixture(scope="module")
def factus_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server for the tests of one module, stopped afterwards."""
    server = RedisServer(Path(tmp_path_factory.mktemp("factus-redis")), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def factus_redis_url(factus_redis_server: RedisServer) -> Iterator[str]:
    """URL of the module's Redis, flushed before the test."""
    client = redis.Redis.from_url(factus_redis_server.url)
    client.flushall()
    client.close()
    yield factus_redis_server.url


@pytest.fixture
def factus_redis(factus_redis_url: str) -> Iterator[redis.Redis]:
    """A client of the module's (flushed) Redis."""
    client = redis.Redis.from_url(factus_redis_url)
    yield client
    client.close()


# --- the simulator (fixtures ``sandbox`` / ``sandbox_clean`` come from tests.fixtures.sandbox) ---

SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret"
SANDBOX_USERNAME = "sandbox@einvoice.test"
SANDBOX_PASSWORD = "sandbox-password"


def sandbox_account(base_url: str, **changes: str) -> FactusAccount:
    """The simulator's default account (docs/simulator.md), fields overridden by ``changes``."""
    fields: dict[str, Any] = {
        "key": "default",
        "environment": "sandbox",
        "base_url": base_url,
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
        "username": SANDBOX_USERNAME,
        "password": SANDBOX_PASSWORD,
    }
    fields.update(changes)
    fields["client_secret"] = SecretStr(fields["client_secret"])
    fields["password"] = SecretStr(fields["password"])
    return FactusAccount(**fields)


def sandbox_grants(sandbox: SandboxServer) -> dict[str, int]:
    """``POST /oauth/token`` answers by status since the last reset, e.g. ``{"200": 1}``, counted
    globally: a refresh with an unknown token cannot be tied to an account."""
    requests = sandbox.stats()["global"]["requests"]
    return dict(requests.get("POST /oauth/token", {}))


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A pooled HTTP client, as a worker process has one."""
    with httpx.Client() as client:
        yield client


@pytest.fixture
def make_sandbox_client(
    sandbox_clean: SandboxServer, http: httpx.Client
) -> Callable[..., FactusClient]:
    """Build a :class:`FactusClient` for the simulator's default account; keyword arguments
    override the account fields (``password=...``) or the client options (``retry=...``)."""

    def build(**overrides: Any) -> FactusClient:
        account_fields = {k: overrides.pop(k) for k in list(overrides) if k in ACCOUNT_FIELDS}
        base_url = account_fields.pop("base_url", sandbox_clean.base_url)
        options: dict[str, Any] = {
            "http": http,
            "limiter": NoRateLimit(),
            "retry": RetryPolicy(attempts=2, backoff_initial=0.05, backoff_max=0.2),
        }
        options.update(overrides)
        return FactusClient(sandbox_account(base_url, **account_fields), **options)

    return build


ACCOUNT_FIELDS = {"key", "base_url", "client_id", "client_secret", "username", "password"}


@pytest.fixture
def client(make_sandbox_client: Callable[..., FactusClient]) -> FactusClient:
    """A client of the (reset) simulator's default account, no client-side rate limit."""
    return make_sandbox_client()
