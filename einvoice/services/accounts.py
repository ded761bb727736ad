"""Which Factus account an organization submits with (issue 4, "Multi-tenant").

An organization's active ``factus_credentials`` row for the configured ``FACTUS_ENVIRONMENT``
wins; otherwise the default account of the ``FACTUS_*`` variables is used. Secrets in the row are
Fernet ciphertext (:mod:`einvoice.crypto`) and are decrypted only into a ``SecretStr``.
"""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from einvoice.crypto import SecretBox
from einvoice.db.models import FactusCredential
from einvoice.factus.tokens import FactusAccount
from einvoice.settings import Settings


def account_for_organization(
    session: Session, organization_id: int, settings: Settings, box: SecretBox | None
) -> FactusAccount:
    """The :class:`FactusAccount` that ``organization_id`` submits with.

    Args:
        box: decrypts the credential row; may be None when no row is expected (default account).
    Raises:
        ConfigError: no row and the default ``FACTUS_*`` account is incomplete, or a row exists
            but ``EINVOICE_SECRET_KEY`` is unset or wrong.
    """
    row = session.scalars(
        select(FactusCredential).where(
            FactusCredential.organization_id == organization_id,
            FactusCredential.environment == settings.factus_environment,
            FactusCredential.is_active.is_(True),
        )
    ).first()
    if row is None:
        return FactusAccount.from_settings(settings)
    if box is None:
        box = SecretBox.from_settings(settings)
    return FactusAccount(
        key=str(row.id),
        environment=row.environment,  # type: ignore[arg-type]
        base_url=row.base_url or settings.factus_base_url or "",
        client_id=row.client_id,
        client_secret=SecretStr(box.decrypt(row.client_secret)),
        username=row.username,
        password=SecretStr(box.decrypt(row.password_encrypted)),
    )


def save_credentials(
    session: Session,
    *,
    organization_id: int,
    environment: str,
    client_id: str,
    client_secret: str,
    username: str,
    password: str,
    box: SecretBox,
    base_url: str | None = None,
) -> FactusCredential:
    """Create or replace an organization's Factus credentials, encrypting every secret.

    Stored tokens are cleared (they belonged to the previous credentials). Does not commit.
    """
    row = session.scalars(
        select(FactusCredential).where(
            FactusCredential.organization_id == organization_id,
            FactusCredential.environment == environment,
        )
    ).first()
    if row is None:
        row = FactusCredential(organization_id=organization_id, environment=environment,
                               client_id="", client_secret="", username="", password_encrypted="")
        session.add(row)
    row.client_id = client_id
    row.client_secret = box.encrypt(client_secret)
    row.username = username
    row.password_encrypted = box.encrypt(password)
    row.base_url = base_url
    row.access_token = None
    row.refresh_token = None
    row.token_expires_at = None
    row.is_active = True
    session.flush()
    return row


def account_keys_by_organization(session: Session, settings: Settings) -> dict[int, str]:
    """Organization id -> the key of its own Factus account (the ``factus_credentials`` row id,
    as text: the key of its tokens and rate limit), for every organization with an active row
    in ``FACTUS_ENVIRONMENT``. Organizations on the default account are absent."""
    rows = session.execute(_ACTIVE_ACCOUNT_KEYS, {"environment": settings.factus_environment})
    return {int(org): str(key) for org, key in rows}


# Built once: the job listener asks for every batch of notifications (issue 6, B2).
_ACTIVE_ACCOUNT_KEYS = (
    select(FactusCredential.__table__.c.organization_id, FactusCredential.__table__.c.id)
    .where(FactusCredential.__table__.c.environment == bindparam("environment"),
           FactusCredential.__table__.c.is_active.is_(True))
)
