"""The v2 FormRequest of the simulator (pure: no server)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from einvoice.sandbox.v2_validation import (
    validate_bill_v2,
    validate_credit_note_v2,
    validate_range_v2,
)
from einvoice.sandbox.validation import validate_bill
from tests.fixtures import payloads

LINE = payloads.v2_line()


def v2_bill(**changes: Any) -> dict[str, Any]:
    """The v2 docs' example bill (one line, 11900 COP, no range given) with ``changes``."""
    return payloads.v2_bill(numbering_range_id=None, **changes)


def errors_of(body: dict[str, Any]) -> dict[str, list[str]]:
    request, bag = validate_bill_v2(body)
    assert request is None
    return bag.errors


def test_a_minimal_v2_bill_is_normalized_with_codes_mapped_to_the_stored_model():
    request, bag = validate_bill_v2(v2_bill())

    assert not bag
    assert request is not None
    assert request.extras.amounts.total == Decimal("11900.00")
    customer = request.v1.customer
    # DANE 68679 is San Gil, Factus id 980; ZZ is the default tribute; 13 is cédula (v1 id 3)
    assert (customer.municipality_id, customer.tribute_id, customer.identification_document_id) == (
        980,
        21,
        3,
    )
    assert request.v1.send_email is True  # v2 default (crear-y-validar)
    assert request.extras.customer is not None
    assert request.extras.customer.responsibilities == ("R-99-PN",)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": "1.505"}, "items.0.quantity"),
        ({"price": "10000.123"}, "items.0.price"),
        ({"unit_measure_code": "XYZ"}, "items.0.unit_measure_code"),
        ({"standard_code": "777"}, "items.0.standard_code"),
        ({"taxes": []}, "items.0.taxes"),
        ({"taxes": [{"code": "02", "rate": "19"}]}, "items.0.taxes.0.code"),
        ({"withholding_taxes": [{"code": "07", "rate": "1"}]}, "items.0.withholding_taxes.0.code"),
        ({"withholding_taxes": [{"code": "05"}]}, "items.0.withholding_taxes.0.rate"),
    ],
)
def test_each_invalid_line_field_is_reported_on_its_path(change: dict[str, Any], field: str):
    assert field in errors_of(v2_bill(items=[{**LINE, **change}]))


def test_v1_field_names_are_not_v2_ones():
    body = v2_bill(customer={"identification_document_id": 3, "identification": "1", "names": "A"})

    errors = errors_of(body)

    assert "customer.identification_document_code" in errors
    assert "customer.legal_organization_code" in errors


def test_cash_rounding_beyond_500_and_a_long_observation_are_rejected():
    errors = errors_of(v2_bill(cash_rounding_amount="500.01", observation="x" * 501))

    assert set(errors) >= {"cash_rounding_amount", "observation"}


def test_payments_must_add_up_to_the_total_plus_the_cash_rounding():
    payments = [{"payment_form": "1", "payment_method_code": "10", "amount": "11850"}]

    assert "payment_details" in errors_of(v2_bill(payment_details=payments))
    request, bag = validate_bill_v2(v2_bill(payment_details=payments, cash_rounding_amount="-50"))
    assert request is not None
    assert not bag


def test_a_credit_payment_needs_its_due_date_and_an_unknown_municipality_is_invalid():
    body = v2_bill(
        payment_details=[{"payment_form": "2", "payment_method_code": "10", "amount": "11900"}]
    )
    body["customer"]["municipality_code"] = "99999"

    errors = errors_of(body)

    assert set(errors) >= {"payment_details.0.due_date", "customer.municipality_code"}


def test_a_credit_note_names_its_bill_by_number():
    body = {
        "reference_code": "NC-1",
        "correction_concept_code": "2",
        "payment_details": [{"payment_form": "1", "payment_method_code": "10", "amount": "11900"}],
        "items": [copy.deepcopy(LINE)],
    }

    missing, bag = validate_credit_note_v2(body)
    assert missing is None
    assert "bill_number" in bag.errors

    request, bag = validate_credit_note_v2({**body, "bill_number": "SETP990000001"})
    assert request is not None
    assert request.bill_number == "SETP990000001"
    assert request.v1.customization_id == 20  # the v2 default


def test_a_range_with_a_resolution_document_needs_the_resolution():
    spec, bag = validate_range_v2({"document": "21", "prefix": "SETP", "current": 990000000})
    assert spec is None
    assert "resolution_number" in bag.errors

    spec, bag = validate_range_v2({"document": "22", "prefix": "NC", "current": 1})
    assert spec == {"document": "22", "prefix": "NC", "current": 1, "resolution_number": None}


def test_v1_send_email_is_false_when_the_request_omits_it():
    # Real v1 bills show send_email 0 when the request does not send it (FACTUS_API.md §0 TUT).
    body = {
        "reference_code": "V1-1",
        "customer": {
            "identification_document_id": 3,
            "identification": "1020304050",
            "names": "María Gómez",
            "legal_organization_id": 2,
            "tribute_id": 21,
        },
        "items": [
            {
                "code_reference": "SKU-1",
                "name": "Café",
                "quantity": 1,
                "discount_rate": 0,
                "price": 1190,
                "tax_rate": "19.00",
                "unit_measure_id": 70,
                "standard_code_id": 1,
                "is_excluded": 0,
                "tribute_id": 1,
            }
        ],
    }

    request, _bag = validate_bill(body)

    assert request is not None
    assert request.send_email is False


def test_every_unit_of_factus_table_is_accepted_on_a_line():
    # Given every code of Factus's v2 unit table as shipped (unit-measures page, 1,089 codes)
    import csv

    from einvoice.devservices import project_root

    with (project_root() / "einvoice" / "data" / "unit_measures.csv").open(encoding="utf-8") as f:
        codes = {row["code"] for row in csv.DictReader(f)}
    assert len(codes) == 1089

    # When a bill is validated with each of them as the line's unit
    refused = [code for code in sorted(codes)
               if errors_of_or_none(v2_bill(items=[{**LINE, "unit_measure_code": code}]))]

    # Then none is refused
    assert refused == []


@pytest.mark.parametrize("code", ["XYZ", "kgm", "", "9999"])
def test_a_unit_outside_factus_table_is_refused_on_its_path(code: str):
    errors = errors_of(v2_bill(items=[{**LINE, "unit_measure_code": code}]))

    assert "items.0.unit_measure_code" in errors


def errors_of_or_none(body: dict[str, Any]) -> dict[str, list[str]] | None:
    """The 422 errors of a v2 bill, or None when it validates."""
    request, bag = validate_bill_v2(body)
    return None if request is not None else bag.errors
