"""Process settings, read once from the environment (and an optional ``.env`` file).

The variable names are a public contract (seed 002 "Configuración de Credenciales" and the
Celery / 12-factor conventions); other tools set them:

==========================  =========================================================  =====================
variable                    meaning                                                    default
==========================  =========================================================  =====================
DATABASE_URL                PostgreSQL URL (``postgresql://``, ``postgres://`` or      required to touch the
                            ``postgresql+psycopg://``); always driven by psycopg 3      database
REDIS_URL                   Redis URL (locks, rate limit, token cache)                 redis://localhost:6379/0
CELERY_BROKER_URL           Celery broker                                              REDIS_URL
FACTUS_ENVIRONMENT          ``sandbox`` or ``production``                              sandbox
FACTUS_BASE_URL             Factus API root                                            the environment's URL
FACTUS_CLIENT_ID            OAuth client id of the default Factus account              none
FACTUS_CLIENT_SECRET        OAuth client secret of the default account                 none
FACTUS_USERNAME             account e-mail of the default account                      none
FACTUS_PASSWORD             account password of the default account                    none
FACTUS_API_VERSION          Factus API version of the default account: ``v1``, ``v2``  auto
                            or ``auto`` (v1 until Factus refuses v1, then v2; stored)
EINVOICE_SECRET_KEY         Fernet key that encrypts credentials and tokens at rest    required to store or
                            (``einvoice secrets generate-key`` prints a new one);      read secrets
                            several comma-separated keys: the first encrypts, all
                            decrypt (``einvoice secrets rotate``)
PROMETHEUS_MULTIPROC_DIR    folder where workers leave their metrics for the API's     none (metrics stay in
                            ``/metrics`` (prometheus_client's multiprocess mode; a     each process)
                            volume both containers share)
==========================  =========================================================  =====================

Accounts of several organizations (optional):

* ``EINVOICE_DEFAULT_ACCOUNT``: ``shared`` lets organizations without a ``factus_credentials``
  row submit with the ``FACTUS_*`` account; ``none`` refuses them (``no_factus_account``).
  Unset: ``none`` as soon as any organization has a row, ``shared`` while none has.
* ``EINVOICE_FACTUS_ALLOWED_HOSTS``: hosts a ``factus_credentials.base_url`` may name besides
  the https Factus hosts and the host of ``FACTUS_BASE_URL`` (comma-separated; none by default).

``repr()`` of the settings shows URLs with their password as ``***`` (:func:`redact_url`).

Tuning knobs (all optional) are the other fields of :class:`Settings`; each field's name in upper
case is its variable.

Use :func:`get_settings` (cached) or :func:`load_settings`; both raise
:class:`einvoice.errors.ConfigError` with one line naming the variable when a value is missing or
malformed, never a traceback full of pydantic internals.
"""

from __future__ import annotations

import base64
import binascii
import math
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from einvoice.errors import ConfigError

FACTUS_URLS: dict[str, str] = {
    # FACTUS_API.md "Evidence" intro: sandbox and production bases.
    "sandbox": "https://api-sandbox.factus.com.co",
    "production": "https://api.factus.com.co",
}

_PG_SCHEMES = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg3": "postgresql+psycopg",
}


def normalize_database_url(url: str) -> str:
    """Return ``url`` rewritten to the SQLAlchemy psycopg 3 form ``postgresql+psycopg://...``.

    Accepts ``postgresql://``, ``postgres://`` (Heroku/Supabase style) and
    ``postgresql+psycopg://``. Raises ``ValueError`` for anything else (for example a
    ``postgresql+psycopg2://`` URL, since the project only ships psycopg 3).
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not rest:
        raise ValueError("expected a URL like postgresql://user:password@host:5432/dbname")
    target = _PG_SCHEMES.get(scheme.lower())
    if target is None:
        raise ValueError(
            f"unsupported scheme {scheme!r}; use postgresql://, postgres:// or postgresql+psycopg://"
        )
    return f"{target}://{rest}"


def redact_url(url: str | None) -> str | None:
    """Return ``url`` with its password replaced by ``***`` (``user:password@`` -> ``user:***@``).

    For ``repr(Settings)`` and log lines. Celery's ``;``-separated failover broker URLs are
    redacted one by one; a URL without a password is returned unchanged (``None`` stays ``None``).
    """
    if not url:
        return url
    return ";".join(_redact_one(part) for part in url.split(";"))


def _redact_one(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The last "@" before any query splits user info from host: a password may hold an
    # unencoded "@" or "/" (libpq and redis-py accept some), a path practically never does.
    before_query = min((i for i in (rest.find(c) for c in "?#") if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, before_query)
    if at < 0:
        return url
    userinfo = rest[:at]
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***{rest[at:]}"


def libpq_url(sqlalchemy_url: str) -> str:
    """Return the plain libpq form (``postgresql://...``) of a normalized SQLAlchemy URL.

    Used where psycopg is called directly (``LISTEN``), not through SQLAlchemy.
    """
    return "postgresql://" + sqlalchemy_url.split("://", 1)[1]


class Settings(BaseSettings):
    """All settings of one ``einvoice`` process. Build it with :func:`load_settings`.

    Times are seconds (float or int), rates are per minute. Secrets are ``SecretStr`` so that
    ``repr()`` and logs never show them.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str | None = None
    redis_url: str = "redis://localhost:6379/0"
    celery_broker_url: str | None = None

    factus_environment: Literal["sandbox", "production"] = "sandbox"
    factus_base_url: str | None = None
    factus_client_id: str | None = None
    factus_client_secret: SecretStr | None = None
    factus_username: str | None = None
    factus_password: SecretStr | None = None
    # The Factus API version of the default account: ``v1``, ``v2`` or ``auto`` (v1 until Factus
    # answers that the account is not enabled for v1, then v2, remembered in the database).
    # Organizations' own accounts have ``factus_credentials.api_version`` instead.
    factus_api_version: Literal["v1", "v2", "auto"] = "auto"
    einvoice_secret_key: SecretStr | None = None
    # Organizations without their own factus_credentials row: ``shared`` submits them with the
    # FACTUS_* account, ``none`` refuses them. Unset: ``none`` as soon as any organization has a
    # row (else another company's NIT would issue their invoices), ``shared`` while none has.
    einvoice_default_account: Literal["shared", "none"] | None = None
    # Hosts a factus_credentials.base_url may name besides the https Factus hosts and the host
    # of FACTUS_BASE_URL (comma-separated, e.g. ``127.0.0.1,localhost`` for the simulator).
    einvoice_factus_allowed_hosts: str = ""

    # --- Factus transport (FACTUS_API.md Decisions 5 and 6) ---
    factus_rate_limit_per_minute: int = Field(default=80, ge=1)
    # How long a worker thread may wait for a request slot before the job is parked until the
    # window frees (a saturated account must not hold every thread of the worker).
    factus_rate_limit_max_wait_seconds: float = Field(default=5.0, ge=0)
    # The pace: at most this many requests per account in any second (0 = none), so the minute's
    # requests are spread out instead of sent in one burst (fewer 409s under load). Unset:
    # 1.5 × the per-minute limit / 60, rounded up (2 for 80 per minute).
    factus_rate_limit_per_second: int | None = Field(default=None, ge=0)

    @property
    def factus_pace_per_second(self) -> int:
        """The pace in effect: ``factus_rate_limit_per_second``, or derived from the minute's
        limit when unset (requests per second per account; 0 = no pace)."""
        if self.factus_rate_limit_per_second is not None:
            return self.factus_rate_limit_per_second
        return max(1, math.ceil(self.factus_rate_limit_per_minute * 1.5 / 60))
    factus_connect_timeout: float = Field(default=5.0, gt=0)
    factus_read_timeout: float = Field(default=15.0, gt=0)
    factus_validate_timeout: float = Field(default=30.0, gt=0)
    factus_token_margin_seconds: int = Field(default=120, ge=0)
    factus_max_connections: int = Field(default=100, ge=1)

    # --- Job pipeline ---
    einvoice_max_attempts: int = Field(default=5, ge=1, le=32767)
    einvoice_retry_base_seconds: float = Field(default=2.0, gt=0)
    einvoice_retry_cap_seconds: float = Field(default=300.0, gt=0)
    einvoice_lease_seconds: int = Field(default=120, ge=10)
    einvoice_dian_slow_recheck_seconds: float = Field(default=5.0, gt=0)
    einvoice_dian_pending_timeout_seconds: float = Field(
        default=86400.0, gt=0,
        description="How long a document DIAN keeps 'pending' is re-checked, counted from its "
        "first pending answer (since the job's last operator retry); a re-check still pending "
        "after that ends the job failed with dian_timeout, outcome_unknown kept (an operator "
        "retry re-checks by reference code and never sends a new document). Seconds.")
    einvoice_redispatch_seconds: int = Field(default=60, ge=1)
    einvoice_dispatch_batch: int = Field(default=500, ge=1)
    einvoice_org_dispatch_share: int = Field(default=100, ge=1)
    # Workers LISTEN for plain SQL inserts (PostgreSQL NOTIFY) for instant pickup.
    einvoice_listen: bool = True
    # Most jobs one wake-up message carries when a burst is published (queueing.wakeup_chunks).
    einvoice_wakeup_max_jobs: int = Field(default=10, ge=1, le=100)
    # Every accepted document's PDF and XML are downloaded once and stored. Off, nothing
    # is scheduled at acceptance (each download is a Factus request against the account's quota;
    # ``einvoice docs archive JOB_ID`` still archives one job on demand).
    einvoice_archive_documents: bool = True

    # --- Celery (read by celeryconfig.py) ---
    # Seconds before Redis redelivers a message no worker acknowledged (a worker killed mid-task).
    # Far above the longest task (about 90 s worst case), far below Celery's default of one hour.
    einvoice_visibility_timeout: int = Field(default=300, ge=1)
    # Seconds between two runs of beat's dispatchers (due jobs, due follow-ups).
    einvoice_dispatch_interval: float = Field(default=2.0, gt=0)
    # Celery task events always on. Off, workers send them only while Flower (or another
    # monitor) asks for them: each costs a Redis PUBLISH, about a tenth of a worker's CPU per job.
    einvoice_task_events: bool = False

    # --- Observability (docs/metrics.md) ---
    # Bearer token of the API's GET /metrics (Prometheus); unset, /metrics answers 404.
    einvoice_metrics_token: SecretStr | None = None
    # Log lines as ``text`` or ``json`` (one object per line with time, level, logger, message,
    # job_id, organization_id, reference_code, request_id): workers, beat, `einvoice api serve`.
    einvoice_log_format: Literal["text", "json"] = "text"
    # prometheus_client's multiprocess folder (its own variable name): workers write their
    # counters there, the API's /metrics reads them; the same folder (a shared volume) for both.
    prometheus_multiproc_dir: str | None = None

    @field_validator("einvoice_metrics_token", mode="before")
    @classmethod
    def _check_metrics_token(cls, value: object) -> object:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        if isinstance(value, str) and len(value.strip()) < 16:
            raise ValueError("use at least 16 characters (openssl rand -hex 32 prints one)")
        return value.strip() if isinstance(value, str) else value

    @field_validator("einvoice_log_format", mode="before")
    @classmethod
    def _blank_log_format_is_text(cls, value: object) -> object:
        return (value.strip().lower() or "text") if isinstance(value, str) else value

    @field_validator("prometheus_multiproc_dir", mode="before")
    @classmethod
    def _blank_multiproc_dir_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("database_url")
    @classmethod
    def _normalize_db(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return normalize_database_url(value)

    @field_validator("redis_url", "celery_broker_url")
    @classmethod
    def _check_redis(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://", "redis+socket://")):
            raise ValueError("expected a URL like redis://host:6379/0")
        return value

    @field_validator("einvoice_default_account", mode="before")
    @classmethod
    def _blank_default_account_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            return value or None
        return value

    @field_validator("factus_api_version", mode="before")
    @classmethod
    def _blank_api_version_is_auto(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or "auto"
        return value

    @field_validator("factus_rate_limit_per_second", mode="before")
    @classmethod
    def _blank_pace_is_unset(cls, value: object) -> object:
        # ``FACTUS_RATE_LIMIT_PER_SECOND=`` (blank, as .env.example shows it) means "derive it".
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("einvoice_secret_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value().strip() == "":
            return None
        # Several keys separated by commas: the first encrypts, all decrypt (key rotation).
        keys = [key.strip() for key in value.get_secret_value().split(",")]
        for position, key in enumerate(keys, start=1):
            try:
                raw = base64.urlsafe_b64decode(key.encode())
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                which = f"key {position} of {len(keys)}: " if len(keys) > 1 else ""
                raise ValueError(
                    f"{which}expected a Fernet key (32 url-safe base64 bytes); "
                    "create one with `einvoice secrets generate-key`"
                )
        return SecretStr(",".join(keys))

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if self.celery_broker_url is None:
            self.celery_broker_url = self.redis_url
        if not self.factus_base_url:
            self.factus_base_url = FACTUS_URLS[self.factus_environment]
        self.factus_base_url = self.factus_base_url.rstrip("/")
        return self

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # repr() and str() of the settings end up in logs and tracebacks: no URL password.
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name in _URL_FIELDS else value)

    @property
    def factus_allowed_hosts(self) -> frozenset[str]:
        """``EINVOICE_FACTUS_ALLOWED_HOSTS`` as lower-case host names (empty when unset)."""
        return frozenset(host.strip().lower().strip("[]")
                         for host in self.einvoice_factus_allowed_hosts.split(",") if host.strip())

    # -- accessors that fail with one clear line --------------------------------------------

    def require_database_url(self) -> str:
        """Return ``DATABASE_URL`` in SQLAlchemy form. Raises ``ConfigError`` if it is unset."""
        if not self.database_url:
            raise ConfigError(
                "DATABASE_URL is not set: export a PostgreSQL URL, for example from "
                "`einvoice dev services up`",
                reason="config_missing",
            )
        return self.database_url

    def require_secret_key(self) -> bytes:
        """Return ``EINVOICE_SECRET_KEY`` as bytes. Raises ``ConfigError`` if it is unset."""
        if self.einvoice_secret_key is None:
            raise ConfigError(
                "EINVOICE_SECRET_KEY is not set: it encrypts Factus credentials and tokens at "
                "rest; create one with `einvoice secrets generate-key`",
                reason="config_missing",
            )
        return self.einvoice_secret_key.get_secret_value().encode()

    def has_default_factus_account(self) -> bool:
        """True when all four ``FACTUS_*`` credentials of the default account are set."""
        return bool(
            self.factus_client_id
            and self.factus_client_secret
            and self.factus_username
            and self.factus_password
        )


_URL_FIELDS = frozenset({"database_url", "redis_url", "celery_broker_url", "factus_base_url"})


def _env_name(loc: tuple[object, ...]) -> str:
    return str(loc[0]).upper() if loc else "settings"


def load_settings(**overrides: object) -> Settings:
    """Build :class:`Settings` from the environment, ``.env`` and keyword ``overrides``.

    Raises:
        ConfigError: one line naming the first bad variable and why, for example
            ``DATABASE_URL: unsupported scheme 'mysql'; use postgresql://...``.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        raise ConfigError(f"{_env_name(first.get('loc', ()))}: {msg}", reason="config_invalid") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use (never at import time)."""
    return load_settings()
