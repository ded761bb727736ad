"""The simulator's Factus API v2 routes, beside the v1 ones of :mod:`einvoice.sandbox.app`.

Every route goes through the same pipeline as v1 (:meth:`einvoice.sandbox.app.SandboxApp.api`):
latency, bearer token (the same ``POST /oauth/token``), the per-account quota shared by v1 and v2
calls, transport faults, the account's API versions (403 when v2 is not enabled), then the handler.
Outcome faults (DIAN rejection, DIAN slow or stuck, timeout after store, invalid CUFE) apply to
``POST /v2/.../validate`` as to v1, and the per-reference counters count v2 validations too.

Routes (Factus v2 docs; the number comes first in per-document paths):

=========================================================  =========================================
``POST   /v2/bills/validate``                              ``facturas/crear-y-validar``
``GET    /v2/bills``                                       ``facturas/listar-y-filtrar``
``GET    /v2/bills/{number}``                              ``facturas/ver``
``GET    /v2/bills/{number}/download-pdf``                 ``facturas/descargar-pdf``
``GET    /v2/bills/{number}/download-xml``                 ``facturas/descargar-xml``
``GET    /v2/bills/{number}/download-attached-document-xml``  ``facturas/descargar-xml-attacheddocument``
``POST   /v2/bills/{number}/send-email``                   ``facturas/enviar-correo``
``DELETE /v2/bills/destroy/reference/{reference_code}``    ``facturas/eliminar``
``POST   /v2/credit-notes/validate`` and the same reads,   ``notas-credito/*``; delete is
downloads and e-mail under ``/v2/credit-notes``            ``DELETE /v2/credit-notes/reference/{ref}``
``GET    /v2/numbering-ranges``                            ``rangos-de-numeracion/obtener-rangos``
``GET    /v2/numbering-ranges/dian``                       ``rangos-asociados-al-software``
``POST   /v2/numbering-ranges``                            ``rangos-de-numeracion/crear-rango``
``GET    /v2/numbering-ranges/{id}``                       ``rangos-de-numeracion/ver-rango``
=========================================================  =========================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from einvoice.sandbox import artifacts, render, v2_render
from einvoice.sandbox.state import (
    Account,
    CreateResult,
    DocumentKind,
    NumberingRange,
    bogota_today,
)
from einvoice.sandbox.v2_validation import (
    validate_bill_v2,
    validate_credit_note_v2,
    validate_range_v2,
)
from einvoice.sandbox.validation import ErrorBag, as_int

if TYPE_CHECKING:
    from einvoice.sandbox.app import SandboxApp

# einvoice.sandbox.app imports this module at its top, so the routes import its helpers when they
# run (the `noqa: PLC0415` below): a top-level import here would be a cycle.


def _json(status: int, body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=status)


class V2Api:
    """The v2 handlers of one :class:`~einvoice.sandbox.app.SandboxApp` (its state and faults)."""

    def __init__(self, sandbox: SandboxApp) -> None:
        """Bind the handlers to ``sandbox``."""
        self.sb = sandbox

    # -- validate ---------------------------------------------------------------------------

    async def _create(self, request: Request, account: Account, kind: DocumentKind) -> Response:
        from einvoice.sandbox.app import _HangThenDrop, _json_body  # noqa: PLC0415

        sb = self.sb
        sb.state.count_validate_post(account, kind)
        body = await _json_body(request)
        fault = sb.faults.outcome_fault()
        state_fault = {"dian_stuck": "dian_slow", "invalid_cufe": None}.get(fault or "", fault)
        result: CreateResult
        if kind == "bill":
            bill_request, bag = validate_bill_v2(body)
            if bill_request is None:
                return _json(422, bag.body())
            reference = bill_request.v1.reference_code
            result = sb._still_stuck(account, kind, reference) or sb.state.create_bill(
                account,
                bill_request.v1,
                state_fault,
                amounts=bill_request.extras.amounts,
                v2=bill_request,
            )
        else:
            note_request, bag = validate_credit_note_v2(body)
            if note_request is None:
                return _json(422, bag.body())
            if note_request.bill_number is not None:
                bill = sb.state.find(account, "bill", note_request.bill_number)
                if bill is None or bill.status != 1:
                    missing = ErrorBag()
                    missing.add("bill_number", "La factura seleccionada no existe.")
                    return _json(422, missing.body())
                note_request = dataclasses.replace(
                    note_request, v1=dataclasses.replace(note_request.v1, bill_id=bill.id)
                )
            reference = note_request.v1.reference_code
            result = sb._still_stuck(account, kind, reference) or sb.state.create_credit_note(
                account,
                note_request.v1,
                state_fault,
                amounts=note_request.extras.amounts,
                v2=note_request,
            )
        if result.hang:
            return _HangThenDrop(sb.faults.config.timeout_hang_seconds)
        if result.document is None:
            return _json(result.status, result.body)
        document = result.document
        if document.rejected:
            return _json(422, v2_render.rejection_body(document.errors))
        if fault == "dian_stuck" and document.pending:
            sb._stuck.add((account.key, kind, document.reference_code))
        render_data = v2_render.bill_data if kind == "bill" else v2_render.credit_note_data
        data = render_data(document, account)
        if fault == "invalid_cufe" and document.status == 1:
            key = "cufe" if kind == "bill" else "cude"
            data[key] = data[key][:64]
        return _json(201, {"status": "Created", "message": result.message, "data": data})

    async def bill_validate(self, request: Request, account: Account) -> Response:
        """``POST /v2/bills/validate``."""
        return await self._create(request, account, "bill")

    async def note_validate(self, request: Request, account: Account) -> Response:
        """``POST /v2/credit-notes/validate``: ``bill_number`` must be a validated bill."""
        return await self._create(request, account, "credit_note")

    # -- reads ------------------------------------------------------------------------------

    def _list(self, request: Request, account: Account, kind: DocumentKind) -> Response:
        from einvoice.sandbox.app import _document_filter, _page  # noqa: PLC0415

        page, size = _page(request)
        rows = [
            d
            for d in self.sb.state.list_documents(account, kind)
            if _document_filter(request, d) and _created_between(request, d.created_at)
        ]
        base = str(request.base_url).rstrip("/") + request.url.path
        return _json(200, render.ok(render.paginate(rows, page, size, base, v2_render.list_item)))

    async def bill_list(self, request: Request, account: Account) -> Response:
        """``GET /v2/bills``: v1's filters plus ``filter[created_at][start_date|end_date]``."""
        return self._list(request, account, "bill")

    async def note_list(self, request: Request, account: Account) -> Response:
        """``GET /v2/credit-notes``."""
        return self._list(request, account, "credit_note")

    def _show(self, account: Account, kind: DocumentKind, number: str) -> Response:
        document = self.sb.state.find(account, kind, number)
        if document is None:
            return _json(404, render.not_found(number))
        render_data = v2_render.bill_data if kind == "bill" else v2_render.credit_note_data
        return _json(200, render.ok(render_data(document, account)))

    async def bill_show(self, request: Request, account: Account) -> Response:
        """``GET /v2/bills/{number}``."""
        return self._show(account, "bill", request.path_params["number"])

    async def note_show(self, request: Request, account: Account) -> Response:
        """``GET /v2/credit-notes/{number}``."""
        return self._show(account, "credit_note", request.path_params["number"])

    # -- downloads, e-mail, delete ----------------------------------------------------------

    def _download(
        self, request: Request, account: Account, kind: DocumentKind, what: str
    ) -> Response:
        number = request.path_params["number"]
        if what != "attached":
            return self.sb._download(account, kind, number, what)
        document = self.sb.state.find(account, kind, number)
        if document is None:
            return _json(404, render.not_found(number))
        if document.status != 1:
            return _json(
                409, {"status": "Conflict", "message": f"El documento {number} no ha sido validado"}
            )
        from einvoice.sandbox.app import _xml  # noqa: PLC0415

        inner = _xml(document, account).decode("utf-8")
        attached = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<AttachedDocument xmlns="urn:oasis:names:specification:ubl:schema:xsd:AttachedDocument-2"'
            ' xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"'
            ' xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2">'
            f"<cbc:ID>{escape(document.number)}</cbc:ID>"
            f"<cbc:ParentDocumentID>{escape(document.number)}</cbc:ParentDocumentID>"
            "<cac:Attachment><cac:ExternalReference><cbc:MimeCode>text/xml</cbc:MimeCode>"
            f"<cbc:Description><![CDATA[{inner}]]></cbc:Description>"
            "</cac:ExternalReference></cac:Attachment></AttachedDocument>"
        )
        name = artifacts.file_name("ad", account.company.nit, document.created_at, document.id)
        return _json(
            200,
            render.ok({"file_name": name, "xml_base_64_encoded": artifacts.b64(attached.encode())}),
        )

    async def bill_pdf(self, request: Request, account: Account) -> Response:
        """``GET /v2/bills/{number}/download-pdf``."""
        return self._download(request, account, "bill", "pdf")

    async def bill_xml(self, request: Request, account: Account) -> Response:
        """``GET /v2/bills/{number}/download-xml``."""
        return self._download(request, account, "bill", "xml")

    async def bill_attached(self, request: Request, account: Account) -> Response:
        """``GET /v2/bills/{number}/download-attached-document-xml``."""
        return self._download(request, account, "bill", "attached")

    async def note_pdf(self, request: Request, account: Account) -> Response:
        """``GET /v2/credit-notes/{number}/download-pdf``."""
        return self._download(request, account, "credit_note", "pdf")

    async def note_xml(self, request: Request, account: Account) -> Response:
        """``GET /v2/credit-notes/{number}/download-xml``."""
        return self._download(request, account, "credit_note", "xml")

    async def note_attached(self, request: Request, account: Account) -> Response:
        """``GET /v2/credit-notes/{number}/download-attached-document-xml``."""
        return self._download(request, account, "credit_note", "attached")

    async def bill_email(self, request: Request, account: Account) -> Response:
        """``POST /v2/bills/{number}/send-email`` with ``{"email"}`` (required)."""
        return await self.sb._send_email(request, account, "bill")

    async def note_email(self, request: Request, account: Account) -> Response:
        """``POST /v2/credit-notes/{number}/send-email``."""
        return await self.sb._send_email(request, account, "credit_note")

    async def bill_delete(self, request: Request, account: Account) -> Response:
        """``DELETE /v2/bills/destroy/reference/{reference_code}``: not-validated documents only."""
        status, body = self.sb.state.delete(account, "bill", request.path_params["reference_code"])
        return _json(status, body)

    async def note_delete(self, request: Request, account: Account) -> Response:
        """``DELETE /v2/credit-notes/reference/{reference_code}``."""
        status, body = self.sb.state.delete(
            account, "credit_note", request.path_params["reference_code"]
        )
        return _json(status, body)

    # -- numbering ranges -------------------------------------------------------------------

    async def ranges(self, request: Request, account: Account) -> Response:
        """``GET /v2/numbering-ranges`` with v1's exact-match filters, paginated."""
        from einvoice.sandbox.app import _page  # noqa: PLC0415

        q = request.query_params
        checks: dict[str, Callable[[NumberingRange, str], bool]] = {
            "filter[id]": lambda r, v: str(r.id) == v,
            "filter[document]": lambda r, v: r.document == v,
            "filter[resolution_number]": lambda r, v: (r.resolution_number or "") == v,
            "filter[technical_key]": lambda r, v: (r.technical_key or "") == v,
            "filter[is_active]": lambda r, v: str(int(r.is_active)) == v,
        }
        with self.sb.state.lock:
            rows = [
                r
                for _, r in sorted(account.ranges.items())
                if all(check(r, q[name].strip()) for name, check in checks.items() if q.get(name))
            ]
        page, size = _page(request)
        base = str(request.base_url).rstrip("/") + request.url.path
        today = bogota_today()
        return _json(
            200,
            render.ok(
                render.paginate(rows, page, size, base, lambda r: v2_render.range_item(r, today))
            ),
        )

    async def range_show(self, request: Request, account: Account) -> Response:
        """``GET /v2/numbering-ranges/{id}``; 404 when the account has no such range."""
        range_id = as_int(request.path_params["range_id"])
        with self.sb.state.lock:
            chosen = account.ranges.get(range_id) if range_id is not None else None
        if chosen is None:
            return _json(404, render.range_not_found(request.path_params["range_id"]))
        return _json(200, render.ok(v2_render.range_item(chosen, bogota_today())))

    async def dian_ranges(self, request: Request, account: Account) -> Response:
        """``GET /v2/numbering-ranges/dian``: what DIAN associated with the company (not paginated)."""
        rows = self.sb.state.dian_ranges(account)
        return _json(200, render.ok([v2_render.dian_range_item(r) for r in rows]))

    async def range_create(self, request: Request, account: Account) -> Response:
        """``POST /v2/numbering-ranges``: 201 with the range, 422 on a bad body or resolution."""
        from einvoice.sandbox.app import _json_body  # noqa: PLC0415

        spec, bag = validate_range_v2(await _json_body(request))
        if spec is None:
            return _json(422, bag.body())
        created, bag = self.sb.state.create_range(account, **spec)
        if created is None:
            return _json(422, bag.body())
        return _json(
            201,
            {
                "status": "Created",
                "message": "Rango de numeración creado con éxito",
                "data": v2_render.range_item(created, bogota_today()),
            },
        )

    # -- assembly ---------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The v2 routes, wrapped in the simulator's pipeline (static paths before ``{number}``)."""
        api = self.sb.api
        bills, notes = "/v2/bills", "/v2/credit-notes"
        return [
            api("POST", f"{bills}/validate", self.bill_validate),
            api("GET", bills, self.bill_list),
            api("DELETE", f"{bills}/destroy/reference/{{reference_code}}", self.bill_delete),
            api("GET", f"{bills}/{{number}}/download-pdf", self.bill_pdf),
            api("GET", f"{bills}/{{number}}/download-xml", self.bill_xml),
            api("GET", f"{bills}/{{number}}/download-attached-document-xml", self.bill_attached),
            api("POST", f"{bills}/{{number}}/send-email", self.bill_email),
            api("GET", f"{bills}/{{number}}", self.bill_show),
            api("POST", f"{notes}/validate", self.note_validate),
            api("GET", notes, self.note_list),
            api("DELETE", f"{notes}/reference/{{reference_code}}", self.note_delete),
            api("GET", f"{notes}/{{number}}/download-pdf", self.note_pdf),
            api("GET", f"{notes}/{{number}}/download-xml", self.note_xml),
            api("GET", f"{notes}/{{number}}/download-attached-document-xml", self.note_attached),
            api("POST", f"{notes}/{{number}}/send-email", self.note_email),
            api("GET", f"{notes}/{{number}}", self.note_show),
            api("GET", "/v2/numbering-ranges", self.ranges),
            api("GET", "/v2/numbering-ranges/dian", self.dian_ranges),
            api("POST", "/v2/numbering-ranges", self.range_create),
            api("GET", "/v2/numbering-ranges/{range_id}", self.range_show),
        ]


def _created_between(request: Request, created_at: Any) -> bool:
    """``filter[created_at][start_date|end_date]`` (``YYYY-MM-DD``, Bogotá days, inclusive)."""
    day = created_at.astimezone(artifacts.BOGOTA).date().isoformat()
    start = request.query_params.get("filter[created_at][start_date]", "").strip()
    end = request.query_params.get("filter[created_at][end_date]", "").strip()
    return (not start or day >= start) and (not end or day <= end)
