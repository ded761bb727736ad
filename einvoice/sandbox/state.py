"""The simulator's memory: accounts, tokens, numbering ranges, documents and counters.

Everything lives in one :class:`SandboxState` guarded by one re-entrant lock; every public method
takes it, does only in-memory work (no I/O, no sleeping) and returns plain results, so the HTTP layer
(:mod:`einvoice.sandbox.app`) can call it from any thread or from the event loop.

Each concern has its module, with its rules and their sources in its docstring:

- :mod:`einvoice.sandbox.accounts`: accounts, their company, API versions and counters;
- :mod:`einvoice.sandbox.tokens`: the OAuth password and refresh grants (:class:`TokenBook`);
- :mod:`einvoice.sandbox.ranges`: numbering ranges, picking and creating them (:class:`RangeBook`);
- :mod:`einvoice.sandbox.documents`: bills and credit notes, idempotency, the pending block
  (:class:`DocumentBook`);
- :mod:`einvoice.sandbox.dian`: DIAN's rejections and notifications.

This module joins them into :class:`SandboxState`, which also owns the accounts' life (add,
reset) and the request counters; it re-exports the names the rest of the simulator imports.
"""

from __future__ import annotations

import threading
from typing import Any

from stdnum.co import nit as co_nit

from einvoice.sandbox.accounts import (
    DEFAULT_ACCOUNT,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    Account,
    AccountSpec,
    Company,
    SandboxError,
    Stats,
)
from einvoice.sandbox.dian import dian_rejection_body
from einvoice.sandbox.documents import (
    KINDS,
    CreateResult,
    DocumentBook,
    DocumentKind,
    SandboxDocument,
)
from einvoice.sandbox.ranges import (
    INACTIVE_RANGE_ID,
    INVOICE_RANGE_ID,
    NumberingRange,
    RangeBook,
    bogota_today,
    default_ranges,
)
from einvoice.sandbox.tokens import AccessToken, RefreshToken, TokenBook, TokenResult

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "INACTIVE_RANGE_ID",
    "INVOICE_RANGE_ID",
    "KINDS",
    "Account",
    "AccountSpec",
    "Company",
    "CreateResult",
    "DocumentKind",
    "NumberingRange",
    "SandboxDocument",
    "SandboxError",
    "SandboxState",
    "Stats",
    "TokenResult",
    "bogota_today",
    "dian_rejection_body",
]


class SandboxState(TokenBook, RangeBook, DocumentBook):
    """All accounts and their data, behind one lock. See the module docstring for the parts."""

    def __init__(self, accounts: list[AccountSpec] | None = None) -> None:
        """Create the state with the default account plus ``accounts`` (startup accounts).

        Raises:
            SandboxError: two specs share a key, or a client id with two different secrets.
        """
        self.lock = threading.RLock()
        self._startup_specs = [DEFAULT_ACCOUNT, *(accounts or [])]
        self._accounts: dict[tuple[str, str], Account] = {}
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._next_id: dict[DocumentKind, int] = {"bill": 10001, "credit_note": 501}
        self._next_user = 1
        self.global_stats = Stats()
        self.unauthenticated_stats = Stats()
        self._range_counters: dict[str, dict[int, int]] = {}
        # Ids of ranges created through the API: never reused, even after a reset.
        self._created_range_ids: set[int] = set()
        for spec in self._startup_specs:
            self.add_account(spec, at_runtime=False)

    # -- accounts ---------------------------------------------------------------------------

    def add_account(self, spec: AccountSpec, *, at_runtime: bool = True) -> Account:
        """Register an account with fresh ranges and no documents.

        Raises:
            SandboxError: the ``(client_id, username)`` pair exists, the client id is known with a
                different secret, or the NIT is not 1-15 digits.
        """
        if not spec.company_nit.isdigit() or len(spec.company_nit) > 15:
            raise SandboxError("company_nit must be 1 to 15 digits")
        if not all((spec.client_id, spec.client_secret, spec.username, spec.password)):
            raise SandboxError("client_id, client_secret, username and password are required")
        if not (spec.v1_enabled or spec.v2_enabled):
            raise SandboxError("an account needs v1_enabled or v2_enabled")
        with self.lock:
            if (spec.client_id, spec.username) in self._accounts:
                raise SandboxError(f"account {spec.key} already exists")
            for other in self._accounts.values():
                if (
                    other.spec.client_id == spec.client_id
                    and other.spec.client_secret != spec.client_secret
                ):
                    raise SandboxError(
                        f"client {spec.client_id} already exists with another secret"
                    )
            ranges = default_ranges(spec.test_ranges)
            # What DIAN associated with the company: the ranges with a resolution (§10.1).
            dian = [
                r
                for r in default_ranges(test_ranges=False).values()
                if r.resolution_number is not None
            ]
            if not spec.ranges_registered:
                ranges = {}
            # Numbers never go back, even when an account is re-created after a reset.
            for range_id, current in self._range_counters.get(spec.key, {}).items():
                if range_id in ranges:
                    ranges[range_id].current = current
            account = Account(
                spec=spec,
                user_id=self._next_user,
                company=Company(
                    nit=spec.company_nit,
                    dv=co_nit.calc_check_digit(spec.company_nit),
                    name=spec.company_name,
                ),
                ranges=ranges,
                added_at_runtime=at_runtime,
                dian_ranges=dian,
            )
            self._next_user += 1
            self._accounts[(spec.client_id, spec.username)] = account
            return account

    def accounts(self) -> list[Account]:
        """All accounts, in creation order."""
        with self.lock:
            return list(self._accounts.values())

    def reset(self, *, revoke_tokens: bool = False, drop_added_accounts: bool = False) -> None:
        """Forget every document and counter; ranges restart unused except for their ``current``.

        Args:
            revoke_tokens: also forget every access and refresh token.
            drop_added_accounts: also remove accounts added at run time (startup ones stay).
        """
        with self.lock:
            for account in self._accounts.values():
                self._range_counters[account.key] = {
                    rid: r.current for rid, r in account.ranges.items()
                }
            specs = [
                (a.spec, a.added_at_runtime)
                for a in self._accounts.values()
                if not (drop_added_accounts and a.added_at_runtime)
            ]
            old = {a.key: a for a in self._accounts.values()}
            self._accounts = {}
            for spec, at_runtime in specs:
                account = self.add_account(spec, at_runtime=at_runtime)
                account.user_id = old[spec.key].user_id
            if revoke_tokens:
                self._access.clear()
                self._refresh.clear()
            else:
                # Tokens follow their account to its fresh incarnation; a dropped account's die.
                self._access = {v: t for v, t in self._access.items() if self._rebind(t)}
                self._refresh = {v: t for v, t in self._refresh.items() if self._rebind(t)}
            self.global_stats = Stats()
            self.unauthenticated_stats = Stats()

    def _rebind(self, token: AccessToken | RefreshToken) -> bool:
        """Point ``token`` at the current account with its key; False if that account is gone."""
        fresh = self._accounts.get((token.account.spec.client_id, token.account.spec.username))
        if fresh is not None:
            token.account = fresh
        return fresh is not None

    # -- stats --------------------------------------------------------------------------------

    def record_request(self, account: Account | None, endpoint: str, status: int | str) -> None:
        """Count one answered request under ``endpoint`` (``"GET /v1/bills"``) and its status."""
        with self.lock:
            targets = [
                self.global_stats,
                account.stats if account is not None else self.unauthenticated_stats,
            ]
            for stats in targets:
                stats.requests[endpoint][str(status)] += 1

    def stats(self) -> dict[str, Any]:
        """``GET /__sandbox/stats``: ``{"global": {...}, "unauthenticated": {...}, "accounts":
        {"<client_id>/<username>": {...}}}``, each shaped as :meth:`Stats.as_dict`."""
        with self.lock:
            return {
                "global": self.global_stats.as_dict(),
                "unauthenticated": self.unauthenticated_stats.as_dict(),
                "accounts": {a.key: a.stats.as_dict() for a in self._accounts.values()},
            }
