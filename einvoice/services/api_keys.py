"""API keys of the HTTP API: create (shown once), list, revoke, and authenticate with a cache.

A key reads ``ei_<prefix>_<secret>``: ``prefix`` is 8 random lower-case letters and digits
(public: lists and logs show it), ``secret`` is ``secrets.token_urlsafe(32)`` (256 random bits).
Only the prefix and the SHA-256 hex of the whole key are stored. A fast hash is the right one
here: the key is 256 random bits, so no dictionary or brute-force search can find it from its
hash, and a slow password hash (argon2, bcrypt) would cost tens of milliseconds of CPU per
request, capping one API process at a few dozen requests per second.

Authentication goes through :class:`KeyCache`: a key's row is read at most once per TTL per
process (default 30 s), so a request costs no query for its key; the read also stamps
``last_used_at`` at most once a minute. A revoked key is refused by every process within the
TTL.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from einvoice.db import api_keys as key_repo
from einvoice.db.models import ApiKey
from einvoice.db.reference import organization_ids
from einvoice.errors import EinvoiceError

#: Every key starts with this, so a leaked one is recognisable (secret scanners, logs).
KEY_SCHEME = "ei_"
PREFIX_LENGTH = 8
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
#: ``ei_`` + 8 lower-case alphanumerics + ``_`` + a URL-safe secret of at least 43 characters
#: (``token_urlsafe(32)``).
_KEY_SHAPE = re.compile(r"^ei_([a-z0-9]{8})_[A-Za-z0-9_-]{43,}$")


class ApiKeyError(EinvoiceError):
    """An API key operation was refused (unknown organization or key)."""

    reason = "api_key_error"


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the key's organization, its id and its public prefix."""

    organization_id: int
    key_id: uuid.UUID
    prefix: str


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``key`` is the whole secret key (show it once, never store it); ``row`` the
    stored row (prefix and hash only)."""

    key: str
    row: ApiKey


def hash_key(key: str) -> str:
    """The lower-case hex SHA-256 of the whole key (UTF-8), as stored in ``key_sha256``."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, or None when ``key`` does not have the shape
    ``ei_<8 lower-case alphanumerics>_<secret>``."""
    match = _KEY_SHAPE.match(key)
    return match.group(1) if match else None


def generate_key() -> tuple[str, str]:
    """A new random key: ``(prefix, whole key)``."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return prefix, f"{KEY_SCHEME}{prefix}_{secrets.token_urlsafe(32)}"


def create_key(session: Session, organization_id: int, name: str) -> CreatedKey:
    """Create a key for ``organization_id`` (flushed, not committed).

    Args:
        name: what the key is for (e.g. ``erp-produccion``), shown in lists.
    Returns:
        :class:`CreatedKey`; its ``key`` exists nowhere else once the caller drops it.
    Raises:
        ApiKeyError: ``unknown_organization`` (no ``organizations`` row), ``bad_key_name``.
    """
    if not name.strip():
        raise ApiKeyError("a key needs a name (what it is for)", reason="bad_key_name")
    if organization_id not in organization_ids(session):
        raise ApiKeyError(f"no organization {organization_id}", reason="unknown_organization")
    prefix, key = generate_key()
    row = key_repo.insert_key(session, organization_id=organization_id, name=name.strip(),
                              prefix=prefix, key_sha256=hash_key(key))
    return CreatedKey(key=key, row=row)


def list_keys(session: Session, organization_id: int) -> list[ApiKey]:
    """The organization's keys, newest first (prefix, name, dates; never a secret)."""
    return key_repo.keys_of_organization(session, organization_id)


def revoke_key(session: Session, organization_id: int, prefix: str) -> ApiKey:
    """Revoke the organization's key ``prefix`` (flushed, not committed); revoking twice keeps
    the first date.

    Raises:
        ApiKeyError: ``key_not_found``.
    """
    key = key_repo.revoke(session, organization_id, prefix.strip())
    if key is None:
        raise ApiKeyError(f"organization {organization_id} has no key {prefix!r}",
                          reason="key_not_found")
    return key


def lookup_principal(session: Session, key: str) -> Principal | None:
    """The principal of a valid (well-formed, known, not revoked) key, else None; stamps the
    key's ``last_used_at`` at most once a minute (:func:`einvoice.db.api_keys.lookup_and_touch`).
    """
    if key_prefix(key) is None:
        return None
    row = key_repo.lookup_and_touch(session, hash_key(key))
    if row is None or row.revoked_at is not None:
        return None
    return Principal(organization_id=row.organization_id, key_id=row.id, prefix=row.prefix)


class KeyCache:
    """Principals by key hash for ``ttl_seconds`` (positive and negative answers alike).

    Thread-safe. Keyed by the SHA-256 of the key, so the cache holds no secret.

    Args:
        ttl_seconds: how long an answer is reused; also the longest a revoked key keeps
            working in this process.
        max_entries: the cache is emptied when it grows past this (a flood of random keys).
    """

    def __init__(self, ttl_seconds: float = 30.0, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, Principal | None]:
        """``(hit, principal)``: hit False when the key's answer is absent or expired."""
        entry = self._entries.get(hash_key(key))
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: str, principal: Principal | None) -> None:
        """Remember the answer for ``key`` for the TTL."""
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[hash_key(key)] = (time.monotonic() + self.ttl_seconds, principal)

    def resolve(self, key: str, lookup: Callable[[str], Principal | None]) -> Principal | None:
        """The cached answer for ``key``, else ``lookup(key)`` remembered."""
        hit, principal = self.get(key)
        if hit:
            return principal
        principal = lookup(key)
        self.put(key, principal)
        return principal
