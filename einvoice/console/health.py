"""The overview's health of workers, beat, Redis and PostgreSQL, and each Factus account's use
of its 80-a-minute budget, from :mod:`einvoice.services.system_health`.

Both are read at most every :data:`einvoice.console.cache.TTL_SECONDS` per process, whatever
the number of open overviews (each refreshes every 10 s; a dead Redis costs a second). A scoped
operator sees only the budget of their organization's own account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from einvoice.api.context import ApiContext
from einvoice.console.cache import TtlCache
from einvoice.db.uow import UnitOfWork
from einvoice.services.accounts import list_accounts
from einvoice.services.system_health import (
    AccountBudget,
    ComponentHealth,
    account_budgets,
    check_system,
)


@dataclass(frozen=True)
class BudgetLine:
    """One Factus account's requests in the last minute against its limit.

    Attributes:
        label: the account's user (or the key when unknown); organization_id: its organization
            (None: the default ``FACTUS_*`` account or unknown).
    """

    label: str
    organization_id: int | None
    used: int
    limit: int

    @property
    def percent(self) -> int:
        """Use of the budget, 0-100 (rounded down)."""
        return min(100, self.used * 100 // self.limit) if self.limit else 0


_cache: TtlCache[tuple[list[ComponentHealth], list[AccountBudget]]] = TtlCache()


def _read(context: ApiContext) -> tuple[list[ComponentHealth], list[AccountBudget]]:
    system = check_system(context.settings, context.engine)
    components = [system.postgres, system.redis, system.beat, system.workers]
    try:
        budgets = account_budgets(context.settings)
    except RedisError:  # Redis down: its health line already says so
        budgets = []
    return components, budgets


def _owner(key: str, accounts: list[Any]) -> Any:
    """The account whose rate-limit key is ``key``: a ``factus_credentials`` row id, or
    ``default`` (an account view's key starts with it)."""
    head = key.split(":", maxsplit=1)[0]
    for view in accounts:
        if head == view.key.split(":", maxsplit=1)[0]:
            return view
    return None


def health_and_budgets(context: ApiContext,
                       scope: int | None) -> tuple[list[ComponentHealth], list[BudgetLine]]:
    """``(components, budgets)``: PostgreSQL, Redis, beat and the workers, and the Factus
    accounts' budgets in scope (a scoped operator sees only their organization's own account)."""
    components, budgets = _cache.get(id(context), lambda: _read(context))
    if not budgets:
        return components, []
    with UnitOfWork(context.session_factory) as uow:
        accounts = list_accounts(uow.session, context.settings)
    lines = []
    for budget in budgets:
        owner = _owner(str(budget.account_key), accounts)
        org = owner.organization_id if owner is not None else None
        if scope is not None and org != scope:
            continue
        lines.append(BudgetLine(label=owner.username if owner is not None else
                                str(budget.account_key), organization_id=org,
                                used=int(budget.used_last_minute),
                                limit=int(budget.limit_per_minute)))
    return components, lines
