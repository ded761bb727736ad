"""Symmetric encryption of secrets at rest (Factus passwords, client secrets, OAuth tokens).

:class:`SecretBox` wraps ``cryptography``'s Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp),
so that every value stored in Redis or PostgreSQL is authenticated: a wrong key or a tampered value
fails loudly instead of decrypting to garbage. The key is ``EINVOICE_SECRET_KEY`` (see
``einvoice.settings``); :func:`SecretBox.generate_key` makes a new one.

Key rotation (``cryptography``'s ``MultiFernet``): ``EINVOICE_SECRET_KEY`` may hold several keys
separated by commas. The first encrypts; every one of them decrypts. To rotate, put the new key
first (``NEW,OLD``) on every process, run ``einvoice secrets rotate`` (every stored value is
re-encrypted with ``NEW``), then drop ``OLD``.

Errors::

    EinvoiceError
    └── ConfigError
        ├── SecretKeyError        the key itself is malformed (not 32 url-safe base64 bytes)
        └── SecretDecryptError    a value was encrypted with another key, or was altered
"""

from __future__ import annotations

import binascii

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from einvoice.errors import ConfigError
from einvoice.settings import Settings


class SecretKeyError(ConfigError):
    """``EINVOICE_SECRET_KEY`` is not a Fernet key (32 url-safe base64-encoded bytes)."""

    reason = "secret_key_invalid"


class SecretDecryptError(ConfigError):
    """A stored secret cannot be decrypted: it was written with another key, or altered."""

    reason = "secret_key_mismatch"


def parse_keys(keys: bytes | str) -> list[bytes]:
    """Split ``EINVOICE_SECRET_KEY`` into its Fernet keys, first (the encrypting one) first.

    Args:
        keys: one key, or several separated by commas (blanks around them are ignored), as
            url-safe base64 text.
    Returns:
        The keys as bytes, in the given order (at least one).
    Raises:
        SecretKeyError: when there is no key, or one of them is not a Fernet key (32 url-safe
            base64 bytes); the message gives its position, never the key.
    """
    text = keys.decode("ascii", "replace") if isinstance(keys, bytes) else keys
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise SecretKeyError("EINVOICE_SECRET_KEY is empty; create a key with "
                             "`einvoice secrets generate-key`")
    parsed: list[bytes] = []
    for position, part in enumerate(parts, start=1):
        try:
            Fernet(part.encode("ascii"))
        except (ValueError, binascii.Error, TypeError, UnicodeError):
            which = f"key {position} of {len(parts)} in " if len(parts) > 1 else ""
            raise SecretKeyError(
                f"{which}EINVOICE_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes); "
                "create one with `einvoice secrets generate-key`"
            ) from None
        parsed.append(part.encode("ascii"))
    return parsed


class SecretBox:
    """Encrypts and decrypts short text secrets with one or more Fernet keys.

    Args:
        key: the Fernet key, as the url-safe base64 text (``bytes`` or ``str``) that
            :meth:`generate_key` returns and ``EINVOICE_SECRET_KEY`` holds; or several such
            keys separated by commas: the first encrypts, any of them decrypts.

    Raises:
        SecretKeyError: when a key is not a valid Fernet key. The message never shows the key.
    """

    def __init__(self, key: bytes | str) -> None:
        keys = parse_keys(key)
        self._key_count = len(keys)
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def __repr__(self) -> str:
        return f"SecretBox(keys={self._key_count}, key=**********)"

    @property
    def key_count(self) -> int:
        """How many keys the box holds (1 + the older keys kept for decryption)."""
        return self._key_count

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

    def rotate(self, token: str) -> str:
        """Return ``token`` re-encrypted with the first key (whichever key it was made with).

        Raises:
            SecretDecryptError: as :meth:`decrypt`, when no key of the box opens ``token``.
        """
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise SecretDecryptError(
                "a stored secret cannot be decrypted with any key of EINVOICE_SECRET_KEY"
            ) from None
