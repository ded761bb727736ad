"""Valid v1 request bodies for the simulator, built with the client's own request models."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from einvoice.factus import v1

INVOICE_RANGE_ID = 8  # the simulator's SETP range (docs/simulator.md "range ids")
CREDIT_NOTE_RANGE_ID = 9  # NC


def customer() -> v1.Customer:
    """A natural-person customer (cédula), San Gil."""
    return v1.Customer(
        identification_document_id=3,
        identification="1020304050",
        names="María Gómez",
        address="Cra 7 # 12-34",
        email="maria@example.com",
        phone="3001112233",
        legal_organization_id=2,
        tribute_id=21,
        municipality_id=980,
    )


def _line(quantity: int) -> dict[str, Any]:
    # One coffee line, price tax-included (Decision 7), IVA 19 %.
    return {
        "code_reference": "SKU-1",
        "name": "Café 500 g",
        "quantity": quantity,
        "price": Decimal("23800.00"),
        "tax_rate": Decimal("19.00"),
        "unit_measure_id": 70,
        "standard_code_id": 1,
        "tribute_id": 1,
    }


def bill(reference_code: str) -> v1.BillRequest:
    """A bill of 2 × 23 800 COP (total 47 600, IVA 7 600) with ``reference_code``."""
    return v1.BillRequest(
        numbering_range_id=INVOICE_RANGE_ID,
        reference_code=reference_code,
        payment_form="1",
        payment_method_code="10",
        send_email=False,
        customer=customer(),
        items=[v1.BillItem(**_line(2))],
    )


def credit_note(reference_code: str, bill_id: int) -> v1.CreditNoteRequest:
    """A partial-return credit note of one unit against the bill with Factus id ``bill_id``."""
    return v1.CreditNoteRequest(
        numbering_range_id=CREDIT_NOTE_RANGE_ID,
        correction_concept_code=1,
        customization_id=20,
        bill_id=bill_id,
        reference_code=reference_code,
        payment_method_code="10",
        send_email=False,
        items=[v1.CreditNoteItem(**_line(1))],
    )
