"""Net ERP prices become v1 tax-included prices that give back the ERP's line totals (§4.2).

The Factus formulas are re-derived here by hand from FACTUS_API.md §4.2, not imported, so that a
mistake in the module cannot agree with itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from einvoice.domain.invoices import InvoiceData

Build = Callable[..., dict[str, Any]]
CENT = Decimal("0.01")


def r2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def erp_line(
    net_price: Decimal, qty: int, discount: Decimal, tax: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """(net, tax, gross) as the ERP books a line: round the net line, then its tax."""
    net = r2(net_price * qty * (1 - discount / 100))
    tax_amount = r2(net * tax / 100)
    return net, tax_amount, net + tax_amount


def factus_line(sent: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal]:
    """(line, taxable, tax) per FACTUS_API.md §4.2 for one payload item."""
    price = Decimal(str(sent["price"]))
    discount = Decimal(str(sent["discount_rate"]))
    tax_rate = Decimal(sent["tax_rate"])
    line = r2(price * sent["quantity"] * (1 - discount / 100))
    taxable = r2(line / (1 + tax_rate / 100))
    return line, taxable, line - taxable


def sent_item(build: Build, invoice: InvoiceData, **changes: Any) -> dict[str, Any]:
    item = replace(invoice.items[0], **changes)
    sent: dict[str, Any] = build(replace(invoice, items=(item,), total=None))["items"][0]
    return sent


def test_net_price_with_discount_is_converted_to_match_the_erp_line_not_the_unit(
    invoice: InvoiceData, build: Build
) -> None:
    # Given a net price of 8,403.36 with 10 % discount and 19 % IVA: the ERP books
    # net 7,563.02 + IVA 1,436.97 = 8,999.99
    sent = sent_item(
        build,
        invoice,
        qty=Decimal(1),
        unit_price=Decimal("8403.36"),
        discount_rate=Decimal(10),
        tax_included=False,
    )
    # Then the price sent is 9,999.99, not the unit-rounded 10,000.00 (which would bill 9,000.00)
    assert sent["price"] == 9999.99
    # and Factus's formulas give back exactly the ERP's line: 8,999.99 with taxable 7,563.02
    assert factus_line(sent) == (Decimal("8999.99"), Decimal("7563.02"), Decimal("1436.97"))
    assert erp_line(Decimal("8403.36"), 1, Decimal(10), Decimal(19)) == (
        Decimal("7563.02"),
        Decimal("1436.97"),
        Decimal("8999.99"),
    )


def test_discount_amount_becomes_a_rate_and_the_line_keeps_the_erp_amount(
    invoice: InvoiceData, build: Build
) -> None:
    # Given 3 units at 10,000 net with a 4,500 discount on the line (15 %), 19 % IVA
    sent = sent_item(
        build,
        invoice,
        qty=Decimal(3),
        unit_price=Decimal(10000),
        discount_rate=Decimal(0),
        discount_amount=Decimal(4500),
        tax_included=False,
    )
    # Then the rate is derived (15 %) and the Factus line is the ERP's 25,500 + 4,845 = 30,345
    assert sent["discount_rate"] == 15
    assert factus_line(sent) == (Decimal("30345.00"), Decimal("25500.00"), Decimal("4845.00"))


def test_tax_included_price_with_two_decimals_is_sent_unchanged(
    invoice: InvoiceData, build: Build
) -> None:
    sent = sent_item(build, invoice, unit_price=Decimal("23800.50"), tax_included=True)
    assert sent["price"] == 23800.5
    assert factus_line(sent)[0] == Decimal("47601.00")


def test_tax_included_price_with_more_decimals_is_rounded_to_the_nearest_line(
    invoice: InvoiceData, build: Build
) -> None:
    # 3 × 3,333.3333 tax included: the ERP line is 10,000.00
    sent = sent_item(
        build, invoice, qty=Decimal(3), unit_price=Decimal("3333.3333"), tax_included=True
    )
    assert sent["price"] == 3333.33
    assert factus_line(sent)[0] == Decimal("9999.99")


def test_prices_are_json_numbers_with_at_most_two_decimals(
    invoice: InvoiceData, build: Build
) -> None:
    whole = sent_item(build, invoice, unit_price=Decimal("20000.00"))
    assert whole["price"] == 23800
    assert isinstance(whole["price"], int)
    fractional = sent_item(build, invoice, unit_price=Decimal("1234.5678"))
    assert isinstance(fractional["price"], float)
    assert Decimal(str(fractional["price"])) == Decimal(str(fractional["price"])).quantize(CENT)


NET_PRICES = ["8403.36", "4201.68", "12605.04", "99.99", "2521.01", "33.61", "1234.5678", "0.42"]
TAX_RATES = ["19", "5", "8", "0"]
# 8 % is the general INC rate (tribute 4); IVA has no 8 % rate (DIAN tarifas por impuesto).
INC_RATES = {"8"}
QUANTITIES = [1, 3, 7, 37, 100]
DISCOUNTS = ["0", "10", "12.5", "33.33"]


@pytest.mark.parametrize("tax_rate", TAX_RATES)
def test_converted_prices_give_back_erp_line_totals_across_a_grid(
    invoice: InvoiceData, build: Build, tax_rate: str
) -> None:
    tax = Decimal(tax_rate)
    for net_text, qty, discount_text in itertools.product(NET_PRICES, QUANTITIES, DISCOUNTS):
        net_price, discount = Decimal(net_text), Decimal(discount_text)
        case = f"net {net_price} × {qty}, −{discount} %, IVA {tax} %"
        # Given the ERP's own booking of the line
        erp_net, _erp_tax, erp_gross = erp_line(net_price, qty, discount, tax)
        # When the item is converted
        sent = sent_item(
            build,
            invoice,
            qty=Decimal(qty),
            unit_price=net_price,
            tax_rate=tax,
            discount_rate=discount,
            tax_included=False,
            tribute_id=4 if tax_rate in INC_RATES else 1,
        )
        line, taxable, _tax = factus_line(sent)
        # Then Factus's line is within half a cent per discounted unit (+ its own rounding) of
        # the ERP's gross line, and its taxable base within the same of the ERP's net line
        factor = qty * (1 - discount / 100)
        bound = Decimal("0.005") * factor + Decimal("0.005")
        assert abs(line - erp_gross) <= bound, case
        assert abs(taxable - erp_net) <= bound + CENT, case
        # and no other 2-decimal price nearby would have matched the ERP line better
        price = Decimal(str(sent["price"]))
        for step in range(-5, 6):
            other = price + step * CENT
            other_line = r2(other * qty * (1 - discount / 100))
            assert abs(other_line - erp_gross) >= abs(line - erp_gross), (case, other)


def test_fractional_quantity_is_refused_not_rounded(invoice: InvoiceData, build: Build) -> None:
    from einvoice.domain.errors import PayloadError

    item = replace(invoice.items[0], qty=Decimal("2.5"))
    with pytest.raises(PayloadError) as caught:
        build(replace(invoice, items=(item,)))
    assert caught.value.code == "non_integer_quantity"
    # a whole quantity written with decimals is fine
    assert sent_item(build, invoice, qty=Decimal("2.000"))["quantity"] == 2


def test_the_wire_price_matches_the_erp_line_first_then_its_net_then_the_unit_price() -> None:
    from einvoice.domain.document import ErpLine
    from einvoice.domain.payload import nearest_wire_price

    # Given an ERP line of 3 units worth 100.00 with tax (84.03 net at 19 %), and a formula that
    # rounds the line (price × 3) and splits out the tax as Factus v1 does
    erp = ErpLine(net=Decimal("84.03"), tax=Decimal("15.97"), gross=Decimal("100.00"))

    def amounts(price: Decimal) -> tuple[Decimal, Decimal]:
        line = r2(price * 3)
        return line, r2(line / Decimal("1.19"))

    # When the wire price is chosen
    price = nearest_wire_price(erp=erp, factor=Decimal(3), exact_unit=Decimal("33.3333"),
                               amounts=amounts)
    # Then it is the 2-decimal price whose line misses the ERP's by the least (99.99, not 100.02)
    assert price == Decimal("33.33")
    # and when every candidate gives the same line, the taxable amount closest to the ERP's net
    # decides before the exact unit price does
    net_first = ErpLine(net=Decimal("33.34"), tax=Decimal("66.66"), gross=Decimal("100.00"))
    assert nearest_wire_price(erp=net_first, factor=Decimal(3), exact_unit=Decimal("33.3333"),
                              amounts=lambda p: (Decimal("100.00"), p)) == Decimal("33.34")


def test_the_total_tolerance_is_a_peso_plus_a_cent_per_unit_and_per_line() -> None:
    from einvoice.domain.payload import total_tolerance
    from einvoice.factus import v1_body, v2_body

    # Given two lines: 2 units, and 1.5 units (counted as 2)
    # Then the ERP total may miss Factus's by 1.00 + 4 units + 2 lines = 1.06 COP
    assert total_tolerance([2, Decimal("1.5")]) == Decimal("1.06")
    # and both mappers read the same tolerance from their own wire formats
    assert v1_body.total_tolerance({"items": [{"quantity": 2}, {"quantity": 2}]}) == Decimal("1.06")
    assert v2_body.total_tolerance(
        {"items": [{"quantity": "2.00"}, {"quantity": "1.50"}]}) == Decimal("1.06")
