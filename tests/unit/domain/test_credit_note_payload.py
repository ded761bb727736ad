"""Credit-note payloads (FACTUS_API.md §7.1): shape, references, and the credit cap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from einvoice.domain.errors import PayloadError
from einvoice.domain.invoices import InvoiceData, ItemData

Build = Callable[..., dict[str, Any]]


def refused(build_note: Build, note: InvoiceData) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        build_note(note)
    return caught.value


def test_cancelling_note_references_the_factus_bill_and_uses_the_nc_range(
    credit_note: InvoiceData, build_note: Build
) -> None:
    # Given a credit note cancelling the §3.6 sale (Factus bill id 10412)
    payload = build_note(credit_note)
    # Then it is the §7.1 shape: NC range 5, concept 2, customization 20, bill_id 10412
    assert {key: payload[key] for key in list(payload)[:8]} == {
        "numbering_range_id": 5,
        "correction_concept_code": 2,
        "customization_id": 20,
        "bill_id": 10412,
        "reference_code": "NC-731",
        "observation": "",
        "payment_method_code": "10",
        "send_email": False,
    }
    assert payload["items"] == [
        {
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
    ]
    # and bill-only fields are not sent
    assert not {"payment_form", "payment_due_date", "document", "operation_type"} & set(payload)


def test_note_without_customer_row_lets_factus_use_the_bill_customer(
    credit_note: InvoiceData, build_note: Build
) -> None:
    payload = build_note(replace(credit_note, customer=None))
    assert "customer" not in payload
    with_customer = build_note(credit_note)
    assert with_customer["customer"]["identification"] == "1020304050"


def test_partial_return_within_the_invoice_total_is_accepted(
    credit_note: InvoiceData, coffee: ItemData, build_note: Build
) -> None:
    # One of the two coffees comes back (concept 1, devolución parcial)
    returned = replace(coffee, qty=Decimal(1))
    note = replace(credit_note, correction_concept_code=1, items=(returned,), total=Decimal(23800))
    assert build_note(note)["items"][0]["quantity"] == 1


def test_note_larger_than_the_invoice_is_refused(
    credit_note: InvoiceData, coffee: ItemData, build_note: Build
) -> None:
    # Given a note for 3 coffees (71,400) against a 47,600 invoice
    note = replace(credit_note, items=(replace(coffee, qty=Decimal(3)),), total=None)
    error = refused(build_note, note)
    assert (error.code, error.field, error.value) == (
        "credit_exceeds_invoice",
        "invoice_sales.total",
        Decimal("71400.00"),
    )
    assert "leaves 47600.00" in error.message


def test_earlier_credit_notes_count_against_the_cap(
    credit_note: InvoiceData, coffee: ItemData, build_note: Build
) -> None:
    # Given one coffee (23,800) was already credited, a note for both coffees no longer fits
    note = replace(credit_note, related_invoice_credited_total=Decimal("23800.00"))
    error = refused(build_note, note)
    assert error.code == "credit_exceeds_invoice"
    assert "minus 23800.00 already credited leaves 23800.00" in error.message
    # but a note for the remaining coffee does
    rest = replace(note, items=(replace(coffee, qty=Decimal(1)),), total=Decimal(23800))
    assert build_note(rest)["items"][0]["quantity"] == 1


def test_note_equal_to_the_invoice_total_is_allowed(
    credit_note: InvoiceData, build_note: Build
) -> None:
    assert build_note(replace(credit_note, related_invoice_total=Decimal("47600.00")))


@pytest.mark.parametrize(
    ("changes", "code", "field", "value"),
    [
        (
            {"document_type": "invoice"},
            "wrong_document_type",
            "invoice_sales.document_type",
            "invoice",
        ),
        (
            {"correction_concept_code": None},
            "missing_correction_concept",
            "invoice_sales.correction_concept_code",
            None,
        ),
        (
            {"correction_concept_code": 7},
            "unknown_correction_concept",
            "invoice_sales.correction_concept_code",
            7,
        ),
        ({"related_bill_id": None}, "missing_related_bill", "related_invoice.bill_id", "inv-731"),
        (
            {"related_invoice_total": None},
            "missing_related_invoice_total",
            "related_invoice.total",
            None,
        ),
    ],
    ids=["bill sent as note", "no concept", "concept 7", "no bill id", "no related total"],
)
def test_note_reference_rules(
    credit_note: InvoiceData,
    build_note: Build,
    changes: dict[str, Any],
    code: str,
    field: str,
    value: object,
) -> None:
    error = refused(build_note, replace(credit_note, **changes))
    assert (error.code, error.field, error.value) == (code, field, value)


def test_note_needs_a_credit_note_range(
    credit_note: InvoiceData, invoice: InvoiceData, build_note: Build
) -> None:
    # Given the invoice's SETP range instead of the NC range
    error = refused(build_note, replace(credit_note, numbering_range=invoice.numbering_range))
    assert (error.code, error.field, error.value) == (
        "wrong_numbering_range",
        "invoice_sequences.document_type",
        "invoice",
    )


def test_note_range_may_be_given_by_its_factus_code(
    credit_note: InvoiceData, build_note: Build
) -> None:
    assert credit_note.numbering_range is not None
    code_22 = replace(credit_note.numbering_range, document_type="22")
    assert build_note(replace(credit_note, numbering_range=code_22))["numbering_range_id"] == 5
