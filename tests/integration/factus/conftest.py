"""Fixtures of the Factus client's integration tests: a private real Redis server, and clients
of the Factus simulator (``sandbox`` / ``sandbox_clean`` are registered by the root conftest).

The Redis server is this folder's own (``redis-server`` on a free port, via
``einvoice.devservices.RedisServer``), so these tests need neither PostgreSQL nor the session's
shared services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from factus_payloads import bill, credit_note, v2_bill, v2_credit_note
from pydantic import SecretStr

from einvoice.devservices import RedisServer, free_port
from einvoice.factus.client import FactusClient, Payload, RetryPolicy
from einvoice.factus.ratelimit import NoRateLimit
from einvoice.factus.schemas import BillResult
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
def factus_redis_url(factus_redis_server: RedisServer) -> str:
    """URL of the module's Redis, flushed before the test."""
    client = redis.Redis.from_url(factus_redis_server.url)
    client.flushall()
    client.close()
    return factus_redis_server.url


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


ACCOUNT_FIELDS = {
    "key", "base_url", "client_id", "client_secret", "username", "password", "api_version",
}


@pytest.fixture
def client(make_sandbox_client: Callable[..., FactusClient]) -> FactusClient:
    """A client of the (reset) simulator's default account, no client-side rate limit."""
    return make_sandbox_client()


# --- one scenario, both API versions -----------------------------------------------------------

#: A v2-only simulator account: 403 on every /v1 route, like a Factus account opened today.
V2_ONLY = {
    "client_id": "v2-only-client",
    "client_secret": "v2-only-secret",
    "username": "v2-only@einvoice.test",
    "password": "v2-only-pass",
}


@dataclass(frozen=True)
class VersionedApi:
    """A client speaking one API version, with the bodies and counters its scenarios need."""

    version: str
    client: FactusClient
    sandbox: SandboxServer
    client_id: str
    username: str

    def bill(self, reference_code: str) -> Payload:
        """The 47 600 COP bill in this version's wire format."""
        return bill(reference_code) if self.version == "v1" else v2_bill(reference_code)

    def credit_note(self, reference_code: str, invoice: BillResult) -> Payload:
        """A one-unit credit note against ``invoice`` (v1 by Factus id, v2 by number)."""
        if self.version == "v1":
            assert invoice.id is not None
            return credit_note(reference_code, invoice.id)
        assert invoice.number is not None
        return v2_credit_note(reference_code, invoice.number)

    def stats(self) -> dict[str, Any]:
        """The simulator's counters of this account."""
        return self.sandbox.account_stats(self.username, self.client_id)

    def route(self, method: str, path: str) -> str:
        """``"GET /v2/bills"`` for ``route("GET", "/bills")`` on v2 (the stats' request keys)."""
        return f"{method} /{self.version}{path}"


@pytest.fixture(params=["v1", "v2"])
def api(
    request: pytest.FixtureRequest,
    sandbox_clean: SandboxServer,
    make_sandbox_client: Callable[..., FactusClient],
) -> VersionedApi:
    """The same scenario on each version: v1 on the simulator's default account (as before),
    v2 on a v2-only account (403 on /v1, so nothing can fall back to v1 unnoticed)."""
    if request.param == "v1":
        return VersionedApi("v1", make_sandbox_client(), sandbox_clean,
                            SANDBOX_CLIENT_ID, SANDBOX_USERNAME)
    sandbox_clean.add_account(**V2_ONLY, mode="v2")
    return VersionedApi("v2", make_sandbox_client(**V2_ONLY, api_version="v2"), sandbox_clean,
                        V2_ONLY["client_id"], V2_ONLY["username"])
