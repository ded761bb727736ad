"""One document, two wire formats: the Factus v2 examples rebuilt from ERP rows, and v1's refusals.

Each v2 example of the Factus docs (``sbetav/factus-js`` ``factus-docs/v2/facturas/ejemplos/*``)
is reproduced from ERP rows, and the body is validated in-process by the simulator's v2
validation (``einvoice.sandbox.v2_validation``), which is written from the docs, not from the
mapper.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from einvoice.domain.errors import PayloadError
from einvoice.domain.invoices import (
    AllowanceChargeData,
    BranchData,
    CustomerData,
    InvoiceData,
    ItemData,
    NumberingRangeData,
    OrganizationData,
    PaymentData,
    PrepaymentData,
    TaxData,
    WithholdingTaxData,
)
from einvoice.domain.payload import build_document
from einvoice.factus import v1_body, v2_body
from einvoice.sandbox.v2_validation import validate_bill_v2, validate_credit_note_v2

TODAY = date(2026, 3, 14)
SAN_GIL = 980  # Factus municipality id; DANE code 68679 (the docs' municipality_code)
MUNICIPALITIES = frozenset({SAN_GIL, 169})


def _org() -> OrganizationData:
    return OrganizationData(id=7, name="Tienda Central", email="ventas@tienda.example",
                            phone="6077240000", address="Calle 10 # 9-04",
                            municipality_id=SAN_GIL, municipality_code="68679")


def _company() -> CustomerData:
    """The docs' "Alan company name" customer (NIT 123456789 has check digit 6)."""
    return CustomerData(
        id="c-1", identification_type="NIT", identification_number="123456789",
        company_name="Alan company name", trade_name="Alan trade name",
        address="calle 1 # 1-1", email="alan.company@email.com", phone="1234567890",
        legal_organization_id=1, tribute_id=21, municipality_id=SAN_GIL,
        municipality_code="68679",
    )


def _item(code: str, name: str, qty: str, price: str, rate: str = "19", **kw: Any) -> ItemData:
    return ItemData(description=name, qty=Decimal(qty), unit_price=Decimal(price),
                    tax_rate=Decimal(rate), tax_included=False, code_reference=code, **kw)


PRODUCTS = (_item("PROD-000A", "Producto A", "1", "10000"),
            _item("PROD-000B", "Producto B", "3", "20000"))


def _invoice(**changes: Any) -> InvoiceData:
    """The docs' standard sale: products A (1 × 10,000) and B (3 × 20,000) + IVA 19 % = 83,300."""
    base = InvoiceData(
        id="inv-1", organization=_org(), customer=_company(), items=PRODUCTS,
        numbering_range=NumberingRangeData(id=1, factus_numbering_range_id=389,
                                           document_type="invoice", is_active=True),
        issue_date=TODAY, payment_form="1", payment_method_code="42", send_email=False,
        notes="Observación de prueba", total=Decimal("83300.00"),
    )
    return replace(base, **changes)


def _document(invoice: InvoiceData, rules: Any = v2_body.V2_RULES) -> Any:
    return build_document(invoice, reference_code="FACT-2026-0124", today=TODAY,
                          known_municipality_ids=MUNICIPALITIES, rules=rules)


def _v2(invoice: InvoiceData) -> dict[str, Any]:
    """Build the v2 bill body and check that the simulator's v2 validation accepts it."""
    body = v2_body.bill_body(_document(invoice))
    request, bag = validate_bill_v2(json.loads(json.dumps(body)))
    assert not bag, bag.errors
    assert request is not None
    return body


def _v1(invoice: InvoiceData) -> dict[str, Any]:
    return v1_body.bill_body(_document(invoice, v1_body.V1_RULES))


def _refused(invoice: InvoiceData, rules: Any) -> PayloadError:
    mapper = v2_body if rules is v2_body.V2_RULES else v1_body
    with pytest.raises(PayloadError) as caught:
        mapper.bill_body(_document(invoice, rules))
    return caught.value


def test_standard_example_is_reproduced_from_erp_rows() -> None:
    # Given the docs' standard sale (facturas/crear-y-validar)
    # When it is mapped for v2
    body = _v2(_invoice())
    # Then the body carries the docs' codes and strings, and one payment of the whole total
    assert body["customer"] == {
        "identification_document_code": "31", "identification": "123456789", "dv": "6",
        "company": "Alan company name", "trade_name": "Alan trade name",
        "address": "calle 1 # 1-1", "email": "alan.company@email.com", "phone": "1234567890",
        "legal_organization_code": "1", "tribute_code": "ZZ", "municipality_code": "68679",
    }
    assert body["items"][1] == {
        "code_reference": "PROD-000B", "name": "Producto B", "quantity": "3.00",
        "discount_rate": "0.00", "price": "20000.00", "unit_measure_code": "94",
        "standard_code": "999", "taxes": [{"code": "01", "rate": "19.00"}],
    }
    assert body["payment_details"] == [
        {"payment_form": "1", "payment_method_code": "42", "amount": "83300.00"}]
    assert body["cash_rounding_amount"] == "0.00"
    assert body["send_email"] is False
    assert v2_body.payload_total(body) == Decimal("83300.00")


def test_credit_sale_example_sends_its_due_date_in_the_payment() -> None:
    body = _v2(_invoice(payment_form="2", payment_method_code="47",
                        due_date=date(2028, 3, 25)))
    assert body["payment_details"] == [{"payment_form": "2", "payment_method_code": "47",
                                        "amount": "83300.00", "due_date": "2028-03-25"}]


def test_self_withholdings_example_sends_code_and_rate() -> None:
    item = _item("PROD-000A", "Producto A", "1", "1000000", withholding_taxes=(
        WithholdingTaxData(code="05", rate=Decimal(2)),
        WithholdingTaxData(code="ReteFuente", rate=Decimal(4))))
    body = _v2(_invoice(items=(item,), payment_method_code="47", total=Decimal("1190000")))
    assert body["items"][0]["withholding_taxes"] == [{"code": "05", "rate": "2.00"},
                                                     {"code": "06", "rate": "4.00"}]
    assert body["payment_details"][0]["amount"] == "1190000.00"


def test_reteica_is_refused_on_v2_but_sent_on_v1() -> None:
    item = _item("X", "Servicio", "1", "1000", withholding_taxes=(
        WithholdingTaxData(code="07", rate=Decimal("0.97")),))
    invoice = _invoice(items=(item,), total=None)
    assert _refused(invoice, v2_body.V2_RULES).code == "unknown_withholding_tax"
    assert _v1(invoice)["items"][0]["withholding_taxes"] == [
        {"code": "07", "withholding_tax_rate": 0.97}]


def test_excluded_line_example_sends_an_excluded_tax() -> None:
    item = _item("PROD-000A", "Producto A", "1", "83300", rate="0", is_excluded=True)
    body = _v2(_invoice(items=(item,)))
    assert body["items"][0]["price"] == "83300.00"
    assert body["items"][0]["taxes"] == [{"code": "01", "rate": "0.00", "is_excluded": True}]


def test_establishment_example_sends_the_dane_code() -> None:
    branch = BranchData(id=2, name="nombre establecimiento", address="direccion del establecimiento",
                        phone="1234567890", email="establecieminto@tuempresa.com",
                        municipality_id=SAN_GIL, municipality_code="68679")
    body = _v2(_invoice(branch=branch))
    assert body["establishment"] == {
        "name": "nombre establecimiento", "address": "direccion del establecimiento",
        "phone_number": "1234567890", "email": "establecieminto@tuempresa.com",
        "municipality_code": "68679"}


def test_municipality_without_a_dane_code_is_refused_on_v2_only() -> None:
    invoice = _invoice(customer=replace(_company(), municipality_code=None))
    error = _refused(invoice, v2_body.V2_RULES)
    assert (error.code, error.field) == ("unknown_municipality", "customers.municipality_id")
    assert _v1(invoice)["customer"]["municipality_id"] == SAN_GIL


def test_order_reference_and_display_currency_examples() -> None:
    body = _v2(_invoice(order_reference="ORD-2026-0130", order_issue_date=date(2023, 6, 23),
                        display_currency="usd", exchange_rate=Decimal("3565.07")))
    assert body["order_reference"] == {"reference_code": "ORD-2026-0130",
                                       "issue_date": "2023-06-23"}
    assert body["currency"] == {"type": "USD", "exchange_rate": "3565.07"}


def test_tip_example_is_a_surcharge_the_payment_covers() -> None:
    tip = AllowanceChargeData(concept_type="03", is_surcharge=True, reason="propina",
                              base_amount=Decimal(20000), amount=Decimal(2000))
    body = _v2(_invoice(allowance_charges=(tip,), total=Decimal("85300")))
    assert body["allowance_charges"] == [{"concept_type": "03", "is_surcharge": True,
                                          "reason": "propina", "base_amount": "20000.00",
                                          "amount": "2000.00"}]
    assert body["payment_details"][0]["amount"] == "85300.00"


def test_prepayment_reduces_what_the_payment_covers() -> None:
    # The docs' example pays 83,300 beside a 3,300 advance; the simulator (and DIAN's
    # PayableAmount) takes the advance off what is paid, which is what is sent.
    advance = PrepaymentData(reference_code="1", received_date=date(2025, 8, 1),
                             amount=Decimal(3300), note="texto libre para notas")
    body = _v2(_invoice(prepayments=(advance,)))
    assert body["prepayment_details"] == [{"reference_code": "1", "received_date": "2025-08-01",
                                           "amount": "3300.00", "note": "texto libre para notas"}]
    assert body["payment_details"][0]["amount"] == "80000.00"


def test_rounding_example_several_payments_and_inc_for_a_final_consumer() -> None:
    # Given the docs' "redondeo en medios de pago" sale: two INC 8 % lines and one IVA 19 %
    # line at net prices, paid 100,000 by card and 160,550 cash, 14.81 rounded away
    inc = {"tribute_id": 4, "rate": "8"}
    items = (_item("11", "BOTELLA AGUA", "1", "175925.93", **inc),
             _item("92", "Energizante", "2", "14814.81", **inc),
             _item("693", "MANZANA VERDE", "1", "32407.41"))
    final = CustomerData(id="cf", identification_type="CC", identification_number="222222222222",
                         address="kra 37A 5-14", email="valjulsansas@gmail.com",
                         phone="3015763570")
    payments = (PaymentData(payment_form="1", payment_method_code="48", amount=Decimal(100000),
                            reference="REF_PAY_1962-1"),
                PaymentData(payment_form="1", payment_method_code="10", amount=Decimal(160550),
                            reference="REF_PAY_1962-1"))
    invoice = _invoice(items=items, customer=final, payments=payments,
                       cash_rounding_amount=Decimal("-14.81"), total=Decimal("260564.81"))
    # When it is mapped for v2
    body = _v2(invoice)
    # Then the total is the docs' to the cent, the payments and rounding are sent as given
    assert v2_body.payload_total(body) == Decimal("260564.81")
    assert [p["amount"] for p in body["payment_details"]] == ["100000.00", "160550.00"]
    assert body["cash_rounding_amount"] == "-14.81"
    assert body["items"][0]["taxes"] == [{"code": "04", "rate": "8.00"}]
    assert body["customer"]["identification"] == "222222222222"
    assert body["customer"]["names"] == "Consumidor Final"
    # And v1, which has one payment means and no rounding, refuses it naming the column
    error = _refused(invoice, v1_body.V1_RULES)
    assert (error.code, error.field) == ("requires_factus_v2", "invoice_payments")


def test_payments_that_do_not_add_up_are_refused() -> None:
    payments = (PaymentData(payment_form="1", payment_method_code="10", amount=Decimal(80000)),)
    error = _refused(_invoice(payments=payments), v2_body.V2_RULES)
    assert (error.code, error.field) == ("payments_mismatch", "invoice_payments")


def test_cash_rounding_beyond_500_is_refused_and_v1_refuses_any() -> None:
    assert _refused(_invoice(cash_rounding_amount=Decimal("500.01")),
                    v2_body.V2_RULES).code == "invalid_cash_rounding"
    error = _refused(_invoice(cash_rounding_amount=Decimal("-0.30")), v1_body.V1_RULES)
    assert (error.code, error.field) == ("requires_factus_v2",
                                         "invoice_sales.cash_rounding_amount")


def test_one_payment_row_is_the_header_on_v1() -> None:
    row = (PaymentData(payment_form="2", payment_method_code="47", amount=Decimal(83300),
                       due_date=date(2026, 4, 14)),)
    body = _v1(_invoice(payments=row))
    assert (body["payment_form"], body["payment_due_date"], body["payment_method_code"]) == (
        "2", "2026-04-14", "47")


def test_several_taxes_on_a_line_go_to_v2_and_are_refused_by_v1() -> None:
    # Given a sugary drink with IVA 19 % and the ultra-processed tax (35) at 20 %
    drink = replace(_item("BEB-1", "Gaseosa", "2", "1000"), tax_rate=None, taxes=(
        TaxData(code="01", tribute_id=None, rate=Decimal(19)),
        TaxData(code="35", tribute_id=None, rate=Decimal(20))))
    invoice = _invoice(items=(drink,), total=Decimal("2780"))
    body = _v2(invoice)
    assert body["items"][0]["taxes"] == [{"code": "01", "rate": "19.00"},
                                         {"code": "35", "rate": "20.00"}]
    assert v2_body.payload_total(body) == Decimal("2780.00")
    error = _refused(invoice, v1_body.V1_RULES)
    assert (error.code, error.field) == ("requires_factus_v2", "invoice_items[0].taxes")


def test_decimal_quantities_go_to_v2_and_stay_refused_by_v1() -> None:
    cheese = _item("QUESO", "Queso", "2.5", "18000", unit_measure_id=414)
    body = _v2(_invoice(items=(cheese,), total=Decimal("53550")))
    assert (body["items"][0]["quantity"], body["items"][0]["unit_measure_code"]) == ("2.50", "KGM")
    assert _refused(_invoice(items=(cheese,)), v1_body.V1_RULES).code == "non_integer_quantity"
    finer = _item("QUESO", "Queso", "2.505", "18000")
    assert _refused(_invoice(items=(finer,), total=None),
                    v2_body.V2_RULES).code == "quantity_too_precise"


def test_units_of_the_full_table_are_accepted_when_passed_in() -> None:
    milk = _item("LECHE", "Leche", "3", "4000", unit_measure_id=500)
    invoice = _invoice(items=(milk,), total=Decimal("14280"))
    with pytest.raises(PayloadError) as caught:
        _document(invoice)
    assert caught.value.code == "unknown_unit_measure"
    document = build_document(invoice, reference_code="R-1", today=TODAY,
                              known_municipality_ids=MUNICIPALITIES, rules=v2_body.V2_RULES,
                              known_units={70: "94", 500: "LTR"})
    assert v2_body.bill_body(document)["items"][0]["unit_measure_code"] == "LTR"


def test_tax_included_prices_become_net_prices_that_give_the_erp_line() -> None:
    # Given lines priced with IVA included, as a shop's shelf shows them
    items = (ItemData(description="Café", qty=Decimal(3), unit_price=Decimal("23800"),
                      tax_rate=Decimal(19), tax_included=True, code_reference="C"),
             ItemData(description="Pan", qty=Decimal(7), unit_price=Decimal("2999"),
                      tax_rate=Decimal(19), tax_included=True, code_reference="P"))
    body = _v2(_invoice(items=items, total=Decimal("92393")))
    # Then v2 gets net prices and computes the ERP's gross total within the tolerance
    assert body["items"][0]["price"] == "20000.00"
    assert abs(v2_body.payload_total(body) - Decimal("92393")) <= Decimal("0.07")


def test_no_customer_goes_to_the_final_consumer_on_both_versions() -> None:
    invoice = _invoice(customer=None, payment_method_code="10")
    v2 = _v2(invoice)
    assert v2["customer"] == {"identification_document_code": "13",
                              "identification": "222222222222", "names": "Consumidor Final",
                              "legal_organization_code": "2", "tribute_code": "ZZ"}
    assert _v1(invoice)["customer"] == {"identification_document_id": 3,
                                        "identification": "222222222222",
                                        "names": "Consumidor Final",
                                        "legal_organization_id": 2, "tribute_id": 21}


def test_erp_final_consumer_row_keeps_its_email_and_any_document_type() -> None:
    row = CustomerData(id="cf", identification_type="NIT", identification_number="222.222.222.222",
                       email="cliente@correo.example")
    body = _v1(_invoice(customer=row))
    assert body["customer"]["identification_document_id"] == 3
    assert body["customer"]["email"] == "cliente@correo.example"
    assert "dv" not in body["customer"]


def test_v2_credit_note_names_its_bill_by_number() -> None:
    note = _invoice(
        document_type="credit_note", correction_concept_code=2, related_invoice_id="inv-0",
        related_bill_id=10412, related_bill_number="SETP990002519",
        related_invoice_total=Decimal("83300"),
        numbering_range=NumberingRangeData(id=4, factus_numbering_range_id=1776,
                                           document_type="credit_note", is_active=True))
    body = v2_body.credit_note_body(_document(note))
    request, bag = validate_credit_note_v2(json.loads(json.dumps(body)))
    assert not bag, bag.errors
    assert request is not None
    assert request.bill_number == "SETP990002519"
    assert (body["correction_concept_code"], body["customization_id"]) == ("2", "20")
    assert body["payment_details"][0]["amount"] == "83300.00"
    # A note whose bill has no known number yet cannot go to v2
    with pytest.raises(PayloadError) as caught:
        _document(replace(note, related_bill_number=None))
    assert caught.value.code == "missing_related_bill"


def test_v1_refuses_what_only_v2_carries_naming_the_column() -> None:
    advance = PrepaymentData(reference_code="A1", received_date=TODAY, amount=Decimal(1000))
    cases = {
        "invoice_sales.prepayments": _invoice(prepayments=(advance,)),
        "invoice_sales.display_currency": _invoice(display_currency="USD",
                                                   exchange_rate=Decimal(4000)),
    }
    for field, invoice in cases.items():
        error = _refused(invoice, v1_body.V1_RULES)
        assert (error.code, error.field) == ("requires_factus_v2", field)


def test_a_v2_observation_keeps_up_to_500_characters_where_v1_keeps_250() -> None:
    # Given a sale whose ERP notes run to 400 characters (Factus v2 ``facturas/crear-y-validar``:
    # "No debe tener más de 500 caracteres"; v1 DOC1: 250)
    notes = "n" * 400
    # When it is mapped for each version
    v2 = _v2(_invoice(notes=notes))
    v1 = _v1(_invoice(notes=notes))
    # Then v2 sends the whole note, and v1 truncates it to 249 characters and "…"
    assert v2["observation"] == notes
    assert v1["observation"] == "n" * 249 + "…"
    # and a 600-character note is truncated to v2's 500
    assert _v2(_invoice(notes="n" * 600))["observation"] == "n" * 499 + "…"
