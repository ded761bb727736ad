"""OAuth tokens of Factus accounts: one token per account, renewed by one process at a time.

FACTUS_API.md Decision 2 and §2:

* expiry is ``expires_in`` from the answer minus a safety margin (``factus_token_margin_seconds``),
  never a hard-coded hour. The margin is capped at half the lifetime, so a short-lived token
  (a sandbox run with ``expires_in`` 60) is still used for a while instead of being renewed on
  every call (inferred: the docs give no rule for this);
* renewal tries the refresh grant first and falls back to the password grant when that fails;
  refresh tokens rotate (Passport revokes the old one: inferred), so the new one is stored every
  time;
* only one process renews an account's token at a time: a thread lock inside the process and a
  Redis lock (``redis.lock.Lock``) across processes; after acquiring it, the store is read again,
  because another process may have renewed meanwhile. Without that re-read, two workers would both
  spend the same rotating refresh token and the second would fail;
* on a 401 from ``/v1``, :meth:`TokenManager.renew_after_rejection` renews once (unless the
  store already holds a newer token) and the client retries the call once.

Storage sits behind the :class:`TokenStore` protocol (``load``/``save``). :class:`RedisTokenStore`
keeps tokens encrypted with :class:`einvoice.crypto.SecretBox`; :class:`InMemoryTokenStore` is for
tests and single-process tools. A store for ``factus_credentials`` rows can implement the same two
methods.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import redis
import redis.lock
from pydantic import SecretStr
from redis.exceptions import LockError

from einvoice import metrics
from einvoice.crypto import SecretBox, SecretDecryptError
from einvoice.errors import ConfigError
from einvoice.factus import deadline
from einvoice.factus.errors import FactusError, TokenUnavailableError
from einvoice.factus.schemas import TokenResponse
from einvoice.settings import Settings

logger = logging.getLogger("einvoice.factus")

DEFAULT_ACCOUNT_KEY = "default"
#: The Factus API versions a client can speak (FACTUS_API.md Decision 1).
API_VERSIONS = ("v1", "v2")
#: One of :data:`API_VERSIONS`.
ApiVersion = Literal["v1", "v2"]


def api_version(value: str) -> ApiVersion:
    """``value`` as an :data:`ApiVersion`.

    Raises:
        ValueError: ``value`` is not ``"v1"`` or ``"v2"`` (``auto`` is resolved before this).
    """
    if value == "v1":
        return "v1"
    if value == "v2":
        return "v2"
    raise ValueError(f"api_version must be one of {API_VERSIONS}, not {value!r}")
#: Redis key prefix of stored tokens (``<prefix><FactusAccount.token_key>``).
TOKEN_KEY_PREFIX = "einvoice:factus:token:"  # noqa: S105 - a Redis key name, not a secret


def utc_now() -> datetime:
    """The current time as an aware UTC ``datetime``."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class FactusAccount:
    """The credentials of one Factus account (§2: the four OAuth fields) and where it lives.

    Attributes:
        key: ``"default"`` for the ``FACTUS_*`` variables, else the ``factus_credentials`` row id
            (as text). Rate limits are kept per key; tokens and their renewal locks per
            :attr:`token_key`, which adds the account's identity.
        environment: ``"sandbox"`` or ``"production"``.
        base_url: API root without a trailing slash, e.g. ``https://api-sandbox.factus.com.co``.
        client_id, client_secret: the OAuth client.
        username, password: the account e-mail and password.
        api_version: the Factus API version the client speaks for this account, ``"v1"`` or
            ``"v2"`` (already resolved: ``auto`` is settled before an account is built). It is
            not part of :attr:`token_key` nor of the rate-limit key: the token and the
            80-a-minute quota belong to the account, whichever version a call uses.

    ``repr`` never shows the secret fields.

    Raises (on construction):
        ValueError: an ``api_version`` other than ``"v1"`` or ``"v2"``.
    """

    key: str
    environment: Literal["sandbox", "production"]
    base_url: str
    client_id: str
    client_secret: SecretStr = field(repr=False)
    username: str
    password: SecretStr = field(repr=False)
    api_version: ApiVersion = "v1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.api_version not in API_VERSIONS:
            raise ValueError(
                f"api_version must be one of {API_VERSIONS}, not {self.api_version!r}"
            )

    @property
    def token_key(self) -> str:
        """The key of this account's token and renewal lock: ``<key>:<fingerprint>``.

        The fingerprint is a hash of the account's identity (environment, base URL, client id,
        username), so a token is never handed to another account under the same ``key``: with
        a fixed ``"default"``, changing ``FACTUS_USERNAME`` (or the environment) kept using the
        previous account's token, i.e. another company's NIT.
        """
        identity = "\n".join((self.environment, self.base_url.lower(), self.client_id,
                              self.username))
        return f"{self.key}:{hashlib.sha256(identity.encode('utf-8')).hexdigest()[:16]}"

    @classmethod
    def from_settings(cls, settings: Settings) -> FactusAccount:
        """The default account from ``FACTUS_ENVIRONMENT``, ``FACTUS_BASE_URL`` and the four
        ``FACTUS_*`` credentials (seed 002 "Configuración de Credenciales").

        Raises:
            ConfigError: naming the ``FACTUS_*`` variables that are unset.
        """
        missing = [
            name
            for name, value in (
                ("FACTUS_CLIENT_ID", settings.factus_client_id),
                ("FACTUS_CLIENT_SECRET", settings.factus_client_secret),
                ("FACTUS_USERNAME", settings.factus_username),
                ("FACTUS_PASSWORD", settings.factus_password),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"{', '.join(missing)} not set: the default Factus account needs all four "
                "FACTUS_* credentials",
                reason="config_missing",
            )
        assert settings.factus_client_secret is not None
        assert settings.factus_password is not None
        return cls(
            key=DEFAULT_ACCOUNT_KEY,
            environment=settings.factus_environment,
            base_url=settings.factus_base_url or "",
            client_id=settings.factus_client_id or "",
            client_secret=settings.factus_client_secret,
            username=settings.factus_username or "",
            password=settings.factus_password,
        )


@dataclass(frozen=True)
class StoredToken:
    """A token pair as we keep it.

    Attributes:
        access_token: the Bearer JWT (never logged).
        refresh_token: the refresh token, or ``None`` when Factus gave none.
        expires_at: when Factus says the access token dies (UTC): obtained + ``expires_in``.
        renew_at: when we stop using it (UTC): ``expires_at`` minus the margin.
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    renew_at: datetime

    @classmethod
    def from_response(
        cls, response: TokenResponse, *, now: datetime, margin_seconds: float
    ) -> StoredToken:
        """Build from a token answer received at ``now`` (UTC).

        ``renew_at = now + expires_in - min(margin_seconds, expires_in / 2)`` (Decision 2; the
        cap is explained in the module docstring).
        """
        lifetime = float(response.expires_in)
        margin = min(float(margin_seconds), lifetime / 2)
        return cls(
            access_token=response.access_token.get_secret_value(),
            refresh_token=(
                response.refresh_token.get_secret_value() if response.refresh_token else None
            ),
            expires_at=now + timedelta(seconds=lifetime),
            renew_at=now + timedelta(seconds=lifetime - margin),
        )

    def is_usable(self, now: datetime) -> bool:
        """True while ``now`` (UTC) is before ``renew_at``."""
        return now < self.renew_at

    def to_json(self) -> str:
        """Serialise (tokens included: encrypt before storing)."""
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_at": self.expires_at.isoformat(),
                "renew_at": self.renew_at.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> StoredToken:
        """Inverse of :meth:`to_json`. Raises ``ValueError``/``KeyError`` on a malformed value."""
        data = json.loads(text)
        return cls(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            expires_at=datetime.fromisoformat(data["expires_at"]),
            renew_at=datetime.fromisoformat(data["renew_at"]),
        )


class TokenStore(Protocol):
    """Where tokens live between calls and processes (one entry per account key)."""

    def load(self, account_key: str) -> StoredToken | None:
        """The stored token of ``account_key``, or ``None`` when there is none (or it is
        unreadable)."""
        ...

    def save(self, account_key: str, token: StoredToken) -> None:
        """Store ``token`` for ``account_key``, replacing the previous one."""
        ...


class InMemoryTokenStore:
    """A :class:`TokenStore` in a dict: for unit tests and single-process tools (not shared
    between processes)."""

    def __init__(self) -> None:
        self._tokens: dict[str, StoredToken] = {}
        self._lock = threading.Lock()

    def load(self, account_key: str) -> StoredToken | None:
        """See :meth:`TokenStore.load`."""
        with self._lock:
            return self._tokens.get(account_key)

    def save(self, account_key: str, token: StoredToken) -> None:
        """See :meth:`TokenStore.save`."""
        with self._lock:
            self._tokens[account_key] = token


class RedisTokenStore:
    """A :class:`TokenStore` in Redis, one key per account, the value encrypted with ``box``.

    Args:
        client: a ``redis.Redis`` client.
        box: the :class:`SecretBox` built from ``EINVOICE_SECRET_KEY``.
        prefix: key prefix (``<prefix><account_key>``).
        ttl_seconds: how long an entry may sit unused; 30 days by default, the usual lifetime
            of a Passport refresh token (inferred, §2), after which only a password grant helps.

    A value that cannot be decrypted (the key was rotated) is treated as absent and logged: the
    next renewal does a password grant and overwrites it.
    """

    def __init__(
        self,
        client: redis.Redis,
        box: SecretBox,
        *,
        prefix: str = TOKEN_KEY_PREFIX,
        ttl_seconds: int = 30 * 24 * 3600,
    ) -> None:
        self._redis = client
        self._box = box
        self._prefix = prefix
        self._ttl = ttl_seconds

    def load(self, account_key: str) -> StoredToken | None:
        """See :meth:`TokenStore.load`. Raises ``redis.RedisError`` when Redis is down."""
        raw = self._redis.get(self._prefix + account_key)
        if raw is None:
            return None
        text = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
        try:
            return StoredToken.from_json(self._box.decrypt(text))
        except SecretDecryptError:
            logger.warning(
                "stored Factus token of account %s cannot be decrypted with EINVOICE_SECRET_KEY; "
                "ignoring it",
                account_key,
            )
        except (ValueError, KeyError, TypeError):
            logger.warning(
                "stored Factus token of account %s is malformed; ignoring it", account_key
            )
        return None

    def save(self, account_key: str, token: StoredToken) -> None:
        """See :meth:`TokenStore.save`. Raises ``redis.RedisError`` when Redis is down."""
        self._redis.set(
            self._prefix + account_key, self._box.encrypt(token.to_json()), ex=self._ttl
        )


class RenewalLocks(Protocol):
    """Mutual exclusion of token renewal per account key, across whatever shares the store."""

    def hold(self, account_key: str) -> AbstractContextManager[None]:
        """A context manager that holds the renewal lock of ``account_key``.

        Raises:
            TokenUnavailableError: when the lock cannot be acquired in time.
        """
        ...


class ThreadRenewalLocks:
    """:class:`RenewalLocks` for one process (pairs with :class:`InMemoryTokenStore`)."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, account_key: str) -> Iterator[None]:
        """See :meth:`RenewalLocks.hold` (never times out)."""
        with self._guard:
            lock = self._locks.setdefault(account_key, threading.Lock())
        with _until_deadline(lock, account_key):
            yield


@contextmanager
def _until_deadline(lock: threading.Lock, account_key: str) -> Iterator[None]:
    """Hold ``lock``, waiting for it at most until the submission attempt's deadline
    (:mod:`einvoice.factus.deadline`; no deadline: as long as it takes).

    Raises:
        TokenUnavailableError: the deadline came first (another thread is renewing the token).
    """
    left = deadline.remaining()
    if not lock.acquire(timeout=-1 if left is None else max(left, 0.0)):
        raise TokenUnavailableError(
            f"the Factus token of account {account_key} is being renewed by another thread and "
            "the attempt's deadline came first"
        )
    try:
        yield
    finally:
        lock.release()


class RedisRenewalLocks:
    """:class:`RenewalLocks` shared by every process through ``redis.lock.Lock``.

    The lock lives in Redis for ``lease`` seconds at a time, and a watchdog thread of its holder
    resets that every ``lease / 3`` seconds (``Lock.reacquire``) while the renewal runs. A holder
    SIGKILLed mid-renewal stops resetting it, so the account's other workers wait ``lease``
    seconds for it, not a whole renewal's worst case: with one fixed timeout, a worker killed
    while fetching an account's first token would stall every job of that account for the whole
    timeout, their leases would expire meanwhile, and each would then cost a reconcile lookup on
    the account's quota (the chaos run kills workers at exactly that moment).

    Args:
        client: a ``redis.Redis`` client.
        timeout: the most one holder keeps the lock, in seconds: the watchdog stops resetting it
            after that, so a holder that hangs (alive) frees it too. It should outlast one
            renewal, a rate-limit wait plus two token calls;
            :func:`~einvoice.factus.client.create_factus_clients` derives it from the timeouts
            (55 s by default).
        blocking_timeout: seconds a process waits for the lock before giving up with
            :class:`TokenUnavailableError` (transient: the job is retried later and the thread
            is freed).
        lease: seconds the lock outlives a dead holder (default 10; at most ``timeout``).
        prefix: key prefix (``<prefix><account_key>``).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        timeout: float = 180.0,
        blocking_timeout: float = 180.0,
        lease: float = 10.0,
        prefix: str = "einvoice:factus:token-lock:",
    ) -> None:
        self._redis = client
        self._timeout = timeout
        self._lease = min(lease, timeout)
        self._blocking_timeout = blocking_timeout
        self._prefix = prefix

    @contextmanager
    def hold(self, account_key: str) -> Iterator[None]:
        """See :meth:`RenewalLocks.hold`."""
        lock = self._redis.lock(
            self._prefix + account_key,
            timeout=self._lease,
            # Never waits past the submission attempt's deadline (einvoice.factus.deadline).
            blocking_timeout=deadline.cap(self._blocking_timeout),
            thread_local=False,
        )
        if not lock.acquire():
            raise TokenUnavailableError(
                f"another process has been renewing the Factus token of account {account_key} "
                f"for over {self._blocking_timeout:.0f} s"
            )
        done = threading.Event()
        watchdog = threading.Thread(target=self._keep, args=(lock, account_key, done),
                                    name=f"token-lock-{account_key}", daemon=True)
        watchdog.start()
        try:
            yield
        finally:
            done.set()
            watchdog.join()
            try:
                lock.release()
            except LockError:
                # The lock expired while we held it; the token we saved is still the newest.
                logger.warning(
                    "Factus token lock of account %s expired before release", account_key
                )

    def _keep(self, lock: redis.lock.Lock, account_key: str, done: threading.Event) -> None:
        """Reset ``lock``'s time to live every ``lease / 3`` s until ``done``, for ``timeout``
        seconds in all; stop at the first failure (the holder's release then says so)."""
        give_up = time.monotonic() + self._timeout - self._lease
        while not done.wait(self._lease / 3):
            if time.monotonic() >= give_up:
                logger.warning("Factus token renewal of account %s has held its lock for %.0f s; "
                               "letting it expire", account_key, self._timeout)
                return
            try:
                lock.reacquire()
            except (LockError, redis.RedisError) as exc:
                logger.warning("cannot extend the Factus token lock of account %s: %s",
                               account_key, exc)
                return


class TokenGrants(Protocol):
    """The two OAuth calls of one account (implemented by ``FactusClient``)."""

    def password_grant(self) -> TokenResponse:
        """``POST /oauth/token`` with ``grant_type=password`` (§2)."""
        ...

    def refresh_grant(self, refresh_token: str) -> TokenResponse:
        """``POST /oauth/token`` with ``grant_type=refresh_token`` (§2)."""
        ...


class TokenManager:
    """Hands out a valid access token for one account, renewing it single-flight.

    Args:
        account_key: the account's key (store and lock entry).
        grants: the account's OAuth calls.
        store: where the token pair is kept (shared between processes for Redis).
        locks: the renewal locks (Redis across processes, threads within one).
        margin_seconds: renew this long before ``expires_in`` runs out (Decision 2).
        clock: returns the current UTC time (tests pass a fake).
    """

    def __init__(
        self,
        account_key: str,
        *,
        grants: TokenGrants,
        store: TokenStore,
        locks: RenewalLocks,
        margin_seconds: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._key = account_key
        self._grants = grants
        self._store = store
        self._locks = locks
        self._margin = margin_seconds
        self._clock = clock
        self._cached: StoredToken | None = None
        self._mutex = threading.Lock()

    def access_token(self) -> str:
        """A usable access token: the cached one, else the stored one, else a renewed one.

        Raises:
            FactusError: from the grants when renewal fails (``AuthenticationError`` for bad
                credentials, transient errors otherwise); ``TokenUnavailableError`` when the
                renewal lock is held too long elsewhere.
        """
        cached = self._cached
        if cached is not None and cached.is_usable(self._clock()):
            return cached.access_token
        with _until_deadline(self._mutex, self._key):
            return self._obtain(rejected=None).access_token

    def renew_after_rejection(self, rejected_access_token: str) -> str:
        """A new access token after Factus answered 401 to ``rejected_access_token``.

        If the store already holds a different usable token (another thread or process renewed),
        that one is returned without calling Factus; otherwise the token is renewed.

        Raises:
            FactusError: as :meth:`access_token`.
        """
        with _until_deadline(self._mutex, self._key):
            return self._obtain(rejected=rejected_access_token).access_token

    def _acceptable(self, token: StoredToken | None, rejected: str | None) -> bool:
        return (
            token is not None and token.is_usable(self._clock()) and token.access_token != rejected
        )

    def _obtain(self, *, rejected: str | None) -> StoredToken:
        if self._acceptable(self._cached, rejected):
            assert self._cached is not None
            return self._cached
        stored = self._store.load(self._key)
        if not self._acceptable(stored, rejected):
            with self._locks.hold(self._key):
                # Re-read under the lock: another process may have renewed while we waited.
                stored = self._store.load(self._key)
                if not self._acceptable(stored, rejected):
                    stored = self._renew(stored)
                    self._store.save(self._key, stored)
        assert stored is not None
        self._cached = stored
        return stored

    def _renew(self, current: StoredToken | None) -> StoredToken:
        response: TokenResponse | None = None
        if current is not None and current.refresh_token:
            try:
                response = self._grants.refresh_grant(current.refresh_token)
            except FactusError as exc:
                metrics.token_renewed("refresh", "error")
                logger.warning(
                    "Factus refresh grant failed for account %s (%s); trying the password grant",
                    self._key,
                    exc.reason,
                )
        grant = "refresh"
        if response is None:
            grant = "password"
            try:
                response = self._grants.password_grant()
            except FactusError:
                metrics.token_renewed(grant, "error")
                raise
        metrics.token_renewed(grant, "ok")
        token = StoredToken.from_response(response, now=self._clock(), margin_seconds=self._margin)
        if token.refresh_token is None and current is not None and current.refresh_token:
            # Factus returned no new refresh token: keep the one we have (it was not rotated).
            token = replace(token, refresh_token=current.refresh_token)
        logger.info(
            "Factus token renewed for account %s by %s grant; expires in %s s",
            self._key,
            grant,
            response.expires_in,
        )
        return token
