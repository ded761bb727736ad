"""Account repository: the API version ``auto`` found per Factus account, and account events.

Every query on ``factus_account_versions`` and ``factus_account_events`` (migration 0007) lives
here. Nothing commits (STYLE.md habit 4). ``account_key`` is always
:attr:`einvoice.factus.tokens.FactusAccount.token_key`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Text, and_, bindparam, cast, exists, func, literal, or_, select
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


# Built once: one statement gives the organization's row (or NULLs), whether any row exists,
# and the API versions stored for the accounts it may use (the row's, by id prefix, and the
# default one's), so neither the default-account rule nor ``auto`` costs a second query (this
# runs on every account cache miss).
_ONE = select(literal(1).label("one")).subquery()
_VERSIONS = FactusAccountVersion.__table__
_STORED_VERSIONS = (
    select(func.array_agg(_VERSIONS.c.account_key + literal("=") + _VERSIONS.c.api_version))
    .where(or_(_VERSIONS.c.account_key == bindparam("default_key"),
               _VERSIONS.c.account_key.like(
                   cast(FactusCredential.__table__.c.id, Text) + literal(":%"))))
    .scalar_subquery()
)
_ACCOUNT_ROW = (
    select(FactusCredential,
           exists(select(literal(1)).select_from(FactusCredential.__table__.alias("any_row")))
           .label("any_credentials"),
           _STORED_VERSIONS.label("stored_versions"))
    .select_from(_ONE)
    .outerjoin(FactusCredential, and_(
        FactusCredential.organization_id == bindparam("organization_id"),
        FactusCredential.environment == bindparam("environment"),
        FactusCredential.is_active.is_(True),
    ))
    .limit(1)
)


def account_row(session: Session, organization_id: int, environment: str,
                default_key: str) -> tuple[FactusCredential | None, bool, list[str] | None]:
    """Everything an account resolution reads, in one statement.

    Args:
        organization_id: whose active ``factus_credentials`` row to read.
        environment: ``sandbox`` or ``production`` (``FACTUS_ENVIRONMENT``).
        default_key: the default ``FACTUS_*`` account's ``token_key`` ("" when none).
    Returns:
        (the organization's active row of ``environment`` or None, whether
        ``factus_credentials`` holds any row at all, the API versions stored for the row's
        account and the default one as ``"<account_key>=<version>"`` items or None).
    """
    row, any_credentials, stored = session.execute(
        _ACCOUNT_ROW, {"organization_id": organization_id, "environment": environment,
                       "default_key": default_key},
    ).one()
    return row, bool(any_credentials), stored


def credential_of(session: Session, organization_id: int,
                  environment: str) -> FactusCredential | None:
    """The organization's ``factus_credentials`` row of ``environment`` (active or not), or
    None."""
    return session.scalars(
        select(FactusCredential).where(
            FactusCredential.organization_id == organization_id,
            FactusCredential.environment == environment,
        )
    ).first()


# Built once: the job listener asks for every batch of notifications (benchmark B2).
_ACTIVE_ACCOUNT_KEYS = (
    select(FactusCredential.__table__.c.organization_id, FactusCredential.__table__.c.id)
    .where(FactusCredential.__table__.c.environment == bindparam("environment"),
           FactusCredential.__table__.c.is_active.is_(True))
)


def active_account_keys(session: Session, environment: str) -> dict[int, str]:
    """Organization id -> its active ``factus_credentials`` row id of ``environment``, as text
    (the key of the account's rate limit). Organizations without such a row are absent."""
    rows = session.execute(_ACTIVE_ACCOUNT_KEYS, {"environment": environment})
    return {int(org): str(key) for org, key in rows}


def newest_credential_secrets(session: Session) -> Any:
    """The encrypted secrets of one ``factus_credentials`` row: the active, most recently
    updated one. A row with ``id``, ``organization_id``, ``client_secret`` and
    ``password_encrypted`` (Fernet tokens), or None when the table is empty."""
    return session.execute(
        select(FactusCredential.id, FactusCredential.organization_id,
               FactusCredential.client_secret, FactusCredential.password_encrypted)
        .order_by(FactusCredential.is_active.desc(), FactusCredential.updated_at.desc(),
                  FactusCredential.id)
        .limit(1)
    ).first()


def credential_rows_for_update(session: Session) -> list[FactusCredential]:
    """Every ``factus_credentials`` row by id, locked ``FOR UPDATE`` (a worker saving a renewed
    token waits for the caller's transaction instead of being overwritten)."""
    return list(session.scalars(
        select(FactusCredential).order_by(FactusCredential.id).with_for_update()).all())


def first_active_organization(session: Session) -> int | None:
    """The organization id of one active ``factus_credentials`` row, or None."""
    return session.scalar(select(FactusCredential.organization_id)
                          .where(FactusCredential.is_active.is_(True)).limit(1))
