"""Valid request bodies for the simulator: v1 built with the client's own request models, v2
the shared hand-written samples of :mod:`tests.fixtures.payloads` (the same sale in both
versions' terms)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from einvoice.factus import v1
from tests.fixtures import payloads

INVOICE_RANGE_ID = payloads.INVOICE_RANGE_ID
CREDIT_NOTE_RANGE_ID = payloads.CREDIT_NOTE_RANGE_ID


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


# --- v2: the shared samples (tests/fixtures/payloads.py), hand-written as the v2 docs show -----


def _v2_line(quantity: str) -> dict[str, Any]:
    # The same coffee line in v2's terms: the net price (20 000 + IVA 19 % = 23 800).
    return payloads.v2_line(quantity, "20000.00", code_reference="SKU-1", name="Café 500 g")


def v2_bill(reference_code: str) -> dict[str, Any]:
    """The v2 twin of :func:`bill`: 2 × 20 000 COP net + IVA 19 % = 47 600, paid in cash."""
    customer = payloads.v2_customer(address="Cra 7 # 12-34", email="maria@example.com",
                                    phone="3001112233", tribute_code="ZZ")
    return payloads.v2_bill(reference_code, items=[_v2_line("2.00")], customer=customer,
                            send_email=False)


def v2_credit_note(reference_code: str, bill_number: str) -> dict[str, Any]:
    """The v2 twin of :func:`credit_note`: one unit returned, the bill named by its number."""
    return payloads.v2_credit_note(reference_code, bill_number, items=[_v2_line("1.00")],
                                   correction_concept_code="1", send_email=False)
