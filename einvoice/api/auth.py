"""Bearer-key authentication: ``Authorization: Bearer ei_<prefix>_<secret>``.

An ``async`` dependency on purpose: a cached key (the usual case) costs no thread hop and no
query; only a cache miss reads the key row, in the thread pool. The principal is also put in
the request's state, where the access log reads the organization and key prefix.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from einvoice.api.context import ApiContext
from einvoice.api.problems import ApiProblem
from einvoice.db.uow import UnitOfWork
from einvoice.services.api_keys import Principal, lookup_principal

_bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer ei_<prefix>_<secret>`.")


def context_of(request: Request) -> ApiContext:
    """The process's :class:`ApiContext` (set by ``create_app``)."""
    context: ApiContext = request.app.state.context
    return context


def _lookup(context: ApiContext, key: str) -> Principal | None:
    with UnitOfWork(context.session_factory) as uow:
        principal = lookup_principal(uow.session, key)
        uow.commit()  # the last_used_at stamp, when one was due
    return principal


async def require_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The organization the request acts for.

    Raises:
        ApiProblem: 401 ``unauthorized`` for a missing, malformed, unknown or revoked key (the
            same answer for each: the caller learns nothing about which keys exist).
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiProblem(401, "unauthorized", "an API key is required: Authorization: Bearer "
                         "ei_<prefix>_<secret>")
    context = context_of(request)
    key = credentials.credentials.strip()
    hit, principal = context.keys.get(key)
    if not hit:
        principal = await run_in_threadpool(_lookup, context, key)
        context.keys.put(key, principal)
    if principal is None:
        raise ApiProblem(401, "unauthorized", "the API key is not valid (unknown or revoked)")
    request.state.principal = principal
    return principal


#: The route parameter type of an authenticated route.
Auth = Annotated[Principal, Depends(require_principal)]
