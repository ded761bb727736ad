"""HTTP helpers for the simulator's integration tests: tokens, clients, and the request bodies
of :mod:`tests.fixtures.payloads`.

The tests talk to a real simulator process over HTTP with httpx, never through ``einvoice.factus``.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures.payloads import v1_bill

DEFAULT_CREDENTIALS = {
    "client_id": "sandbox-client",
    "client_secret": "sandbox-secret",
    "username": "sandbox@einvoice.test",
    "password": "sandbox-password",
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


def create_bill(api: httpx.Client, reference: str, **changes: Any) -> dict[str, Any]:
    """Create a bill and return its ``data.bill``; fails the test unless the answer is 201."""
    response = api.post("/v1/bills/validate", json=v1_bill(reference, **changes))
    assert response.status_code == 201, response.text
    return dict(response.json()["data"]["bill"])


def invoice_range_current(api: httpx.Client) -> int:
    """The next consecutive of the SETP range (id 8)."""
    return int(api.get("/v1/numbering-ranges/8").json()["data"]["current"])
