"""Several accounts on one simulator: isolation, per-account stats, 403, and the control API."""

from __future__ import annotations

import httpx
import pytest

from einvoice.sandbox.server import SandboxServer, SandboxServerError
from tests.fixtures.payloads import v1_bill
from tests.integration.sandbox.sandbox_http import client_for, create_bill, password_grant

OTHER = {
    "client_id": "tenant-b",
    "client_secret": "tenant-b-secret",
    "username": "b@einvoice.test",
    "password": "b-password",
}


def test_one_accounts_token_cannot_see_or_touch_another_accounts_documents(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    # Given a second tenant with its own company and a bill of tenant A
    sandbox_clean.add_account(**OTHER, company_name="TENANT B S.A.S.", company_nit="900373115")
    bill = create_bill(api, "TENANT-A-1")

    with client_for(sandbox_clean.base_url, **OTHER) as other:
        # When tenant B looks for it, lists, deletes, downloads or e-mails it
        show = other.get(f"/v1/bills/show/{bill['number']}")
        listing = other.get("/v1/bills").json()["data"]
        delete = other.delete("/v1/bills/destroy/reference/TENANT-A-1")
        pdf = other.get(f"/v1/bills/download-pdf/{bill['number']}")
        email = other.post(f"/v1/bills/send-email/{bill['number']}", json={"email": "x@y.co"})
        # and creates its own bill with the same reference
        own = other.post("/v1/bills/validate", json=v1_bill("TENANT-A-1"))
        company = other.get("/v1/company").json()["data"]

    # Then it sees nothing of A's, and its bill is its own
    assert show.status_code == 404
    assert listing["data"] == []
    assert delete.status_code == 404
    assert pdf.status_code == 404
    assert email.status_code == 404
    assert own.status_code == 201
    assert own.json()["data"]["company"]["nit"] == "900373115"
    assert own.json()["data"]["bill"]["cufe"] != bill["cufe"]
    assert (company["company"], company["dv"]) == ("TENANT B S.A.S.", "3")  # DIAN modulo 11
    stats = sandbox_clean.stats()["accounts"]
    assert stats["sandbox-client/sandbox@einvoice.test"]["validations_by_reference"]["bill"] == {
        "TENANT-A-1": 1
    }
    assert stats["tenant-b/b@einvoice.test"]["validations_by_reference"]["bill"] == {
        "TENANT-A-1": 1
    }
    assert sandbox_clean.stats()["global"]["validations_by_reference"]["bill"] == {"TENANT-A-1": 2}


def test_a_pending_document_blocks_only_its_own_account(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    sandbox_clean.add_account(**OTHER)
    sandbox_clean.set_faults(dian_slow=1.0)
    assert (
        api.post("/v1/bills/validate", json=v1_bill("SLOW-A")).json()["data"]["bill"]["status"]
        == 0
    )
    sandbox_clean.set_faults(dian_slow=0.0)

    with client_for(sandbox_clean.base_url, **OTHER) as other:
        response = other.post("/v1/bills/validate", json=v1_bill("B-1"))

    assert response.status_code == 201
    assert api.post("/v1/bills/validate", json=v1_bill("A-2")).status_code == 409


def test_an_account_without_v1_access_gets_403_on_every_v1_route(sandbox_clean: SandboxServer):
    sandbox_clean.add_account("v2-only", "v2-secret", "v2@einvoice.test", "pw", v1_enabled=False)

    with client_for(
        sandbox_clean.base_url,
        client_id="v2-only",
        client_secret="v2-secret",
        username="v2@einvoice.test",
        password="pw",
    ) as client:
        listing = client.get("/v1/bills")
        create = client.post("/v1/bills/validate", json=v1_bill("V2-1"))

    assert listing.status_code == 403
    assert create.status_code == 403
    assert listing.json()["status"] == "Forbidden"


def test_accounts_can_be_listed_without_secrets_and_duplicates_are_refused(
    sandbox_clean: SandboxServer,
):
    summary = sandbox_clean.add_account(**OTHER)

    with pytest.raises(SandboxServerError, match="400"):
        sandbox_clean.add_account(**OTHER)
    with pytest.raises(SandboxServerError, match="400"):
        sandbox_clean.add_account("tenant-b", "another-secret", "c@einvoice.test", "pw")

    listed = httpx.get(f"{sandbox_clean.base_url}/__sandbox/accounts").json()
    assert summary["key"] == "tenant-b/b@einvoice.test"
    assert [a["key"] for a in listed][:1] == ["sandbox-client/sandbox@einvoice.test"]
    assert all("password" not in a and "client_secret" not in a for a in listed)
    assert "b-password" not in httpx.get(f"{sandbox_clean.base_url}/__sandbox/accounts").text


def test_a_reset_can_drop_run_time_accounts_and_revoke_tokens(sandbox_clean: SandboxServer):
    sandbox_clean.add_account(**OTHER)
    token = password_grant(sandbox_clean.base_url).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{sandbox_clean.base_url}/v1/company", headers=headers).status_code == 200

    sandbox_clean.reset()
    kept = httpx.get(f"{sandbox_clean.base_url}/v1/company", headers=headers).status_code
    sandbox_clean.reset(revoke_tokens=True, drop_added_accounts=True)

    assert kept == 200
    assert httpx.get(f"{sandbox_clean.base_url}/v1/company", headers=headers).status_code == 401
    assert password_grant(sandbox_clean.base_url, **OTHER).status_code == 401


def test_stats_count_requests_per_endpoint_and_status_and_unauthenticated_calls(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    create_bill(api, "STATS-1")
    api.get("/v1/bills/show/NOPE")
    httpx.get(f"{sandbox_clean.base_url}/v1/bills")

    stats = sandbox_clean.stats()
    mine = stats["accounts"]["sandbox-client/sandbox@einvoice.test"]["requests"]

    assert mine["POST /oauth/token"] == {"200": 1}
    assert mine["POST /v1/bills/validate"] == {"201": 1}
    assert mine["GET /v1/bills/show/{number}"] == {"404": 1}
    assert stats["unauthenticated"]["requests"]["GET /v1/bills"] == {"401": 1}
