"""Every rejection rule of the bill builder: its code, the ERP column it blames, the value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from einvoice.domain.errors import PayloadError
from einvoice.domain.invoices import (
    AllowanceChargeData,
    BillingPeriodData,
    BranchData,
    InvoiceData,
    WithholdingTaxData,
)

Build = Callable[..., dict[str, Any]]
Reject = Callable[..., PayloadError]
Change = Callable[[InvoiceData], InvoiceData]


def customer(**changes: Any) -> Change:
    def apply(invoice: InvoiceData) -> InvoiceData:
        assert invoice.customer is not None
        return replace(invoice, customer=replace(invoice.customer, **changes))

    return apply


def item(**changes: Any) -> Change:
    def apply(invoice: InvoiceData) -> InvoiceData:
        return replace(invoice, items=(replace(invoice.items[0], **changes),))

    return apply


def numbering(**changes: Any) -> Change:
    def apply(invoice: InvoiceData) -> InvoiceData:
        assert invoice.numbering_range is not None
        return replace(invoice, numbering_range=replace(invoice.numbering_range, **changes))

    return apply


def header(**changes: Any) -> Change:
    def apply(invoice: InvoiceData) -> InvoiceData:
        return replace(invoice, **changes)

    return apply


def nit_customer(**changes: Any) -> Change:
    base = {
        "identification_type": "NIT",
        "identification_number": "901724254",
        "company_name": "FACTUS S.A.S.",
        "legal_organization_id": 1,
    }
    return customer(**{**base, **changes})


def surcharge(**changes: Any) -> Change:
    charge = AllowanceChargeData(
        concept_type="03",
        is_surcharge=True,
        reason="Propina",
        base_amount=Decimal(47600),
        amount=Decimal(4760),
    )
    return header(allowance_charges=(replace(charge, **changes),), total=None)


BRANCH = BranchData(id=2, name="Sucursal", address="Calle 3", municipality_id=996)

RULES: list[tuple[str, Change, str, str, object]] = [
    # (scenario, change to the §3.6 invoice, code, field, value)
    (
        "credit note sent to the bill builder",
        header(document_type="credit_note"),
        "wrong_document_type",
        "invoice_sales.document_type",
        "credit_note",
    ),
    (
        "no numbering range row",
        header(numbering_range=None),
        "no_active_numbering_range",
        "invoice_sequences",
        None,
    ),
    (
        "inactive range",
        numbering(is_active=False),
        "no_active_numbering_range",
        "invoice_sequences.is_active",
        False,
    ),
    (
        "credit-note range on an invoice",
        numbering(document_type="credit_note"),
        "wrong_numbering_range",
        "invoice_sequences.document_type",
        "credit_note",
    ),
    (
        "range never synced with Factus",
        numbering(factus_numbering_range_id=None),
        "numbering_range_not_synced",
        "invoice_sequences.factus_numbering_range_id",
        None,
    ),
    (
        "range starts tomorrow",
        numbering(valid_from=date(2025, 3, 15)),
        "numbering_range_not_yet_valid",
        "invoice_sequences.valid_from",
        "2025-03-15",
    ),
    (
        "range ended yesterday",
        numbering(valid_until=date(2025, 3, 13)),
        "numbering_range_expired",
        "invoice_sequences.valid_until",
        "2025-03-13",
    ),
    (
        "range used up",
        numbering(current_number=995000001),
        "numbering_range_exhausted",
        "invoice_sequences.current_number",
        995000001,
    ),
    (
        "dollars",
        header(currency="USD"),
        "unsupported_currency",
        "invoice_sales.currency",
        "USD",
    ),
    (
        "unknown payment form",
        header(payment_form="3"),
        "unknown_payment_form",
        "invoice_sales.payment_form",
        "3",
    ),
    (
        "credit sale without due date",
        header(payment_form="2", due_date=None),
        "missing_payment_due_date",
        "invoice_sales.due_date",
        None,
    ),
    (
        "due date before issue date",
        header(payment_form="2", due_date=date(2025, 3, 1)),
        "invalid_payment_due_date",
        "invoice_sales.due_date",
        "2025-03-01",
    ),
    (
        "unknown payment method",
        header(payment_method_code="99"),
        "unknown_payment_method",
        "invoice_sales.payment_method_code",
        "99",
    ),
    (
        "unknown operation type",
        header(operation_type="13"),
        "unknown_operation_type",
        "invoice_sales.operation_type",
        "13",
    ),
    (
        "mandate operation without scheme ids",
        header(operation_type="11"),
        "unsupported_operation_type",
        "invoice_sales.operation_type",
        "11",
    ),
    (
        "unknown identification type",
        customer(identification_type="XX"),
        "unknown_identification_type",
        "customers.identification_type",
        "XX",
    ),
    (
        "blank identification number",
        customer(identification_number="  "),
        "missing_identification",
        "customers.identification_number",
        "  ",
    ),
    (
        "NIT with a letter",
        nit_customer(identification_number="90172425A"),
        "invalid_nit",
        "customers.identification_number",
        "90172425A",
    ),
    ("NIT with a wrong DV", nit_customer(dv=4), "invalid_dv", "customers.dv", 4),
    (
        "unknown legal organization",
        customer(legal_organization_id=3),
        "unknown_legal_organization",
        "customers.legal_organization_id",
        3,
    ),
    (
        "legal person without company name",
        nit_customer(company_name=" "),
        "missing_company_name",
        "customers.company_name",
        " ",
    ),
    (
        "natural person without names",
        customer(first_name=None, last_name=""),
        "missing_customer_name",
        "customers.first_name",
        None,
    ),
    (
        "seed-only tribute 22 (ZA)",
        customer(tribute_id=22),
        "unknown_customer_tribute",
        "customers.tribute_id",
        22,
    ),
    (
        "customer municipality unknown",
        customer(municipality_id=99999),
        "unknown_municipality",
        "customers.municipality_id",
        99999,
    ),
    (
        "branch municipality unknown",
        header(branch=replace(BRANCH, municipality_id=5000)),
        "unknown_municipality",
        "branches.municipality_id",
        5000,
    ),
    (
        "branch and organization without e-mail",
        lambda invoice: replace(
            invoice,
            branch=BRANCH,
            organization=replace(invoice.organization, email=None),
        ),
        "incomplete_establishment",
        "branches.email",
        None,
    ),
    (
        "branch and organization without municipality",
        lambda invoice: replace(
            invoice,
            branch=replace(BRANCH, municipality_id=None),
            organization=replace(invoice.organization, municipality_id=None),
        ),
        "incomplete_establishment",
        "branches.municipality_id",
        None,
    ),
    ("no items", header(items=()), "no_items", "invoice_items", 0),
    (
        "item without description",
        item(description=""),
        "missing_item_name",
        "invoice_items[0].description",
        "",
    ),
    (
        "item without any code",
        item(code_reference=None, product_sku=" ", product_id=None),
        "missing_code_reference",
        "invoice_items[0].code_reference",
        None,
    ),
    (
        "fractional quantity",
        item(qty=Decimal("1.5")),
        "non_integer_quantity",
        "invoice_items[0].qty",
        Decimal("1.5"),
    ),
    (
        "zero quantity",
        item(qty=Decimal(0)),
        "non_positive_quantity",
        "invoice_items[0].qty",
        Decimal(0),
    ),
    (
        "negative quantity",
        item(qty=Decimal(-2)),
        "non_positive_quantity",
        "invoice_items[0].qty",
        Decimal(-2),
    ),
    (
        "negative price",
        item(unit_price=Decimal(-1)),
        "negative_amount",
        "invoice_items[0].unit_price",
        Decimal(-1),
    ),
    (
        "tax rate with 3 decimals",
        item(tax_rate=Decimal("19.005")),
        "invalid_tax_rate",
        "invoice_items[0].tax_rate",
        Decimal("19.005"),
    ),
    (
        "negative tax rate",
        item(tax_rate=Decimal(-5)),
        "invalid_tax_rate",
        "invoice_items[0].tax_rate",
        Decimal(-5),
    ),
    (
        "tax rate of 100 %",
        item(tax_rate=Decimal(100)),
        "invalid_tax_rate",
        "invoice_items[0].tax_rate",
        Decimal(100),
    ),
    (
        "excluded item with IVA",
        item(is_excluded=True),
        "invalid_tax_rate",
        "invoice_items[0].tax_rate",
        Decimal(19),
    ),
    (
        "nobody says whether prices include tax",
        lambda invoice: replace(
            invoice, tax_included=None, items=(replace(invoice.items[0], tax_included=None),)
        ),
        "missing_tax_included",
        "invoice_items[0].tax_included",
        None,
    ),
    (
        "discount over 100 %",
        item(discount_rate=Decimal(120)),
        "invalid_discount_rate",
        "invoice_items[0].discount_rate",
        Decimal(120),
    ),
    (
        "negative discount amount",
        item(discount_amount=Decimal(-5)),
        "negative_amount",
        "invoice_items[0].discount_amount",
        Decimal(-5),
    ),
    (
        "discount larger than the line",
        item(discount_amount=Decimal("40000.01")),
        "invalid_discount_amount",
        "invoice_items[0].discount_amount",
        Decimal("40000.01"),
    ),
    (
        "seed's unit id 71 (KGM per the seed, not Factus)",
        item(unit_measure_id=71),
        "unknown_unit_measure",
        "invoice_items[0].unit_measure_id",
        71,
    ),
    (
        "unknown standard code",
        item(standard_code_id=9),
        "unknown_standard_code",
        "invoice_items[0].standard_code_id",
        9,
    ),
    (
        "unknown product tribute",
        item(tribute_id=99),
        "unknown_product_tribute",
        "invoice_items[0].tribute_id",
        99,
    ),
    (
        "unknown withholding",
        item(withholding_taxes=(WithholdingTaxData(code="01", rate=Decimal("2.5")),)),
        "unknown_withholding_tax",
        "invoice_items[0].withholding_taxes[0].code",
        "01",
    ),
    (
        "same withholding twice",
        item(
            withholding_taxes=(
                WithholdingTaxData(code="06", rate=Decimal("2.5")),
                WithholdingTaxData(code="ReteFuente", rate=Decimal("3.5")),
            )
        ),
        "duplicate_withholding_tax",
        "invoice_items[0].withholding_taxes[1].code",
        "ReteFuente",
    ),
    (
        "withholding rate per mil with 3 decimals",
        item(withholding_taxes=(WithholdingTaxData(code="07", rate=Decimal("0.966")),)),
        "invalid_withholding_rate",
        "invoice_items[0].withholding_taxes[0].withholding_tax_rate",
        Decimal("0.966"),
    ),
    (
        "withholding rate of zero",
        item(withholding_taxes=(WithholdingTaxData(code="05", rate=Decimal(0)),)),
        "invalid_withholding_rate",
        "invoice_items[0].withholding_taxes[0].withholding_tax_rate",
        Decimal(0),
    ),
    (
        "allowance concept not available on v1",
        surcharge(concept_type="01"),
        "unsupported_allowance_concept",
        "invoice_sales.allowance_charges[0].concept_type",
        "01",
    ),
    (
        "invoice-level discount",
        surcharge(is_surcharge=False),
        "unsupported_allowance_charge",
        "invoice_sales.allowance_charges[0].is_surcharge",
        False,
    ),
    (
        "surcharge without reason",
        surcharge(reason=""),
        "missing_allowance_reason",
        "invoice_sales.allowance_charges[0].reason",
        "",
    ),
    (
        "negative surcharge",
        surcharge(amount=Decimal(-1)),
        "negative_amount",
        "invoice_sales.allowance_charges[0].amount",
        Decimal(-1),
    ),
    (
        "billing period ending before it starts",
        header(
            billing_period=BillingPeriodData(
                start_date=date(2025, 3, 1), end_date=date(2025, 2, 28)
            )
        ),
        "invalid_billing_period",
        "invoice_sales.billing_period.end_date",
        "2025-02-28",
    ),
    (
        "items do not add up to the ERP total",
        header(total=Decimal("50000.00")),
        "total_mismatch",
        "invoice_sales.total",
        Decimal("50000.00"),
    ),
    (
        "negative ERP total",
        header(total=Decimal(-47600)),
        "negative_amount",
        "invoice_sales.total",
        Decimal(-47600),
    ),
]


@pytest.mark.parametrize(
    ("change", "code", "field", "value"),
    [pytest.param(*rule[1:], id=rule[0]) for rule in RULES],
)
def test_rule_is_refused_with_its_code_field_and_value(
    invoice: InvoiceData, reject: Reject, change: Change, code: str, field: str, value: object
) -> None:
    # Given the §3.6 invoice with one thing wrong
    broken = change(invoice)
    # When the payload is built, then it is refused naming the rule, the column and the value
    error = reject(broken)
    assert (error.code, error.reason, error.field, error.value) == (code, code, field, value)
    # and the message starts with "<field> = <value>:" so a person can find the row
    shown = "NULL" if value is None else (repr(value) if isinstance(value, str) else value)
    if isinstance(value, bool):
        shown = "true" if value else "false"
    assert error.message.startswith(f"{field} = {shown}: ")


@pytest.mark.parametrize(
    "reference_code", ["", "X" * 21, "INV/731", "café-1"], ids=["empty", "21 chars", "slash", "ñ"]
)
def test_reference_codes_that_cannot_go_into_a_url_are_refused(
    invoice: InvoiceData, reject: Reject, reference_code: str
) -> None:
    error = reject(invoice, reference_code=reference_code)
    assert (error.code, error.field) == (
        "invalid_reference_code",
        "electronic_invoicing_jobs.reference_code",
    )


def test_a_problem_in_the_second_item_names_that_item(invoice: InvoiceData, reject: Reject) -> None:
    second = replace(invoice.items[0], description="Queso campesino", qty=Decimal("0.75"))
    error = reject(replace(invoice, items=(invoice.items[0], second), total=None))
    assert (error.code, error.field) == ("non_integer_quantity", "invoice_items[1].qty")
    assert "item 2 ('Queso campesino')" in error.message
    assert "not rounded" in error.message


def test_the_first_broken_rule_in_the_documented_order_is_reported(
    invoice: InvoiceData, reject: Reject
) -> None:
    # Given an invoice with an expired range, a wrong DV and a fractional quantity
    broken = nit_customer(dv=4)(invoice)
    broken = numbering(valid_until=date(2020, 1, 1))(broken)
    broken = item(qty=Decimal("1.5"))(broken)
    # Then the range (checked first) is what is reported, every time
    assert reject(broken).code == "numbering_range_expired"
    assert reject(broken).code == "numbering_range_expired"


def test_range_boundaries_are_inclusive(invoice: InvoiceData, build: Build) -> None:
    # The last day of the resolution and the last number of the range are still usable.
    last_day = numbering(valid_until=date(2025, 3, 14), valid_from=date(2025, 3, 14))(invoice)
    assert build(last_day)["numbering_range_id"] == 8
    last_number = numbering(current_number=995000000)(invoice)
    assert build(last_number)["numbering_range_id"] == 8


def test_range_document_type_may_be_the_factus_code(invoice: InvoiceData, build: Build) -> None:
    assert build(numbering(document_type="21")(invoice))["numbering_range_id"] == 8


def test_float_money_is_a_programming_error_not_an_erp_rejection(
    invoice: InvoiceData, build: Build
) -> None:
    # Repositories hand NUMERIC over as Decimal; a float would leak binary fractions into money.
    with pytest.raises(TypeError, match="unit_price must be a Decimal"):
        build(item(unit_price=20000.0)(invoice))


def test_an_expired_range_is_reported_as_expired_even_once_sync_marked_it_inactive(
    invoice: InvoiceData, reject: Reject
) -> None:
    # Given the branch's range whose resolution ended, before and after `sync ranges` marked
    # it inactive (as Factus lists it)
    expired = numbering(valid_until=date(2025, 3, 13))(invoice)
    synced = numbering(valid_until=date(2025, 3, 13), is_active=False)(invoice)
    # Then the invoice is rejected for the same, actionable reason either way
    assert reject(expired).code == reject(synced).code == "numbering_range_expired"
