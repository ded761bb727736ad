"""Plain-value fixtures for the domain tests: an ERP invoice equivalent to FACTUS_API.md §3.6.

Tests vary it with ``dataclasses.replace``; nothing here touches a database or the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from einvoice.domain.errors import PayloadError
from einvoice.domain.invoices import (
    CustomerData,
    InvoiceData,
    ItemData,
    NumberingRangeData,
    OrganizationData,
)
from einvoice.factus.v1_body import build_bill_payload, build_credit_note_payload

TODAY = date(2025, 3, 14)
# Real Factus municipality ids (FACTUS_API.md §8.2): 980 San Gil, 996 Villanueva, 1041 Fresno,
# 169 Bogotá.
MUNICIPALITY_IDS = frozenset({169, 980, 996, 1041})
REFERENCE = "POS-2025-000731"

Build = Callable[..., dict[str, Any]]
Reject = Callable[..., PayloadError]


@pytest.fixture
def organization() -> OrganizationData:
    return OrganizationData(
        id=7,
        name="Tienda Central",
        legal_name="Tienda Central S.A.S.",
        nit="900825759",
        dv=7,
        email="ventas@tienda.example",
        phone="6077240000",
        address="Calle 10 # 9-04",
        municipality_id=980,
    )


@pytest.fixture
def natural_customer() -> CustomerData:
    """The §3.6 customer: a natural person with a cédula."""
    return CustomerData(
        id="c-1",
        identification_type="CC",
        identification_number="1020304050",
        first_name="María",
        last_name="Gómez",
        address="Cra 7 # 12-34",
        email="maria@example.com",
        phone="3001112233",
        legal_organization_id=2,
        tribute_id=21,
        municipality_id=980,
    )


@pytest.fixture
def company_customer() -> CustomerData:
    """A legal person identified by NIT: Factus's own company (NIT 901724254, DV 1, §1)."""
    return CustomerData(
        id="c-2",
        identification_type="NIT",
        identification_number="901724254",
        dv=1,
        company_name="FACTUS S.A.S.",
        legal_organization_id=1,
        tribute_id=18,
        municipality_id=980,
        email="facturacion@factus.example",
    )


@pytest.fixture
def coffee() -> ItemData:
    """The §3.6 item: 2 × Café 500 g at 20,000 net + 19 % IVA = 23,800 tax included."""
    return ItemData(
        description="Café 500 g",
        qty=Decimal(2),
        unit_price=Decimal(20000),
        tax_rate=Decimal(19),
        tax_included=False,
        code_reference="SKU-1",
    )


@pytest.fixture
def invoice_range() -> NumberingRangeData:
    return NumberingRangeData(
        id=3,
        factus_numbering_range_id=8,
        document_type="invoice",
        is_active=True,
        prefix="SETP",
        range_start=990000000,
        range_end=995000000,
        current_number=990010377,
        valid_from=date(2019, 1, 19),
        valid_until=date(2030, 1, 19),
        resolution_number="18760000001",
    )


@pytest.fixture
def credit_range() -> NumberingRangeData:
    return NumberingRangeData(
        id=4, factus_numbering_range_id=5, document_type="credit_note", is_active=True, prefix="NC"
    )


@pytest.fixture
def invoice(
    organization: OrganizationData,
    natural_customer: CustomerData,
    coffee: ItemData,
    invoice_range: NumberingRangeData,
) -> InvoiceData:
    """An ERP sale whose payload is exactly the §3.6 example request."""
    return InvoiceData(
        id="inv-731",
        organization=organization,
        customer=natural_customer,
        items=(coffee,),
        numbering_range=invoice_range,
        document_type="invoice",
        issue_date=TODAY,
        payment_form="1",
        payment_method_code="10",
        send_email=False,
        subtotal=Decimal("40000.00"),
        tax_total=Decimal("7600.00"),
        total=Decimal("47600.00"),
    )


@pytest.fixture
def credit_note(invoice: InvoiceData, credit_range: NumberingRangeData) -> InvoiceData:
    """A credit note cancelling the §3.6 sale (Factus bill id 10412, total 47,600)."""
    return replace(
        invoice,
        id="nc-1",
        document_type="credit_note",
        numbering_range=credit_range,
        related_invoice_id="inv-731",
        correction_concept_code=2,
        related_bill_id=10412,
        related_invoice_total=Decimal("47600.00"),
    )


@pytest.fixture
def build() -> Build:
    """Build a bill payload with the test reference, date and municipalities."""

    def _build(invoice: InvoiceData, **kwargs: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "reference_code": REFERENCE,
            "today": TODAY,
            "known_municipality_ids": MUNICIPALITY_IDS,
        }
        options.update(kwargs)
        return build_bill_payload(invoice, **options)

    return _build


@pytest.fixture
def build_note() -> Build:
    """Build a credit-note payload with the test reference, date and municipalities."""

    def _build(invoice: InvoiceData, **kwargs: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "reference_code": "NC-731",
            "today": TODAY,
            "known_municipality_ids": MUNICIPALITY_IDS,
        }
        options.update(kwargs)
        return build_credit_note_payload(invoice, **options)

    return _build


@pytest.fixture
def reject(build: Build) -> Reject:
    """Build a bill payload that must fail; return the PayloadError."""

    def _reject(invoice: InvoiceData, **kwargs: Any) -> PayloadError:
        with pytest.raises(PayloadError) as caught:
            build(invoice, **kwargs)
        return caught.value

    return _reject
