"""HTTP helpers for the simulator's integration tests: tokens, clients and request bodies.

The tests talk to a real simulator process over HTTP with httpx, never through ``einvoice.factus``.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx

DEFAULT_CREDENTIALS = {
    "client_id": "sandbox-client",
    "client_secret": "sandbox-secret",
    "username": "sandbox@einvoice.test",
    "password": "sandbox-password",
}

ITEM: dict[str, Any] = {
    "code_reference": "SKU-1",
    "name": "Café 500 g",
    "quantity": 2,
    "discount_rate": 0,
    "price": 23800,
    "tax_rate": "19.00",
    "unit_measure_id": 70,
    "standard_code_id": 1,
    "is_excluded": 0,
    "tribute_id": 1,
    "withholding_taxes": [],
}


def password_grant(base_url: str, **credentials: str) -> httpx.Response:
    """``POST /oauth/token`` with the password grant (urlencoded form), default account unless given."""
    form = {"grant_type": "password", **DEFAULT_CREDENTIALS, **credentials}
    return httpx.post(f"{base_url}/oauth/token", data=form, headers={"Accept": "application/json"})


def client_for(base_url: str, **credentials: str) -> httpx.Client:
    """An httpx client carrying a fresh bearer token of the account (default account unless given)."""
    token = password_grant(base_url, **credentials).json()["access_token"]
    return httpx.Client(
        base_url=base_url,
        timeout=10.0,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )


def bill_body(reference: str, **changes: Any) -> dict[str, Any]:
    """The FACTUS_API.md §3.6 request (2 × 23800 COP, IVA included) with ``reference`` and ``changes``."""
    body: dict[str, Any] = {
        "numbering_range_id": 8,
        "reference_code": reference,
        "observation": "",
        "payment_form": "1",
        "payment_method_code": "10",
        "send_email": False,
        "customer": {
            "identification_document_id": 3,
            "identification": "1020304050",
            "names": "María Gómez",
            "address": "Cra 7 # 12-34",
            "email": "maria@example.com",
            "phone": "3001112233",
            "legal_organization_id": 2,
            "tribute_id": 21,
            "municipality_id": 980,
        },
        "items": [copy.deepcopy(ITEM)],
    }
    body.update(changes)
    return body


def nit_customer(identification: str = "900825759", dv: str | None = "7") -> dict[str, Any]:
    """A legal-person customer identified by NIT (HALLTEC's NIT 900825759 has DV 7)."""
    customer: dict[str, Any] = {
        "identification_document_id": 6,
        "identification": identification,
        "company": "HALLTEC S.A.S.",
        "email": "compras@halltec.test",
        "legal_organization_id": 1,
        "tribute_id": 18,
        "municipality_id": 980,
    }
    if dv is not None:
        customer["dv"] = dv
    return customer


def credit_note_body(
    reference: str, bill_id: int, price: int = 23800, quantity: int = 1, **changes: Any
) -> dict[str, Any]:
    """A §7.1 credit note crediting ``quantity`` × ``price`` (tax included) of bill ``bill_id``."""
    item = {**copy.deepcopy(ITEM), "price": price, "quantity": quantity}
    body: dict[str, Any] = {
        "numbering_range_id": 9,
        "correction_concept_code": 1,
        "customization_id": 20,
        "bill_id": bill_id,
        "reference_code": reference,
        "payment_method_code": "10",
        "send_email": False,
        "items": [item],
    }
    body.update(changes)
    return body


def create_bill(api: httpx.Client, reference: str, **changes: Any) -> dict[str, Any]:
    """Create a bill and return its ``data.bill``; fails the test unless the answer is 201."""
    response = api.post("/v1/bills/validate", json=bill_body(reference, **changes))
    assert response.status_code == 201, response.text
    return dict(response.json()["data"]["bill"])


def invoice_range_current(api: httpx.Client) -> int:
    """The next consecutive of the SETP range (id 8)."""
    return int(api.get("/v1/numbering-ranges/8").json()["data"]["current"])
