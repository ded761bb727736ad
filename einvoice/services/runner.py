"""The leased-worker runner shared by submissions (:mod:`einvoice.services.submit`) and
follow-ups (:mod:`einvoice.services.documents`).

Both run a row in three steps: claim it with a compare-and-set and a lease (one short
transaction), call Factus outside any transaction, record the outcome (another transaction)
only while the same worker still holds the same attempt. This module holds what those steps
share:

* :class:`WorkerContext`: the per-process resources (the database session factory, Factus
  clients, settings, the worker's id, the secret box, the jitter source, and per-process
  caches);
* :func:`thread_worker_id`: the ``leased_by`` value of the calling thread;
* :func:`retry_policy`: the one retry policy, built from the settings and the row's attempts;
* :data:`INFRASTRUCTURE_ERRORS` and :func:`is_infrastructure_error`: PostgreSQL or Redis
  unreachable (the task retries) versus the row's own problem (the row ends ``failed``);
* :func:`db_retrying` and :func:`record_retrying`: a recording transaction retried while
  PostgreSQL restarts, so that a blip costs a wait, not a row.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import redis
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from einvoice.crypto import SecretBox
from einvoice.db import invoices as invoice_repo
from einvoice.db import reference as ref_repo
from einvoice.domain.jobs import RetryPolicy
from einvoice.factus.client import FactusClients
from einvoice.factus.tokens import FactusAccount
from einvoice.services.accounts import ResolvedAccount, resolve_account
from einvoice.settings import Settings

T = TypeVar("T")

#: Errors that mean PostgreSQL or Redis cannot be reached (or dropped the connection): the row
#: is not at fault, so they propagate and the task retries (the dispatchers re-publish the row
#: anyway). Every other exception is the row's own problem (a value PostgreSQL refuses to read
#: or write, such as a DataError or IntegrityError, or a bug it triggers) and ends that row
#: ``internal_error``. ``DBAPIError`` subclasses whose connection was invalidated count as
#: infrastructure too (:func:`is_infrastructure_error`).
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError, InterfaceError, redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError, ConnectionError,
)

#: How long a recording transaction is retried while PostgreSQL restarts, in seconds. Past it
#: the lease expires and the sweeper hands the row back (its next attempt reconciles).
RECORD_DEADLINE_SECONDS = 60.0


def is_infrastructure_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the database or Redis is unreachable, rather than that one row's
    data or code path is broken (see :data:`INFRASTRUCTURE_ERRORS`).

    Args:
        exc: any exception raised while claiming, calling or recording.
    Returns:
        True for an infrastructure error (the task retries), False otherwise.
    """
    return isinstance(exc, INFRASTRUCTURE_ERRORS) or (
        isinstance(exc, DBAPIError) and bool(exc.connection_invalidated))


@dataclass
class WorkerContext:
    """Per-process resources of a leased worker (built once per worker process, shared by its
    threads): the submission service and the follow-up service both run on it.

    Attributes:
        session_factory: sessions on ``DATABASE_URL``.
        clients: the process's Factus clients (one per account).
        settings: process settings (retry policy, lease, DIAN-slow re-check interval).
        worker_id: identifies this worker in ``leased_by`` ("host:pid").
        secret_box: decrypts ``factus_credentials`` rows (None if no key is configured).
        rng: jitter source (seed it in tests).
        account_ttl_seconds: how long an organization's decrypted Factus account is reused
            (so a changed ``factus_credentials`` row, or an API version another worker found,
            is picked up within that long).
    """

    session_factory: sessionmaker[Session]
    clients: FactusClients
    settings: Settings
    worker_id: str
    secret_box: SecretBox | None = None
    rng: random.Random = field(default_factory=random.Random)
    account_ttl_seconds: float = 30.0
    _municipalities: frozenset[int] | None = None
    _units: Mapping[int, str] | None = None
    _accounts: dict[int, tuple[float, ResolvedAccount]] = field(default_factory=dict)

    def municipalities(self, session: Session) -> frozenset[int]:
        """Factus municipality ids, read once per process."""
        if self._municipalities is None:
            self._municipalities = invoice_repo.known_municipality_ids(session)
        return self._municipalities

    def known_units(self, session: Session) -> Mapping[int, str]:
        """Units of measure (Factus id -> DIAN code, ``dian_unit_measures``), read once per
        process (:func:`einvoice.db.reference.known_unit_measures`)."""
        if self._units is None:
            self._units = ref_repo.known_unit_measures(session)
        return self._units

    def account_for(self, session: Session, organization_id: int) -> FactusAccount:
        """The organization's Factus account, its API version resolved (:meth:`resolved_for`)."""
        return self.resolved_for(session, organization_id).account

    def resolved_for(self, session: Session, organization_id: int) -> ResolvedAccount:
        """The organization's Factus account and API version (:func:`resolve_account`), cached.

        Reading and decrypting the credentials row once per ``account_ttl_seconds`` instead of
        once per job saves a query and two Fernet decryptions on the hot path.

        Raises:
            ConfigError: as :func:`resolve_account` (never cached).
        """
        now = time.monotonic()
        cached = self._accounts.get(organization_id)
        if cached is not None and now - cached[0] < self.account_ttl_seconds:
            return cached[1]
        resolved = resolve_account(session, organization_id, self.settings, self.secret_box)
        self._accounts[organization_id] = (now, resolved)
        return resolved

    def forget_account(self, token_key: str) -> None:
        """Drop every cached organization whose account is ``token_key`` (its API version was
        just stored: the next job resolves it again)."""
        for org_id, (_at, resolved) in list(self._accounts.items()):
            if resolved.account.token_key == token_key:
                self._accounts.pop(org_id, None)


def retry_policy(settings: Settings, max_attempts: int = 5) -> RetryPolicy:
    """The retry policy of a job or follow-up: its ``max_attempts`` (the row's column) with the
    settings' ``EINVOICE_RETRY_BASE_SECONDS``, ``EINVOICE_RETRY_CAP_SECONDS`` and
    ``EINVOICE_DIAN_SLOW_RECHECK_SECONDS`` (see :class:`einvoice.domain.jobs.RetryPolicy`)."""
    return RetryPolicy(max_attempts=max(max_attempts, 1), base=settings.einvoice_retry_base_seconds,
                       cap=settings.einvoice_retry_cap_seconds,
                       recheck=settings.einvoice_dian_slow_recheck_seconds)


def thread_worker_id(ctx: WorkerContext) -> str:
    """The ``leased_by`` value of the calling thread: ``"<worker_id>:<thread>"`` (the threads of
    one worker process hold leases of their own)."""
    return f"{ctx.worker_id}:{threading.get_ident() % 100000}"


def db_retrying(deadline_s: float = RECORD_DEADLINE_SECONDS) -> Retrying:
    """Retry a recording transaction while PostgreSQL restarts (a blip costs a wait, not a row).

    Only infrastructure errors (:func:`is_infrastructure_error`) are retried, with exponential
    waits (0.2 s doubling, at most 5 s) for ``deadline_s`` seconds, then re-raised: a value
    PostgreSQL refuses (a DataError) would be refused again, and is raised at once.
    """
    return Retrying(
        retry=retry_if_exception(is_infrastructure_error),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(deadline_s),
        reraise=True,
    )


def record_retrying(record: Callable[[], T], deadline_s: float = RECORD_DEADLINE_SECONDS) -> T:
    """Run ``record()`` (one lease-guarded recording transaction) under :func:`db_retrying`.

    Args:
        record: opens its own unit of work, writes only while the lease is held, commits, and
            returns its result (e.g. ``lease_lost`` when the lease was gone).
    Returns:
        What ``record()`` returned on its first successful run.
    Raises:
        An infrastructure error that outlasted ``deadline_s``, or any other exception of
        ``record()`` at once.
    """
    for attempt in db_retrying(deadline_s):
        with attempt:
            return record()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
