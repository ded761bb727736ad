"""The client speaking Factus API v2 against a scripted Factus (httpx.MockTransport): the v2
answer and error shapes the simulator does not produce (DIAN rules keyed by rule, a rejection
inside a 201, a 403 without a version in its words, rows without ids), the v2 paths and list
parameters, and the v2 answers parsed into the same typed results as v1.

Sources: factus-docs/v2 (``facturas/crear-y-validar`` "Respuesta", ``facturas/listar-y-filtrar``,
``manejo-errores``, ``limite-de-request``, ``rangos-de-numeracion/*``) and FACTUS_API.md §10.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
from factus_double import (
    BASE_URL,
    CLIENT_SECRET,
    CUFE,
    PASSWORD,
    ScriptedFactus,
    answer,
    list_body,
    request_json,
    v2_bill_body,
)
from pydantic import SecretStr

from einvoice.factus import v2
from einvoice.factus.client import FactusClient
from einvoice.factus.errors import (
    ApiVersionNotEnabled,
    DianRejectionError,
    ForbiddenError,
    PayloadValidationError,
    error_from_response,
)
from einvoice.factus.schemas import BillResult, CreditNoteResult
from einvoice.factus.tokens import FactusAccount

MakeClient = Callable[..., FactusClient]
VALIDATE = ("POST", "/v2/bills/validate")
#: A v2 body as the v2 body mapper hands it over: Decimal amounts, v2 field names.
V2_PAYLOAD = {
    "reference_code": "FACT-2026-0124",
    "payment_details": [{"payment_form": "1", "payment_method_code": "42",
                         "amount": Decimal("83300.00")}],
    "customer": {"identification_document_code": "31", "identification": "123456789"},
    "items": [{"code_reference": "PROD-000A", "quantity": Decimal("1.50"),
               "price": Decimal("10000.00"), "taxes": [{"code": "01", "rate": "19.00"}]}],
}


@pytest.fixture
def account() -> FactusAccount:
    """The unit tests' account, speaking v2 (overrides the conftest's v1 one)."""
    return FactusAccount(
        key="default",
        environment="sandbox",
        base_url=BASE_URL,
        client_id="client-id-1",
        client_secret=SecretStr(CLIENT_SECRET),
        username="user@einvoice.test",
        password=SecretStr(PASSWORD),
        api_version="v2",
    )


def _response(status: int, body: object, path: str = "/v2/bills/validate", **headers: str
              ) -> httpx.Response:
    request = httpx.Request("POST", f"{BASE_URL}{path}")
    return httpx.Response(status, json=body, headers=headers, request=request)


# --- results ------------------------------------------------------------------------------------


def test_a_validated_v2_bill_parses_into_the_same_result_as_v1(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    # Given Factus v2 answers with its flat document (crear-y-validar "Respuesta")
    factus.on(*VALIDATE, answer(201, v2_bill_body()))

    # When a v2 body with Decimal amounts is validated
    bill = make_client().validate_bill(V2_PAYLOAD)

    # Then it went to the v2 path with the amounts as exact strings (v2 documents strings)
    sent = factus.api_requests()[0]
    assert sent.url.path == "/v2/bills/validate"
    body = request_json(sent)
    assert body["items"][0]["quantity"] == "1.50"
    assert body["payment_details"][0]["amount"] == "83300.00"
    # and the answer is the neutral BillResult services know
    assert isinstance(bill, BillResult)
    assert bill.is_validated
    assert bill.status == 1
    assert bill.cufe == CUFE
    assert bill.number == "SETP990000550"
    assert bill.reference_code == "FACT-2026-0124"
    # "08-10-2026 09:23:26 PM" is Bogotá time (UTC-5): 02:23:26 UTC the next day
    assert bill.validated_at == datetime(2026, 10, 9, 2, 23, 26, tzinfo=UTC)
    assert bill.qr is not None
    assert bill.qr.endswith(CUFE)
    assert bill.public_url == "https://app-sandbox.factus.com.co/documents/bills/abc"
    assert (bill.totals.gross_value, bill.totals.tax_amount, bill.totals.total) == (
        Decimal("70000.00"), Decimal("13300.00"), Decimal("83300.00"))
    assert bill.totals.cash_rounding_amount == Decimal("0.00")
    assert [(r.code, r.kind) for r in bill.errors] == [("FAJ44b", "notification")]
    assert bill.raw["customer"]["identification"] == "123456789"
    # v2 documents carry neither Factus's internal id nor a QR image
    assert bill.id is None
    assert bill.qr_image is None


def test_a_v2_bill_still_at_dian_is_pending_and_a_rejected_one_is_rejected() -> None:
    # manejo-errores v2: is_validated false without "rechazo" = DIAN slow; with it = rejected
    slow = v2.parse_bill(v2_bill_body(is_validated=False, validated_at=None, cufe=None, errors={}))
    rejected = v2.parse_bill(v2_bill_body(
        is_validated=False, validated_at=None,
        errors={"FAJ43b": "Regla: FAJ43b, Rechazo: razón del rechazo"}))

    assert slow.is_pending
    assert not slow.is_validated
    assert slow.validated_at is None
    assert rejected.is_rejected
    assert [r.code for r in rejected.rejections] == ["FAJ43b"]


def test_a_v2_credit_note_keeps_its_cude_and_the_bill_it_corrects() -> None:
    body = v2_bill_body(number="NC1", reference_code="NC-REF", cude="c" * 96,
                        bill_number="SETP990000550", bill_cufe=CUFE)
    del body["data"]["cufe"]
    note = v2.parse_credit_note(body)
    with_cufe_only = v2.parse_credit_note(v2_bill_body(number="NC2"))

    assert isinstance(note, CreditNoteResult)
    assert note.is_validated
    assert (note.cude, note.bill_number, note.bill_cufe) == ("c" * 96, "SETP990000550", CUFE)
    # a "cufe" key is never taken for the note's own code (in v1 it is the bill's)
    assert with_cufe_only.cude is None


# --- lookups and lists --------------------------------------------------------------------------


def test_the_v2_reference_lookup_lists_then_shows_the_exact_match(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    # Given rows as the real v2 sandbox lists them: no id, no CUFE, is_validated, and a
    # partial match (INV-10) besides the exact one
    rows = [
        {"number": "SETP2", "reference_code": "INV-10", "is_validated": True, "total": "1.00",
         "errors": {}, "created_at": "08-10-2026 09:30:00 PM"},
        {"number": "SETP1", "reference_code": "INV-1", "is_validated": False, "total": "47600.00",
         "errors": {}, "created_at": "08-10-2026 09:20:00 PM"},
    ]
    factus.on("GET", "/v2/bills", answer(200, list_body(rows)))
    factus.on("GET", "/v2/bills/SETP1",
              answer(200, v2_bill_body(number="SETP1", reference_code="INV-1")))

    found = make_client().find_bill_by_reference("INV-1")

    assert found is not None
    assert (found.number, found.cufe) == ("SETP1", CUFE)
    lookup = factus.api_requests()[0].url.params
    assert lookup["filter[reference_code]"] == "INV-1"
    assert lookup["filter[per_page]"] == "100"  # v2's page-size parameter
    assert [r.url.path for r in factus.api_requests()] == ["/v2/bills", "/v2/bills/SETP1"]


def test_v2_list_rows_read_is_validated_as_the_status(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on("GET", "/v2/bills", answer(200, list_body([
        {"number": "SETP7", "reference_code": "R-7", "is_validated": False, "total": "10.00",
         "errors": {"FAD06": "Regla: FAD06, Rechazo: CUFE mal calculado"}},
    ])))

    rows = make_client().list_bills(status=0, created_from=date(2026, 10, 1))

    assert [(r.number, r.status, r.is_validated) for r in rows] == [("SETP7", 0, False)]
    assert [rule.code for rule in rows[0].errors] == ["FAD06"]
    params = factus.api_requests()[0].url.params
    assert params["filter[status]"] == "0"
    assert params["filter[created_at][start_date]"] == "2026-10-01"


def test_an_unknown_v2_filter_is_refused_before_any_call(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    with pytest.raises(ValueError, match="refrence_code"):
        make_client().list_bills(refrence_code="INV-1")
    assert factus.requests == []


def test_v2_paths_put_the_number_first(factus: ScriptedFactus, make_client: MakeClient) -> None:
    download = {"data": {"file_name": "ad1", "xml_base_64_encoded": "PGEvPg=="}}
    for path in ("/v2/bills/SETP1/download-pdf", "/v2/bills/SETP1/download-xml",
                 "/v2/credit-notes/NC1/download-attached-document-xml"):
        factus.on("GET", path, answer(200, {"data": {
            "file_name": "f", "pdf_base_64_encoded": "JVBERg==", "xml_base_64_encoded": "PGEvPg=="
        }}))
    factus.on("GET", "/v2/bills/SETP1/download-attached-document-xml", answer(200, download))
    factus.on("POST", "/v2/bills/SETP1/send-email", answer(200, {"message": "Correo enviado"}))
    factus.on("DELETE", "/v2/bills/destroy/reference/A/B", answer(200, {"message": "eliminado"}))
    factus.on("DELETE", "/v2/credit-notes/reference/NC-1", answer(200, {"message": "eliminado"}))
    client = make_client()

    assert client.download_bill_pdf("SETP1").content == b"%PDF"
    assert client.download_bill_xml("SETP1").content == b"<a/>"
    assert client.download_bill_attached_xml("SETP1").file_name == "ad1"
    assert client.download_credit_note_attached_xml("NC1").content == b"<a/>"
    assert client.send_bill_email("SETP1", "a@example.com") == "Correo enviado"
    assert client.delete_bill("A/B") == client.delete_credit_note("NC-1") == "eliminado"
    sent = factus.api_requests()
    assert request_json(sent[4]) == {"email": "a@example.com"}
    # a reference is caller data: quoted, it cannot change the route
    assert sent[5].url.raw_path == b"/v2/bills/destroy/reference/A%2FB"


# --- numbering ranges ---------------------------------------------------------------------------


def test_a_range_is_created_from_what_dian_associated(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    # Given DIAN associated a SETP range (rangos-asociados-al-software: a plain array)
    factus.on("GET", "/v2/numbering-ranges/dian", answer(200, {"status": "OK", "data": [
        {"prefix": "SETP", "from": 990000000, "to": 995000000, "resolution_number": "18760000001",
         "start_date": "2019-01-19", "end_date": "2030-01-19", "technical_key": "fc8eac42"},
    ]}))
    factus.on("POST", "/v2/numbering-ranges", answer(201, {"status": "Created", "data": {
        "id": 15, "document": "21", "document_name": "Factura de Venta", "prefix": "SETP",
        "from": 990000000, "to": 995000000, "current": 990000000,
        "resolution_number": "18760000001", "start_date": "2019-01-19", "end_date": "2030-01-19",
        "technical_key": "fc8eac42", "is_expired": 0, "is_active": 1,
    }}))
    client = make_client()

    # When the operator creates it in Factus
    [setp] = client.dian_numbering_ranges()
    created = client.create_numbering_range(from_dian=setp)

    # Then the body is crear-rango's, and the answer the range documents take
    assert request_json(factus.api_requests()[1]) == {
        "document": "21", "prefix": "SETP", "resolution_number": "18760000001",
        "current": 990000000}
    assert (created.id, created.document, created.document_name) == (15, "21", "Factura de Venta")
    assert created.is_active
    assert not created.is_expired
    assert setp.end_date is not None
    assert setp.end_date.year == 2030


def test_a_malformed_range_is_refused_before_any_call(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    client = make_client()
    with pytest.raises(ValueError, match="prefix"):
        client.create_numbering_range(document="22", prefix="NOTAS", current=1)
    with pytest.raises(ValueError, match="document"):
        client.create_numbering_range(prefix="NC", current=1)
    assert factus.requests == []


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "errors",
    [
        ["Regla: FAK24, Rechazo: No está informado el DV del NIT"],  # v2 production (ERRUTIL)
        {"FAK24": "Regla: FAK24, Rechazo: No está informado el DV del NIT"},  # keyed by rule
    ],
    ids=["array", "object-keyed"],
)
def test_a_v2_dian_rejection_is_a_dian_rejection_in_either_shape(
    factus: ScriptedFactus, make_client: MakeClient, errors: object
) -> None:
    factus.on(*VALIDATE, answer(422, {
        "status": "Validation error", "message": "El documento contiene errores de validación",
        "data": {"message": "El documento contiene errores de validación", "errors": errors}}))

    with pytest.raises(DianRejectionError) as caught:
        make_client().validate_bill(V2_PAYLOAD)

    assert caught.value.rule_codes == ["FAK24"]
    assert caught.value.reason == "dian_rejected"
    assert not caught.value.transient
    assert len(factus.api_requests()) == 1


def test_a_v2_rule_90_rejection_keyed_by_rule_needs_an_operator() -> None:
    error = error_from_response(_response(422, {"status": "Validation error", "data": {
        "errors": {"90": "Regla: 90, Rechazo: Documento procesado anteriormente."}}}))
    assert isinstance(error, DianRejectionError)
    assert error.already_processed
    assert error.reason == "dian_already_processed"


def test_a_v2_field_error_is_a_payload_error_on_v2_field_names() -> None:
    error = error_from_response(_response(422, {
        "message": "El campo items.0.quantity no debe tener más de 2 decimales.",
        "errors": {"items.0.quantity": [("El campo items.0.quantity no debe tener más de 2 "
                                        "decimales.")],
                   "payment_details": ["La suma de los pagos no coincide con el total."]}}))
    assert isinstance(error, PayloadValidationError)
    assert set(error.field_errors) == {"items.0.quantity", "payment_details"}


@pytest.mark.parametrize(
    ("path", "message", "version"),
    [
        ("/v1/bills", "Esta cuenta no tiene habilitado el acceso a la API v1", "v1"),
        ("/v2/bills", "Esta cuenta no tiene habilitado el acceso a la API v2", "v2"),
        # no version in the words: the refused one is the path's
        ("/v1/bills", "La cuenta no tiene habilitado el acceso a la API", "v1"),
    ],
)
def test_a_403_naming_the_api_version_is_version_not_enabled(
    path: str, message: str, version: str
) -> None:
    error = error_from_response(_response(403, {"status": "Forbidden", "message": message}, path))
    assert isinstance(error, ApiVersionNotEnabled)
    assert isinstance(error, ForbiddenError)
    assert (error.version, error.reason, error.transient) == (
        version, "factus_version_not_enabled", False)


def test_version_not_enabled_survives_pickling() -> None:
    error = ApiVersionNotEnabled("Factus 403", version="v1", status_code=403)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made
    assert isinstance(copy, ApiVersionNotEnabled)
    assert (copy.version, copy.reason, copy.status_code) == ("v1", "factus_version_not_enabled",
                                                             403)


def test_an_account_version_must_be_resolved() -> None:
    with pytest.raises(ValueError, match="api_version"):
        FactusAccount(key="1", environment="sandbox", base_url=BASE_URL, client_id="c",
                      client_secret=SecretStr("s"), username="u", password=SecretStr("p"),
                      api_version="auto")  # type: ignore[arg-type]
