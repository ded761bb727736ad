"""Symmetric encryption of secrets at rest (Factus passwords, client secrets, OAuth tokens).

:class:`SecretBox` wraps ``cryptography``'s Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp),
so that every value stored in Redis or PostgreSQL is authenticated: a wrong key or a tampered value
fails loudly instead of decrypting to garbage. The key is ``EINVOICE_SECRET_KEY`` (see
``einvoice.settings``); :func:`SecretBox.generate_key` makes a new one.

Errors::

    EinvoiceError
    └── ConfigError
        ├── SecretKeyError        the key itself is malformed (not 32 url-safe base64 bytes)
        └── SecretDecryptError    a value was encrypted with another key, or was altered
"""

from __future__ import annotations

import binascii

from cryptography.fernet import Fernet, InvalidToken

from einvoice.errors import ConfigError
from einvoice.settings import Settings


class SecretKeyError(ConfigError):
    """``EINVOICE_SECRET_KEY`` is not a Fernet key (32 url-safe base64-encoded bytes)."""

    reason = "secret_key_invalid"


class SecretDecryptError(ConfigError):
    """A stored secret cannot be decrypted: it was written with another key, or altered."""

    reason = "secret_key_mismatch"


class SecretBox:
    """Encrypts and decrypts short text secrets with one Fernet key.

    Args:
        key: the Fernet key, as the url-safe base64 text (``bytes`` or ``str``) that
            :meth:`generate_key` returns and ``EINVOICE_SECRET_KEY`` holds.

    Raises:
        SecretKeyError: when ``key`` is not a valid Fernet key. The message never shows the key.
    """

    def __init__(self, key: bytes | str) -> None:
        raw = key.encode() if isinstance(key, str) else key
        try:
            self._fernet = Fernet(raw)
        except (ValueError, binascii.Error, TypeError):
            raise SecretKeyError(
                "EINVOICE_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes); "
                "create one with `einvoice secrets generate-key`"
            ) from None

    def __repr__(self) -> str:
        return "SecretBox(key=**********)"

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """Build the box from ``EINVOICE_SECRET_KEY``.

        Raises:
            ConfigError: when the variable is unset (``reason="config_missing"``).
            SecretKeyError: when it is malformed.
        """
        return cls(settings.require_secret_key())

    @staticmethod
    def generate_key() -> str:
        """Return a new random Fernet key as url-safe base64 text (44 characters)."""
        return Fernet.generate_key().decode("ascii")

    def encrypt(self, plaintext: str) -> str:
        """Return ``plaintext`` (any unicode text) encrypted as an ASCII Fernet token.

        The same plaintext encrypts to a different token each time (random IV + timestamp).
        """
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Return the text that :meth:`encrypt` turned into ``token``.

        Raises:
            SecretDecryptError: when ``token`` was made with another key, was altered, or is
                not a Fernet token at all. The message names the likely cause, never the value.
        """
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretDecryptError(
                "a stored secret cannot be decrypted with EINVOICE_SECRET_KEY: it was encrypted "
                "with another key (was the key rotated?) or the stored value was altered"
            ) from None
