"""Payload rules of the simulator's validate endpoints (FACTUS_API.md §3, §5.2, §7.1)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from einvoice.sandbox.validation import validate_bill, validate_credit_note
from tests.fixtures import payloads


def bill(**changes: Any) -> dict[str, Any]:
    """The §3.6 example (the shared sample bill) with top-level ``changes``."""
    return payloads.v1_bill("POS-2025-000731", **changes)


def with_item(**changes: Any) -> dict[str, Any]:
    body = bill()
    body["items"][0].update(changes)
    return body


def with_customer(**changes: Any) -> dict[str, Any]:
    body = bill()
    body["customer"].update(changes)
    return body


def test_the_contract_example_is_accepted_with_factus_defaults_filled_in():
    request, bag = validate_bill(bill(payment_form=None, payment_method_code=None))

    assert not bag
    assert request is not None
    assert (
        request.document,
        request.payment_form,
        request.payment_method_code,
        request.operation_type,
    ) == ("01", "1", "10", "10")
    assert request.items[0].price == Decimal(23800)


def test_an_empty_body_gets_laravel_errors_with_the_and_n_more_suffix():
    request, bag = validate_bill({})

    body = bag.body()
    assert request is None
    assert body["message"] == "El campo código de referencia es obligatorio. (and 2 more errors)"
    assert body["errors"] == {
        "reference_code": ["El campo código de referencia es obligatorio."],
        "customer": ["El campo customer es obligatorio."],
        "items": ["El campo items es obligatorio."],
    }


def test_a_single_error_has_no_suffix_and_two_errors_say_one_more_error():
    _, one = validate_bill(bill(reference_code=""))
    _, two = validate_bill(bill(reference_code="", payment_method_code="99"))

    assert one.body()["message"] == "El campo código de referencia es obligatorio."
    assert (
        two.body()["message"] == "El campo código de referencia es obligatorio. (and 1 more error)"
    )
    assert two.body()["errors"]["payment_method_code"] == [
        "El campo payment method code es inválido."
    ]


@pytest.mark.parametrize("quantity", [2.5, "2.5", "dos", True])
def test_quantity_must_be_an_integer(quantity: Any):
    _, bag = validate_bill(with_item(quantity=quantity))

    assert bag.errors == {
        "items.0.quantity": ["El campo items.0.quantity debe ser un número entero."]
    }


@pytest.mark.parametrize("quantity", [2, "2", 2.0])
def test_integer_quantities_are_accepted_as_laravel_accepts_them(quantity: Any):
    request, bag = validate_bill(with_item(quantity=quantity))

    assert not bag
    assert request is not None
    assert request.items[0].quantity == 2


def test_a_missing_item_field_is_named_with_its_index():
    body = bill()
    del body["items"][0]["code_reference"]

    _, bag = validate_bill(body)

    assert bag.errors == {
        "items.0.code_reference": ["El campo items.0.code_reference es obligatorio."]
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("unit_measure_id", 71),
        ("standard_code_id", 5),
        ("tribute_id", 18),
        ("is_excluded", 2),
    ],
)
def test_item_ids_outside_the_factus_tables_are_invalid(field: str, value: Any):
    _, bag = validate_bill(with_item(**{field: value}))

    assert bag.errors == {f"items.0.{field}": [f"El campo items.0.{field} es inválido."]}


@pytest.mark.parametrize("unit", [70, 414, 449, 512, 874])
def test_the_documented_units_of_measure_are_accepted(unit: int):
    _, bag = validate_bill(with_item(unit_measure_id=unit))

    assert not bag


def test_prices_with_more_than_two_decimals_are_refused():
    _, bag = validate_bill(with_item(price=23800.123))

    assert list(bag.errors) == ["items.0.price"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("identification_document_id", 12),
        ("identification_document_id", 0),
        ("tribute_id", 22),
        ("legal_organization_id", 3),
        ("municipality_id", 1123),
        ("municipality_id", 99999),
    ],
)
def test_customer_ids_outside_the_factus_tables_are_invalid(field: str, value: Any):
    _, bag = validate_bill(with_customer(**{field: value}))

    assert bag.errors == {f"customer.{field}": [f"El campo customer.{field} es inválido."]}


@pytest.mark.parametrize("document_id", range(1, 12))
def test_every_identification_document_from_1_to_11_is_accepted(document_id: int):
    identification = "900123456" if document_id == 6 else "1020304050"

    _, bag = validate_bill(
        with_customer(identification_document_id=document_id, identification=identification)
    )

    assert not bag


def test_a_nit_sent_with_its_dv_glued_on_is_refused():
    _, bag = validate_bill(
        with_customer(identification_document_id=6, identification="900123456-8")
    )

    assert list(bag.errors) == ["customer.identification"]


def test_a_legal_person_needs_a_company_name():
    _, bag = validate_bill(with_customer(legal_organization_id=1, company=""))

    assert list(bag.errors) == ["customer.company"]


def test_credit_payment_needs_a_due_date_in_y_m_d():
    _, missing = validate_bill(bill(payment_form="2"))
    _, malformed = validate_bill(bill(payment_form="2", payment_due_date="31/12/2026"))
    request, fine = validate_bill(bill(payment_form=2, payment_due_date="2026-12-31"))

    assert missing.errors == {
        "payment_due_date": ["El campo payment due date es obligatorio cuando payment form es 2."]
    }
    assert list(malformed.errors) == ["payment_due_date"]
    assert not fine
    assert request is not None
    assert request.payment_form == "2"


@pytest.mark.parametrize(
    ("value", "ok"), [("ZZZ", True), ("47", True), (10, True), ("99", False), ("3", False)]
)
def test_payment_method_codes_come_from_the_factus_table(value: Any, ok: bool):
    _, bag = validate_bill(bill(payment_method_code=value))

    assert (not bag) is ok


def test_payment_form_is_1_or_2():
    _, bag = validate_bill(bill(payment_form="3"))

    assert list(bag.errors) == ["payment_form"]


def test_observation_is_limited_to_250_characters():
    _, bag = validate_bill(bill(observation="x" * 251))

    assert list(bag.errors) == ["observation"]


def test_mandates_need_a_scheme_id_per_item():
    _, bag = validate_bill(bill(operation_type="11"))

    assert list(bag.errors) == ["items.0.scheme_id"]


def test_a_transmission_instrument_needs_related_documents():
    _, bag = validate_bill(bill(document="03"))

    assert list(bag.errors) == ["related_documents"]


def test_only_the_conditioned_surcharge_concept_03_is_available():
    charge = {
        "concept_type": "01",
        "is_surcharge": True,
        "reason": "x",
        "base_amount": "10",
        "amount": "1",
    }

    _, bag = validate_bill(bill(allowance_charges=[charge]))

    assert list(bag.errors) == ["allowance_charges.0.concept_type"]


CREDIT_NOTE: dict[str, Any] = {
    "numbering_range_id": 9,
    "correction_concept_code": 2,
    "customization_id": 20,
    "bill_id": 10001,
    "reference_code": "NC-1",
    "payment_method_code": "10",
    "items": [copy.deepcopy(payloads.V1_ITEM)],
}


def test_a_credit_note_referencing_a_bill_is_accepted_without_a_customer():
    request, bag = validate_credit_note(dict(CREDIT_NOTE))

    assert not bag
    assert request is not None
    assert request.customer is None
    assert request.bill_id == 10001


def test_a_credit_note_of_type_20_needs_a_bill_and_type_22_a_billing_period_and_customer():
    _, without_bill = validate_credit_note({**CREDIT_NOTE, "bill_id": None})
    _, type_22 = validate_credit_note({**CREDIT_NOTE, "customization_id": 22, "bill_id": None})

    assert list(without_bill.errors) == ["bill_id"]
    assert list(type_22.errors) == ["billing_period", "customer"]


@pytest.mark.parametrize(
    ("field", "value"), [("correction_concept_code", 7), ("customization_id", 21)]
)
def test_credit_note_codes_outside_their_tables_are_invalid(field: str, value: int):
    _, bag = validate_credit_note({**CREDIT_NOTE, field: value})

    assert field in bag.errors
