"""Bearer-key authentication: ``Authorization: Bearer ei_<prefix>_<secret>``.

An ``async`` dependency on purpose: a cached key (the usual case) costs no thread hop and no
query; only a cache miss reads the key row, in the API's executor. The principal is also put in
the request's state, where the access log reads the organization and key prefix.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from einvoice.api.context import ApiContext
from einvoice.api.problems import ApiProblem
from einvoice.db.uow import UnitOfWork
from einvoice.services.api_keys import Principal, lookup_principal


def context_of(request: Request) -> ApiContext:
    """The process's :class:`ApiContext` (set by ``create_app``)."""
    context: ApiContext = request.app.state.context
    return context


def _lookup(context: ApiContext, key: str) -> Principal | None:
    with UnitOfWork(context.session_factory) as uow:
        principal = lookup_principal(uow.session, key)
        uow.commit()  # the last_used_at stamp, when one was due
    return principal


class ApiKeyBearer(HTTPBearer):
    """The bearer scheme of the OpenAPI document, which also resolves the key to its principal
    (one dependency per request instead of two: FastAPI's resolution of each costs CPU on
    every call, benchmark B7)."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        """The organization the request acts for.

        Returns:
            The key's :class:`Principal` (also put in ``request.state.principal``).
        Raises:
            ApiProblem: 401 ``unauthorized`` for a missing, malformed, unknown or revoked key
                (the same answer for each: the caller learns nothing about which keys exist).
        """
        scheme, _, key = (request.headers.get("authorization") or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiProblem(401, "unauthorized", "an API key is required: Authorization: "
                             "Bearer ei_<prefix>_<secret>")
        context = context_of(request)
        hit, principal = context.keys.get(key)
        if not hit:
            principal = await context.run(_lookup, context, key)
            context.keys.put(key, principal)
        if principal is None:
            raise ApiProblem(401, "unauthorized", "the API key is not valid (unknown or revoked)")
        request.state.principal = principal
        return principal


#: The dependency of an authenticated route.
require_principal = ApiKeyBearer(
    auto_error=False, description="An API key: `Bearer ei_<prefix>_<secret>`.")


#: The route parameter type of an authenticated route.
Auth = Annotated[Principal, Depends(require_principal)]
