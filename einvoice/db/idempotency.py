"""The HTTP API's idempotency statements (``api_idempotency_keys``, migration 0010).

A POST with an ``Idempotency-Key`` header first claims the key for its organization:
:func:`claim` takes a transaction-level advisory lock on (organization, key) and inserts the row
``ON CONFLICT DO NOTHING`` in one statement. The lock makes a concurrent request with the same
key see "in progress" at once instead of waiting for the first one's transaction, and the row,
inserted in the transaction that does the work, commits (or rolls back) with it. Called by
:mod:`einvoice.api.idempotency`; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from einvoice.db import raw
from einvoice.db.models import ApiIdempotencyKey

# An unfinished row older than :stale seconds (its process died between the committed claim and
# the answer of a multi-transaction action) is taken over instead of answering 409 forever.
_CLAIM = raw.RawStatement.of(text("""
WITH lock AS (
    SELECT pg_try_advisory_xact_lock(
               hashtextextended(CAST(:organization_id AS text) || ':' || :idempotency_key, 0))
           AS got
), claimed AS (
    INSERT INTO api_idempotency_keys
           (organization_id, idempotency_key, method, path, request_sha256)
    SELECT :organization_id, :idempotency_key, :method, :path, :request_sha256
      FROM lock WHERE lock.got
        ON CONFLICT (organization_id, idempotency_key) DO UPDATE
       SET method = EXCLUDED.method, path = EXCLUDED.path,
           request_sha256 = EXCLUDED.request_sha256, created_at = now()
     WHERE api_idempotency_keys.response_status IS NULL
       AND api_idempotency_keys.created_at < now() - make_interval(secs => :stale)
    RETURNING 1
)
SELECT lock.got, EXISTS (SELECT 1 FROM claimed) AS claimed FROM lock
"""))


@dataclass(frozen=True)
class Claim:
    """The result of :func:`claim`.

    Attributes:
        locked: this transaction holds the key's advisory lock (False: another request with
            the same key is being answered right now).
        claimed: the row is this request's (new, or a stale unfinished one taken over); False
            with ``locked`` means an earlier request owns it (see :func:`stored`).
    """

    locked: bool
    claimed: bool


def claim(session: Session, *, organization_id: int, idempotency_key: str, method: str,
          path: str, request_sha256: str, stale_after_seconds: float) -> Claim:
    """Lock (organization, key) for this transaction and insert its row if it has none.

    Args:
        request_sha256: hex SHA-256 of the request's method, path and body.
        stale_after_seconds: an unfinished row at least this old is taken over.
    Returns:
        :class:`Claim`.
    """
    row = raw.execute(session, _CLAIM, {
        "organization_id": organization_id, "idempotency_key": idempotency_key,
        "method": method, "path": path, "request_sha256": request_sha256,
        "stale": stale_after_seconds}).fetchone()
    assert row is not None
    return Claim(locked=bool(row.got), claimed=bool(row.claimed))


def stored(session: Session, organization_id: int, idempotency_key: str) -> ApiIdempotencyKey | None:
    """The key's row (its answer, once ``response_status`` is set), or None."""
    return session.scalars(select(ApiIdempotencyKey).where(
        ApiIdempotencyKey.organization_id == organization_id,
        ApiIdempotencyKey.idempotency_key == idempotency_key)).one_or_none()


def complete(session: Session, organization_id: int, idempotency_key: str, *, status: int,
             body: Any) -> None:
    """Store the answer (HTTP status and JSON body) of the key's first request."""
    session.execute(update(ApiIdempotencyKey).where(
        ApiIdempotencyKey.organization_id == organization_id,
        ApiIdempotencyKey.idempotency_key == idempotency_key,
    ).values(response_status=status, response_body=body, completed_at=text("now()")))


def release(session: Session, organization_id: int, idempotency_key: str) -> None:
    """Forget an unfinished claim (its request failed): a retry with the key runs again."""
    session.execute(delete(ApiIdempotencyKey).where(
        ApiIdempotencyKey.organization_id == organization_id,
        ApiIdempotencyKey.idempotency_key == idempotency_key,
        ApiIdempotencyKey.response_status.is_(None)))
