"""Credit notes over HTTP (FACTUS_API.md §7.1): creation against a validated bill, the cap on the
credited total, reads, downloads, delete, e-mail."""

from __future__ import annotations

import base64
import re

import httpx

from einvoice.sandbox.server import SandboxServer
from tests.fixtures.payloads import nit_customer, v1_bill, v1_credit_note
from tests.integration.sandbox.sandbox_http import client_for, create_bill


def test_a_credit_note_for_a_validated_bill_gets_an_nc_number_a_cude_and_the_bill_reference(
    api: httpx.Client,
):
    # Given a validated bill of 47600 COP
    bill = create_bill(api, "CN-BILL-1")

    # When one of its two coffees is credited
    response = api.post("/v1/credit-notes/validate", json=v1_credit_note("CN-1", bill["id"]))

    # Then the note is validated, numbered in the NC range and tied to the bill
    assert response.status_code == 201
    note = response.json()["data"]["credit_note"]
    assert re.fullmatch(r"NC\d+", note["number"])
    assert note["status"] == 1
    assert re.fullmatch(r"[0-9a-f]{96}", note["cude"])
    assert note["cude"] != bill["cufe"]
    assert (note["bill_id"], note["number_bill"], note["cufe"]) == (
        bill["id"],
        bill["number"],
        bill["cufe"],
    )
    assert (note["taxable_amount"], note["tax_amount"], note["total"]) == (
        "20000.00",
        "3800.00",
        "23800.00",
    )
    assert note["correction_concept"]["code"] == "1"
    assert note["customization_id"]["code"] == "20"
    # the bill's customer is used when the note names none
    assert response.json()["data"]["customer"]["identification"] == "1020304050"
    shown_bill = api.get(f"/v1/bills/show/{bill['number']}").json()["data"]
    assert shown_bill["credit_notes"] == [{"id": note["id"], "number": note["number"]}]


def test_the_credited_total_of_a_bill_can_never_exceed_the_bill_total(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    bill = create_bill(api, "CAP-BILL")  # 47600.00
    assert (
        api.post(
            "/v1/credit-notes/validate", json=v1_credit_note("CAP-1", bill["id"])
        ).status_code
        == 201
    )

    # 23800 already credited: another 23800 reaches the total exactly, one peso more would exceed it
    too_much = api.post(
        "/v1/credit-notes/validate", json=v1_credit_note("CAP-2", bill["id"], price=23801)
    )
    exact = api.post("/v1/credit-notes/validate", json=v1_credit_note("CAP-3", bill["id"]))
    beyond = api.post(
        "/v1/credit-notes/validate", json=v1_credit_note("CAP-4", bill["id"], price=1)
    )

    assert too_much.status_code == 422
    assert list(too_much.json()["errors"]) == ["bill_id"]
    assert exact.status_code == 201
    assert beyond.status_code == 422
    assert sandbox_clean.account_stats()["documents_stored"]["credit_note"] == 2


def test_a_credit_note_needs_a_validated_bill_of_the_same_account(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    api.post("/v1/bills/validate", json=v1_bill("REJECTED", customer=nit_customer(dv="1")))
    rejected_id = api.get("/v1/bills", params={"filter[status]": "0"}).json()["data"]["data"][0][
        "id"
    ]
    sandbox_clean.add_account("cn-client", "cn-secret", "cn@einvoice.test", "pw")
    with client_for(
        sandbox_clean.base_url,
        client_id="cn-client",
        client_secret="cn-secret",
        username="cn@einvoice.test",
        password="pw",
    ) as other:
        foreign_id = create_bill(other, "FOREIGN")["id"]

    for bill_id in (999999, rejected_id, foreign_id):
        response = api.post(
            "/v1/credit-notes/validate", json=v1_credit_note(f"CN-{bill_id}", bill_id)
        )

        assert response.status_code == 422
        assert response.json()["errors"] == {"bill_id": ["La factura seleccionada no existe."]}


def test_a_credit_note_must_use_a_credit_note_range(api: httpx.Client):
    bill = create_bill(api, "RANGE-BILL")

    response = api.post(
        "/v1/credit-notes/validate", json=v1_credit_note("CN-R", bill["id"], numbering_range_id=8)
    )

    assert response.status_code == 422
    assert response.json()["errors"] == {
        "numbering_range_id": ["El campo id rango de numeración es inválido."]
    }


def test_resending_a_credit_note_reference_returns_the_same_note(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    bill = create_bill(api, "CN-IDEM-BILL")
    first = api.post(
        "/v1/credit-notes/validate", json=v1_credit_note("CN-IDEM", bill["id"])
    ).json()

    again = api.post("/v1/credit-notes/validate", json=v1_credit_note("CN-IDEM", bill["id"]))

    assert again.status_code == 201
    assert again.json()["data"]["credit_note"]["number"] == first["data"]["credit_note"]["number"]
    assert sandbox_clean.account_stats()["validations_by_reference"]["credit_note"] == {
        "CN-IDEM": 1
    }


def test_a_rejected_credit_note_blocks_credit_notes_only_until_deleted(api: httpx.Client):
    bill = create_bill(api, "CN-BLOCK-BILL")
    rejected = api.post(
        "/v1/credit-notes/validate",
        json=v1_credit_note("CN-BAD", bill["id"], customer=nit_customer(dv="2")),
    )
    assert rejected.status_code == 422
    assert "FAK24" in rejected.json()["data"]["errors"]

    blocked = api.post("/v1/credit-notes/validate", json=v1_credit_note("CN-NEXT", bill["id"]))
    bills_still_work = api.post("/v1/bills/validate", json=v1_bill("BILL-WHILE-CN-BLOCKED"))
    deleted = api.delete("/v1/credit-notes/reference/CN-BAD")
    unblocked = api.post("/v1/credit-notes/validate", json=v1_credit_note("CN-NEXT", bill["id"]))

    assert blocked.status_code == 409
    assert (
        blocked.json()["errors"][0]["message"]
        == "Se encontró una nota crédito pendiente por enviar a la DIAN"
    )
    assert bills_still_work.status_code == 201
    assert deleted.status_code == 200
    assert unblocked.status_code == 201


def test_credit_note_reads_downloads_delete_and_email(api: httpx.Client):
    bill = create_bill(api, "CN-READ-BILL")
    note = api.post(
        "/v1/credit-notes/validate", json=v1_credit_note("CN-READ", bill["id"])
    ).json()
    number = note["data"]["credit_note"]["number"]

    listed = api.get("/v1/credit-notes", params={"filter[reference_code]": "CN-READ"}).json()[
        "data"
    ]
    shown = api.get(f"/v1/credit-notes/{number}")
    pdf = api.get(f"/v1/credit-notes/download-pdf/{number}").json()["data"]
    xml = api.get(f"/v1/credit-notes/download-xml/{number}").json()["data"]
    emailed = api.post(f"/v1/credit-notes/send-email/{number}", json={"email": "a@b.co"})
    delete_validated = api.delete("/v1/credit-notes/reference/CN-READ")

    assert [row["number"] for row in listed["data"]] == [number]
    assert shown.status_code == 200
    assert shown.json()["data"]["credit_note"]["reference_code"] == "CN-READ"
    assert pdf["file_name"].startswith("nc0901724254")
    assert base64.b64decode(pdf["pdf_base_64_encoded"]).startswith(b"%PDF")
    assert b"CreditNote" in base64.b64decode(xml["xml_base_64_encoded"])
    assert emailed.status_code == 200
    assert delete_validated.status_code == 409
    assert api.get("/v1/credit-notes/NC0").status_code == 404
    assert api.delete("/v1/credit-notes/reference/NOPE").status_code == 404


def test_a_credit_note_without_bill_needs_a_billing_period_and_a_customer(api: httpx.Client):
    body = v1_credit_note("CN-22", 0, customization_id=22)
    del body["bill_id"]
    missing = api.post("/v1/credit-notes/validate", json=body)
    body["billing_period"] = {
        "start_date": "2026-01-01",
        "end_date": "2026-01-31",
        "end_time": "23:59:59",
    }
    body["customer"] = v1_bill("x")["customer"]

    response = api.post("/v1/credit-notes/validate", json=body)

    assert missing.status_code == 422
    assert set(missing.json()["errors"]) == {
        "billing_period",
        "customer",
    }
    assert response.status_code == 201
    note = response.json()["data"]["credit_note"]
    assert note["bill_id"] is None
    assert any(error.startswith("Regla: CBF02") for error in note["errors"])
