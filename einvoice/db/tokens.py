"""Token storage for organizations' own Factus accounts, in their ``factus_credentials`` row.

Seed 002 gives ``factus_credentials`` the columns ``access_token``, ``refresh_token`` and
``token_expires_at``; the tokens are kept there, Fernet-encrypted with ``EINVOICE_SECRET_KEY``,
so that a rotated refresh token survives a Redis flush. The default account (``FACTUS_*``
variables, key ``"default:<fingerprint>"``) has no row and uses the fallback store (Redis,
encrypted). Token keys are :attr:`einvoice.factus.tokens.FactusAccount.token_key`:
``<row id>:<fingerprint of the account's identity>``; the row id finds the row.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from einvoice.crypto import SecretBox, SecretDecryptError
from einvoice.db.models import FactusCredential
from einvoice.factus.tokens import StoredToken, TokenStore

log = logging.getLogger(__name__)


class CredentialTokenStore:
    """A :class:`~einvoice.factus.tokens.TokenStore` over ``factus_credentials`` rows.

    Args:
        session_factory: sessions on ``DATABASE_URL``.
        box: encrypts and decrypts the token columns.
        fallback: the store for token keys that do not start with a credential row id
            (the default account's).
        margin_seconds: how long before ``token_expires_at`` a loaded token stops being used.
    """

    def __init__(self, session_factory: sessionmaker[Session], box: SecretBox, *,
                 fallback: TokenStore, margin_seconds: float) -> None:
        self._factory = session_factory
        self._box = box
        self._fallback = fallback
        self._margin = timedelta(seconds=margin_seconds)

    @staticmethod
    def _row_id(account_key: str) -> uuid.UUID | None:
        try:
            return uuid.UUID(account_key.split(":", 1)[0])
        except ValueError:
            return None

    def load(self, account_key: str) -> StoredToken | None:
        """The stored token of ``account_key``, or None (absent, expired columns, or undecryptable)."""
        row_id = self._row_id(account_key)
        if row_id is None:
            return self._fallback.load(account_key)
        with self._factory() as session:
            row = session.execute(
                select(FactusCredential.access_token, FactusCredential.refresh_token,
                       FactusCredential.token_expires_at).where(FactusCredential.id == row_id)
            ).first()
        if row is None or not row.access_token or row.token_expires_at is None:
            return None
        try:
            access = self._box.decrypt(row.access_token)
            refresh = self._box.decrypt(row.refresh_token) if row.refresh_token else None
        except SecretDecryptError:  # a key dropped too early: renew with a password grant
            log.warning("stored Factus token of credentials %s cannot be decrypted; renewing",
                        row_id)
            return None
        return StoredToken(access_token=access, refresh_token=refresh,
                           expires_at=row.token_expires_at,
                           renew_at=row.token_expires_at - self._margin)

    def save(self, account_key: str, token: StoredToken) -> None:
        """Store ``token`` encrypted in the account's row (or in the fallback store)."""
        row_id = self._row_id(account_key)
        if row_id is None:
            self._fallback.save(account_key, token)
            return
        with self._factory() as session:
            session.execute(
                update(FactusCredential)
                .where(FactusCredential.id == row_id)
                .values(access_token=self._box.encrypt(token.access_token),
                        refresh_token=(self._box.encrypt(token.refresh_token)
                                       if token.refresh_token else None),
                        token_expires_at=token.expires_at)
            )
            session.commit()
