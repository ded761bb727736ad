"""Account repository: the API version ``auto`` found per Factus account, and account events.

Every query on ``factus_account_versions`` and ``factus_account_events`` (migration 0007) lives
here. Nothing commits (STYLE.md habit 4). ``account_key`` is always
:attr:`einvoice.factus.tokens.FactusAccount.token_key`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from einvoice.db.models import FactusAccountEvent, FactusAccountVersion, FactusCredential


def detected_versions(session: Session, account_keys: Sequence[str]) -> dict[str, FactusAccountVersion]:
    """account_key -> its stored row, for the keys that have one."""
    if not account_keys:
        return {}
    rows = session.scalars(select(FactusAccountVersion)
                           .where(FactusAccountVersion.account_key.in_(list(account_keys))))
    return {row.account_key: row for row in rows}


def store_version(session: Session, account_key: str, api_version: str, *,
                  organization_id: int | None, detected_by: str, replace: bool) -> bool:
    """Remember that the account ``account_key`` speaks ``api_version``.

    Args:
        replace: True overwrites a stored version (Factus refused the stored one); False keeps
            a stored version (a confirmation of the version in use, never a downgrade of a
            finding).
    Returns:
        True when the stored version changed (a new row, or another version than before).
    """
    stmt = insert(FactusAccountVersion).values(
        account_key=account_key, organization_id=organization_id, api_version=api_version,
        detected_by=detected_by)
    if replace:
        stmt = stmt.on_conflict_do_update(
            index_elements=[FactusAccountVersion.account_key],
            set_={"api_version": api_version, "detected_by": detected_by,
                  "organization_id": organization_id, "detected_at": func.now(),
                  "updated_at": func.now()},
            where=FactusAccountVersion.api_version != api_version)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=[FactusAccountVersion.account_key])
    return bool(session.execute(stmt.returning(FactusAccountVersion.account_key)).first())


def add_event(session: Session, account_key: str, event_type: str, *,
              organization_id: int | None = None, code: str | None = None,
              message: str | None = None, metadata: dict[str, Any] | None = None) -> None:
    """Append one ``factus_account_events`` row (never a secret in ``message``/``metadata``)."""
    session.add(FactusAccountEvent(account_key=account_key, organization_id=organization_id,
                                   event_type=event_type, event_code=code,
                                   event_message=message, metadata_=metadata))
    session.flush()


def recent_events(session: Session, *, organization_id: int | None = None,
                  limit: int = 20) -> list[FactusAccountEvent]:
    """The newest account events, newest first (of one organization when given)."""
    stmt = select(FactusAccountEvent).order_by(FactusAccountEvent.created_at.desc()).limit(limit)
    if organization_id is not None:
        stmt = stmt.where(FactusAccountEvent.organization_id == organization_id)
    return list(session.scalars(stmt))


def credential_rows(session: Session, environment: str | None = None) -> list[FactusCredential]:
    """Every ``factus_credentials`` row (of ``environment`` when given), by organization."""
    stmt = select(FactusCredential).order_by(FactusCredential.organization_id,
                                             FactusCredential.environment)
    if environment is not None:
        stmt = stmt.where(FactusCredential.environment == environment)
    return list(session.scalars(stmt))
