"""The console's pages: sign-in, overview, job table, job page and the job actions.

Thin adapters over :mod:`einvoice.services.console_views` and ``console_actions``: each route
checks the role (:mod:`einvoice.console.security`), runs one unit of work in the thread pool
(plain ``def`` routes) and renders a template. Every state-changing route is a POST behind the
router-wide CSRF check; each job action is confirmed on a page of its own first (which works
without JavaScript) and then redirects back to the job (post/redirect/get).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from einvoice.api.context import LazyClients
from einvoice.console import i18n
from einvoice.console.cache import TtlCache
from einvoice.console.explain import explanations
from einvoice.console.security import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    FormData,
    Operator,
    Viewer,
    context_of,
    csrf_guard,
    field,
    form_of,
    identity_of,
    is_https,
)
from einvoice.db.uow import UnitOfWork
from einvoice.errors import EinvoiceError, JobError
from einvoice.services import console_actions, console_views
from einvoice.services.api_invoices import fetch_document
from einvoice.services.console_auth import Identity, SignInRefused, sign_in, sign_out

router = APIRouter(dependencies=[Depends(csrf_guard)])

#: The job actions, in the order the job page offers them.
ACTIONS = ("retry", "cancel", "resend-email", "credit-note")
#: Security headers of every page: no framing, scripts and styles only from the console itself
#: (the QR is a data: image), nothing cached (pages hold customer data).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def base_of(request: Request) -> str:
    """The console's URL prefix (``/console``, where the app is mounted)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def language_of(request: Request) -> str:
    """The request's language (``?lang=``, else the cookie, else Spanish)."""
    return i18n.pick_language(request.query_params.get("lang"),
                              request.cookies.get(i18n.LANGUAGE_COOKIE))


def render(request: Request, template: str, identity: Identity | None, *, status: int = 200,
           **context: Any) -> HTMLResponse:
    """A page in the request's language with the common context (``base``, ``me``, ``csrf``,
    ``path``) and the security headers; a ``?lang=`` choice is remembered in a cookie."""
    lang = language_of(request)
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    lang_urls = {code: f"{request.url.path}?{urlencode([*kept, ('lang', code)])}"
                 for code in i18n.LANGUAGES}
    context.setdefault("nav", "")
    html = i18n.render(lang, template, base=base_of(request), me=identity,
                       csrf=identity.csrf_token if identity else "", lang_urls=lang_urls,
                       **context)
    response = HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
    if request.query_params.get("lang") in i18n.LANGUAGES:
        response.set_cookie(i18n.LANGUAGE_COOKIE, lang, max_age=365 * 86400, path=COOKIE_PATH,
                            samesite="lax", secure=is_https(request), httponly=True)
    return response


def redirect(url: str) -> RedirectResponse:
    """A 303 (see other) to ``url``: after a POST the browser GETs the result."""
    return RedirectResponse(url, status_code=303)


# --------------------------------------------------------------------------------------------
# Sign-in
# --------------------------------------------------------------------------------------------


def _safe_next(request: Request, target: str | None) -> str:
    """Where to go after sign-in: a path inside the console, never another site."""
    base = base_of(request)
    if target and target.startswith(base + "/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return f"{base}/overview"


def _login_page(request: Request, *, status: int = 200, refused: bool = False,
                next_url: str = "") -> HTMLResponse:
    token = request.cookies.get(LOGIN_COOKIE) or ""
    fresh = not token
    if fresh:
        token = uuid.uuid4().hex + uuid.uuid4().hex
    response = render(request, "login.html", None, status=status, login_token=token,
                      refused=refused, next_url=next_url)
    if fresh:
        response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path=COOKIE_PATH,
                            samesite="strict", secure=is_https(request), httponly=True)
    return response


@router.get("/", include_in_schema=False)
async def home(request: Request) -> RedirectResponse:
    """The console's root: the overview (or the sign-in page)."""
    return redirect(f"{base_of(request)}/overview")


@router.get("/login", include_in_schema=False)
async def login_form(request: Request) -> Response:
    """The sign-in form (an operator already signed in goes to the overview)."""
    if await identity_of(request) is not None:
        return redirect(_safe_next(request, request.query_params.get("next")))
    return _login_page(request, next_url=request.query_params.get("next", ""))


def _sign_in(request: Request, username: str, password: str) -> str | None:
    with UnitOfWork(context_of(request).session_factory) as uow:
        try:
            opened = sign_in(uow.session, username, password, now=datetime.now(UTC))
        except SignInRefused:
            uow.commit()  # the failure count and the lock-out must be kept
            return None
        uow.commit()
    return opened.token


@router.post("/login", include_in_schema=False)
async def login(request: Request, form: FormData) -> Response:
    """Check the username and password; on success set the session cookie and go on."""
    token = await context_of(request).run(_sign_in, request, field(form, "username"),
                                    (form.get("password") or [""])[-1])
    next_url = field(form, "next")
    if token is None:
        return _login_page(request, status=401, refused=True, next_url=next_url)
    response = redirect(_safe_next(request, next_url))
    response.set_cookie(SESSION_COOKIE, token, path=COOKIE_PATH, httponly=True,
                        samesite="lax", secure=is_https(request))
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


def _sign_out(request: Request, identity: Identity) -> None:
    with UnitOfWork(context_of(request).session_factory) as uow:
        sign_out(uow.session, identity.token_sha256)
        uow.commit()


@router.post("/logout", include_in_schema=False)
def logout(request: Request, identity: Viewer) -> RedirectResponse:
    """End the session and go back to the sign-in page."""
    _sign_out(request, identity)
    response = redirect(f"{base_of(request)}/login")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


# --------------------------------------------------------------------------------------------
# Overview
# --------------------------------------------------------------------------------------------


#: The overview's numbers per (process context, scope), shared by every open overview.
_overviews: TtlCache[console_views.Overview] = TtlCache()


def _overview_context(request: Request, identity: Identity) -> dict[str, Any]:
    from einvoice.console.health import health_and_budgets  # noqa: PLC0415

    context = context_of(request)

    def read() -> console_views.Overview:
        with UnitOfWork(context.session_factory) as uow:
            return console_views.overview(uow.session, identity.organization_id)

    numbers = _overviews.get((id(context), identity.organization_id), read)
    health, budgets = health_and_budgets(context, identity.organization_id)
    return {"ov": numbers, "health": health, "budgets": budgets}


@router.get("/overview", include_in_schema=False)
def overview_page(request: Request, identity: Viewer) -> HTMLResponse:
    """The overview (its numbers refresh every 10 s without a reload)."""
    return render(request, "overview.html", identity, nav="overview",
                  **_overview_context(request, identity))


@router.get("/overview/live", include_in_schema=False)
def overview_live(request: Request, identity: Viewer) -> HTMLResponse:
    """The overview's numbers alone (the fragment htmx swaps in every 10 s)."""
    return render(request, "_overview_live.html", identity,
                  **_overview_context(request, identity))


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------


def _query_lists(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    return params


@router.get("/jobs", include_in_schema=False)
def jobs_page(request: Request, identity: Viewer) -> HTMLResponse:
    """The job table: filters, newest (or oldest) first, 50 a page (keyset pagination)."""
    context = context_of(request)
    error = None
    with UnitOfWork(context.session_factory) as uow:
        orgs = console_views.organization_choices(uow.session, identity.organization_id)
        try:
            query = console_views.parse_job_query(_query_lists(request))
            page = console_views.job_page(uow.session, identity.organization_id, query)
        except console_views.ConsoleInputError as exc:
            query, page, error = console_views.JobQuery(), console_views.JobPage([], None), exc
    next_url = (f"{base_of(request)}/jobs?"
                + urlencode(query.params(cursor=page.next_cursor), doseq=True)
                if page.next_cursor else None)
    first_url = (f"{base_of(request)}/jobs?" + urlencode(query.params(), doseq=True)
                 if query.cursor else None)
    return render(request, "jobs.html", identity, nav="jobs", q=query, page=page,
                  organizations=orgs, next_url=next_url, first_url=first_url,
                  input_error=error, status=400 if error else 200)


def _job_view(request: Request, identity: Identity, job_id: str) -> console_views.JobView:
    with UnitOfWork(context_of(request).session_factory) as uow:
        view = console_views.job_view(uow.session, identity.organization_id, job_id)
        uow.session.expunge_all()  # the rows stay readable (loaded) after the read ends
    return view


def _job_page(request: Request, identity: Identity, job_id: str, *, status: int = 200,
              failure: EinvoiceError | None = None) -> HTMLResponse:
    view = _job_view(request, identity, job_id)
    return render(request, "job.html", identity, nav="jobs", v=view,
                  explained=explanations(view.job.error_code, view.job.error_message,
                                         language_of(request)),
                  done=request.query_params.get("done"), failure=failure, status=status)


@router.get("/jobs/{job_id}", include_in_schema=False)
def job_page(request: Request, job_id: str, identity: Viewer) -> HTMLResponse:
    """A job: invoice summary, DIAN document (CUFE, number, QR, files), explanation of its
    error, actions, timeline, follow-ups and the payload sent (secrets redacted)."""
    return _job_page(request, identity, job_id)


@router.get("/jobs/{job_id}/{kind}.{ext}", include_in_schema=False)
def job_document(request: Request, job_id: str, kind: str, ext: str,
                 identity: Viewer) -> Response:
    """The accepted job's PDF or XML (``/jobs/{id}/document.pdf``): from the archive, or
    downloaded once from Factus and archived (the HTTP API's document service)."""
    if kind != "document" or ext not in ("pdf", "xml"):
        raise JobError(f"no document {kind}.{ext}", reason="job_not_found")
    context = context_of(request)
    with UnitOfWork(context.session_factory) as uow:
        job = console_views.require_job(uow.session, identity.organization_id, job_id)
        organization_id, key = job.organization_id, job.id
    name, content = fetch_document(context.session_factory, context.factus_clients,
                                   context.settings, organization_id, key, ext)
    media = "application/pdf" if ext == "pdf" else "application/xml"
    safe_name = "".join(c for c in name if c.isalnum() or c in "._-") or f"document.{ext}"
    return Response(content, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{safe_name}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


@router.get("/jobs/{job_id}/confirm/{action}", include_in_schema=False)
def confirm_page(request: Request, job_id: str, action: str, identity: Operator) -> HTMLResponse:
    """The confirmation of a job action (operators and admins)."""
    if action not in ACTIONS:
        raise JobError(f"no action {action}", reason="job_not_found")
    view = _job_view(request, identity, job_id)
    return render(request, "confirm.html", identity, nav="jobs", v=view, action=action)


def _perform(request: Request, identity: Identity, job_id: uuid.UUID, action: str,
             form: dict[str, list[str]]) -> None:
    context = context_of(request)
    scope, actor = identity.organization_id, identity.actor
    if action == "retry":
        console_actions.retry(context.session_factory, scope, job_id, actor=actor)
    elif action == "cancel":
        console_actions.cancel(context.session_factory, LazyClients(context), context.settings,
                               scope, job_id, actor=actor)
    elif action == "resend-email":
        console_actions.resend_email(context.session_factory, scope, job_id,
                                     field(form, "to") or None, actor=actor)
    else:
        console_actions.credit_note(context.session_factory, scope, job_id, actor=actor,
                                    notes=field(form, "notes") or None)


@router.post("/jobs/{job_id}/{action}", include_in_schema=False)
async def job_action(request: Request, job_id: str, action: str, identity: Operator) -> Response:
    """Do a confirmed job action in the operator's name, then show the job again (the new event
    is on its timeline); a refusal is shown on the job's page (409)."""
    if action not in ACTIONS:
        raise JobError(f"no action {action}", reason="job_not_found")
    form = await form_of(request)
    key = console_views.parse_job_id(job_id)
    try:
        await context_of(request).run(_perform, request, identity, key, action, form)
    except JobError as exc:
        if exc.reason == "job_not_found":
            raise
        return await context_of(request).run(_job_page, request, identity, job_id, status=409,
                                       failure=exc)
    except EinvoiceError as exc:
        return await context_of(request).run(_job_page, request, identity, job_id, status=409,
                                       failure=exc)
    return redirect(f"{base_of(request)}/jobs/{key}?done={action}")
