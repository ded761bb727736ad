"""Tolerant parsing of Factus answers (FACTUS_API.md §1, §4, §6, §8, §12): shapes and variants
the simulator does not produce — date formats, money strings, 0/1 flags, missing and extra
fields, DIAN messages as list or object."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from factus_double import CUFE, bill_body, list_body

from einvoice.factus import v1
from einvoice.factus.errors import ResponseDecodingError
from einvoice.factus.schemas import (
    DianRule,
    dian_rules_from,
    parse_factus_date,
    parse_factus_datetime,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # §1: bill timestamps are Bogotá time (UTC-5) with AM/PM.
        ("21-01-2025 06:08:25 PM", datetime(2025, 1, 21, 23, 8, 25, tzinfo=UTC)),
        ("21-01-2025 06:08:25 AM", datetime(2025, 1, 21, 11, 8, 25, tzinfo=UTC)),
        ("21-01-2025 12:00:00 AM", datetime(2025, 1, 21, 5, 0, 0, tzinfo=UTC)),
        ("21-01-2025 06:08:25 p. m.", datetime(2025, 1, 21, 23, 8, 25, tzinfo=UTC)),
        ("21-01-2025 18:08:25", datetime(2025, 1, 21, 23, 8, 25, tzinfo=UTC)),
        ("19-01-2019", datetime(2019, 1, 19, 5, 0, tzinfo=UTC)),
        ("2023-06-01", datetime(2023, 6, 1, 5, 0, tzinfo=UTC)),
        ("2023-06-01 08:00:38", datetime(2023, 6, 1, 13, 0, 38, tzinfo=UTC)),
        # §8.1: ISO created_at with Z keeps its zone.
        ("2023-06-01T08:00:38Z", datetime(2023, 6, 1, 8, 0, 38, tzinfo=UTC)),
        ("2023-06-01T08:00:38.000000Z", datetime(2023, 6, 1, 8, 0, 38, tzinfo=UTC)),
        ("2023-06-01T03:00:38-05:00", datetime(2023, 6, 1, 8, 0, 38, tzinfo=UTC)),
    ],
)
def test_every_documented_datetime_format_becomes_utc(text: str, expected: datetime) -> None:
    parsed = parse_factus_datetime(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("19-01-2030", date(2030, 1, 19)),
        ("2030-01-19", date(2030, 1, 19)),
        ("2030-01-19T00:00:00Z", date(2030, 1, 19)),
        ("2030-01-19 00:00:00", date(2030, 1, 19)),
    ],
)
def test_calendar_dates_are_read_as_written(text: str, expected: date) -> None:
    assert parse_factus_date(text) == expected


def test_a_date_in_an_unknown_format_is_refused_by_the_strict_parser() -> None:
    with pytest.raises(ValueError, match="unrecognised"):
        parse_factus_datetime("the 5th of May")


def test_validate_answer_of_the_docs_parses_into_a_bill_result() -> None:
    # Given the §4.3 example answer
    bill = v1.parse_bill(bill_body())

    # Then the fields a job records are there, typed
    assert bill.id == 10412
    assert bill.number == "SETP990010377"
    assert bill.reference_code == "POS-1"
    assert bill.is_validated
    assert not bill.is_pending
    assert not bill.is_rejected
    assert bill.cufe == CUFE
    assert bill.qr is not None
    assert bill.qr.endswith(CUFE)
    assert bill.qr_image is not None
    assert bill.qr_image.startswith("data:image/png;base64,")
    assert bill.validated_at == datetime(2025, 3, 14, 15, 21, 7, tzinfo=UTC)
    assert bill.created_at == datetime(2025, 3, 14, 15, 21, 4, tzinfo=UTC)
    assert bill.totals.total == Decimal("47600.00")
    assert bill.totals.tax_amount == Decimal("7600.00")
    assert bill.message is not None
    assert "registrado y validado" in bill.message
    # and the notification is a rule, not a rejection
    assert bill.errors == [
        DianRule(
            code="FAJ43b",
            kind="notification",
            text="Nombre informado No corresponde al registrado en el RUT",
        )
    ]
    assert bill.notifications == bill.errors
    assert bill.rejections == []
    # and the whole data object is kept for the job's response_payload
    assert bill.raw["bill"]["cufe"] == CUFE


def test_an_older_answer_with_other_fields_still_parses() -> None:
    # Given a Jan 2025 answer (§4.1): discount fields instead of discount_amount/surcharge_amount,
    # numbers where we expect text, unknown extra fields, and no validated time yet
    body = bill_body(discount_rate="0.00", discount="0.00", new_field={"x": 1}, validated=None)
    for name in ("discount_amount", "surcharge_amount", "qr_image"):
        del body["data"]["bill"][name]
    body["data"]["bill"]["reference_code"] = 731  # a number where text is expected

    bill = v1.parse_bill(body)

    assert bill.totals.discount_amount is None
    assert bill.totals.surcharge_amount is None
    assert bill.totals.total == Decimal("47600.00")
    assert bill.reference_code == "731"
    assert bill.qr_image is None
    assert bill.validated_at is None


def test_dian_slow_answer_is_pending_not_rejected() -> None:
    # §5.5: 201 with status 0 and no "Rechazo"
    bill = v1.parse_bill(bill_body(status=0, cufe=None, validated=None, errors=[]))
    assert bill.is_pending
    assert not bill.is_validated
    assert not bill.is_rejected


def test_a_stored_rejected_bill_shows_its_rejection_rules_as_an_object() -> None:
    # The object-keyed form of errors (§5.4, FJS1) on a bill with status "0" as a string
    bill = v1.parse_bill(
        bill_body(
            status="0", errors={"FAK24": "Regla: FAK24, Rechazo: No está informado el DV del NIT"}
        )
    )
    assert bill.is_rejected
    assert [(r.code, r.kind) for r in bill.rejections] == [("FAK24", "rejection")]


def test_unparseable_money_and_dates_become_unknown_instead_of_failing_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bill = v1.parse_bill(bill_body(total="cuarenta mil", validated="ayer por la tarde"))
    assert bill.totals.total is None
    assert bill.validated_at is None
    assert bill.cufe == CUFE
    assert "unparseable" in caplog.text


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (
            ["Regla: 90, Rechazo: Documento procesado anteriormente."],
            [DianRule(code="90", kind="rejection", text="Documento procesado anteriormente.")],
        ),
        (
            {"FAK24": "Regla: FAK24, Rechazo: No está informado el DV del NIT"},
            [DianRule(code="FAK24", kind="rejection", text="No está informado el DV del NIT")],
        ),
        (
            {"FAK24": ["Regla: FAK24, Rechazo: DV no corresponde al NIT informado"]},
            [DianRule(code="FAK24", kind="rejection", text="DV no corresponde al NIT informado")],
        ),
        (
            {"CAK55": "Rechazo sin prefijo de regla"},
            [DianRule(code="CAK55", kind="rejection", text="Rechazo sin prefijo de regla")],
        ),
        (
            ["Regla: RUT01, Notificacion: La validación del estado del RUT no fue posible"],
            [
                DianRule(
                    code="RUT01",
                    kind="notification",
                    text="La validación del estado del RUT no fue posible",
                )
            ],
        ),
        ([], []),
        (None, []),
    ],
)
def test_dian_messages_are_normalised_from_every_observed_form(
    errors: object, expected: list[DianRule]
) -> None:
    assert dian_rules_from(errors) == expected


def test_credit_note_answer_keeps_its_cude_and_the_bill_it_corrects() -> None:
    body = {
        "status": "Created",
        "message": "Documento con el código de referencia NC-1 registrado y validado con éxito",
        "data": {
            "credit_note": {
                "id": 77,
                "number": "NC76",
                "reference_code": "NC-1",
                "status": 1,
                "cude": "b" * 96,
                "cufe": CUFE,
                "number_bill": "SETP990010377",
                "bill_id": "10412",
                "validated": "15-03-2025 09:00:00 AM",
                "total": "47600.00",
                "errors": [],
            }
        },
    }
    note = v1.parse_credit_note(body)
    assert (note.number, note.cude, note.bill_cufe) == ("NC76", "b" * 96, CUFE)
    assert (note.bill_id, note.bill_number) == (10412, "SETP990010377")
    assert note.validated_at == datetime(2025, 3, 15, 14, 0, tzinfo=UTC)
    assert note.totals.total == Decimal("47600.00")


def test_bill_list_rows_parse_with_string_totals_and_flags() -> None:
    page = v1.parse_bill_page(
        list_body(
            [
                {
                    "id": 1,
                    "number": "SETP1",
                    "reference_code": None,
                    "total": "1000.00",
                    "status": 1,
                    "send_email": "1",
                    "errors": [],
                    "created_at": "21-01-2025 06:08:25 PM",
                    "api_client_name": "someone@else.test",
                }
            ],
            page=2,
            last_page=3,
        )
    )
    row = page.items[0]
    assert (row.number, row.reference_code, row.total, row.send_email) == (
        "SETP1",
        None,
        Decimal("1000.00"),
        True,
    )
    assert (page.current_page, page.last_page) == (2, 3)


def test_numbering_ranges_parse_with_mixed_flag_types() -> None:
    # §8.1: is_expired is a bool, is_active 0/1, dates YYYY-MM-DD, document a name
    page = v1.parse_numbering_range_page(
        list_body(
            [
                {
                    "id": 4,
                    "document": "Factura de Venta",
                    "prefix": "SETP",
                    "from": 990000000,
                    "to": "995000000",
                    "current": 990010378,
                    "resolution_number": "18760000001",
                    "start_date": "2019-01-19",
                    "end_date": "2030-01-19",
                    "technical_key": "fc8eac422eba16e22ffd8c6f94b3f40a6e38162c",
                    "is_expired": False,
                    "is_active": 1,
                    "created_at": "2023-06-01T08:00:38Z",
                }
            ]
        )
    )
    (found,) = page.items
    assert (found.id, found.prefix, found.from_, found.to, found.current) == (
        4,
        "SETP",
        990000000,
        995000000,
        990010378,
    )
    assert found.is_active
    assert not found.is_expired
    assert found.end_date == date(2030, 1, 19)


def test_catalogs_parse_plain_lists_and_nested_names() -> None:
    municipalities = v1.parse_municipalities(
        {
            "status": "OK",
            "data": [
                {"id": 980, "code": "68679", "name": "San Gil", "department": "Santander"},
                {"id": 1, "code": 91263, "name": "El Encanto", "department": {"name": "Amazonas"}},
            ],
        }
    )
    assert [(m.id, m.code, m.department) for m in municipalities] == [
        (980, "68679", "Santander"),
        (1, "91263", "Amazonas"),
    ]
    company = v1.parse_company(
        {
            "data": {
                "nit": 901724254,
                "dv": 1,
                "company": "FACTUS S.A.S.",
                "municipality": {"code": "68679", "name": "San Gil"},
                "responsibilities": [{"code": "R-99-PN", "name": "No aplica"}],
            }
        }
    )
    assert (company.nit, company.dv, company.municipality) == ("901724254", "1", "San Gil")


def test_downloads_are_decoded_to_bytes() -> None:
    pdf = b"%PDF-1.4 test"
    file = v1.parse_download(
        {
            "data": {
                "file_name": "fv09017242540002500013136",
                "pdf_base_64_encoded": base64.b64encode(pdf).decode(),
            }
        },
        "pdf",
    )
    assert (file.file_name, file.content) == ("fv09017242540002500013136", pdf)


def test_a_download_without_content_is_a_decoding_error() -> None:
    with pytest.raises(ResponseDecodingError):
        v1.parse_download({"data": {"file_name": "fv1"}}, "xml")


@pytest.mark.parametrize(
    "body",
    [None, [], {"status": "OK"}, {"data": {"no_bill": {}}}, {"data": {"bill": "oops"}}],
)
def test_a_bill_answer_without_a_bill_is_a_decoding_error(body: object) -> None:
    with pytest.raises(ResponseDecodingError) as caught:
        v1.parse_bill(body)
    assert caught.value.transient


def test_a_token_answer_without_expiry_is_refused_without_echoing_the_token() -> None:
    with pytest.raises(ResponseDecodingError) as caught:
        v1.parse_token({"access_token": "secret-jwt-value"})
    assert "expires_in" in caught.value.message
    assert "secret-jwt-value" not in caught.value.message


def test_a_token_answer_never_shows_its_tokens_in_repr() -> None:
    token = v1.parse_token(
        {
            "token_type": "Bearer",
            "expires_in": 600,
            "access_token": "jwt-xyz",
            "refresh_token": "r-xyz",
        }
    )
    assert token.expires_in == 600
    assert "jwt-xyz" not in repr(token)
    assert "r-xyz" not in repr(token)
