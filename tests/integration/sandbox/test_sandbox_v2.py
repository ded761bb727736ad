"""API v2 of the simulator over HTTP: bills, credit notes, ranges, account modes, shared rules.

Sources: Factus v2 docs (``facturas/*``, ``notas-credito/*``, ``rangos-de-numeracion/*``) and what the
real sandbox did in Oct 2026 (FACTUS_API.md §10.1).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from einvoice.sandbox.server import SandboxServer
from tests.fixtures import payloads
from tests.fixtures.payloads import v1_bill
from tests.integration.sandbox.sandbox_http import client_for, create_bill

# The v2 sale of these tests: 1.5 kg at 10000 COP net + IVA 19 % = 17850.00.
LINE = payloads.v2_line(quantity="1.50", unit_measure_code="KGM")
V2_ONLY = {
    "client_id": "v2-client",
    "client_secret": "v2-secret",
    "username": "v2@einvoice.test",
    "password": "v2-pass",
}
V1_ONLY = {
    "client_id": "v1-client",
    "client_secret": "v1-secret",
    "username": "v1@einvoice.test",
    "password": "v1-pass",
}
VALIDATED_AT = re.compile(r"^\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2} (AM|PM)$")


def v2_bill(reference: str, **changes: Any) -> dict[str, Any]:
    """A v2 bill of :data:`LINE` on range 8, paid in cash, to a customer with an e-mail."""
    changes.setdefault("items", [LINE])
    changes.setdefault("customer", payloads.v2_customer(email="maria@example.com"))
    return payloads.v2_bill(reference, **changes)


def v2_credit_note(reference: str, bill_number: str, **changes: Any) -> dict[str, Any]:
    """A v2 credit note cancelling ``bill_number`` (same line), on credit-note range 9."""
    changes.setdefault("items", [LINE])
    return payloads.v2_credit_note(reference, bill_number, **changes)


@pytest.fixture
def v2_api(sandbox_clean: SandboxServer) -> Iterator[httpx.Client]:
    """The default account (mode "both") speaking v2."""
    with client_for(sandbox_clean.base_url) as client:
        yield client


def test_a_v2_bill_is_validated_with_v2_shapes(v2_api: httpx.Client):
    # When a v2 bill with a decimal quantity and a net price is validated
    response = v2_api.post("/v2/bills/validate", json=v2_bill("V2-1"))

    # Then the answer is flat under data, with booleans, links and totals from the net price
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["is_validated"] is True
    assert VALIDATED_AT.match(data["validated_at"])
    assert re.fullmatch(r"[0-9a-f]{96}", data["cufe"])
    assert data["links"]["qr"].endswith(data["cufe"])
    assert data["links"]["public_url"].startswith("https://app-sandbox.factus.com.co/documents/")
    assert data["totals"]["taxable_amount"] == "15000.00"
    assert data["totals"]["total"] == "17850.00"
    assert data["items"][0]["quantity"] == "1.50"
    assert data["items"][0]["unit_measure"] == {"code": "KGM", "name": "kilogramo"}
    assert data["customer"]["municipality"]["code"] == "68679"
    assert isinstance(data["errors"], dict)


def test_the_same_reference_twice_gives_the_same_document_validated_once(
    v2_api: httpx.Client, sandbox_clean: SandboxServer
):
    first = v2_api.post("/v2/bills/validate", json=v2_bill("V2-TWICE")).json()["data"]
    second = v2_api.post("/v2/bills/validate", json=v2_bill("V2-TWICE"))

    assert second.status_code == 201
    assert second.json()["data"]["number"] == first["number"]
    counters = sandbox_clean.account_stats()["validations_by_reference"]["bill"]
    assert counters == {"V2-TWICE": 1}


def test_the_reference_lookup_lists_the_bill_without_cufe_then_show_gives_it(
    v2_api: httpx.Client,
):
    number = v2_api.post("/v2/bills/validate", json=v2_bill("V2-LOOK")).json()["data"]["number"]

    rows = v2_api.get("/v2/bills", params={"filter[reference_code]": "V2-LOOK"}).json()["data"]
    shown = v2_api.get(f"/v2/bills/{number}")

    row = rows["data"][0]
    assert (row["number"], row["reference_code"], row["is_validated"], row["total"]) == (
        number,
        "V2-LOOK",
        True,
        "17850.00",
    )
    assert "cufe" not in row
    assert "links" not in row
    assert isinstance(row["errors"], dict)
    assert shown.status_code == 200
    assert shown.json()["data"]["cufe"]
    assert v2_api.get("/v2/bills/SETP1").status_code == 404


def test_payload_errors_are_laravel_422s_on_v2_field_names(v2_api: httpx.Client):
    body = v2_bill("V2-BAD", cash_rounding_amount="600")
    body["items"][0]["quantity"] = "1.505"

    response = v2_api.post("/v2/bills/validate", json=body)

    assert response.status_code == 422
    assert {"items.0.quantity", "cash_rounding_amount"} <= set(response.json()["errors"])


def test_a_document_is_readable_through_both_versions(v2_api: httpx.Client):
    # Given a bill created through v1 and one created through v2, on an account with both
    v1_bill = create_bill(v2_api, "V1-BOTH")
    v2_number = v2_api.post("/v2/bills/validate", json=v2_bill("V2-BOTH")).json()["data"]["number"]

    # When each is read through the other version
    v1_via_v2 = v2_api.get(f"/v2/bills/{v1_bill['number']}").json()["data"]
    v2_via_v1 = v2_api.get(f"/v1/bills/show/{v2_number}").json()["data"]

    # Then the numbers and totals agree
    assert v1_via_v2["totals"]["total"] == v1_bill["total"]
    assert v1_via_v2["cufe"] == v1_bill["cufe"]
    assert v2_via_v1["bill"]["total"] == "17850.00"
    assert v2_via_v1["items"][0]["quantity"] == 1.5


def test_a_v2_only_account_gets_403_on_v1_and_a_v1_only_one_on_v2(sandbox_clean: SandboxServer):
    sandbox_clean.add_account(**V2_ONLY, mode="v2")
    sandbox_clean.add_account(**V1_ONLY, mode="v1")

    with (
        client_for(sandbox_clean.base_url, **V2_ONLY) as v2,
        client_for(sandbox_clean.base_url, **V1_ONLY) as v1,
    ):
        v2_on_v1 = v2.get("/v1/bills", params={"filter[reference_code]": "X"})
        v2_on_v2 = v2.post("/v2/bills/validate", json=v2_bill("ONLY-2"))
        v1_on_v2 = v1.get("/v2/bills")
        v1_on_v1 = v1.post("/v1/bills/validate", json=v1_bill("ONLY-1"))

    assert (v2_on_v1.status_code, v2_on_v1.json()["status"]) == (403, "Forbidden")
    assert v2_on_v2.status_code == 201
    assert v1_on_v2.status_code == 403
    assert "v2" in v1_on_v2.json()["message"]
    assert v1_on_v1.status_code == 201


def test_a_pending_v2_bill_blocks_new_bills_on_both_versions_with_409(
    v2_api: httpx.Client, sandbox_clean: SandboxServer
):
    sandbox_clean.set_faults(dian_slow=1.0)
    pending = v2_api.post("/v2/bills/validate", json=v2_bill("V2-SLOW")).json()["data"]
    sandbox_clean.set_faults(dian_slow=0.0)

    blocked_v2 = v2_api.post("/v2/bills/validate", json=v2_bill("V2-NEXT"))
    blocked_v1 = v2_api.post("/v1/bills/validate", json=v1_bill("V1-NEXT"))
    listed = v2_api.get("/v2/bills", params={"filter[status]": "0"}).json()["data"]["data"]

    assert pending["is_validated"] is False
    assert pending["validated_at"] is None
    assert blocked_v2.status_code == 409
    assert blocked_v2.json()["errors"][0]["api_version"] == "v2"
    assert "pendiente por enviar a la DIAN" in blocked_v2.json()["errors"][0]["message"]
    assert blocked_v1.status_code == 409
    assert [row["reference_code"] for row in listed] == ["V2-SLOW"]
    # The resend with the same reference validates it (manejo-errores "demora de la DIAN")
    resend = v2_api.post("/v2/bills/validate", json=v2_bill("V2-SLOW")).json()["data"]
    assert resend["is_validated"] is True
    assert resend["number"] == pending["number"]


def test_a_dian_rejection_is_a_422_with_rule_texts_and_can_be_deleted(
    v2_api: httpx.Client, sandbox_clean: SandboxServer
):
    sandbox_clean.set_faults(dian_rejection=1.0)
    rejected = v2_api.post("/v2/bills/validate", json=v2_bill("V2-REJ"))
    sandbox_clean.set_faults(dian_rejection=0.0)

    assert rejected.status_code == 422
    assert any("Rechazo" in e for e in rejected.json()["data"]["errors"])
    deleted = v2_api.delete("/v2/bills/destroy/reference/V2-REJ")
    assert deleted.status_code == 200
    assert v2_api.post("/v2/bills/validate", json=v2_bill("V2-AFTER")).status_code == 201


def test_transport_faults_apply_to_v2(v2_api: httpx.Client, sandbox_clean: SandboxServer):
    sandbox_clean.set_faults(error_503=1.0)

    unavailable = v2_api.get("/v2/bills")

    assert unavailable.status_code == 503


def test_v1_and_v2_calls_share_the_account_quota(sandbox_clean: SandboxServer):
    # Given a limit of 4 requests a minute (the token call is the first)
    sandbox_clean.set_faults(rate_limit_per_minute=4)
    with client_for(sandbox_clean.base_url) as client:
        # When the account alternates v1 and v2 calls
        client.get("/v1/bills")
        client.get("/v2/bills")
        fourth = client.get("/v1/bills")
        fifth = client.get("/v2/bills")

    # Then both versions draw from the same quota
    assert fourth.status_code == 200
    assert fourth.headers["X-RateLimit-Remaining"] == "0"
    assert fifth.status_code == 429
    assert "Retry-After" in fifth.headers


def test_a_v2_credit_note_has_a_cude_and_its_own_reads(v2_api: httpx.Client):
    bill = v2_api.post("/v2/bills/validate", json=v2_bill("V2-CN-BILL")).json()["data"]

    created = v2_api.post("/v2/credit-notes/validate", json=v2_credit_note("V2-CN", bill["number"]))
    unknown_bill = v2_api.post("/v2/credit-notes/validate", json=v2_credit_note("V2-CN-X", "SETP1"))

    assert created.status_code == 201, created.text
    note = created.json()["data"]
    assert re.fullmatch(r"[0-9a-f]{96}", note["cude"])
    assert "cufe" not in note
    assert note["bill_number"] == bill["number"]
    assert unknown_bill.status_code == 422
    assert "bill_number" in unknown_bill.json()["errors"]
    number = note["number"]
    assert v2_api.get(f"/v2/credit-notes/{number}").json()["data"]["cude"] == note["cude"]
    listed = v2_api.get("/v2/credit-notes", params={"filter[reference_code]": "V2-CN"})
    assert listed.json()["data"]["data"][0]["bill_number"] == bill["number"]
    for what in ("download-pdf", "download-xml", "download-attached-document-xml"):
        assert v2_api.get(f"/v2/credit-notes/{number}/{what}").status_code == 200
    shown_bill = v2_api.get(f"/v2/bills/{bill['number']}").json()["data"]
    assert shown_bill["related_notes"]["credit_notes"][0]["number"] == number
    assert v2_api.delete("/v2/credit-notes/reference/V2-CN").status_code == 409  # validated


def test_v2_downloads_and_email(v2_api: httpx.Client):
    number = v2_api.post("/v2/bills/validate", json=v2_bill("V2-DL")).json()["data"]["number"]

    pdf = v2_api.get(f"/v2/bills/{number}/download-pdf").json()["data"]
    attached = v2_api.get(f"/v2/bills/{number}/download-attached-document-xml").json()["data"]
    without_address = v2_api.post(f"/v2/bills/{number}/send-email", json={})
    sent = v2_api.post(f"/v2/bills/{number}/send-email", json={"email": "a@example.com"})

    assert pdf["pdf_base_64_encoded"]
    assert pdf["file_name"].startswith("fv")
    assert attached["xml_base_64_encoded"]
    assert attached["file_name"].startswith("ad")
    assert without_address.status_code == 422
    assert "email" in without_address.json()["errors"]
    assert sent.status_code == 200


def test_ranges_must_be_created_from_dian_before_use(sandbox_clean: SandboxServer):
    # Given a v2 account whose company associated its ranges at DIAN but not in Factus
    sandbox_clean.add_account(**V2_ONLY, mode="v2", ranges_registered=False)
    with client_for(sandbox_clean.base_url, **V2_ONLY) as client:
        body = v2_bill("V2-RANGE")
        del body["numbering_range_id"]
        before = client.post("/v2/bills/validate", json=body)
        dian = client.get("/v2/numbering-ranges/dian").json()["data"]
        setp = next(r for r in dian if r["prefix"] == "SETP")

        # When the operator creates the invoice range from DIAN and a credit-note range
        invoice = client.post(
            "/v2/numbering-ranges",
            json={
                "document": "21",
                "prefix": "SETP",
                "resolution_number": setp["resolution_number"],
                "current": setp["from"],
            },
        )
        notes = client.post(
            "/v2/numbering-ranges", json={"document": "22", "prefix": "NC", "current": 1}
        )
        unknown = client.post(
            "/v2/numbering-ranges",
            json={"document": "21", "prefix": "FE", "resolution_number": "1", "current": 1},
        )
        after = client.post("/v2/bills/validate", json=body)
        listed = client.get("/v2/numbering-ranges").json()["data"]["data"]

    # Then the bill is refused before and numbered from the created range after
    assert before.status_code == 422
    assert "numbering_range_id" in before.json()["errors"]
    assert invoice.status_code == 201
    assert notes.status_code == 201
    assert notes.json()["data"]["resolution_number"] is None
    assert unknown.status_code == 422
    assert after.status_code == 201, after.text
    assert after.json()["data"]["number"].startswith("SETP")
    assert {r["prefix"] for r in listed} == {"SETP", "NC"}


def test_v1_bills_carry_public_url_and_send_email_0_when_omitted(v2_api: httpx.Client):
    body = v1_bill("V1-PUB")
    del body["send_email"]

    bill = v2_api.post("/v1/bills/validate", json=body).json()["data"]["bill"]

    assert bill["send_email"] == 0
    assert bill["public_url"].startswith("https://app-sandbox.factus.com.co/documents/bills/")


def test_v1_send_email_requires_the_address(v2_api: httpx.Client):
    bill = create_bill(v2_api, "V1-MAIL")

    response = v2_api.post(f"/v1/bills/send-email/{bill['number']}", json={})

    assert response.status_code == 422
    assert "email" in response.json()["errors"]


@pytest.mark.parametrize(
    ("code", "name"),
    [("GRM", "gramo"), ("DZN", "docena"), ("BX", "caja"), ("LTR", "litro"), ("DAY", "día")],
)
def test_a_v2_bill_in_any_unit_of_factus_table_is_validated(
    v2_api: httpx.Client, code: str, name: str
):
    # Given a v2 bill whose line is sold in a unit of Factus's unit table (unit-measures page,
    # einvoice/data/unit_measures.csv), common or not
    body = v2_bill(f"V2-UNIT-{code}")
    body["items"][0]["unit_measure_code"] = code

    # When it is validated
    response = v2_api.post("/v2/bills/validate", json=body)

    # Then it is accepted and the line names the unit as Factus spells it
    assert response.status_code == 201, response.text
    assert response.json()["data"]["items"][0]["unit_measure"] == {"code": code, "name": name}


def test_a_v2_bill_in_a_unit_outside_factus_table_is_a_422_on_that_field(v2_api: httpx.Client):
    # Given a v2 bill whose second line's unit is no code of Factus's table
    body = v2_bill("V2-UNIT-BAD")
    body["items"].append({**copy.deepcopy(LINE), "unit_measure_code": "XYZ"})

    # When it is validated
    response = v2_api.post("/v2/bills/validate", json=body)

    # Then it is refused, naming that line's field, and no number was used
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["items.1.unit_measure_code"]
    assert v2_api.get("/v2/bills", params={"filter[reference_code]": "V2-UNIT-BAD"}).json()[
        "data"]["data"] == []
