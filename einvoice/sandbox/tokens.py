"""The simulator's OAuth tokens (FACTUS_API.md §2, inferred Laravel Passport behaviour).

- A password grant issues a new pair (a JWT-shaped access token and a ``def50200...`` refresh
  token).
- A refresh grant revokes the used refresh token **and** its access token and issues a new pair.
- Access tokens expire after ``token_expires_in`` seconds, refresh tokens after 30 days.
- Errors are Passport's: 400 ``unsupported_grant_type`` / ``invalid_request`` /
  ``invalid_grant``, 401 ``invalid_client``.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from einvoice.sandbox.accounts import Account

REFRESH_TOKEN_LIFETIME = timedelta(days=30)


@dataclass
class AccessToken:
    """A live access token: its account, expiry (``time.time()`` seconds) and refresh token."""

    account: Account
    expires_at: float  # time.time()
    refresh_token: str


@dataclass
class RefreshToken:
    """A live refresh token: its account, the access token it was issued with, and expiry."""

    account: Account
    access_token: str
    expires_at: float


@dataclass(frozen=True)
class TokenResult:
    """Outcome of ``POST /oauth/token``: HTTP status, JSON body, and the account if identified."""

    status: int
    body: dict[str, Any]
    account: Account | None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _oauth_error(error: str, description: str, hint: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "error_description": description}
    if hint:
        body["hint"] = hint
    body["message"] = description
    return body


class TokenBook:
    """The token part of :class:`einvoice.sandbox.state.SandboxState` (a mixin: the state owns
    the lock, the accounts and the two token tables)."""

    lock: threading.RLock
    _accounts: dict[tuple[str, str], Account]
    _access: dict[str, AccessToken]
    _refresh: dict[str, RefreshToken]

    def token(self, form: dict[str, str], *, expires_in: int) -> TokenResult:
        """Run ``POST /oauth/token`` (FACTUS_API.md §2) on an already-parsed form.

        Args:
            form: the form fields (``grant_type``, ``client_id``, ``client_secret``, and
                ``username``/``password`` or ``refresh_token``).
            expires_in: lifetime of the new access token, in seconds.

        Returns:
            200 with the token pair, or a Passport-style error: 400 ``unsupported_grant_type`` /
            ``invalid_request``, 401 ``invalid_client``, 400 ``invalid_grant``.
        """
        grant = form.get("grant_type", "")
        if grant not in ("password", "refresh_token"):
            return TokenResult(
                400,
                _oauth_error(
                    "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.",
                    "Check that all required parameters have been provided",
                ),
                None,
            )
        needed = ["client_id", "client_secret"] + (
            ["username", "password"] if grant == "password" else ["refresh_token"]
        )
        for name in needed:
            if not form.get(name):
                return TokenResult(
                    400,
                    _oauth_error(
                        "invalid_request",
                        "The request is missing a required parameter, includes an invalid parameter value, "
                        "includes a parameter more than once, or is otherwise malformed.",
                        f"Check the `{name}` parameter",
                    ),
                    None,
                )
        with self.lock:
            client_ok = any(
                a.spec.client_id == form["client_id"]
                and secrets.compare_digest(a.spec.client_secret, form["client_secret"])
                for a in self._accounts.values()
            )
            if not client_ok:
                return TokenResult(
                    401, _oauth_error("invalid_client", "Client authentication failed"), None
                )
            if grant == "password":
                account = self._accounts.get((form["client_id"], form["username"]))
                if account is None or not secrets.compare_digest(
                    account.spec.password, form["password"]
                ):
                    return TokenResult(
                        400,
                        _oauth_error("invalid_grant", "The user credentials were incorrect."),
                        account,
                    )
            else:
                stored = self._refresh.get(form["refresh_token"])
                if (
                    stored is None
                    or stored.expires_at <= time.time()
                    or stored.account.spec.client_id != form["client_id"]
                ):
                    return TokenResult(
                        400,
                        _oauth_error(
                            "invalid_grant",
                            "The refresh token is invalid.",
                            "Token has been revoked",
                        ),
                        None,
                    )
                account = stored.account
                del self._refresh[form["refresh_token"]]
                self._access.pop(stored.access_token, None)
            return TokenResult(200, self._issue(account, expires_in), account)

    def _issue(self, account: Account, expires_in: int) -> dict[str, Any]:
        now = int(time.time())
        header = _b64url(json.dumps({"typ": "JWT", "alg": "RS256"}).encode())
        claims = {
            "aud": account.spec.client_id,
            "jti": secrets.token_hex(40),
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "sub": str(account.user_id),
            "scopes": [],
        }
        access = (
            f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(secrets.token_bytes(256))}"
        )
        refresh = "def50200" + secrets.token_hex(160)
        self._access[access] = AccessToken(account, now + expires_in, refresh)
        self._refresh[refresh] = RefreshToken(
            account, access, now + REFRESH_TOKEN_LIFETIME.total_seconds()
        )
        return {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "access_token": access,
            "refresh_token": refresh,
        }

    def authenticate(self, bearer: str | None) -> Account | None:
        """Return the account of a live access token, or None (missing, unknown, revoked, expired)."""
        if not bearer:
            return None
        with self.lock:
            token = self._access.get(bearer)
            if token is None or token.expires_at <= time.time():
                return None
            return token.account

    def refresh_token_account(self, refresh_token: str) -> Account | None:
        """The account a live refresh token belongs to, or None."""
        with self.lock:
            stored = self._refresh.get(refresh_token)
            return (
                stored.account if stored is not None and stored.expires_at > time.time() else None
            )

    def expire_token(self, bearer: str) -> None:
        """Make an access token expire now (the ``expired_token`` fault); its refresh token lives on."""
        with self.lock:
            token = self._access.get(bearer)
            if token is not None:
                token.expires_at = time.time()
