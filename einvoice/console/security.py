"""Sign-in state, CSRF and roles of the console, as FastAPI dependencies.

* The session cookie ``einvoice_console`` (HttpOnly, SameSite=Lax, ``Secure`` when the request
  came over https, path ``/console``) holds a random token; the database keeps its SHA-256
  (:mod:`einvoice.services.console_auth`).
* CSRF: :func:`csrf_guard` runs before every route of the console (a router-wide dependency),
  and refuses every request that is not GET/HEAD/OPTIONS unless it carries the session's token,
  as the form field ``csrf_token`` or the ``X-CSRF-Token`` header (htmx sends it from the
  page's ``hx-headers``). Sign-in has no session yet: its form carries the value of a
  short-lived ``einvoice_console_login`` cookie instead (double submit). SameSite=Lax is the
  second wall, not the only one.
* Roles: :func:`require` gives a dependency that returns the signed-in :class:`Identity` when
  its role is strong enough, else refuses (403); without a valid session it sends the browser
  to the sign-in page.
* Forms are ``application/x-www-form-urlencoded``, parsed here (at most 64 KiB), so the
  console needs no multipart parser.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from einvoice.api.context import ApiContext
from einvoice.db.uow import UnitOfWork
from einvoice.services.console_auth import Identity, identify

SESSION_COOKIE = "einvoice_console"
LOGIN_COOKIE = "einvoice_console_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_PATH = "/console"
MAX_FORM_BYTES = 64 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Form = dict[str, list[str]]


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""


class Forbidden(Exception):
    """Signed in, but the role does not allow this (403)."""


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token (403)."""


class BadForm(Exception):
    """A form that is too large or not URL-encoded (400)."""


def context_of(request: Request) -> ApiContext:
    """The API process's context (engine, settings, Factus clients), set on the console app."""
    context: ApiContext = request.app.state.context
    return context


def is_https(request: Request) -> bool:
    """Whether the browser reached us over https (uvicorn's ``proxy_headers`` apply
    ``X-Forwarded-Proto`` from a trusted proxy)."""
    return request.url.scheme == "https"


async def form_of(request: Request) -> Form:
    """The request's URL-encoded form (name -> values), read once per request.

    Raises:
        BadForm: a body over :data:`MAX_FORM_BYTES`, or another content type with a body.
    """
    cached: Form | None = getattr(request.state, "console_form", None)
    if cached is not None:
        return cached
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadForm
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and content_type != "application/x-www-form-urlencoded":
        raise BadForm
    form: Form = {}
    for name, value in urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                              keep_blank_values=True):
        form.setdefault(name, []).append(value)
    request.state.console_form = form
    return form


def field(form: Form, name: str) -> str:
    """The last value of ``name`` in ``form``, trimmed ("" when absent)."""
    values = form.get(name) or [""]
    return values[-1].strip()


def _identify(context: ApiContext, token: str) -> Identity | None:
    with UnitOfWork(context.session_factory) as uow:
        identity = identify(uow.session, token)
        uow.commit()  # the last-seen stamp, when one was due
    return identity


async def identity_of(request: Request) -> Identity | None:
    """The signed-in operator of this request, or None (looked up once per request)."""
    if hasattr(request.state, "console_identity"):
        cached: Identity | None = request.state.console_identity
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    identity = await context_of(request).run(_identify, context_of(request), token) if token else None
    request.state.console_identity = identity
    return identity


async def csrf_guard(request: Request) -> None:
    """Refuse a state-changing request without the right CSRF token (every console route).

    Raises:
        CsrfRefused: token missing or wrong. SignInRequired: no session (outside sign-in).
        BadForm: the body cannot be read as a form.
    """
    if request.method in SAFE_METHODS:
        return
    form = await form_of(request)
    sent = request.headers.get(CSRF_HEADER) or field(form, CSRF_FIELD)
    if request.url.path.rstrip("/").endswith("/login"):
        expected = request.cookies.get(LOGIN_COOKIE)
    else:
        identity = await identity_of(request)
        if identity is None:
            raise SignInRequired
        expected = identity.csrf_token
    if not sent or not expected or not secrets.compare_digest(sent, expected):
        raise CsrfRefused


def require(role: str) -> Callable[[Request], Awaitable[Identity]]:
    """A dependency returning the signed-in operator when their role is ``role`` or stronger.

    Raises (from the dependency):
        SignInRequired: no valid session. Forbidden: a weaker role.
    """
    async def dependency(request: Request) -> Identity:
        identity = await identity_of(request)
        if identity is None:
            raise SignInRequired
        if not identity.can(role):
            raise Forbidden
        return identity

    return dependency


#: Route parameter types: the signed-in operator with at least that role.
Viewer = Annotated[Identity, Depends(require("viewer"))]
Operator = Annotated[Identity, Depends(require("operator"))]
Admin = Annotated[Identity, Depends(require("admin"))]
FormData = Annotated[Form, Depends(form_of)]
