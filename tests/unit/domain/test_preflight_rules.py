"""Pre-flight rules: values Factus or DIAN would refuse (or take wrongly) are refused before the call.

Each scenario changes one thing in the §3.6 invoice (tests/unit/domain/conftest.py) and checks the
rule code, the ERP column named and the value shown, as an operator reading ``error_message`` would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from einvoice.domain import dian
from einvoice.domain.errors import PayloadError
from einvoice.domain.invoices import AllowanceChargeData, BranchData, InvoiceData

Build = Callable[..., dict[str, Any]]
Reject = Callable[..., PayloadError]
Change = Callable[[InvoiceData], InvoiceData]

NAN, INF = Decimal("NaN"), Decimal("Infinity")
LONG = "x" * (dian.TEXT_MAX_CHARS + 1)


def customer(**changes: Any) -> Change:
    def apply(invoice: InvoiceData) -> InvoiceData:
        assert invoice.customer is not None
        return replace(invoice, customer=replace(invoice.customer, **changes))

    return apply


def item(**changes: Any) -> Change:
    def apply(invoice: InvoiceData) -> InvoiceData:
        return replace(invoice, items=(replace(invoice.items[0], **changes),), total=None)

    return apply


def header(**changes: Any) -> Change:
    def apply(invoice: InvoiceData) -> InvoiceData:
        return replace(invoice, **changes)

    return apply


def branch(**changes: Any) -> Change:
    base = BranchData(id=2, name="Sucursal", address="Calle 3", phone="6077000000",
                      email="sucursal@tienda.example", municipality_id=996)
    return header(branch=replace(base, **changes))


def surcharge(**changes: Any) -> Change:
    charge = AllowanceChargeData(concept_type="03", is_surcharge=True, reason="Propina",
                                 base_amount=Decimal(47600), amount=Decimal(4760))
    return header(allowance_charges=(replace(charge, **changes),), total=None)


RULES: list[tuple[str, Change, str, str, object]] = [
    # (scenario, change to the §3.6 invoice, code, field, value)
    # --- NaN / Infinity, legal in PostgreSQL numeric --------------------------------------
    ("NaN unit price", item(unit_price=NAN), "non_finite_number", "invoice_items[0].unit_price",
     "NaN"),
    ("Infinity unit price", item(unit_price=INF), "non_finite_number",
     "invoice_items[0].unit_price", "Infinity"),
    ("NaN quantity", item(qty=NAN), "non_finite_number", "invoice_items[0].qty", "NaN"),
    ("-Infinity quantity", item(qty=-INF), "non_finite_number", "invoice_items[0].qty",
     "-Infinity"),
    ("NaN tax rate", item(tax_rate=NAN), "non_finite_number", "invoice_items[0].tax_rate", "NaN"),
    ("NaN discount rate", item(discount_rate=NAN), "non_finite_number",
     "invoice_items[0].discount_rate", "NaN"),
    ("Infinity discount amount", item(discount_amount=INF), "non_finite_number",
     "invoice_items[0].discount_amount", "Infinity"),
    ("NaN document total", header(total=NAN), "non_finite_number", "invoice_sales.total", "NaN"),
    ("Infinity subtotal", header(subtotal=INF), "non_finite_number", "invoice_sales.subtotal",
     "Infinity"),
    ("NaN tax total", header(tax_total=NAN), "non_finite_number", "invoice_sales.tax_total",
     "NaN"),
    ("NaN surcharge", surcharge(amount=NAN), "non_finite_number",
     "invoice_sales.allowance_charges[0].amount", "NaN"),
    # --- NULL is not zero -------------------------------------------------------------------
    ("NULL price", item(unit_price=None), "missing_price", "invoice_items[0].unit_price", None),
    ("NULL tax rate", item(tax_rate=None), "missing_tax_rate", "invoice_items[0].tax_rate", None),
    ("NULL quantity", item(qty=None), "missing_quantity", "invoice_items[0].qty", None),
    # --- DIAN tax rates per tribute ---------------------------------------------------------
    ("IVA at 8 %", item(tax_rate=Decimal(8)), "unknown_tax_rate", "invoice_items[0].tax_rate",
     Decimal(8)),
    ("IVA at 10 %", item(tax_rate=Decimal("10.00")), "unknown_tax_rate",
     "invoice_items[0].tax_rate", Decimal("10.00")),
    ("INC at 19 %", item(tax_rate=Decimal(19), tribute_id=4), "unknown_tax_rate",
     "invoice_items[0].tax_rate", Decimal(19)),
    ("INC at 0 %", item(tax_rate=Decimal(0), tribute_id=4), "unknown_tax_rate",
     "invoice_items[0].tax_rate", Decimal(0)),
    # --- Amounts beyond the digits Factus carries ------------------------------------------
    ("14-digit unit price", item(unit_price=Decimal("10000000000000"), tax_rate=Decimal(0)),
     "amount_too_large", "invoice_items[0].unit_price", Decimal("10000000000000")),
    ("14-digit quantity", item(qty=Decimal("10000000000000")), "amount_too_large",
     "invoice_items[0].qty", Decimal("10000000000000")),
    ("14-digit line", item(qty=Decimal(1000), unit_price=Decimal("10000000000"),
                           tax_included=True), "amount_too_large",
     "invoice_items[0].unit_price", Decimal("10000000000000.00")),
    ("14-digit surcharge", surcharge(amount=Decimal("10000000000000")), "amount_too_large",
     "invoice_sales.allowance_charges[0].amount", Decimal("10000000000000")),
    # --- Lengths (255 where Factus documents none; 254 for an e-mail) ----------------------
    ("long first name", customer(first_name=LONG), "text_too_long", "customers.first_name",
     "x" * 39 + "…"),
    ("first and last name together too long",
     customer(first_name="x" * 200, last_name="y" * 100), "text_too_long",
     "customers.first_name", "x" * 39 + "…"),
    ("long address", customer(address=LONG), "text_too_long", "customers.address",
     "x" * 39 + "…"),
    ("long phone", customer(phone=LONG), "text_too_long", "customers.phone", "x" * 39 + "…"),
    ("long trade name", customer(trade_name=LONG), "text_too_long", "customers.trade_name",
     "x" * 39 + "…"),
    ("long item name", item(description=LONG), "text_too_long", "invoice_items[0].description",
     "x" * 39 + "…"),
    ("long code reference", item(code_reference=LONG), "text_too_long",
     "invoice_items[0].code_reference", "x" * 39 + "…"),
    ("long product sku", item(code_reference=None, product_sku=LONG), "text_too_long",
     "products.sku", "x" * 39 + "…"),
    ("long item note", item(note=LONG), "text_too_long", "invoice_items[0].note",
     "x" * 39 + "…"),
    ("long branch name", branch(name=LONG), "text_too_long", "branches.name", "x" * 39 + "…"),
    ("long surcharge reason", surcharge(reason=LONG), "text_too_long",
     "invoice_sales.allowance_charges[0].reason", "x" * 39 + "…"),
    ("long e-mail", customer(email="a" * 60 + "@" + "b" * 190 + ".com"), "text_too_long",
     "customers.email", "a" * 39 + "…"),
    # --- E-mail syntax ------------------------------------------------------------------------
    ("e-mail without domain", customer(email="maria@"), "invalid_email", "customers.email",
     "maria@"),
    ("e-mail with a blank", customer(email="maria gomez@example.com"), "invalid_email",
     "customers.email", "maria gomez@example.com"),
    ("two e-mails", customer(email="a@example.com; b@example.com"), "invalid_email",
     "customers.email", "a@example.com; b@example.com"),
    ("e-mail without a dot in the domain", customer(email="maria@localhost"), "invalid_email",
     "customers.email", "maria@localhost"),
    ("e-mail with a doubled dot", customer(email="maria..gomez@example.com"), "invalid_email",
     "customers.email", "maria..gomez@example.com"),
    ("e-mail with a 65-character local part", customer(email="m" * 65 + "@example.com"),
     "invalid_email", "customers.email", "m" * 65 + "@example.com"),
    ("branch e-mail", branch(email="ventas(at)tienda.co"), "invalid_email", "branches.email",
     "ventas(at)tienda.co"),
    # --- Identification per document type --------------------------------------------------
    ("cédula with a letter", customer(identification_number="10203O4050"),
     "invalid_identification", "customers.identification_number", "10203O4050"),
    ("cédula with a hyphen", customer(identification_number="1020304050-1"),
     "invalid_identification", "customers.identification_number", "1020304050-1"),
    ("cédula of 16 digits", customer(identification_number="1" * 16),
     "invalid_identification", "customers.identification_number", "1" * 16),
    ("tarjeta de identidad with letters", customer(identification_type="TI",
                                                   identification_number="TI1020304050"),
     "invalid_identification", "customers.identification_number", "TI1020304050"),
    ("passport with a hyphen", customer(identification_type="PP", identification_number="AB-12345"),
     "invalid_identification", "customers.identification_number", "AB-12345"),
    ("passport of 21 characters", customer(identification_type="PP",
                                           identification_number="A" * 21),
     "invalid_identification", "customers.identification_number", "A" * 21),
    ("NIT of 16 digits", customer(identification_type="NIT", identification_number="9" * 16,
                                  company_name="ACME SAS", legal_organization_id=1),
     "invalid_nit", "customers.identification_number", "9" * 16),
    # --- Control and bidirectional characters ----------------------------------------------
    ("right-to-left override in a name", customer(first_name="Mar\u202eía"),
     "forbidden_character", "customers.first_name", "Mar\u202eía"),
    ("isolate in a code reference", item(code_reference="SKU\u2066-1"), "forbidden_character",
     "invoice_items[0].code_reference", "SKU\u2066-1"),
    ("NUL in an item name", item(description="Café\x00500 g"), "forbidden_character",
     "invoice_items[0].description", "Café\x00500 g"),
    ("line feed inside an item name", item(description="Café\n500 g"), "forbidden_character",
     "invoice_items[0].description", "Café\n500 g"),
    ("C1 control in a company name", customer(company_name="ACME\x85SAS", legal_organization_id=1,
                                              identification_type="NIT",
                                              identification_number="901724254"),
     "forbidden_character", "customers.company_name", "ACME\x85SAS"),
    ("left-to-right mark in an e-mail", customer(email="maria\u200e@example.com"),
     "forbidden_character", "customers.email", "maria\u200e@example.com"),
    ("escape in the observation", header(notes="Entrega \x1b[31m urgente"),
     "forbidden_character", "invoice_sales.notes", "Entrega \x1b[31m urgente"),
    ("bidi override in an identification", customer(identification_number="1020\u202e304050"),
     "forbidden_character", "customers.identification_number", "1020\u202e304050"),
    ("pop directional formatting in a branch address", branch(address="Calle 3\u202c"),
     "forbidden_character", "branches.address", "Calle 3\u202c"),
]


@pytest.mark.parametrize(
    ("change", "code", "field", "value"),
    [pytest.param(*rule[1:], id=rule[0]) for rule in RULES],
)
def test_preflight_rule_is_refused_with_its_code_field_and_value(
    invoice: InvoiceData, reject: Reject, change: Change, code: str, field: str, value: object
) -> None:
    # Given the §3.6 invoice with one value Factus or DIAN would refuse
    broken = change(invoice)
    # When the payload is built, then it is refused before any call, naming rule, column, value
    error = reject(broken)
    assert (error.code, error.reason, error.field, error.value) == (code, code, field, value)
    shown = "NULL" if value is None else (repr(value) if isinstance(value, str) else value)
    assert error.message.startswith(f"{field} = {shown}: ")


def test_a_forbidden_character_is_named_by_its_code_point_and_position(
    invoice: InvoiceData, reject: Reject
) -> None:
    error = reject(customer(last_name="Gó\u202emez")(invoice))
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE) at character 3" in error.message


def test_the_values_at_each_limit_still_go_through(invoice: InvoiceData, build: Build) -> None:
    # Given texts of exactly 255 characters, a 254-character e-mail and a 15-digit cédula
    at_limit = customer(first_name="M" * 255, last_name=None, address="A" * 255,
                        email="m" * 64 + "@" + ("d" * 61 + ".") * 3 + "com",
                        identification_number="1" * 15)(invoice)
    at_limit = item(description="C" * 255, code_reference="S" * 255)(at_limit)
    # Then the payload is built with them unchanged
    payload = build(at_limit)
    assert payload["customer"]["names"] == "M" * 255
    assert len(payload["customer"]["email"]) == 254
    assert payload["customer"]["identification"] == "1" * 15
    assert payload["items"][0]["name"] == "C" * 255


def test_the_largest_amount_factus_carries_exactly_goes_through(
    invoice: InvoiceData, build: Build
) -> None:
    # Given a tax-included, untaxed line of 9,999,999,999,999.99 COP (12 nines + 1 + 2 decimals)
    top = Decimal("9999999999999.99")
    payload = build(item(qty=Decimal(1), unit_price=top, tax_rate=Decimal(0),
                         tax_included=True)(invoice))
    # Then the price is sent and reads back as the same 2-decimal amount
    assert Decimal(str(payload["items"][0]["price"])) == top


def test_a_document_total_of_14_digits_is_refused_even_when_each_line_is_below(
    invoice: InvoiceData, reject: Reject
) -> None:
    line = replace(invoice.items[0], qty=Decimal(1), unit_price=Decimal("6000000000000"),
                   tax_rate=Decimal(0), tax_included=True)
    error = reject(replace(invoice, items=(line, line), total=None))
    assert (error.code, error.field, error.value) == (
        "amount_too_large", "invoice_sales.total", Decimal("12000000000000"))


@pytest.mark.parametrize(
    ("tribute_id", "rates"),
    [(1, ["0", "5", "16", "19", "19.00"]), (4, ["2", "4", "8", "16"]), (3, ["0.966", "1.38"])],
    ids=["IVA", "INC", "ICA (not checked: municipal rates)"],
)
def test_rates_dian_defines_for_the_tribute_are_accepted(
    invoice: InvoiceData, build: Build, tribute_id: int, rates: list[str]
) -> None:
    for rate in rates:
        if Decimal(rate) != Decimal(rate).quantize(Decimal("0.01")):
            continue  # more than 2 decimals is another rule (invalid_tax_rate)
        payload = build(item(tax_rate=Decimal(rate), tribute_id=tribute_id)(invoice))
        assert Decimal(payload["items"][0]["tax_rate"]) == Decimal(rate)


def test_valid_identifications_are_sent_cleaned(invoice: InvoiceData, build: Build) -> None:
    cases = [("CC", "1.020.304.050", "1020304050"), ("PP", "AB1234567", "AB1234567"),
             ("CE", "E-123456", "E-123456"), ("NIT_EXT", "B-12345678", "B-12345678"),
             ("NUIP", "1020304050", "1020304050")]
    for kind, number, sent in cases:
        payload = build(customer(identification_type=kind, identification_number=number)(invoice))
        assert payload["customer"]["identification"] == sent, kind


def test_free_text_keeps_line_breaks_and_tabs(invoice: InvoiceData, build: Build) -> None:
    # Given an address and a note typed in multi-line ERP fields
    changed = customer(address="Cra 7 # 12-34\nApto 301")(invoice)
    changed = item(note="Lote 12\tvence 2026-01")(changed)
    changed = header(notes="Entregar en portería.\r\nGracias.")(changed)
    payload = build(changed)
    assert payload["customer"]["address"] == "Cra 7 # 12-34\nApto 301"
    assert payload["items"][0]["note"] == "Lote 12\tvence 2026-01"
    assert payload["observation"] == "Entregar en portería.\r\nGracias."


def test_a_long_observation_is_still_truncated_not_refused(
    invoice: InvoiceData, build: Build
) -> None:
    payload = build(header(notes="n" * 600)(invoice))
    assert payload["observation"] == "n" * 249 + "…"


def test_an_establishment_falling_back_to_the_organization_names_the_organization(
    invoice: InvoiceData, reject: Reject
) -> None:
    # Given a branch without e-mail whose organization's e-mail is malformed
    broken = branch(email=None)(invoice)
    broken = replace(broken, organization=replace(broken.organization, email="ventas@tienda"))
    error = reject(broken)
    assert (error.code, error.field) == ("invalid_email", "organizations.email")


def test_more_lines_than_the_limit_are_refused_and_the_limit_itself_passes(
    invoice: InvoiceData, build: Build, reject: Reject
) -> None:
    line = replace(invoice.items[0], qty=Decimal(1))
    many = replace(invoice, items=(line,) * dian.MAX_ITEMS, total=None)
    assert len(build(many)["items"]) == dian.MAX_ITEMS
    error = reject(replace(many, items=(line,) * (dian.MAX_ITEMS + 1)))
    assert (error.code, error.field, error.value) == (
        "too_many_items", "invoice_items", dian.MAX_ITEMS + 1)


def test_a_credit_note_is_held_to_the_same_rules(
    credit_note: InvoiceData, build_note: Build
) -> None:
    # Given a credit note whose corrected invoice's total was read as NaN, and one with a NULL price
    with pytest.raises(PayloadError) as caught:
        build_note(replace(credit_note, related_invoice_total=NAN))
    assert (caught.value.code, caught.value.field) == ("non_finite_number",
                                                       "related_invoice.total")
    with pytest.raises(PayloadError) as caught:
        build_note(item(unit_price=None)(credit_note))
    assert (caught.value.code, caught.value.field) == ("missing_price",
                                                       "invoice_items[0].unit_price")
