"""RFC 9457 problem details: every error of the API is ``application/problem+json``.

``{"type", "title", "status", "detail", "code", "instance"}``: ``code`` is the reason code a job
or a service would carry (``invoice_not_found``, ``already_accepted``, ``validation_error``,
``unauthorized``, ``not_found``...), ``type`` a URN naming it
(``urn:einvoice:problem:<code>``). A problem whose ``code`` the error catalogue explains
(docs/dian-errors.md) carries an ``explanation`` member in the ``Accept-Language`` language. An
error the caller cannot fix (a bug, the database down) is a 500/503 problem whose detail says
nothing of the internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from einvoice.api.schemas import Problem
from einvoice.domain.catalogue import explain, language_of
from einvoice.errors import ConfigError, EinvoiceError, JobError
from einvoice.services.api_invoices import ApiInputError
from einvoice.services.api_keys import ApiKeyError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: ``type`` of every problem: a URN per code (RFC 9457 §3.1.1 allows a non-resolvable URI;
#: docs/api.md lists the codes).
TYPE_BASE = "urn:einvoice:problem:"

#: HTTP status of each reason code a service raises (any other ``JobError``: 422).
STATUS_OF_REASON: dict[str, int] = {
    "job_not_found": 404, "bad_job_id": 404, "invoice_not_found": 404, "not_found": 404,
    "not_retryable": 409, "active_job_exists": 409, "already_accepted": 409,
    "cannot_cancel_accepted": 409, "already_cancelled": 409, "in_flight": 409,
    "not_accepted": 409, "not_pending": 409, "idempotency_in_progress": 409,
    "document_not_stored": 409,
}

_TITLES = {400: "Bad request", 401: "Unauthorized", 404: "Not found",
           405: "Method not allowed", 409: "Conflict", 415: "Unsupported media type",
           422: "Unprocessable content", 500: "Internal error", 502: "Bad gateway",
           503: "Service unavailable"}


class ApiProblem(Exception):
    """Raise to answer with a problem: ``status``, ``code``, ``detail`` and extra members."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


def problem_body(status: int, code: str, detail: str, instance: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    """The JSON body of a problem."""
    body: dict[str, Any] = {"type": TYPE_BASE + code, "title": _TITLES.get(status, "Error"),
                            "status": status, "detail": detail, "code": code}
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_response(status: int, code: str, detail: str, instance: str | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """A problem as a response (``application/problem+json``)."""
    return JSONResponse(problem_body(status, code, detail, instance, **extra),
                        status_code=status, media_type=PROBLEM_JSON, headers=headers)


def explanation_member(code: str, accept_language: str | None) -> dict[str, Any]:
    """``{"explanation": {...}}`` when the error catalogue explains ``code`` (in the language of
    the ``Accept-Language`` header, Spanish by default), else ``{}``."""
    found = explain(code, language_of(accept_language))
    return {} if found is None else {"explanation": found.as_dict()}


def problem_of(exc: EinvoiceError) -> ApiProblem:
    """The problem that answers a service error (status from :data:`STATUS_OF_REASON`)."""
    if isinstance(exc, ApiInputError):
        return ApiProblem(422, exc.reason, exc.message, field=exc.field)
    if isinstance(exc, ConfigError):
        return ApiProblem(503, exc.reason, exc.message)
    if isinstance(exc, ApiKeyError):
        return ApiProblem(422, exc.reason, exc.message)
    if isinstance(exc, JobError):
        return ApiProblem(STATUS_OF_REASON.get(exc.reason, 422), exc.reason, exc.message)
    transient = getattr(exc, "transient", None)
    if transient is not None:  # a FactusError: the upstream failed
        return ApiProblem(502, exc.reason, f"Factus: {exc.message}")
    return ApiProblem(422, exc.reason, exc.message)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "body"


def _accept_language(request: Request) -> str | None:
    return request.headers.get("accept-language")


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem."""

    async def api_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(exc.status, exc.code, exc.detail, request.url.path,
                                headers=headers, **exc.extra,
                                **explanation_member(exc.code, _accept_language(request)))

    async def service_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EinvoiceError)
        problem = problem_of(exc)
        return problem_response(problem.status, problem.code, problem.detail, request.url.path,
                                **problem.extra,
                                **explanation_member(problem.code, _accept_language(request)))

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"loc": _location(tuple(e.get("loc", ()))), "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        first = errors[0] if errors else {"loc": "body", "msg": "invalid request"}
        return problem_response(422, "validation_error", f"{first['loc']}: {first['msg']}",
                                request.url.path, errors=errors,
                                **explanation_member("validation_error", _accept_language(request)))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # a body that is not JSON: a validation error like the rest
            return problem_response(422, "validation_error", "body: not valid JSON",
                                    request.url.path, errors=[{"loc": "body", "msg":
                                                               "not valid JSON",
                                                               "type": "json_invalid"}])
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        return problem_response(exc.status_code, code, detail, request.url.path,
                                headers=getattr(exc, "headers", None))

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DataError):  # a value PostgreSQL cannot store: the caller's to fix
            return problem_response(422, "invalid_value", "a value cannot be stored (out of "
                                    "range or not valid text)", request.url.path)
        log.error("database error on %s %s: %s", request.method, request.url.path,
                  type(exc).__name__)
        return problem_response(503, "database_unavailable",
                                "the database could not answer; retry later", request.url.path)

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "internal_error", "an unexpected error; it was logged",
                                request.url.path)

    app.add_exception_handler(ApiProblem, api_problem)
    app.add_exception_handler(EinvoiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(Exception, internal)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries of the problems a route may answer."""
    return {status: {"model": Problem, "description": _TITLES.get(status, "Error"),
                     "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for status in statuses}
