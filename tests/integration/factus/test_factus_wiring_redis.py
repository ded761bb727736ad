"""The per-process wiring a worker uses (``create_factus_clients``): tokens encrypted in Redis,
the shared rate limit counting every call, one client per account (STYLE.md habit 7)."""

from __future__ import annotations

import pytest
import redis

from einvoice.crypto import SecretBox
from einvoice.errors import ConfigError
from einvoice.factus.client import create_factus_clients
from einvoice.factus.tokens import FactusAccount
from einvoice.sandbox.server import SandboxServer
from einvoice.settings import Settings, load_settings


def _settings(sandbox: SandboxServer, redis_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": redis_url,
        "factus_base_url": sandbox.base_url,
        "factus_client_id": "sandbox-client",
        "factus_client_secret": "sandbox-secret",
        "factus_username": "sandbox@einvoice.test",
        "factus_password": "sandbox-password",
        "einvoice_secret_key": SecretBox.generate_key(),
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


def test_a_worker_process_gets_a_client_with_encrypted_tokens_and_a_shared_limit(
    sandbox_clean: SandboxServer, factus_redis_url: str, factus_redis: redis.Redis
) -> None:
    # Given the wiring a worker builds once per process
    clients = create_factus_clients(_settings(sandbox_clean, factus_redis_url))
    try:
        client = clients.default()

        # When it calls Factus
        company = client.company()

        # Then the call worked, and the same account gets the same client
        assert company.nit == "901724254"
        assert clients.for_account(FactusAccount.from_settings(clients.settings)) is client
        # and the token pair sits in Redis, encrypted
        key = client.account.token_key
        raw = factus_redis.get("einvoice:factus:token:" + key)
        stored = clients.token_store.load(key)
        assert stored is not None
        assert stored.access_token == client.tokens.access_token()
        # (the token itself is not in the stored bytes; a fixed prefix such as the JWT's "eyJ"
        # would also match the ciphertext's random base64 about once in a thousand runs)
        assert raw is not None
        assert b"access_token" not in raw
        assert stored.access_token.encode() not in raw
        assert stored.refresh_token is None or stored.refresh_token.encode() not in raw
        # and both calls (token + company) took a slot of the account's shared minute window
        # (the other key is the pace's 1-second window, which may have expired already)
        (window,) = list(factus_redis.scan_iter("einvoice:factus:ratelimit:factus/*"))
        assert factus_redis.llen(window) == 2
    finally:
        clients.close()


def test_the_wiring_refuses_to_store_tokens_without_a_secret_key(
    sandbox_clean: SandboxServer, factus_redis_url: str
) -> None:
    with pytest.raises(ConfigError, match="EINVOICE_SECRET_KEY"):
        create_factus_clients(_settings(sandbox_clean, factus_redis_url, einvoice_secret_key=None))
