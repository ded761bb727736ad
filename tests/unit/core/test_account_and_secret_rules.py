"""Accounts and secrets without I/O: URL redaction, several keys, the base_url allow-list, the
default-account rule and the token key."""

from __future__ import annotations

import pytest

from einvoice.crypto import SecretBox, SecretDecryptError, SecretKeyError
from einvoice.errors import ConfigError
from einvoice.factus.tokens import FactusAccount
from einvoice.services.accounts import (
    check_factus_base_url,
    default_account_mode,
    save_credentials,
)
from einvoice.settings import Settings, load_settings, redact_url


def _settings(**values: object) -> Settings:
    return load_settings(_env_file=None, **values)


# ------------------------------------------------------------------------------ redaction


def test_repr_and_str_of_the_settings_show_no_url_password() -> None:
    # Given settings whose PostgreSQL, Redis and broker URLs carry passwords
    settings = _settings(database_url="postgresql://einvoice:pg-s3cret@db:5432/erp",
                         redis_url="redis://:redis-s3cret@redis:6379/0",
                         celery_broker_url="rediss://worker:broker-s3cret@broker:6380/1")

    # When they are printed (a log line, a traceback's locals)
    shown = repr(settings) + str(settings)

    # Then the users and hosts are there, the passwords are not
    for secret in ("pg-s3cret", "redis-s3cret", "broker-s3cret"):
        assert secret not in shown
    assert "postgresql+psycopg://einvoice:***@db:5432/erp" in shown
    assert "redis://:***@redis:6379/0" in shown
    assert "rediss://worker:***@broker:6380/1" in shown
    # and the settings themselves still hold the real URL
    assert settings.require_database_url().endswith("einvoice:pg-s3cret@db:5432/erp")


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ("postgresql://einvoice@db/erp", "postgresql://einvoice@db/erp"),
    ("postgresql://u:p%40ss@db/erp", "postgresql://u:***@db/erp"),
    ("redis://:p@ss/w@redis:6379/0", "redis://:***@redis:6379/0"),
    ("redis://u:pw@h:1/0?client_name=a@b", "redis://u:***@h:1/0?client_name=a@b"),
    ("sentinel://:a1@s1:26379;sentinel://:b2@s2:26379", "sentinel://:***@s1:26379;sentinel://:***@s2:26379"),
    (None, None),
])
def test_redact_url_masks_the_password_only(url: str | None, shown: str | None) -> None:
    assert redact_url(url) == shown


# ------------------------------------------------------------------------------ several keys


def test_several_keys_the_first_encrypts_and_every_one_decrypts() -> None:
    # Given a value written under the old key
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    sealed_old = SecretBox(old).encrypt("clave-vieja")

    # When the deployment holds NEW,OLD
    box = SecretBox(f"{new}, {old}")

    # Then the old value still opens, new values are written with NEW only
    assert box.key_count == 2
    assert box.decrypt(sealed_old) == "clave-vieja"
    assert SecretBox(new).decrypt(box.encrypt("clave-nueva")) == "clave-nueva"
    with pytest.raises(SecretDecryptError):
        SecretBox(old).decrypt(box.encrypt("clave-nueva"))
    # and rotating re-encrypts the old value for NEW alone
    assert SecretBox(new).decrypt(box.rotate(sealed_old)) == "clave-vieja"


def test_the_settings_accept_several_keys_and_name_the_bad_one_without_echoing_it() -> None:
    new, old = SecretBox.generate_key(), SecretBox.generate_key()
    settings = _settings(einvoice_secret_key=f" {new} ,{old} ")
    assert SecretBox.from_settings(settings).key_count == 2

    with pytest.raises(ConfigError) as caught:
        _settings(einvoice_secret_key=f"{new},not-a-key")
    assert "EINVOICE_SECRET_KEY" in caught.value.message
    assert "key 2 of 2" in caught.value.message
    assert "not-a-key" not in caught.value.message
    assert new not in caught.value.message

    with pytest.raises(SecretKeyError) as refused:
        SecretBox(f"{new},not-a-key")
    assert "key 2 of 2" in refused.value.message
    assert "not-a-key" not in refused.value.message


# ------------------------------------------------------------------------------ base_url


@pytest.mark.parametrize("url", [
    "https://api.factus.com.co",
    "https://api-sandbox.factus.com.co/",
    "https://API.Factus.com.co:443",
])
def test_factus_hosts_over_https_are_accepted(url: str) -> None:
    assert check_factus_base_url(url, _settings()) == url.rstrip("/")


@pytest.mark.parametrize(("url", "why"), [
    ("http://api.factus.com.co", "https on port 443 only"),
    ("https://api.factus.com.co:8443", "https on port 443 only"),
    ("https://attacker.example", "attacker.example is not a Factus host"),
    ("https://api.factus.com.co.attacker.example", "is not a Factus host"),
    ("http://169.254.169.254/latest", "169.254.169.254 is not a Factus host"),
    ("https://user:pw@api.factus.com.co", "user info"),
    ("https://api.factus.com.co?x=1", "query or fragment"),
    ("ftp://api.factus.com.co", "not an http(s) URL"),
    ("api.factus.com.co", "not an http(s) URL"),
])
def test_other_base_urls_are_refused_with_a_clear_reason(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_factus_base_url(url, _settings(), owner="factus_credentials.base_url of organization 7")
    assert caught.value.reason == "factus_base_url_refused"
    assert why in caught.value.message
    assert "organization 7" in caught.value.message
    assert "EINVOICE_FACTUS_ALLOWED_HOSTS" in caught.value.message
    assert ":pw@" not in caught.value.message  # a password in the URL is never echoed


def test_the_allow_list_and_the_operators_own_factus_base_url_host_are_trusted() -> None:
    # Given the simulator on 127.0.0.1 as FACTUS_BASE_URL, and "localhost" allowed explicitly
    settings = _settings(factus_base_url="http://127.0.0.1:8787",
                         einvoice_factus_allowed_hosts="localhost, Proxy.Internal")

    # Then rows may point at either, over http too, on any port
    assert check_factus_base_url("http://127.0.0.1:9999", settings) == "http://127.0.0.1:9999"
    assert check_factus_base_url("http://localhost:8787/", settings) == "http://localhost:8787"
    assert check_factus_base_url("https://proxy.internal/factus", settings)
    # and nothing else
    with pytest.raises(ConfigError):
        check_factus_base_url("http://10.0.0.5:8787", settings)


def test_storing_credentials_refuses_a_foreign_base_url_before_writing() -> None:
    # No session is needed: the URL is refused before anything is read or written.
    with pytest.raises(ConfigError) as caught:
        save_credentials(None, organization_id=3, environment="sandbox",  # type: ignore[arg-type]
                         client_id="c", client_secret="s", username="u@x.co", password="p",
                         box=SecretBox(SecretBox.generate_key()),
                         base_url="http://evil.example", settings=_settings())
    assert caught.value.reason == "factus_base_url_refused"


# ------------------------------------------------------------------------------ default account


@pytest.mark.parametrize(("setting", "any_credentials", "mode"), [
    (None, False, "shared"),   # single tenant: today's behaviour
    (None, True, "none"),      # another organization has its own account
    ("shared", True, "shared"),
    ("none", False, "none"),
    ("", True, "none"),        # blank, as .env.example shows it, is unset
])
def test_default_account_mode(setting: str | None, any_credentials: bool, mode: str) -> None:
    values = {} if setting is None else {"einvoice_default_account": setting}
    assert default_account_mode(_settings(**values), any_credentials=any_credentials) == mode


def test_an_unknown_default_account_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="EINVOICE_DEFAULT_ACCOUNT"):
        _settings(einvoice_default_account="maybe")


# ------------------------------------------------------------------------------ token key


def _account(**changes: str) -> FactusAccount:
    from pydantic import SecretStr

    values = {"key": "default", "environment": "sandbox",
              "base_url": "https://api-sandbox.factus.com.co", "client_id": "client-a",
              "username": "a@empresa.co"}
    values.update(changes)
    return FactusAccount(client_secret=SecretStr("s"), password=SecretStr("p"),
                         **values)  # type: ignore[arg-type]


def test_the_token_key_follows_the_accounts_identity() -> None:
    base = _account()
    assert base.token_key.startswith("default:")
    assert base.token_key != "default"
    assert _account().token_key == base.token_key  # stable across processes
    others = [_account(username="b@otra.co"), _account(client_id="client-b"),
              _account(environment="production", base_url="https://api.factus.com.co"),
              _account(base_url="http://127.0.0.1:8787")]
    assert len({base.token_key, *(a.token_key for a in others)}) == 5
    # a credentials row's token key still starts with its row id (the row holds its tokens)
    row = _account(key="0b9e4c2e-5d7e-4b1f-9a43-6a1f7d1f0c11")
    assert row.token_key.startswith("0b9e4c2e-5d7e-4b1f-9a43-6a1f7d1f0c11:")
