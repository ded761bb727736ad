"""The simulator's money arithmetic against the worked examples of FACTUS_API.md §4.2-§4.3 and DOC1."""

from __future__ import annotations

from decimal import Decimal

from einvoice.sandbox.amounts import (
    AllowanceInput,
    ItemInput,
    WithholdingInput,
    document_amounts,
    item_amounts,
    money,
)

D = Decimal


def test_the_contract_example_of_two_coffees_at_23800_tax_included_gives_40000_plus_7600():
    # Given FACTUS_API.md §4.3: 2 × 23800 (IVA 19 % included), no discount
    item = ItemInput(price=D("23800"), quantity=2, discount_rate=D("0"), tax_rate=D("19.00"))

    # When the simulator computes the bill
    amounts = document_amounts([item])

    # Then every figure matches the example to the cent
    assert money(amounts.items[0].line) == "47600.00"
    assert money(amounts.gross_value) == "40000.00"
    assert money(amounts.taxable_amount) == "40000.00"
    assert money(amounts.tax_amount) == "7600.00"
    assert money(amounts.discount_amount) == "0.00"
    assert money(amounts.total) == "47600.00"


def test_the_doc1_advanced_invoice_with_discount_withholdings_and_a_tip_matches_to_the_cent():
    # Given DOC1 "Factura avanzada": 50000 at 19 % with 20 % off and ReteIVA/ReteRenta,
    # 50000 at 5 %, and a 9000 tip (surcharge, concept 03) on a 90000 base
    first = ItemInput(
        price=D("50000"),
        quantity=1,
        discount_rate=D("20"),
        tax_rate=D("19.00"),
        withholdings=(WithholdingInput("06", D("7")), WithholdingInput("05", D("15"))),
    )
    second = ItemInput(price=D("50000"), quantity=1, discount_rate=D("0"), tax_rate=D("5.00"))
    tip = AllowanceInput(is_surcharge=True, base_amount=D("90000.00"), amount=D("9000.00"))

    # When
    amounts = document_amounts([first, second], [tip])

    # Then the items are those of the DOC1 response
    one, two = amounts.items
    assert (money(one.discount), money(one.taxable_amount), money(one.tax_amount)) == (
        "8403.36",
        "33613.45",
        "6386.55",
    )
    assert one.line == D("40000.00")
    assert (money(two.taxable_amount), money(two.tax_amount)) == ("47619.05", "2380.95")
    # withholdings are listed by code; ReteIVA on the tax, ReteRenta on the base
    assert [(w.code, money(w.value)) for w in one.withholdings] == [
        ("05", "957.98"),
        ("06", "2352.94"),
    ]
    # and the totals too: the tip is added, withholdings are not subtracted
    assert money(amounts.gross_value) == "81232.50"
    assert money(amounts.tax_amount) == "8767.50"
    assert money(amounts.surcharge_amount) == "9000.00"
    assert money(amounts.total) == "99000.00"
    assert money(amounts.allowances[0].percentage) == "10.00"
    assert [(w.code, money(w.value)) for w in amounts.withholdings] == [
        ("05", "957.98"),
        ("06", "2352.94"),
    ]


def test_the_doc1_credit_note_of_80000_at_19_percent_splits_into_67226_89_and_12773_11():
    amounts = item_amounts(
        ItemInput(price=D("80000"), quantity=1, discount_rate=D("0"), tax_rate=D("19.00"))
    )

    assert (money(amounts.taxable_amount), money(amounts.tax_amount)) == ("67226.89", "12773.11")


def test_half_cents_round_away_from_zero_like_php():
    # Given an untaxed item whose discounted line falls exactly on half a cent
    item = ItemInput(price=D("10.01"), quantity=1, discount_rate=D("50"), tax_rate=D("0"))

    # When: 10.01 × 0.5 = 5.005
    amounts = item_amounts(item)

    # Then it rounds up, not to even
    assert amounts.line == D("5.01")


def test_taxes_are_split_by_tribute_for_the_cufe():
    iva = ItemInput(
        price=D("11900"), quantity=1, discount_rate=D("0"), tax_rate=D("19"), tribute_id=1
    )
    inc = ItemInput(
        price=D("10800"), quantity=1, discount_rate=D("0"), tax_rate=D("8"), tribute_id=4
    )

    amounts = document_amounts([iva, inc])

    assert amounts.tax_by_tribute == {1: D("1900.00"), 4: D("800.00")}
