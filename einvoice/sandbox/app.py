"""The simulator's HTTP face: a Starlette app with the Factus v1 and v2 routes and the control API.

API routes (FACTUS_API.md §2-§8, §10): ``POST /oauth/token``, the ``/v1/...`` routes listed in
:meth:`SandboxApp.routes` and the ``/v2/...`` routes of :mod:`einvoice.sandbox.v2_app`. Each API
request goes through the same steps, in this order:

1. added latency (``await asyncio.sleep``: never blocks the event loop);
2. ``/v1`` and ``/v2``: bearer token → account, or 401 ``{"message": "Unauthenticated."}``;
3. the account's per-minute quota (429 ``{"message": "Too Many Attempts."}`` + ``Retry-After``);
   every answer to an identified account carries ``X-RateLimit-Limit/Remaining/Reset``;
4. a transport fault draw (500, 503, injected 429, expired token → 401);
5. a route of an API version the account does not have (``/v1`` for a v2-only account, ``/v2``
   for a v1-only one) → 403 (PROBE, §1/§5.6);
6. the route itself; the answer is counted in the stats per account, endpoint and status.

Control API (no auth, no quota, no faults), for tests and benchmarks:

=============================  ==================================================================
``GET  /__sandbox/health``     ``{"status": "ok"}`` once the server answers
``GET  /__sandbox/faults``     the :class:`~einvoice.sandbox.faults.FaultConfig` in force
``POST /__sandbox/faults``     JSON with the fields to change (merge); a ``seed`` restarts the draws
``DELETE /__sandbox/faults``   back to the startup faults
``POST /__sandbox/reset``      forget documents, counters, quotas; startup faults. Optional JSON
                               ``{"revoke_tokens": bool, "drop_added_accounts": bool}``
``GET  /__sandbox/accounts``   account summaries (never secrets)
``POST /__sandbox/accounts``   add an account: ``{client_id, client_secret, username, password,
                               company_name?, company_nit?, v1_enabled?, v2_enabled?,
                               test_ranges?, ranges_registered?}``
``GET  /__sandbox/stats``      counters: see :meth:`einvoice.sandbox.state.SandboxState.stats`
=============================  ==================================================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Any

# Starlette parses the OAuth forms with python-multipart; importing it here makes a missing
# dependency fail at startup instead of turning every token call into a 500.
import python_multipart  # noqa: F401
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from einvoice.sandbox import artifacts, catalogs, render, v2_app, v2_render
from einvoice.sandbox.amounts import money
from einvoice.sandbox.faults import FaultConfig, FaultConfigError, FaultInjector
from einvoice.sandbox.ratelimit import AccountRateLimiter, RateDecision
from einvoice.sandbox.state import (
    Account,
    AccountSpec,
    CreateResult,
    DocumentKind,
    NumberingRange,
    SandboxDocument,
    SandboxError,
    SandboxState,
    bogota_today,
    dian_rejection_body,
)
from einvoice.sandbox.validation import as_int, validate_bill, validate_credit_note

Handler = Callable[[Request, Account], Awaitable[Response]]
UNAUTHENTICATED = {"message": "Unauthenticated."}
TOO_MANY = {"message": "Too Many Attempts."}
FORBIDDEN = {
    "status": "Forbidden",
    "message": "Esta cuenta no tiene habilitado el acceso a la API v1",
}


class ConnectionDropped(Exception):
    """Raised on purpose after a ``timeout_after_store`` hang so that uvicorn closes the socket."""


class DropFilter(logging.Filter):
    """Hides uvicorn's traceback for :class:`ConnectionDropped` (a planned fault, not a bug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for records caused by :class:`ConnectionDropped`."""
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


class _HangThenDrop(Response):
    """An answer that waits ``seconds``, sends response headers and drops the connection.

    The client, whose read timeout is shorter, sees a timeout; one with a longer timeout sees the
    connection closed mid-response. Either way the document already exists (FACTUS_API.md §9).
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(status_code=201)
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(self.seconds)
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        raise ConnectionDropped("timeout_after_store: connection dropped on purpose")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def _json_body(request: Request) -> Any:
    """The JSON body, or ``{}`` when it is missing or not JSON (Laravel then reports required fields)."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {}


def _page(request: Request) -> tuple[int, int]:
    """``page`` (≥ 1) and the page size from ``per_page`` or ``filter[per_page]`` (default 10, ≤ 100)."""
    page = as_int(request.query_params.get("page")) or 1
    size = as_int(
        request.query_params.get("per_page") or request.query_params.get("filter[per_page]")
    )
    size = render.PAGE_SIZE if size is None or size < 1 else min(size, render.MAX_PAGE_SIZE)
    return max(1, page), size


def _contains(haystack: str | None, needle: str) -> bool:
    return catalogs.fold(needle) in catalogs.fold(haystack or "")


def _document_filter(request: Request, document: SandboxDocument) -> bool:
    """Factus list filters (§6.1): partial, case-insensitive matches, except the exact ``status``.

    Partial matching is inferred (Laravel query-builder default); a client looking a reference up
    must pick the exact match among the rows.
    """
    q = request.query_params
    customer = document.customer
    checks: dict[str, Callable[[str], bool]] = {
        "filter[identification]": lambda v: _contains(customer.identification, v),
        "filter[names]": lambda v: _contains(customer.names, v) or _contains(customer.company, v),
        "filter[number]": lambda v: _contains(document.number, v),
        "filter[prefix]": lambda v: _contains(document.range.prefix, v),
        "filter[reference_code]": lambda v: _contains(document.reference_code, v),
        "filter[status]": lambda v: str(document.status) == v.strip(),
    }
    return all(check(q[name]) for name, check in checks.items() if q.get(name))


class SandboxApp:
    """Holds the state, the faults and the quota, and builds the Starlette app around them."""

    def __init__(
        self, faults: FaultConfig | None = None, accounts: list[AccountSpec] | None = None
    ) -> None:
        """Create the simulator with startup ``faults`` and extra startup ``accounts``.

        Raises:
            SandboxError: an account spec is invalid or duplicated.
        """
        self.startup_faults = faults or FaultConfig()
        self.state = SandboxState(accounts)
        self.faults = FaultInjector(self.startup_faults)
        self.limiter = AccountRateLimiter()
        # (account key, kind, reference_code) of documents a ``dian_stuck`` fault left pending:
        # DIAN never answers them, so a resend is answered "pending" again.
        self._stuck: set[tuple[str, DocumentKind, str]] = set()

    # -- the pipeline -------------------------------------------------------------------------

    def _quota(self, account: Account) -> RateDecision | None:
        per_minute = self.faults.config.rate_limit_per_minute
        return None if per_minute is None else self.limiter.hit(account.key, per_minute)

    def _transport_fault(
        self, fault: str | None, quota: RateDecision | None
    ) -> JSONResponse | None:
        if fault == "error_500":
            return _json(500, {"message": "Server Error"})
        if fault == "error_503":
            return _json(503, {"message": "Service Unavailable"})
        if fault == "rate_limit_429":
            headers = quota.headers() if quota else {}
            headers["Retry-After"] = str(self.faults.config.retry_after_seconds)
            return _json(429, TOO_MANY, headers)
        return None

    def _finish(
        self,
        response: Response,
        label: str,
        account: Account | None,
        quota: RateDecision | None,
        status: int | str | None = None,
    ) -> Response:
        if quota is not None:
            response.headers.update(quota.headers())
        self.state.record_request(
            account, label, status if status is not None else response.status_code
        )
        return response

    def api(self, method: str, path: str, handler: Handler) -> Route:
        """Wrap a ``/v1`` handler in the pipeline of the module docstring and return its route."""
        label = f"{method} {path}"

        async def endpoint(request: Request) -> Response:
            delay = self.faults.latency_seconds()
            if delay:
                await asyncio.sleep(delay)
            bearer = _bearer(request)
            account = self.state.authenticate(bearer)
            if account is None or bearer is None:
                return self._finish(_json(401, UNAUTHENTICATED), label, None, None)
            quota = self._quota(account)
            if quota is not None and not quota.allowed:
                return self._finish(_json(429, TOO_MANY), label, account, quota)
            fault = self.faults.transport_fault()
            if fault == "expired_token":
                self.state.expire_token(bearer)
                return self._finish(_json(401, UNAUTHENTICATED), label, account, quota)
            injected = self._transport_fault(fault, quota)
            if injected is not None:
                return self._finish(injected, label, account, quota)
            version = path.split("/")[1]
            if not account.spec.allows(version):
                # An account opened for one API version answers 403 on the other's routes (PROBE).
                body = FORBIDDEN if version == "v1" else v2_render.forbidden(version)
                return self._finish(_json(403, body), label, account, quota)
            response = await handler(request, account)
            if isinstance(response, _HangThenDrop):
                self.state.record_request(account, label, "dropped")
                return response
            return self._finish(response, label, account, quota)

        return Route(path, endpoint, methods=[method])

    # -- OAuth --------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """``POST /oauth/token`` (FACTUS_API.md §2): urlencoded or multipart form, both grants."""
        label = "POST /oauth/token"
        delay = self.faults.latency_seconds() + self.faults.config.token_latency_ms / 1000.0
        if delay:
            await asyncio.sleep(delay)
        try:
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        except (
            MultiPartException,
            ValueError,
        ):  # a malformed body: the grant fails as "invalid_request"
            form = {}
        account = self._token_account(form)
        quota = self._quota(account) if account is not None else None
        if quota is not None and not quota.allowed:
            return self._finish(_json(429, TOO_MANY), label, account, quota)
        if account is not None:
            fault = self.faults.transport_fault()
            injected = self._transport_fault(fault if fault != "expired_token" else None, quota)
            if injected is not None:
                return self._finish(injected, label, account, quota)
        result = self.state.token(form, expires_in=self.faults.config.token_expires_in)
        response = _json(result.status, result.body, {"Cache-Control": "no-store"})
        return self._finish(response, label, result.account or account, quota)

    def _token_account(self, form: dict[str, str]) -> Account | None:
        """The account a token request is for, if it can be told (to count it against its quota)."""
        for account in self.state.accounts():
            spec = account.spec
            if (
                form.get("grant_type") == "password"
                and spec.client_id == form.get("client_id")
                and spec.username == form.get("username")
            ):
                return account
        if form.get("grant_type") == "refresh_token" and form.get("refresh_token"):
            return self.state.refresh_token_account(form["refresh_token"])
        return None

    # -- bills --------------------------------------------------------------------------------

    async def _create(self, request: Request, account: Account, kind: DocumentKind) -> Response:
        self.state.count_validate_post(account, kind)
        body = await _json_body(request)
        fault = self.faults.outcome_fault()
        # The state knows the faults of a stored document; these two are the wire's.
        state_fault = {"dian_stuck": "dian_slow", "invalid_cufe": None}.get(fault or "", fault)
        if kind == "bill":
            bill_request, bag = validate_bill(body)
            if bill_request is None:
                return _json(422, bag.body())
            stuck = self._still_stuck(account, kind, bill_request.reference_code)
            result = stuck or self.state.create_bill(account, bill_request, state_fault)
        else:
            note_request, bag = validate_credit_note(body)
            if note_request is None:
                return _json(422, bag.body())
            stuck = self._still_stuck(account, kind, note_request.reference_code)
            result = stuck or self.state.create_credit_note(account, note_request, state_fault)
        if result.hang:
            return _HangThenDrop(self.faults.config.timeout_hang_seconds)
        if result.document is None:
            return _json(result.status, result.body)
        if result.document.rejected:
            return _json(422, dian_rejection_body(result.document.errors))
        document = result.document
        if fault == "dian_stuck" and document.pending:
            self._stuck.add((account.key, kind, document.reference_code))
        data = (render.bill_data if kind == "bill" else render.credit_note_data)(document, account)
        if fault == "invalid_cufe" and document.status == 1:
            render.spoil_unique_code(data, kind)
        return _json(201, {"status": "Created", "message": result.message, "data": data})

    def _still_stuck(self, account: Account, kind: DocumentKind,
                     reference_code: str) -> CreateResult | None:
        """A resend of a document a ``dian_stuck`` fault left pending: answered "pending" again
        (201, status 0), nothing validated. None when the reference is not stuck (any more: a
        deleted document is forgotten, so its next POST creates a new one)."""
        key = (account.key, kind, reference_code)
        if key not in self._stuck:
            return None
        with self.state.lock:
            document = account.by_reference[kind].get(reference_code)
        if document is None or not document.pending or document.rejected:
            self._stuck.discard(key)
            return None
        return CreateResult(201, document, message=(
            f"Documento con el código de referencia {reference_code} registrado; pendiente de "
            "validación por la DIAN"))

    async def bill_validate(self, request: Request, account: Account) -> Response:
        """``POST /v1/bills/validate`` (§3-§5)."""
        return await self._create(request, account, "bill")

    async def bill_list(self, request: Request, account: Account) -> Response:
        """``GET /v1/bills`` with the §6.1 filters, 10 per page, newest first."""
        return self._list(request, account, "bill", render.bill_list_item)

    def _list(
        self,
        request: Request,
        account: Account,
        kind: DocumentKind,
        row: Callable[[SandboxDocument], dict[str, Any]],
    ) -> Response:
        page, size = _page(request)
        rows = [d for d in self.state.list_documents(account, kind) if _document_filter(request, d)]
        base = str(request.base_url).rstrip("/") + request.url.path
        return _json(200, render.ok(render.paginate(rows, page, size, base, row)))

    def _show(self, account: Account, kind: DocumentKind, number: str) -> Response:
        document = self.state.find(account, kind, number)
        if document is None:
            return _json(404, render.not_found(number))
        data = (render.bill_data if kind == "bill" else render.credit_note_data)(document, account)
        return _json(200, render.ok(data))

    async def bill_show(self, request: Request, account: Account) -> Response:
        """``GET /v1/bills/show/{number}`` (§6.2)."""
        return self._show(account, "bill", request.path_params["number"])

    def _download(self, account: Account, kind: DocumentKind, number: str, what: str) -> Response:
        """PDF or XML of a validated document, base64 (§6.4); 404 unknown, 409 not validated (§5.3)."""
        document = self.state.find(account, kind, number)
        if document is None:
            return _json(404, render.not_found(number))
        if document.status != 1:
            if what == "pdf":
                message = f"El documento {number} no ha sido validado"
            else:
                message = (
                    "La factura no ha sido validada"
                    if kind == "bill"
                    else "La nota crédito no ha sido validada"
                )
            return _json(409, {"status": "Conflict", "message": message})
        name = artifacts.file_name(
            "fv" if kind == "bill" else "nc", account.company.nit, document.created_at, document.id
        )
        if what == "pdf":
            content = _pdf(document, account)
            return _json(
                200, render.ok({"file_name": name, "pdf_base_64_encoded": artifacts.b64(content)})
            )
        return _json(
            200,
            render.ok(
                {"file_name": name, "xml_base_64_encoded": artifacts.b64(_xml(document, account))}
            ),
        )

    async def bill_pdf(self, request: Request, account: Account) -> Response:
        """``GET /v1/bills/download-pdf/{number}`` (§6.4)."""
        return self._download(account, "bill", request.path_params["number"], "pdf")

    async def bill_xml(self, request: Request, account: Account) -> Response:
        """``GET /v1/bills/download-xml/{number}`` (§6.4)."""
        return self._download(account, "bill", request.path_params["number"], "xml")

    async def bill_delete(self, request: Request, account: Account) -> Response:
        """``DELETE /v1/bills/destroy/reference/{reference_code}`` (§6.6)."""
        status, body = self.state.delete(account, "bill", request.path_params["reference_code"])
        return _json(status, body)

    async def _send_email(self, request: Request, account: Account, kind: DocumentKind) -> Response:
        """Send-email (§6.5): 404 unknown, 409 not validated, 422 no address, 409 past 2 per day."""
        number = request.path_params["number"]
        document = self.state.find(account, kind, number)
        if document is None:
            return _json(404, render.not_found(number))
        if document.status != 1:
            return _json(
                409, {"status": "Conflict", "message": f"El documento {number} no ha sido validado"}
            )
        body = await _json_body(request)
        # ``email`` is a required body field (DOC1 and v2 ``enviar-correo``): no fallback to the
        # customer's address.
        email = body.get("email") if isinstance(body, dict) else None
        if not isinstance(email, str) or "@" not in email:
            return _json(
                422,
                {
                    "message": "El campo email es obligatorio.",
                    "errors": {"email": ["El campo email es obligatorio."]},
                },
            )
        if not self.state.record_email(document):
            return _json(
                409,
                {
                    "status": "Conflict",
                    "message": (
                        f"El documento {number} ya fue enviado por correo 2 veces hoy; intente mañana"
                    ),
                },
            )
        noun = "Factura enviada" if kind == "bill" else "Nota crédito enviada"
        return _json(200, {"status": "OK", "message": f"{noun} al cliente con éxito"})

    async def bill_email(self, request: Request, account: Account) -> Response:
        """``POST /v1/bills/send-email/{number}`` (§6.5)."""
        return await self._send_email(request, account, "bill")

    # -- credit notes ---------------------------------------------------------------------------

    async def note_validate(self, request: Request, account: Account) -> Response:
        """``POST /v1/credit-notes/validate`` (§7.1)."""
        return await self._create(request, account, "credit_note")

    async def note_list(self, request: Request, account: Account) -> Response:
        """``GET /v1/credit-notes`` (same filters as bills, §7.1)."""
        return self._list(request, account, "credit_note", render.credit_note_list_item)

    async def note_show(self, request: Request, account: Account) -> Response:
        """``GET /v1/credit-notes/{number}`` (§7.1)."""
        return self._show(account, "credit_note", request.path_params["number"])

    async def note_pdf(self, request: Request, account: Account) -> Response:
        """``GET /v1/credit-notes/download-pdf/{number}`` (§7.1)."""
        return self._download(account, "credit_note", request.path_params["number"], "pdf")

    async def note_xml(self, request: Request, account: Account) -> Response:
        """``GET /v1/credit-notes/download-xml/{number}`` (§7.1)."""
        return self._download(account, "credit_note", request.path_params["number"], "xml")

    async def note_delete(self, request: Request, account: Account) -> Response:
        """``DELETE /v1/credit-notes/reference/{reference_code}`` (§7.1)."""
        status, body = self.state.delete(
            account, "credit_note", request.path_params["reference_code"]
        )
        return _json(status, body)

    async def note_email(self, request: Request, account: Account) -> Response:
        """``POST /v1/credit-notes/send-email/{number}`` (§7.1)."""
        return await self._send_email(request, account, "credit_note")

    # -- reference data -----------------------------------------------------------------------

    async def ranges(self, request: Request, account: Account) -> Response:
        """``GET /v1/numbering-ranges`` (§8.1): paginated; filters id, document, resolution_number,
        technical_key, is_active (exact matches)."""
        today = bogota_today()
        q = request.query_params
        checks: dict[str, Callable[[NumberingRange, str], bool]] = {
            "filter[id]": lambda r, v: str(r.id) == v,
            "filter[document]": lambda r, v: r.document == v,
            "filter[resolution_number]": lambda r, v: (r.resolution_number or "") == v,
            "filter[technical_key]": lambda r, v: (r.technical_key or "") == v,
            "filter[is_active]": lambda r, v: str(int(r.is_active)) == v,
        }
        rows = [
            r
            for _, r in sorted(account.ranges.items())
            if all(check(r, q[name].strip()) for name, check in checks.items() if q.get(name))
        ]
        page, size = _page(request)
        base = str(request.base_url).rstrip("/") + request.url.path
        return _json(
            200,
            render.ok(
                render.paginate(rows, page, size, base, lambda r: render.range_list_item(r, today))
            ),
        )

    async def range_show(self, request: Request, account: Account) -> Response:
        """``GET /v1/numbering-ranges/{id}`` (§8.1); 404 when the account has no such range."""
        range_id = as_int(request.path_params["range_id"])
        chosen = account.ranges.get(range_id) if range_id is not None else None
        if chosen is None:
            return _json(404, render.range_not_found(request.path_params["range_id"]))
        return _json(200, render.ok(render.range_detail(chosen, bogota_today())))

    async def municipality_list(self, request: Request, account: Account) -> Response:
        """``GET /v1/municipalities?name=`` (§8.2): not paginated."""
        name = request.query_params.get("name", "")
        rows = [
            {"id": m.id, "code": m.code, "name": m.name, "department": m.department_name}
            for m in catalogs.municipalities().values()
            if _contains(m.name, name)
        ]
        return _json(200, render.ok(rows))

    async def unit_list(self, request: Request, account: Account) -> Response:
        """``GET /v1/measurement-units?name=`` (§8.2)."""
        name = request.query_params.get("name", "")
        rows = [
            {"id": u.id, "code": u.code, "name": u.name}
            for u in catalogs.UNIT_MEASURES.values()
            if _contains(u.name, name)
        ]
        return _json(200, render.ok(rows))

    async def tribute_list(self, request: Request, account: Account) -> Response:
        """``GET /v1/tributes/products?name=`` (§8.2)."""
        name = request.query_params.get("name", "")
        rows = [
            {"id": t.id, "code": t.code, "name": t.name, "description": t.description}
            for t in catalogs.PRODUCT_TRIBUTES.values()
            if _contains(t.name, name)
        ]
        return _json(200, render.ok(rows))

    async def company(self, request: Request, account: Account) -> Response:
        """``GET /v1/company`` (§8.2)."""
        return _json(200, render.ok(render.company_profile(account)))

    # -- control API --------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """``GET /__sandbox/health``: ``{"status": "ok", "pid": <server process id>}``."""
        return _json(200, {"status": "ok", "pid": os.getpid()})

    async def faults_get(self, request: Request) -> Response:
        """``GET /__sandbox/faults``."""
        return _json(200, self.faults.config.as_dict())

    async def faults_set(self, request: Request) -> Response:
        """``POST /__sandbox/faults``: merge the JSON fields into the config; 400 on a bad value."""
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _json(400, {"error": "expected a JSON object"})
        try:
            config = self.faults.config.updated(body)
        except FaultConfigError as exc:
            return _json(400, {"error": str(exc)})
        self.faults.configure(config, reseed="seed" in body)
        return _json(200, config.as_dict())

    async def faults_clear(self, request: Request) -> Response:
        """``DELETE /__sandbox/faults``: back to the startup faults (draws restart)."""
        self.faults.configure(self.startup_faults, reseed=True)
        return _json(200, self.startup_faults.as_dict())

    async def reset(self, request: Request) -> Response:
        """``POST /__sandbox/reset``: see the module docstring."""
        body = await _json_body(request)
        options = body if isinstance(body, dict) else {}
        self.state.reset(
            revoke_tokens=bool(options.get("revoke_tokens", False)),
            drop_added_accounts=bool(options.get("drop_added_accounts", False)),
        )
        self.faults.configure(self.startup_faults, reseed=True)
        self.limiter.reset()
        self._stuck.clear()
        return _json(200, {"status": "reset"})

    async def accounts_list(self, request: Request) -> Response:
        """``GET /__sandbox/accounts``."""
        return _json(200, [a.summary() for a in self.state.accounts()])

    async def accounts_add(self, request: Request) -> Response:
        """``POST /__sandbox/accounts``: 201 with the summary, 400 on a bad or duplicate spec."""
        body = await _json_body(request)
        allowed = {f.name for f in fields(AccountSpec)}
        if not isinstance(body, dict) or set(body) - allowed:
            return _json(
                400, {"error": f"expected a JSON object with fields among {sorted(allowed)}"}
            )
        try:
            account = self.state.add_account(AccountSpec(**body))
        except (SandboxError, TypeError) as exc:
            return _json(400, {"error": str(exc)})
        return _json(201, account.summary())

    async def stats(self, request: Request) -> Response:
        """``GET /__sandbox/stats``."""
        return _json(200, self.state.stats())

    # -- assembly -----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Every route of the simulator."""
        api = self.api
        return [
            Route("/oauth/token", self.token, methods=["POST"]),
            api("POST", "/v1/bills/validate", self.bill_validate),
            api("GET", "/v1/bills", self.bill_list),
            api("GET", "/v1/bills/show/{number}", self.bill_show),
            api("GET", "/v1/bills/download-pdf/{number}", self.bill_pdf),
            api("GET", "/v1/bills/download-xml/{number}", self.bill_xml),
            api("DELETE", "/v1/bills/destroy/reference/{reference_code}", self.bill_delete),
            api("POST", "/v1/bills/send-email/{number}", self.bill_email),
            api("POST", "/v1/credit-notes/validate", self.note_validate),
            api("GET", "/v1/credit-notes", self.note_list),
            api("GET", "/v1/credit-notes/download-pdf/{number}", self.note_pdf),
            api("GET", "/v1/credit-notes/download-xml/{number}", self.note_xml),
            api("DELETE", "/v1/credit-notes/reference/{reference_code}", self.note_delete),
            api("POST", "/v1/credit-notes/send-email/{number}", self.note_email),
            api("GET", "/v1/credit-notes/{number}", self.note_show),
            api("GET", "/v1/numbering-ranges", self.ranges),
            api("GET", "/v1/numbering-ranges/{range_id}", self.range_show),
            api("GET", "/v1/municipalities", self.municipality_list),
            api("GET", "/v1/measurement-units", self.unit_list),
            api("GET", "/v1/tributes/products", self.tribute_list),
            api("GET", "/v1/company", self.company),
            *v2_app.V2Api(self).routes(),
            Route("/__sandbox/health", self.health, methods=["GET"]),
            Route("/__sandbox/faults", self.faults_get, methods=["GET"]),
            Route("/__sandbox/faults", self.faults_set, methods=["POST"]),
            Route("/__sandbox/faults", self.faults_clear, methods=["DELETE"]),
            Route("/__sandbox/reset", self.reset, methods=["POST"]),
            Route("/__sandbox/accounts", self.accounts_list, methods=["GET"]),
            Route("/__sandbox/accounts", self.accounts_add, methods=["POST"]),
            Route("/__sandbox/stats", self.stats, methods=["GET"]),
        ]

    def asgi(self) -> Starlette:
        """The Starlette application (Laravel-like JSON bodies for unknown routes and crashes)."""

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            if exc.status_code == 404:
                return _json(
                    404,
                    {"message": f"The route {request.url.path.lstrip('/')} could not be found."},
                )
            if exc.status_code == 405:
                return _json(
                    405,
                    {"message": f"The {request.method} method is not supported for this route."},
                )
            return _json(exc.status_code, {"message": exc.detail})

        async def server_error(request: Request, exc: Exception) -> Response:
            return _json(500, {"message": "Server Error"})

        app = Starlette(
            routes=self.routes(),
            exception_handlers={HTTPException: http_error, Exception: server_error},
        )
        app.state.sandbox = self
        return app


def _pdf(document: SandboxDocument, account: Account) -> bytes:
    kind = "Factura electrónica de venta" if document.kind == "bill" else "Nota crédito electrónica"
    amounts = document.amounts
    customer = document.customer
    lines = [
        f"{account.company.name} - NIT {account.company.nit}-{account.company.dv}",
        f"Número: {document.number}    Referencia: {document.reference_code}",
        f"Fecha: {artifacts.factus_datetime(document.created_at)}",
        f"Cliente: {customer.company or customer.names} ({customer.identification})",
        f"Base gravable: {money(amounts.taxable_amount)}    Impuestos: {money(amounts.tax_amount)}",
        f"Total: {money(amounts.total)} COP",
        f"{'CUFE' if document.kind == 'bill' else 'CUDE'}: {document.cufe[:48]}",
        f"      {document.cufe[48:]}",
        "Documento generado por el simulador de Factus (ambiente de pruebas)",
    ]
    return artifacts.pdf_document(kind, lines)


def _xml(document: SandboxDocument, account: Account) -> bytes:
    customer = document.customer
    amounts = document.amounts
    return artifacts.ubl_document(
        credit_note=document.kind == "credit_note",
        number=document.number,
        uuid=document.cufe,
        issued_at=document.created_at,
        issuer_nit=account.company.nit,
        issuer_dv=account.company.dv,
        issuer_name=account.company.name,
        customer_identification=customer.identification,
        customer_name=customer.company or customer.names,
        lines=[
            (item.name, item.quantity, a.taxable_amount, a.tax_amount)
            for item, a in zip(document.request.items, amounts.items, strict=True)
        ],
        taxable_amount=amounts.taxable_amount,
        tax_amount=amounts.tax_amount,
        surcharge_amount=amounts.surcharge_amount,
        total=amounts.total,
        billing_reference=(document.bill.number, document.bill.cufe) if document.bill else None,
    )


def create_app(
    faults: FaultConfig | None = None, accounts: list[AccountSpec] | None = None
) -> Starlette:
    """Build the simulator's ASGI app.

    Args:
        faults: startup faults and limits (also what ``POST /__sandbox/reset`` goes back to).
        accounts: accounts besides the always-present default one.

    Returns:
        A Starlette app; ``app.state.sandbox`` is its :class:`SandboxApp`.

    Raises:
        SandboxError: an account spec is invalid or duplicated.
    """
    return SandboxApp(faults, accounts).asgi()
