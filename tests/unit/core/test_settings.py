"""Settings: public variable names, URL forms, and one clear line for a bad value."""

from __future__ import annotations

import pytest

from einvoice.errors import ConfigError
from einvoice.settings import load_settings


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db:5432/erp",
        "postgres://u:p@db:5432/erp",
        "postgresql+psycopg://u:p@db:5432/erp",
    ],
)
def test_database_url_forms_all_use_psycopg3(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert load_settings().require_database_url() == "postgresql+psycopg://u:p@db:5432/erp"


def test_broker_falls_back_to_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://cache:6380/2")
    assert load_settings().celery_broker_url == "redis://cache:6380/2"
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://broker:6379/0")
    assert load_settings().celery_broker_url == "redis://broker:6379/0"


def test_factus_base_url_follows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACTUS_BASE_URL", raising=False)
    monkeypatch.setenv("FACTUS_ENVIRONMENT", "production")
    assert load_settings().factus_base_url == "https://api.factus.com.co"
    monkeypatch.setenv("FACTUS_ENVIRONMENT", "sandbox")
    assert load_settings().factus_base_url == "https://api-sandbox.factus.com.co"
    monkeypatch.setenv("FACTUS_BASE_URL", "http://127.0.0.1:9000/")
    assert load_settings().factus_base_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL: unsupported scheme 'mysql'"),
        ("DATABASE_URL", "not a url", "DATABASE_URL: expected a URL"),
        ("REDIS_URL", "http://x", "REDIS_URL: expected a URL like redis://"),
        ("FACTUS_ENVIRONMENT", "staging", "FACTUS_ENVIRONMENT: "),
        ("EINVOICE_SECRET_KEY", "short", "EINVOICE_SECRET_KEY: expected a Fernet key"),
        ("FACTUS_RATE_LIMIT_PER_MINUTE", "zero", "FACTUS_RATE_LIMIT_PER_MINUTE: "),
    ],
)
def test_malformed_value_gives_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_missing_values_are_named_when_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("EINVOICE_SECRET_KEY", raising=False)
    settings = load_settings()
    with pytest.raises(ConfigError, match=r"^DATABASE_URL is not set"):
        settings.require_database_url()
    with pytest.raises(ConfigError, match=r"^EINVOICE_SECRET_KEY is not set"):
        settings.require_secret_key()


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTUS_PASSWORD", "hunter2-very-secret")
    monkeypatch.setenv("FACTUS_CLIENT_SECRET", "client-secret-value")
    text = repr(load_settings())
    assert "hunter2-very-secret" not in text
    assert "client-secret-value" not in text


@pytest.mark.parametrize(("per_minute", "per_second", "pace"), [
    ("80", None, 2),            # Factus's limit: the minute's 80 go out over 40 s, not at once
    ("1200", None, 30),         # the demo's: 1.5 × its average rate
    ("10000000", None, 250000),  # the benchmarks' "no limit" stays no limit
    ("80", "0", 0),             # set explicitly: no pace
    ("80", "5", 5),
])
def test_the_pace_follows_the_minute_limit_unless_set(
    monkeypatch: pytest.MonkeyPatch, per_minute: str, per_second: str | None, pace: int
) -> None:
    monkeypatch.setenv("FACTUS_RATE_LIMIT_PER_MINUTE", per_minute)
    if per_second is None:
        monkeypatch.delenv("FACTUS_RATE_LIMIT_PER_SECOND", raising=False)
    else:
        monkeypatch.setenv("FACTUS_RATE_LIMIT_PER_SECOND", per_second)
    assert load_settings().factus_pace_per_second == pace
