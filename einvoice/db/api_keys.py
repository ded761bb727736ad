"""The HTTP API's key statements (``api_keys``, migration 0010).

A key is stored as its public ``prefix`` and the SHA-256 hex of the whole key; the key itself is
never stored. Called by :mod:`einvoice.services.api_keys`; nothing here commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from einvoice.db import raw
from einvoice.db.models import ApiKey

#: ``last_used_at`` is written at most this often per key (seconds): a write per request would
#: make every authenticated call a write.
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class KeyRow:
    """What authentication needs of a key row (no hash, no secret).

    Attributes:
        id: ``api_keys.id``.
        organization_id: the organization every request with the key acts for.
        prefix: the key's public prefix (shown in lists and logs).
        revoked_at: when it was revoked (UTC), or None while it is valid.
    """

    id: uuid.UUID
    organization_id: int
    prefix: str
    revoked_at: datetime | None


# The lookup by hash and the "last used" stamp in one round trip: the stamp is written only
# when the stored one is a minute old (or missing), and never for a revoked key. The interval
# is LAST_USED_RESOLUTION_SECONDS, written out.
_LOOKUP = raw.RawStatement.of(text("""
WITH k AS (
    SELECT id, organization_id, prefix, revoked_at, last_used_at
      FROM api_keys WHERE key_sha256 = :key_sha256
), touched AS (
    UPDATE api_keys SET last_used_at = now()
      FROM k
     WHERE api_keys.id = k.id AND k.revoked_at IS NULL
       AND (k.last_used_at IS NULL
            OR k.last_used_at < now() - interval '60 seconds')
    RETURNING api_keys.id
)
SELECT k.id, k.organization_id, k.prefix, k.revoked_at,
       (SELECT count(*) FROM touched) AS touched
  FROM k
"""))


def lookup_and_touch(session: Session, key_sha256: str) -> KeyRow | None:
    """The key whose whole-key SHA-256 is ``key_sha256`` (unique index), revoked or not; stamps
    its ``last_used_at`` when that is older than :data:`LAST_USED_RESOLUTION_SECONDS`.

    Returns:
        :class:`KeyRow`, or None when no key has that hash.
    """
    row = raw.execute(session, _LOOKUP, {"key_sha256": key_sha256}).fetchone()
    if row is None:
        return None
    return KeyRow(id=row.id, organization_id=row.organization_id, prefix=row.prefix,
                  revoked_at=row.revoked_at)


def insert_key(session: Session, *, organization_id: int, name: str, prefix: str,
               key_sha256: str) -> ApiKey:
    """Insert a key row (flushed, not committed).

    Raises:
        sqlalchemy.exc.IntegrityError: the prefix or the hash exists already (unique).
    """
    key = ApiKey(organization_id=organization_id, name=name, prefix=prefix,
                 key_sha256=key_sha256)
    session.add(key)
    session.flush()
    session.refresh(key)
    return key


def keys_of_organization(session: Session, organization_id: int) -> list[ApiKey]:
    """The organization's keys, newest first, revoked ones included."""
    return list(session.scalars(select(ApiKey).where(ApiKey.organization_id == organization_id)
                                .order_by(ApiKey.created_at.desc(), ApiKey.prefix)))


def revoke(session: Session, organization_id: int, prefix: str) -> ApiKey | None:
    """Revoke the organization's key ``prefix`` now; a revoked key stays revoked (its first
    ``revoked_at`` is kept).

    Returns:
        The key row, or None when the organization has no key with that prefix.
    """
    session.execute(update(ApiKey).where(
        ApiKey.organization_id == organization_id, ApiKey.prefix == prefix,
        ApiKey.revoked_at.is_(None)).values(revoked_at=text("now()")))
    key = session.scalars(select(ApiKey).where(ApiKey.organization_id == organization_id,
                                               ApiKey.prefix == prefix)).one_or_none()
    if key is not None:
        session.refresh(key)
    return key
