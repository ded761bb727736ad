"""A scripted Factus behind ``httpx.MockTransport`` for the client's unit tests.

Bodies follow FACTUS_API.md (§4.3 example, §5 error bodies, §6/§8 lists). They serve shapes the
simulator does not produce, and the client's own plumbing (retries, 401 renewal, timeouts,
logging), where a scripted answer makes the scenario exact.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

BASE_URL = "https://factus.test"
CLIENT_SECRET = "client-secret-7f3a"
PASSWORD = "account-password-91b2"

CUFE = "a" * 96

BILL_BODY: dict[str, Any] = {
    "status": "Created",
    "message": "Documento con el código de referencia POS-1 registrado y validado con éxito",
    "data": {
        "company": {"nit": "901724254", "dv": "1", "company": "FACTUS S.A.S."},
        "customer": {"identification": "1020304050", "dv": None, "names": "María Gómez"},
        "numbering_range": {
            "prefix": "SETP",
            "from": 990000000,
            "to": 995000000,
            "start_date": "19-01-2019",
            "end_date": "19-01-2030",
        },
        "billing_period": [],
        "bill": {
            "id": 10412,
            "document": {"code": "01", "name": "Factura electrónica de Venta"},
            "number": "SETP990010377",
            "reference_code": "POS-1",
            "status": 1,
            "send_email": 0,
            "qr": f"https://catalogo-vpfe-hab.dian.gov.co/document/searchqr?documentkey={CUFE}",
            "cufe": CUFE,
            "validated": "14-03-2025 10:21:07 AM",
            "gross_value": "40000.00",
            "taxable_amount": "40000.00",
            "tax_amount": "7600.00",
            "discount_amount": "0.00",
            "surcharge_amount": "0.00",
            "total": "47600.00",
            "observation": None,
            "errors": [
                "Regla: FAJ43b, Notificación: Nombre informado No corresponde al registrado en el RUT"
            ],
            "created_at": "14-03-2025 10:21:04 AM",
            "qr_image": "data:image/png;base64, iVBORw0KGgo=",
            "has_claim": 0,
            "is_negotiable_instrument": 0,
        },
        "items": [{"code_reference": "SKU-1", "quantity": 2, "total": 47600}],
        "credit_notes": [],
        "debit_notes": [],
    },
}


def bill_body(**bill_overrides: Any) -> dict[str, Any]:
    """A fresh copy of the §4.3 validate answer with ``data.bill`` fields overridden."""
    body = copy.deepcopy(BILL_BODY)
    body["data"]["bill"].update(bill_overrides)
    return body


def list_body(rows: list[dict[str, Any]], *, page: int = 1, last_page: int = 1) -> dict[str, Any]:
    """A §6.1 paginated list answer."""
    return {
        "status": "OK",
        "message": "Solicitud exitosa",
        "data": {
            "data": rows,
            "pagination": {
                "total": len(rows),
                "per_page": 10,
                "current_page": page,
                "last_page": last_page,
                "from": 1,
                "to": len(rows),
                "links": [],
            },
        },
    }


def token_body(
    access: str = "access-1", refresh: str = "refresh-1", expires_in: int = 3600
) -> dict[str, Any]:
    """A §2 token answer."""
    return {
        "token_type": "Bearer",
        "expires_in": expires_in,
        "access_token": access,
        "refresh_token": refresh,
    }


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """An ``httpx.Response`` with a JSON body."""
    return httpx.Response(status, json=body, headers=headers)


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class ScriptedFactus:
    """A Factus double: routes ``(method, path)`` to handlers, answers the token endpoint with
    numbered tokens, and records every request it saw (token calls included)."""

    routes: dict[tuple[str, str], Handler | list[Handler]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    grants: list[dict[str, str]] = field(default_factory=list)

    def on(self, method: str, path: str, *handlers: Handler) -> None:
        """Answer ``method path`` with ``handlers`` in turn (the last one repeats)."""
        self.routes[(method, path)] = list(handlers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/oauth/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            self.grants.append(form)
            handlers = self.routes.get(("POST", "/oauth/token"))
            if handlers:
                return self._next(handlers, request)
            n = len(self.grants)
            return json_response(200, token_body(f"access-{n}", f"refresh-{n}"))
        handlers = self.routes.get((request.method, request.url.path))
        if handlers is None:
            return json_response(404, {"status": "Not Found", "message": "no route in the double"})
        return self._next(handlers, request)

    @staticmethod
    def _next(handlers: Handler | list[Handler], request: httpx.Request) -> httpx.Response:
        if not isinstance(handlers, list):
            return handlers(request)
        handler = handlers.pop(0) if len(handlers) > 1 else handlers[0]
        return handler(request)

    def api_requests(self) -> list[httpx.Request]:
        """Requests other than token calls."""
        return [r for r in self.requests if r.url.path != "/oauth/token"]


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
    """A handler that always gives this JSON answer."""
    return lambda request: json_response(status, body, headers)


def raise_(exc_type: type[httpx.TransportError]) -> Handler:
    """A handler that fails like the network would."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated", request=request)

    return handler


@dataclass
class Sleeps:
    """Records the client's retry waits instead of sleeping."""

    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def request_json(request: httpx.Request) -> Any:
    """The JSON body a request carried."""
    return json.loads(request.content.decode())


# --- v2 (factus-docs/v2 facturas/crear-y-validar "Respuesta"; made-up values) --------------------

V2_BILL_BODY: dict[str, Any] = {
    "status": "Created",
    "message": "Documento con el código de referencia FACT-2026-0124 registrado y validado con éxito",
    "data": {
        "reference_code": "FACT-2026-0124",
        "number": "SETP990000550",
        "order_reference": None,
        "send_email": True,
        "has_claim": False,
        "is_negotiable_instrument": False,
        "is_validated": True,
        "validated_at": "08-10-2026 09:23:26 PM",
        "errors": {"FAJ44b": "Regla: FAJ44b, Notificación: Nombre informado no corresponde"},
        "observation": None,
        "created_at": "08-10-2026 09:23:24 PM",
        "cufe": CUFE,
        "document_type": {"code": "01", "name": "Factura electrónica de Venta"},
        "customer": {"identification": "123456789", "names": "Alan company name"},
        "items": [{"code_reference": "PROD-000A", "quantity": "1.00", "price": "10000.00"}],
        "totals": {
            "prepayment_amount": "0.00",
            "gross_amount": "70000.00",
            "taxable_amount": "70000.00",
            "tax_amount": "13300.00",
            "discount_amount": "0.00",
            "surcharge_amount": "0.00",
            "cash_rounding_amount": "0.00",
            "total": "83300.00",
        },
        "related_notes": {"credit_notes": [], "debit_notes": []},
        "links": {
            "qr": f"https://catalogo-vpfe-hab.dian.gov.co/document/searchqr?documentkey={CUFE}",
            "public_url": "https://app-sandbox.factus.com.co/documents/bills/abc",
        },
    },
}


def v2_bill_body(**overrides: Any) -> dict[str, Any]:
    """A fresh copy of the v2 validate answer with ``data`` fields overridden."""
    body = copy.deepcopy(V2_BILL_BODY)
    body["data"].update(overrides)
    return body


def validated_body(version: str) -> dict[str, Any]:
    """A validated bill as ``version``'s validate answers it."""
    return bill_body() if version == "v1" else v2_bill_body()
