"""Bill payloads: the contract's example shapes, customer/establishment mapping, header rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date, time
from decimal import Decimal
from typing import Any

from einvoice.domain.errors import PayloadError
from einvoice.domain.invoices import (
    AllowanceChargeData,
    BillingPeriodData,
    BranchData,
    CustomerData,
    InvoiceData,
    ItemData,
    WithholdingTaxData,
)

Build = Callable[..., dict[str, Any]]
Reject = Callable[..., PayloadError]


def test_section_3_6_example_is_reproduced_from_erp_rows(
    invoice: InvoiceData, build: Build
) -> None:
    # Given the ERP rows equivalent to FACTUS_API.md §3.6 (net price 20,000 + 19 % IVA)
    # When the payload is built
    payload = build(invoice)
    # Then it is the §3.6 request, value for value
    expected = json.loads(
        """
        {
          "numbering_range_id": 8,
          "reference_code": "POS-2025-000731",
          "observation": "",
          "payment_form": "1",
          "payment_method_code": "10",
          "send_email": false,
          "customer": {
            "identification_document_id": 3, "identification": "1020304050",
            "names": "María Gómez", "address": "Cra 7 # 12-34", "email": "maria@example.com",
            "phone": "3001112233", "legal_organization_id": 2, "tribute_id": 21,
            "municipality_id": 980
          },
          "items": [
            {"code_reference": "SKU-1", "name": "Café 500 g", "quantity": 2, "discount_rate": 0,
             "price": 23800, "tax_rate": "19.00", "unit_measure_id": 70, "standard_code_id": 1,
             "is_excluded": 0, "tribute_id": 1, "withholding_taxes": []}
          ]
        }
        """
    )
    assert payload == expected
    # and it survives the JSON encoder unchanged (JSON-ready: no Decimal, no date objects)
    assert json.loads(json.dumps(payload)) == expected


def test_doc1_advanced_example_amounts_come_out_as_factus_reported(
    invoice: InvoiceData, build: Build
) -> None:
    # Given DOC1's "factura avanzada" sale: a 50,000 item with 20 % discount, 19 % IVA and two
    # self-withholdings; a 50,000 item at 5 %; a 9,000 tip surcharge; prices tax-included
    items = (
        ItemData(
            description="producto de prueba",
            qty=Decimal(1),
            unit_price=Decimal(50000),
            tax_rate=Decimal(19),
            tax_included=True,
            discount_rate=Decimal(20),
            code_reference="12345",
            withholding_taxes=(
                WithholdingTaxData(code="06", rate=Decimal("7.38")),
                WithholdingTaxData(code="ReteIVA", rate=Decimal("15.12")),
            ),
        ),
        ItemData(
            description="producto de prueba 2",
            qty=Decimal(1),
            unit_price=Decimal(50000),
            tax_rate=Decimal(5),
            tax_included=True,
            code_reference="54321",
        ),
    )
    tip = AllowanceChargeData(
        concept_type="03",
        is_surcharge=True,
        reason="Propina",
        base_amount=Decimal(90000),
        amount=Decimal(9000),
    )
    sale = replace(
        invoice, items=items, allowance_charges=(tip,), total=Decimal("99000.00"), subtotal=None
    )
    # When
    payload = build(sale)
    # Then the items are sent as DOC1 sends them
    assert payload["items"][0]["price"] == 50000
    assert payload["items"][0]["discount_rate"] == 20
    assert payload["items"][0]["withholding_taxes"] == [
        {"code": "06", "withholding_tax_rate": 7.38},
        {"code": "05", "withholding_tax_rate": 15.12},
    ]
    assert payload["items"][1]["tax_rate"] == "5.00"
    assert payload["allowance_charges"] == [
        {
            "concept_type": "03",
            "is_surcharge": True,
            "reason": "Propina",
            "base_amount": "90000.00",
            "amount": "9000.00",
        }
    ]
    # and §4.2, re-derived here by hand, gives DOC1's response: taxable 81,232.50, tax
    # 8,767.50, total 99,000.00
    taxable = Decimal(0)
    tax = Decimal(0)
    total = Decimal(0)
    for item in payload["items"]:
        line = (
            Decimal(str(item["price"]))
            * item["quantity"]
            * (1 - Decimal(str(item["discount_rate"])) / 100)
        )
        item_taxable = (line / (1 + Decimal(item["tax_rate"]) / 100)).quantize(Decimal("0.01"))
        taxable += item_taxable
        tax += line - item_taxable
        total += line
    total += Decimal(payload["allowance_charges"][0]["amount"])
    assert (taxable, tax, total) == (Decimal("81232.50"), Decimal("8767.50"), Decimal("99000.00"))


def test_nit_customer_gets_the_check_digit_computed_when_the_erp_has_none(
    invoice: InvoiceData, company_customer: CustomerData, build: Build
) -> None:
    # Given a legal-person customer with NIT 901724254 and no stored DV
    customer = replace(company_customer, dv=None, trade_name="Factus")
    # When
    payload = build(replace(invoice, customer=customer))
    # Then the DV python-stdnum computes (1) is filled in, and the company name is sent
    assert payload["customer"] == {
        "identification_document_id": 6,
        "identification": "901724254",
        "dv": "1",
        "company": "FACTUS S.A.S.",
        "trade_name": "Factus",
        "email": "facturacion@factus.example",
        "legal_organization_id": 1,
        "tribute_id": 18,
        "municipality_id": 980,
    }


def test_nit_written_with_dots_and_hyphen_is_sent_bare(
    invoice: InvoiceData, company_customer: CustomerData, build: Build
) -> None:
    customer = replace(company_customer, identification_number="901.724.254-1")
    payload = build(replace(invoice, customer=customer))
    assert payload["customer"]["identification"] == "901724254"
    assert payload["customer"]["dv"] == "1"


def test_wrong_stored_dv_is_refused_with_the_expected_digit(
    invoice: InvoiceData, company_customer: CustomerData, reject: Reject
) -> None:
    error = reject(replace(invoice, customer=replace(company_customer, dv=7)))
    assert (error.code, error.field, error.value) == ("invalid_dv", "customers.dv", 7)
    assert "check digit 1" in error.message
    assert error.message.startswith("customers.dv = 7:")


def test_wrong_dv_after_the_hyphen_is_refused(
    invoice: InvoiceData, company_customer: CustomerData, reject: Reject
) -> None:
    customer = replace(company_customer, identification_number="901724254-3", dv=None)
    error = reject(replace(invoice, customer=customer))
    assert (error.code, error.field, error.value) == (
        "invalid_dv",
        "customers.identification_number",
        "901724254-3",
    )


def test_dv_is_not_sent_for_a_cedula(
    invoice: InvoiceData, natural_customer: CustomerData, build: Build
) -> None:
    # A DV stored by mistake on a CC customer is ignored: DV exists only for NIT (§3.3).
    payload = build(replace(invoice, customer=replace(natural_customer, dv=4)))
    assert "dv" not in payload["customer"]


def test_customer_defaults_follow_the_seed_and_factus_tables(
    invoice: InvoiceData, natural_customer: CustomerData, build: Build
) -> None:
    # Given a customer with NULL legal organization, tribute and municipality
    customer = replace(
        natural_customer, legal_organization_id=None, tribute_id=None, municipality_id=None
    )
    payload = build(replace(invoice, customer=customer))
    # Then: natural person (no company name), tribute 21 "No aplica", no municipality sent
    assert payload["customer"]["legal_organization_id"] == 2
    assert payload["customer"]["tribute_id"] == 21
    assert "municipality_id" not in payload["customer"]
    assert payload["customer"]["names"] == "María Gómez"


def test_customer_with_company_name_and_null_legal_organization_is_a_company(
    invoice: InvoiceData, company_customer: CustomerData, build: Build
) -> None:
    customer = replace(company_customer, legal_organization_id=None, first_name="Ana")
    payload = build(replace(invoice, customer=customer))
    assert payload["customer"]["legal_organization_id"] == 1
    assert payload["customer"]["company"] == "FACTUS S.A.S."
    assert "names" not in payload["customer"]


def test_establishment_comes_from_the_branch_falling_back_to_the_organization(
    invoice: InvoiceData, build: Build
) -> None:
    # Given a branch with its own name, address and municipality but no phone or e-mail
    branch = BranchData(
        id=2, name="Sucursal Villanueva", address="Calle 3 # 4-5", municipality_id=996
    )
    payload = build(replace(invoice, branch=branch))
    # Then the missing fields come from the organization
    assert payload["establishment"] == {
        "name": "Sucursal Villanueva",
        "address": "Calle 3 # 4-5",
        "phone_number": "6077240000",
        "email": "ventas@tienda.example",
        "municipality_id": 996,
    }


def test_establishment_takes_the_organization_municipality_when_the_branch_has_none(
    invoice: InvoiceData, build: Build
) -> None:
    branch = BranchData(id=2, name="Sucursal", address="Calle 3")
    payload = build(replace(invoice, branch=branch))
    assert payload["establishment"]["municipality_id"] == 980


def test_no_branch_means_no_establishment(invoice: InvoiceData, build: Build) -> None:
    # Factus then prints the account's registered company data (DOC1 factura-avanzada).
    assert "establishment" not in build(invoice)


def test_credit_sale_sends_its_due_date(invoice: InvoiceData, build: Build) -> None:
    sale = replace(invoice, payment_form="2", due_date=date(2025, 4, 13), payment_method_code="47")
    payload = build(sale)
    assert payload["payment_form"] == "2"
    assert payload["payment_due_date"] == "2025-04-13"
    assert payload["payment_method_code"] == "47"


def test_cash_sale_does_not_send_a_due_date(invoice: InvoiceData, build: Build) -> None:
    payload = build(replace(invoice, due_date=date(2025, 4, 13)))
    assert "payment_due_date" not in payload


def test_header_defaults_are_the_seed_column_defaults(invoice: InvoiceData, build: Build) -> None:
    # NULL payment form / method / send_email → "1", "10", false (seed 002 migration defaults)
    sale = replace(invoice, payment_form=None, payment_method_code=None, send_email=None)
    payload = build(sale)
    assert (payload["payment_form"], payload["payment_method_code"], payload["send_email"]) == (
        "1",
        "10",
        False,
    )


def test_payment_method_zzz_is_accepted_in_any_case(invoice: InvoiceData, build: Build) -> None:
    assert build(replace(invoice, payment_method_code="zzz"))["payment_method_code"] == "ZZZ"


def test_transport_operation_type_is_sent_and_the_default_is_left_out(
    invoice: InvoiceData, build: Build
) -> None:
    assert build(replace(invoice, operation_type="12"))["operation_type"] == "12"
    assert "operation_type" not in build(replace(invoice, operation_type="10"))


def test_long_notes_are_truncated_to_250_characters(invoice: InvoiceData, build: Build) -> None:
    # Decision: a long free-text note is cut, not refused (payload module docstring).
    observation = build(replace(invoice, notes="x" * 300))["observation"]
    assert len(observation) == 250
    assert observation.endswith("…")
    assert build(replace(invoice, notes="y" * 250))["observation"] == "y" * 250


def test_billing_period_is_sent_with_end_of_day_when_times_are_missing(
    invoice: InvoiceData, build: Build
) -> None:
    period = BillingPeriodData(start_date=date(2025, 2, 1), end_date=date(2025, 2, 28))
    assert build(replace(invoice, billing_period=period))["billing_period"] == {
        "start_date": "2025-02-01",
        "end_date": "2025-02-28",
        "end_time": "23:59:59",
    }
    timed = replace(period, start_time=time(8, 0), end_time=time(18, 30))
    assert build(replace(invoice, billing_period=timed))["billing_period"] == {
        "start_date": "2025-02-01",
        "start_time": "08:00:00",
        "end_date": "2025-02-28",
        "end_time": "18:30:00",
    }


def test_item_fields_fall_back_to_product_sku_and_seed_defaults(
    invoice: InvoiceData, coffee: ItemData, build: Build
) -> None:
    item = replace(
        coffee,
        code_reference=None,
        product_sku="CAF-500",
        unit_measure_id=None,
        standard_code_id=None,
        tribute_id=None,
        note="  tostado medio ",
    )
    sent = build(replace(invoice, items=(item,)))["items"][0]
    assert sent["code_reference"] == "CAF-500"
    assert (sent["unit_measure_id"], sent["standard_code_id"], sent["tribute_id"]) == (70, 1, 1)
    assert sent["note"] == "tostado medio"


def test_unit_measures_synced_from_factus_are_accepted_when_passed_in(
    invoice: InvoiceData, coffee: ItemData, build: Build
) -> None:
    item = replace(coffee, unit_measure_id=414)
    assert build(replace(invoice, items=(item,)))["items"][0]["unit_measure_id"] == 414
    litre = replace(coffee, unit_measure_id=501)
    sent = build(replace(invoice, items=(litre,)), known_unit_measure_ids={70, 501})
    assert sent["items"][0]["unit_measure_id"] == 501


def test_excluded_item_is_flagged(invoice: InvoiceData, coffee: ItemData, build: Build) -> None:
    item = replace(coffee, is_excluded=True, tax_rate=Decimal(0))
    sale = replace(invoice, items=(item,), total=Decimal(40000))
    sent = build(sale)["items"][0]
    assert (sent["is_excluded"], sent["tax_rate"], sent["price"]) == (1, "0.00", 20000)


def test_item_tax_included_flag_overrides_the_invoice_flag(
    invoice: InvoiceData, coffee: ItemData, build: Build
) -> None:
    # The invoice says prices include tax, but this item's own flag says net.
    sale = replace(invoice, tax_included=True, items=(coffee,))
    assert build(sale)["items"][0]["price"] == 23800
    gross_item = replace(coffee, tax_included=None, unit_price=Decimal(23800))
    assert build(replace(sale, items=(gross_item,)))["items"][0]["price"] == 23800


def test_payload_total_within_tolerance_of_a_peso_rounded_erp_total_is_accepted(
    invoice: InvoiceData, build: Build
) -> None:
    # An ERP that rounds the document total to whole pesos is still the same sale.
    assert build(replace(invoice, total=Decimal("47600.40")))["reference_code"]
