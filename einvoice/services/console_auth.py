"""Who may use the operator console: accounts, passwords, sign-in with lock-out, sessions.

* Passwords are hashed with argon2id (argon2-cffi's :class:`~argon2.PasswordHasher` defaults:
  RFC 9106's second recommended option, 64 MiB and 3 passes); a hash made with older parameters
  is replaced at the next sign-in. A password has at least :data:`MIN_PASSWORD_LENGTH`
  characters.
* Sign-in answers the same for an unknown user, a wrong password, a disabled account and a
  locked one (:class:`SignInRefused`), and takes about the same time: an unknown user still
  costs one argon2 verification, so neither the answer nor its timing tells which usernames
  exist.
* Lock-out: :data:`LOCK_AFTER_FAILURES` failures in a row lock the account for
  :data:`LOCK_MINUTES` minutes (OWASP Authentication Cheat Sheet, "Account Lockout"); while it is
  locked even the right password is refused; ``einvoice users unlock`` lifts it early.
* A session is a random 256-bit cookie; only its SHA-256 is stored, with a CSRF token of its own
  and an absolute expiry of :data:`SESSION_HOURS` hours. Disabling a user revokes its sessions.

Roles, weakest first: ``viewer`` (reads), ``operator`` (also retries, cancels, resends,
issues credit notes), ``admin`` (also configures). Functions that take a session never commit.

Errors::

    EinvoiceError
    └── ConsoleAuthError            reason bad_username | bad_password | bad_role |
                                    unknown_organization | user_exists | unknown_user
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from einvoice.db import console as repo
from einvoice.db.models import OPERATOR_ROLES, OperatorUser
from einvoice.errors import EinvoiceError

#: Failures in a row that lock an account, and for how long (minutes).
LOCK_AFTER_FAILURES = 5
LOCK_MINUTES = 15
#: A session's absolute lifetime (hours): a working day, then sign in again.
SESSION_HOURS = 12
#: The shortest password accepted (NIST SP 800-63B §5.1.1.2 asks for at least 8; 10 here).
MIN_PASSWORD_LENGTH = 10
#: The last-seen stamp is written at most this often (seconds): one write per page is waste.
TOUCH_EVERY_SECONDS = 60

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    # Verified against when the username is unknown, so that answer costs what a wrong password
    # does; made on first need (an argon2 hash costs tens of milliseconds).
    return _hasher.hash(secrets.token_urlsafe(16))


class ConsoleAuthError(EinvoiceError):
    """A console account request that cannot be done (the reason says which)."""

    reason = "console_auth"


class SignInRefused(EinvoiceError):
    """Sign-in refused: unknown user, wrong password, disabled or locked account (one answer
    for all, on purpose)."""

    reason = "sign_in_refused"


@dataclass(frozen=True)
class Identity:
    """The signed-in operator of one request.

    Attributes:
        user_id / username / role: who (``role`` one of :data:`OPERATOR_ROLES`).
        organization_id: None for every organization, else the only one this operator sees.
        csrf_token: what every state-changing request of this session must carry.
        token_sha256: the session's key (to sign out).
    """

    user_id: int
    username: str
    role: str
    organization_id: int | None
    csrf_token: str
    token_sha256: str

    def can(self, role: str) -> bool:
        """Whether this operator's role is ``role`` or stronger."""
        return OPERATOR_ROLES.index(self.role) >= OPERATOR_ROLES.index(role)

    @property
    def actor(self) -> str:
        """How the console's actions are recorded in events: ``console:<username>``."""
        return f"console:{self.username}"


@dataclass(frozen=True)
class NewSession:
    """A session just opened: the cookie's value (shown to the browser once, never stored)
    and its expiry (UTC)."""

    token: str
    expires_at: datetime


def hash_token(token: str) -> str:
    """The lower-case hex SHA-256 of a session cookie's value (what the database keeps)."""
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_username(username: str) -> str:
    """``username`` trimmed and in lower case. Raises ``ConsoleAuthError`` (``bad_username``)
    unless it is 1-64 of ``a-z 0-9 . _ @ -``, starting with a letter or digit."""
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise ConsoleAuthError(f"{username!r} is not a valid username (1-64 of a-z, 0-9, "
                               "'.', '_', '@', '-')", reason="bad_username")
    return name


def check_password(password: str) -> None:
    """Raise ``ConsoleAuthError`` (``bad_password``) for a password shorter than
    :data:`MIN_PASSWORD_LENGTH` characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConsoleAuthError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters",
                               reason="bad_password")


def create_user(session: Session, *, username: str, password: str, role: str,
                organization_id: int | None = None) -> OperatorUser:
    """Add a console account (flushed, not committed).

    Args:
        role: ``viewer``, ``operator`` or ``admin``.
        organization_id: None: every organization; else the only one this operator sees.
    Raises:
        ConsoleAuthError: ``bad_username``, ``bad_password``, ``bad_role``,
            ``unknown_organization``, ``user_exists``.
    """
    name = normalize_username(username)
    check_password(password)
    if role not in OPERATOR_ROLES:
        raise ConsoleAuthError(f"role {role!r}: use one of {', '.join(OPERATOR_ROLES)}",
                               reason="bad_role")
    if organization_id is not None and not repo.organization_exists(session, organization_id):
        raise ConsoleAuthError(f"no organization {organization_id}", reason="unknown_organization")
    if repo.user_by_username(session, name) is not None:
        raise ConsoleAuthError(f"user {name!r} exists already", reason="user_exists")
    try:
        with session.begin_nested():
            return repo.insert_user(session, username=name, password_hash=_hasher.hash(password),
                                    role=role, organization_id=organization_id)
    except IntegrityError:  # created meanwhile by another process
        raise ConsoleAuthError(f"user {name!r} exists already", reason="user_exists") from None


def list_users(session: Session) -> list[OperatorUser]:
    """Every console account, by username."""
    return repo.users(session)


def _require_user(session: Session, username: str) -> OperatorUser:
    user = repo.user_by_username(session, normalize_username(username), for_update=True)
    if user is None:
        raise ConsoleAuthError(f"no user {username!r}", reason="unknown_user")
    return user


def disable_user(session: Session, username: str) -> OperatorUser:
    """Turn an account off and revoke its sessions at once. Raises ``ConsoleAuthError``."""
    user = _require_user(session, username)
    repo.disable(session, user)
    return user


def unlock_user(session: Session, username: str) -> OperatorUser:
    """Lift an account's lock-out. Raises ``ConsoleAuthError`` (``unknown_user``)."""
    user = _require_user(session, username)
    repo.unlock(session, user)
    return user


def set_password(session: Session, username: str, password: str) -> OperatorUser:
    """Give an account a new password (its sessions are revoked, its lock-out lifted).
    Raises ``ConsoleAuthError``."""
    check_password(password)
    user = _require_user(session, username)
    repo.set_password(session, user, _hasher.hash(password))
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def sign_in(session: Session, username: str, password: str, *,
            now: datetime | None = None) -> NewSession:
    """Check a username and password and open a session (flushed; the caller commits, also
    when this raises: the failure count must be kept).

    Returns:
        The new session's cookie value and expiry.
    Raises:
        SignInRefused: unknown user, wrong password, disabled, or locked (the same answer).
    """
    at = now or datetime.now(UTC)
    refused = SignInRefused("wrong username or password, or the account is locked or disabled")
    try:
        name = normalize_username(username)
    except ConsoleAuthError:
        _verify(_dummy_hash(), password)
        raise refused from None
    user = repo.user_by_username(session, name, for_update=True)
    if user is None:
        _verify(_dummy_hash(), password)
        raise refused
    if user.disabled_at is not None or (user.locked_until is not None and user.locked_until > at):
        _verify(_dummy_hash(), password)
        raise refused
    if not _verify(user.password_hash, password):
        repo.note_failure(session, user, lock_after=LOCK_AFTER_FAILURES,
                          lock_until=at + timedelta(minutes=LOCK_MINUTES))
        raise refused
    rehash = _hasher.hash(password) if _hasher.check_needs_rehash(user.password_hash) else None
    repo.note_success(session, user, password_hash=rehash)
    token = secrets.token_urlsafe(32)
    expires = at + timedelta(hours=SESSION_HOURS)
    repo.insert_session(session, token_sha256=hash_token(token), user_id=user.id,
                        csrf_token=secrets.token_urlsafe(32), expires_at=expires)
    return NewSession(token=token, expires_at=expires)


def identify(session: Session, token: str, *, now: datetime | None = None) -> Identity | None:
    """The operator of a session cookie, or None (unknown, expired, revoked, or its user
    disabled). Notes the session as seen at most once a minute (flushed; the caller commits)."""
    at = now or datetime.now(UTC)
    key = hash_token(token)
    found = repo.live_session(session, key, at)
    if found is None:
        return None
    row, user = found
    if (at - row.last_seen_at).total_seconds() > TOUCH_EVERY_SECONDS:
        repo.touch_session(session, key)
    return Identity(user_id=user.id, username=user.username, role=user.role,
                    organization_id=user.organization_id, csrf_token=row.csrf_token,
                    token_sha256=key)


def sign_out(session: Session, token_sha256: str) -> None:
    """End the session (its cookie no longer works)."""
    repo.revoke_session(session, token_sha256)
