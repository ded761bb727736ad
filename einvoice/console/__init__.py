"""The operator's web console, served by the HTTP API's process under ``/console``.

Server-rendered pages (Jinja2, with htmx for the overview's live refresh) over the product's
own tables, for Colombian accountants and support staff: Spanish first, English available.
:func:`create_console` builds it as a sub-application that ``einvoice.api.create_app`` mounts
at ``/console``: its own error pages (HTML, where the API answers problem+json), no OpenAPI
entry, the API process's engine and settings.

Pages (docs/console.md): sign-in, overview, job table, job page with its actions (operators),
configuration (admins). Layout of this package: :mod:`~einvoice.console.security` (sessions,
CSRF, roles), :mod:`~einvoice.console.i18n` (catalogues, templates), :mod:`.pages`,
:mod:`.config_pages`, ``templates/``, ``static/`` (htmx, vendored; the stylesheet),
``locale/`` (the catalogues).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from einvoice.api.context import ApiContext
from einvoice.console import i18n
from einvoice.console.security import BadForm, CsrfRefused, Forbidden, SignInRequired
from einvoice.errors import EinvoiceError

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The static files served, and their media types (nothing else in the folder is served).
STATIC_FILES = {"console.css": "text/css; charset=utf-8",
                "htmx.min.js": "text/javascript; charset=utf-8"}


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    from einvoice.console.pages import render  # noqa: PLC0415

    identity = getattr(request.state, "console_identity", None)
    return render(request, "error.html", identity, status=status, title=title, message=message)


def _gettext(request: Request, message: str) -> str:
    from einvoice.console.pages import language_of  # noqa: PLC0415

    return i18n.translations(language_of(request)).gettext(message)


def _install_error_pages(app: FastAPI) -> None:
    async def sign_in_required(request: Request, exc: Exception) -> Response:
        base = str(request.scope.get("root_path", "")).rstrip("/")
        target = f"{base}/login"
        if request.method == "GET" and not request.headers.get("HX-Request"):
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{target}?next={_quote(path)}", status_code=303)
        # htmx follows HX-Redirect (a session that expired under the live overview).
        return Response(status_code=401, headers={"HX-Redirect": target})

    async def forbidden(request: Request, exc: Exception) -> Response:
        return _error_page(request, 403, _gettext(request, "Not allowed"),
                           _gettext(request, "Your role does not allow this action."))

    async def csrf_refused(request: Request, exc: Exception) -> Response:
        return _error_page(request, 403, _gettext(request, "Form expired"),
                           _gettext(request, "This form is no longer valid (it came from an "
                                    "old page or another site). Go back, reload the page and "
                                    "try again."))

    async def bad_form(request: Request, exc: Exception) -> Response:
        return _error_page(request, 400, _gettext(request, "Form not valid"),
                           _gettext(request, "The form could not be read."))

    async def einvoice_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EinvoiceError)
        if exc.reason in ("job_not_found", "organization_not_found"):
            return _error_page(request, 404, _gettext(request, "Not found"),
                               _gettext(request, "There is no such page or job (or it belongs "
                                        "to another organization)."))
        return _error_page(request, 409, _gettext(request, "Could not be done"), exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return _error_page(request, 404, _gettext(request, "Not found"),
                               _gettext(request, "There is no such page or job (or it belongs "
                                        "to another organization)."))
        return _error_page(request, exc.status_code, str(exc.status_code), str(exc.detail))

    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    app.add_exception_handler(BadForm, bad_form)
    app.add_exception_handler(EinvoiceError, einvoice_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _quote(path: str) -> str:
    from urllib.parse import quote  # noqa: PLC0415

    return quote(path, safe="/")


def create_console(context: ApiContext) -> FastAPI:
    """The console application, to be mounted at ``/console`` by the API.

    Args:
        context: the API process's context (engine, session factory, settings, Factus
            clients built on first need).
    Returns:
        A FastAPI app without OpenAPI documents, with HTML error pages.
    """
    from einvoice.console import config_pages, pages  # noqa: PLC0415

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False,
                             "operation_spans": False})
    app.state.context = context
    _install_error_pages(app)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            raise StarletteHTTPException(404)
        return FileResponse(STATIC_DIR / name, media_type=media_type,
                            headers={"Cache-Control": "public, max-age=3600",
                                     "X-Content-Type-Options": "nosniff"})

    app.include_router(pages.router)
    app.include_router(config_pages.router)
    return app
