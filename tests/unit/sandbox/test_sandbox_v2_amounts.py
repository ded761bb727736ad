"""Amounts of v2 documents (net prices) and the ReteIVA base shared with v1."""

from __future__ import annotations

from decimal import Decimal as D  # noqa: N817 - short, for the amount tables below

from einvoice.sandbox.amounts import (
    ItemInput,
    NetItemInput,
    TaxInput,
    WithholdingInput,
    document_amounts,
    item_amounts,
)

IVA19 = TaxInput(1, "01", D("19.00"))
INC8 = TaxInput(4, "04", D("8.00"))


def net(price: str, quantity: str = "1", *taxes: TaxInput, **kw: object) -> NetItemInput:
    return NetItemInput(
        price=D(price),
        quantity=D(quantity),
        discount_rate=kw.get("discount_rate", D(0)),  # type: ignore[arg-type]
        discount_amount=kw.get("discount_amount"),  # type: ignore[arg-type]
        taxes=taxes or (IVA19,),
        withholdings=kw.get("withholdings", ()),  # type: ignore[arg-type]
    )


def test_the_v2_cash_rounding_example_totals_to_the_cent():
    # Given the three lines of the v2 "redondeo en medios de pago" example (net prices, INC and IVA)
    items = [net("175925.93", "1", INC8), net("14814.81", "2.00", INC8), net("32407.41", "1")]

    # When the simulator computes the document
    amounts = document_amounts(items)

    # Then the total is the one its payments (260550) plus the rounding (14.81) add up to
    assert amounts.total == D("260564.81")
    assert amounts.tax_amount == D("14074.07") + D("2370.37") + D("6157.41")
    assert amounts.tax_by_tribute == {4: D("16444.44"), 1: D("6157.41")}


def test_a_v2_line_takes_decimal_quantities_and_a_discount_amount():
    amounts = document_amounts([net("1000.00", "2.50", discount_amount=D("500.00"))])

    line = amounts.items[0]
    assert (line.discount, line.taxable_amount, line.tax_amount) == (
        D("500.00"),
        D("2000.00"),
        D("380.00"),
    )
    assert amounts.total == D("2380.00")


def test_an_excluded_tax_adds_nothing_and_shows_rate_zero():
    amounts = document_amounts([net("5000", "1", TaxInput(1, "01", D("19"), is_excluded=True))])

    assert amounts.tax_amount == D("0.00")
    assert amounts.items[0].taxes[0].rate == D("0.00")
    assert amounts.items[0].taxes[0].is_excluded


def test_v2_withholdings_use_the_unrounded_iva_and_the_taxable_base():
    item = net(
        "1000.00",
        "1",
        withholdings=(WithholdingInput("05", D("15")), WithholdingInput("06", D("2.5"))),
    )

    values = {w.code: w.value for w in document_amounts([item]).withholdings}

    assert values == {"05": D("28.50"), "06": D("25.00")}


def test_v1_reteiva_is_computed_from_the_unrounded_tax():
    # Given a v1 line of 1014 COP with IVA included: the rounded tax is 161.90, the exact one
    # 161.8991...; 15 % of the first is 24.285 → 24.29, of the second 24.2849 → 24.28.
    item = ItemInput(
        price=D("1014"),
        quantity=1,
        discount_rate=D(0),
        tax_rate=D("19"),
        withholdings=(WithholdingInput("05", D("15")),),
    )

    # When the simulator computes the ReteIVA
    reteiva = item_amounts(item).withholdings[0].value

    # Then it matches Factus, which rounds once at the end (real capture 2155462.18, not .19)
    assert reteiva == D("24.28")
