"""Token lifetime and renewal rules (FACTUS_API.md Decision 2, §2) with a fake clock and fake
grants: margin before expiry, refresh first then password, rotated refresh tokens kept, one
renewal for many threads, and encrypted storage."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
from pydantic import SecretStr

from einvoice.crypto import SecretBox
from einvoice.errors import ConfigError
from einvoice.factus.errors import AuthenticationError
from einvoice.factus.schemas import TokenResponse
from einvoice.factus.tokens import (
    FactusAccount,
    InMemoryTokenStore,
    RedisTokenStore,
    StoredToken,
    ThreadRenewalLocks,
    TokenManager,
)
from einvoice.settings import load_settings

T0 = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


class Clock:
    """A settable UTC clock."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeGrants:
    """Numbered tokens; the refresh grant accepts only the newest refresh token (rotation)."""

    def __init__(self, expires_in: int = 3600, delay: float = 0.0) -> None:
        self.expires_in = expires_in
        self.delay = delay
        self.calls: list[str] = []
        self.valid_refresh: str | None = None
        self.issued = 0
        self._lock = threading.Lock()

    def _issue(self, grant: str) -> TokenResponse:
        with self._lock:
            self.calls.append(grant)
            self.issued += 1
            n = self.issued
            self.valid_refresh = f"refresh-{n}"
        time.sleep(self.delay)
        return TokenResponse(
            access_token=SecretStr(f"access-{n}"),
            refresh_token=SecretStr(f"refresh-{n}"),
            expires_in=self.expires_in,
        )

    def password_grant(self) -> TokenResponse:
        return self._issue("password")

    def refresh_grant(self, refresh_token: str) -> TokenResponse:
        if refresh_token != self.valid_refresh:
            self.calls.append("refresh-refused")
            raise AuthenticationError(
                "The refresh token is invalid.", reason="factus_invalid_request"
            )
        return self._issue("refresh")


def _manager(
    grants: FakeGrants, clock: Clock, store: InMemoryTokenStore | None = None, margin: float = 120
) -> TokenManager:
    return TokenManager(
        "default",
        grants=grants,
        store=store or InMemoryTokenStore(),
        locks=ThreadRenewalLocks(),
        margin_seconds=margin,
        clock=clock,
    )


def test_a_token_is_used_until_the_margin_before_its_expiry() -> None:
    # Given a token that lives 3600 s and a 120 s margin
    clock, grants = Clock(), FakeGrants(expires_in=3600)
    tokens = _manager(grants, clock)
    assert tokens.access_token() == "access-1"

    # When 3479 s have passed it is still used
    clock.advance(3479)
    assert tokens.access_token() == "access-1"

    # and after 3480 s it is renewed with the refresh grant
    clock.advance(1)
    assert tokens.access_token() == "access-2"
    assert grants.calls == ["password", "refresh"]


def test_a_short_lived_token_is_not_renewed_on_every_call() -> None:
    # expires_in 60 with a 120 s margin: the margin is capped at half the lifetime
    clock, grants = Clock(), FakeGrants(expires_in=60)
    tokens = _manager(grants, clock)
    tokens.access_token()
    clock.advance(29)
    tokens.access_token()
    assert grants.calls == ["password"]
    clock.advance(1)
    tokens.access_token()
    assert grants.calls == ["password", "refresh"]


def test_the_rotated_refresh_token_is_stored_and_used_next_time() -> None:
    clock, grants, store = Clock(), FakeGrants(), InMemoryTokenStore()
    tokens = _manager(grants, clock, store)
    tokens.access_token()
    for _ in range(3):
        clock.advance(3600)
        tokens.access_token()
    stored = store.load("default")
    assert stored is not None
    assert stored.refresh_token == "refresh-4"
    # every renewal spent the newest refresh token, none was refused
    assert grants.calls == ["password", "refresh", "refresh", "refresh"]


def test_a_refused_refresh_falls_back_to_the_password_grant() -> None:
    clock, grants = Clock(), FakeGrants()
    tokens = _manager(grants, clock)
    tokens.access_token()
    grants.valid_refresh = "something-else"  # revoked on Factus' side
    clock.advance(3600)
    assert tokens.access_token() == "access-2"
    assert grants.calls == ["password", "refresh-refused", "password"]


def test_many_threads_needing_a_token_cause_one_grant() -> None:
    clock, grants = Clock(), FakeGrants(delay=0.05)
    tokens = _manager(grants, clock)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(tokens.access_token())) for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert grants.calls == ["password"]
    assert set(results) == {"access-1"}


def test_after_a_401_a_token_renewed_elsewhere_is_used_without_a_grant() -> None:
    # Given two managers (two processes) sharing a store
    clock, grants, store = Clock(), FakeGrants(), InMemoryTokenStore()
    first, second = _manager(grants, clock, store), _manager(grants, clock, store)
    first.access_token()
    old = second.access_token()
    # When the first renews after a 401, and then the second is told its token was rejected
    new = first.renew_after_rejection(old)
    assert second.renew_after_rejection(old) == new
    # Then only one renewal happened
    assert grants.calls == ["password", "refresh"]


def test_after_a_401_the_same_token_is_never_handed_out_again() -> None:
    clock, grants = Clock(), FakeGrants()
    tokens = _manager(grants, clock)
    rejected = tokens.access_token()
    assert tokens.renew_after_rejection(rejected) != rejected


def test_the_redis_store_keeps_tokens_encrypted() -> None:
    client = fakeredis.FakeRedis()
    box = SecretBox(SecretBox.generate_key())
    store = RedisTokenStore(client, box)
    token = StoredToken(
        "jwt-secret-value",
        "refresh-secret-value",
        T0 + timedelta(hours=1),
        T0 + timedelta(minutes=58),
    )

    store.save("default", token)

    raw = client.get("einvoice:factus:token:default")
    assert raw is not None
    assert b"jwt-secret-value" not in raw
    assert b"refresh-secret-value" not in raw
    assert store.load("default") == token
    assert 0 < client.ttl("einvoice:factus:token:default") <= 30 * 24 * 3600


def test_a_token_stored_under_another_key_is_ignored_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = fakeredis.FakeRedis()
    RedisTokenStore(client, SecretBox(SecretBox.generate_key())).save(
        "default", StoredToken("a", "r", T0, T0)
    )
    assert RedisTokenStore(client, SecretBox(SecretBox.generate_key())).load("default") is None
    assert "cannot be decrypted" in caplog.text


def test_stored_tokens_never_show_in_repr() -> None:
    token = StoredToken("jwt-secret-value", "refresh-secret-value", T0, T0)
    assert "secret-value" not in repr(token)


def test_the_default_account_comes_from_the_factus_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "FACTUS_CLIENT_ID": "cid",
        "FACTUS_CLIENT_SECRET": "csecret",
        "FACTUS_USERNAME": "me@x.test",
        "FACTUS_PASSWORD": "pw",
        "FACTUS_BASE_URL": "http://127.0.0.1:9999/",
    }.items():
        monkeypatch.setenv(name, value)
    account = FactusAccount.from_settings(load_settings())
    assert (account.key, account.base_url, account.client_id) == (
        "default",
        "http://127.0.0.1:9999",
        "cid",
    )
    assert account.password.get_secret_value() == "pw"
    assert "csecret" not in repr(account)
    assert "pw'" not in repr(account)


def test_a_missing_factus_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTUS_CLIENT_ID", "cid")
    for name in ("FACTUS_CLIENT_SECRET", "FACTUS_USERNAME", "FACTUS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="FACTUS_CLIENT_SECRET, FACTUS_USERNAME, FACTUS_PASSWORD"):
        FactusAccount.from_settings(load_settings(_env_file=None))


def test_the_renewal_lock_timeout_covers_one_renewal_and_no_more() -> None:
    from einvoice.factus.client import create_factus_clients

    settings = load_settings(_env_file=None, factus_connect_timeout=5, factus_read_timeout=15,
                             factus_rate_limit_max_wait_seconds=5,
                             einvoice_secret_key=SecretBox.generate_key())
    clients = create_factus_clients(settings, redis_client=fakeredis.FakeRedis())
    try:
        locks = clients.renewal_locks
        # a rate-limit wait and two token calls, plus a margin: 5 + 2 x 20 + 10
        assert (locks._timeout, locks._blocking_timeout) == (55.0, 30.0)
    finally:
        clients.close()
