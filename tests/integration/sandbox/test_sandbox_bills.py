"""Bills over HTTP: create, idempotent resend, DIAN rejection and the 409 block, reads, downloads,
delete and e-mail (FACTUS_API.md §3-§6, §9, §11.3-§11.5)."""

from __future__ import annotations

import base64
import re
from xml.etree import ElementTree as ET

import httpx

from einvoice.sandbox.server import SandboxServer
from tests.fixtures.payloads import nit_customer, v1_bill
from tests.integration.sandbox.sandbox_http import create_bill, invoice_range_current


def test_a_valid_bill_is_validated_with_the_contract_amounts_number_cufe_and_qr(api: httpx.Client):
    # Given the SETP range's next consecutive
    current = invoice_range_current(api)

    # When the §3.6 example is sent
    response = api.post("/v1/bills/validate", json=v1_bill("POS-2025-000731"))

    # Then it is created and validated, shaped and computed as §4.3 says
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "Created"
    assert body["message"] == (
        "Documento con el código de referencia POS-2025-000731 registrado y validado con éxito"
    )
    bill = body["data"]["bill"]
    assert bill["number"] == f"SETP{current}"
    assert bill["status"] == 1
    assert (bill["gross_value"], bill["taxable_amount"], bill["tax_amount"], bill["total"]) == (
        "40000.00",
        "40000.00",
        "7600.00",
        "47600.00",
    )
    assert re.fullmatch(r"[0-9a-f]{96}", bill["cufe"])
    assert (
        bill["qr"]
        == f"https://catalogo-vpfe-hab.dian.gov.co/document/searchqr?documentkey={bill['cufe']}"
    )
    assert bill["qr_image"].startswith("data:image/png;base64, ")
    assert base64.b64decode(bill["qr_image"].split(", ", 1)[1])[:4] == b"\x89PNG"
    assert re.fullmatch(r"\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2} [AP]M", bill["validated"])
    assert bill["payment_form"] == {"code": "1", "name": "Pago de contado"}
    item = body["data"]["items"][0]
    assert (item["total"], item["taxable_amount"], item["price"]) == (47600, "40000.00", "23800.00")
    assert body["data"]["customer"]["municipality"] == {
        "id": 980,
        "code": "68679",
        "name": "San Gil",
    }
    assert body["data"]["numbering_range"]["start_date"] == "19-01-2019"
    assert invoice_range_current(api) == current + 1


def test_payload_errors_are_a_laravel_422_and_store_nothing(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    body = v1_bill("BAD-1")
    body["items"][0]["quantity"] = 1.5
    body["customer"]["tribute_id"] = 22

    response = api.post("/v1/bills/validate", json=body)

    assert response.status_code == 422
    assert response.json() == {
        "message": "El campo customer.tribute_id es inválido. (and 1 more error)",
        "errors": {
            "customer.tribute_id": ["El campo customer.tribute_id es inválido."],
            "items.0.quantity": ["El campo items.0.quantity debe ser un número entero."],
        },
    }
    assert sandbox_clean.account_stats()["documents_stored"]["bill"] == 0


def test_numbering_ranges_must_exist_be_for_invoices_active_unexpired_and_not_exhausted(
    api: httpx.Client,
):
    expectations = {
        999: "El campo id rango de numeración es inválido.",  # unknown
        9: "El campo id rango de numeración es inválido.",  # a credit-note range
        12: "El rango de numeración seleccionado se encuentra vencido.",
        13: "El rango de numeración seleccionado no tiene consecutivos disponibles.",
        14: "El rango de numeración seleccionado no está activo.",
    }
    for range_id, message in expectations.items():
        response = api.post(
            "/v1/bills/validate", json=v1_bill(f"R-{range_id}", numbering_range_id=range_id)
        )

        assert response.status_code == 422, range_id
        assert response.json()["errors"] == {"numbering_range_id": [message]}


def test_the_range_may_be_omitted_when_the_account_has_one_usable_invoice_range(api: httpx.Client):
    body = v1_bill("NO-RANGE")
    del body["numbering_range_id"]

    response = api.post("/v1/bills/validate", json=body)

    assert response.status_code == 201
    assert response.json()["data"]["bill"]["number"].startswith("SETP")


def test_resending_a_validated_reference_returns_the_same_document_without_a_new_number(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    first = create_bill(api, "IDEM-1")
    current = invoice_range_current(api)

    again = api.post("/v1/bills/validate", json=v1_bill("IDEM-1"))

    assert again.status_code == 201
    assert again.json()["data"]["bill"]["number"] == first["number"]
    assert again.json()["data"]["bill"]["cufe"] == first["cufe"]
    assert invoice_range_current(api) == current
    stats = sandbox_clean.account_stats()
    assert stats["validations_by_reference"]["bill"] == {"IDEM-1": 1}
    assert stats["validate_posts"]["bill"] == 2
    assert stats["documents_stored"]["bill"] == 1


def test_a_wrong_nit_dv_is_a_dian_fak24_rejection_that_is_stored_and_blocks_the_account(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    # Given a NIT customer whose DV is wrong (900825759 has DV 7)
    current = invoice_range_current(api)

    # When it is sent
    response = api.post(
        "/v1/bills/validate", json=v1_bill("DV-BAD", customer=nit_customer(dv="3"))
    )

    # Then DIAN rejects it with rule FAK24, in the §5.4 shape
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "Validation error"
    assert list(body["data"]["errors"]) == ["FAK24"]
    assert body["data"]["errors"]["FAK24"].startswith("Regla: FAK24, Rechazo:")
    # and the document is stored with status 0, having used a number
    assert invoice_range_current(api) == current + 1
    pending = api.get("/v1/bills", params={"filter[status]": "0"}).json()["data"]["data"]
    assert [(row["reference_code"], row["status"]) for row in pending] == [("DV-BAD", 0)]
    assert "Rechazo" in pending[0]["errors"][0]
    # and every new bill is refused with the §5.3 409 until it is deleted
    blocked = api.post("/v1/bills/validate", json=v1_bill("NEXT-1"))
    assert blocked.status_code == 409
    assert (
        blocked.json()["errors"][0]["message"]
        == "Se encontró una factura pendiente por enviar a la DIAN"
    )
    assert (
        api.post(
            "/v1/bills/validate", json=v1_bill("DV-BAD", customer=nit_customer())
        ).status_code
        == 409
    )

    deleted = api.delete("/v1/bills/destroy/reference/DV-BAD")

    assert deleted.status_code == 200
    assert deleted.json() == {
        "status": "OK",
        "message": "Documento con código de referencia DV-BAD eliminado con éxito",
    }
    assert api.post("/v1/bills/validate", json=v1_bill("NEXT-1")).status_code == 201
    assert sandbox_clean.account_stats()["validations_by_reference"]["bill"] == {"NEXT-1": 1}


def test_a_nit_customer_without_dv_gets_it_computed_and_a_rut_notification(api: httpx.Client):
    response = api.post(
        "/v1/bills/validate", json=v1_bill("NIT-OK", customer=nit_customer(dv=None))
    )

    assert response.status_code == 201
    data = response.json()["data"]
    assert data["customer"]["dv"] == "7"
    assert data["bill"]["status"] == 1
    assert data["bill"]["errors"] == [
        (
            "Regla: FAJ43b, Notificación: Nombre informado No corresponde al registrado en el RUT con respecto "
            "al Nit suministrado."
        )
    ]


def test_delete_is_404_for_an_unknown_reference_and_409_for_a_validated_bill(api: httpx.Client):
    create_bill(api, "KEEP-1")

    unknown = api.delete("/v1/bills/destroy/reference/NOPE")
    validated = api.delete("/v1/bills/destroy/reference/KEEP-1")

    assert unknown.status_code == 404
    assert unknown.json()["message"] == "No se encontró el documento con código de referencia NOPE"
    assert validated.status_code == 409
    assert (
        validated.json()["message"]
        == "Documento con código de referencia KEEP-1 se encuentra validado"
    )


def test_show_returns_the_validate_shape_and_404_for_an_unknown_number(api: httpx.Client):
    bill = create_bill(api, "SHOW-1")

    shown = api.get(f"/v1/bills/show/{bill['number']}")
    missing = api.get("/v1/bills/show/SETP1")

    assert shown.status_code == 200
    assert shown.json()["status"] == "OK"
    assert shown.json()["data"]["bill"]["cufe"] == bill["cufe"]
    assert shown.json()["data"]["bill"]["qr_image"] == bill["qr_image"]
    assert missing.status_code == 404
    assert missing.json() == {"status": "Not Found", "message": "No se encontró el documento SETP1"}


def test_the_list_is_paginated_by_10_newest_first_with_filters(api: httpx.Client):
    numbers = [create_bill(api, f"LIST-{i:02d}")["number"] for i in range(12)]
    create_bill(
        api,
        "OTHER-1",
        customer={**v1_bill("x")["customer"], "names": "Pedro Páramo", "identification": "555"},
    )

    first = api.get("/v1/bills").json()["data"]
    second = api.get("/v1/bills", params={"page": 2}).json()["data"]
    past_end = api.get("/v1/bills", params={"page": 9}).json()["data"]
    by_ref = api.get("/v1/bills", params={"filter[reference_code]": "LIST-03"}).json()["data"]
    by_name = api.get("/v1/bills", params={"filter[names]": "paramo"}).json()["data"]
    by_id = api.get("/v1/bills", params={"filter[identification]": "555"}).json()["data"]
    big_page = api.get("/v1/bills", params={"per_page": 20}).json()["data"]
    filter_page = api.get("/v1/bills", params={"filter[per_page]": 5}).json()["data"]

    assert first["pagination"]["total"] == 13
    assert first["pagination"]["last_page"] == 2
    assert len(first["data"]) == 10
    assert len(second["data"]) == 3
    assert first["data"][0]["reference_code"] == "OTHER-1"
    assert second["data"][-1]["number"] == numbers[0]
    assert "cufe" not in first["data"][0]
    assert first["pagination"]["links"][0]["label"] == "&laquo; Anterior"
    assert first["pagination"]["links"][-1]["label"] == "Siguiente &raquo;"
    assert first["pagination"]["links"][-1]["url"].endswith("/v1/bills?page=2")
    assert past_end["data"] == []
    assert [r["reference_code"] for r in by_ref["data"]] == ["LIST-03"]
    assert [r["reference_code"] for r in by_name["data"]] == ["OTHER-1"]
    assert [r["reference_code"] for r in by_id["data"]] == ["OTHER-1"]
    assert len(big_page["data"]) == 13
    assert len(filter_page["data"]) == 5


def test_pdf_and_xml_downloads_are_base64_with_the_dian_file_name(api: httpx.Client):
    bill = create_bill(api, "DL-1")

    pdf = api.get(f"/v1/bills/download-pdf/{bill['number']}").json()["data"]
    xml = api.get(f"/v1/bills/download-xml/{bill['number']}").json()["data"]

    assert re.fullmatch(r"fv0901724254000\d{2}\d{8}", pdf["file_name"])
    assert xml["file_name"] == pdf["file_name"]
    assert base64.b64decode(pdf["pdf_base_64_encoded"]).startswith(b"%PDF-1.4")
    root = ET.fromstring(base64.b64decode(xml["xml_base_64_encoded"]))  # noqa: S314 - simulator's
    assert any(element.text == bill["cufe"] for element in root.iter())


def test_downloads_of_an_unknown_or_unvalidated_bill_are_404_and_409(api: httpx.Client):
    api.post("/v1/bills/validate", json=v1_bill("DL-REJ", customer=nit_customer(dv="0")))
    number = api.get("/v1/bills", params={"filter[reference_code]": "DL-REJ"}).json()["data"][
        "data"
    ][0]["number"]

    pdf = api.get(f"/v1/bills/download-pdf/{number}")
    xml = api.get(f"/v1/bills/download-xml/{number}")

    assert api.get("/v1/bills/download-pdf/SETP1").status_code == 404
    assert (pdf.status_code, pdf.json()["message"]) == (
        409,
        f"El documento {number} no ha sido validado",
    )
    assert (xml.status_code, xml.json()["message"]) == (409, "La factura no ha sido validada")


def test_a_bill_can_be_emailed_twice_a_day_and_no_more(api: httpx.Client):
    bill = create_bill(api, "MAIL-1")
    path = f"/v1/bills/send-email/{bill['number']}"

    first = api.post(path, json={"email": "maria@example.com"})
    second = api.post(path, json={"email": "otra@example.com"})
    third = api.post(path, json={"email": "maria@example.com"})

    assert (first.status_code, first.json()["message"]) == (
        200,
        "Factura enviada al cliente con éxito",
    )
    assert second.status_code == 200
    assert third.status_code == 409
    assert api.post("/v1/bills/send-email/SETP1", json={"email": "a@b.co"}).status_code == 404


def test_an_establishment_is_echoed_with_municipality_and_department_as_in_doc1(api: httpx.Client):
    establishment = {
        "name": "SuperMarket",
        "address": "calle 10 # 3-13",
        "phone_number": "0987654321",
        "email": "tienda@example.com",
        "municipality_id": 996,
    }

    response = api.post("/v1/bills/validate", json=v1_bill("EST-1", establishment=establishment))

    assert response.status_code == 201
    assert response.json()["data"]["establishment"]["municipality_id"] == {
        "id": 996,
        "code": "68872",
        "name": "Villanueva",
        "department": {"id": 28, "code": "68", "name": "Santander"},
    }
