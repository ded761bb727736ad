"""Parsing the ERP's JSONB columns into domain values, with errors that name the column."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

import pytest

from einvoice.domain.errors import PayloadError
from einvoice.domain.invoices import (
    AllowanceChargeData,
    BillingPeriodData,
    WithholdingTaxData,
    allowance_charges_from_json,
    billing_period_from_json,
    withholding_taxes_from_json,
)


def test_withholdings_parse_numbers_without_binary_noise() -> None:
    # psycopg decodes JSON numbers as float; 7.38 must stay 7.38
    raw = [{"code": "06", "withholding_tax_rate": 7.38}, {"code": "ReteIVA", "rate": "15"}]
    assert withholding_taxes_from_json(raw, item_index=0) == (
        WithholdingTaxData(code="06", rate=Decimal("7.38")),
        WithholdingTaxData(code="ReteIVA", rate=Decimal(15)),
    )
    assert withholding_taxes_from_json(None, item_index=0) == ()
    assert withholding_taxes_from_json([], item_index=0) == ()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"code": "06"}, "invoice_items[2].withholding_taxes"),
        ([{"withholding_tax_rate": 2.5}], "invoice_items[2].withholding_taxes[0].code"),
        ([{"code": "06"}], "invoice_items[2].withholding_taxes[0].withholding_tax_rate"),
        (
            [{"code": "06", "withholding_tax_rate": "dos"}],
            "invoice_items[2].withholding_taxes[0].withholding_tax_rate",
        ),
        (
            [{"code": "06", "withholding_tax_rate": "NaN"}],
            "invoice_items[2].withholding_taxes[0].withholding_tax_rate",
        ),
        ([{"code": None, "rate": 1}], "invoice_items[2].withholding_taxes[0].code"),
    ],
)
def test_malformed_withholdings_name_the_entry(raw: object, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        withholding_taxes_from_json(raw, item_index=2)
    assert (caught.value.code, caught.value.field) == ("malformed_json", field)


def test_allowance_charges_parse_the_factus_shape() -> None:
    raw = [
        {
            "concept_type": "03",
            "is_surcharge": True,
            "reason": "Propina",
            "base_amount": "90000.00",
            "amount": 9000,
        }
    ]
    assert allowance_charges_from_json(raw) == (
        AllowanceChargeData(
            concept_type="03",
            is_surcharge=True,
            reason="Propina",
            base_amount=Decimal("90000.00"),
            amount=Decimal(9000),
        ),
    )
    assert allowance_charges_from_json(None) == ()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("03", "invoice_sales.allowance_charges"),
        ([{"concept_type": "03"}], "invoice_sales.allowance_charges[0].is_surcharge"),
        (
            [
                {
                    "concept_type": "03",
                    "is_surcharge": "yes",
                    "reason": "x",
                    "base_amount": 1,
                    "amount": 1,
                }
            ],
            "invoice_sales.allowance_charges[0].is_surcharge",
        ),
        (
            [
                {
                    "concept_type": "03",
                    "is_surcharge": True,
                    "reason": "x",
                    "base_amount": [],
                    "amount": 1,
                }
            ],
            "invoice_sales.allowance_charges[0].base_amount",
        ),
    ],
)
def test_malformed_allowance_charges_name_the_entry(raw: object, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        allowance_charges_from_json(raw)
    assert (caught.value.code, caught.value.field) == ("malformed_json", field)


def test_billing_period_parses_dates_and_optional_times() -> None:
    raw = {"start_date": "2025-02-01", "end_date": "2025-02-28", "end_time": "23:00:00"}
    assert billing_period_from_json(raw) == BillingPeriodData(
        start_date=date(2025, 2, 1), end_date=date(2025, 2, 28), end_time=time(23, 0)
    )
    assert billing_period_from_json(None) is None


@pytest.mark.parametrize(
    ("raw", "field", "value"),
    [
        ([], "invoice_sales.billing_period", []),
        (
            {"start_date": "2025-02-30", "end_date": "2025-03-01"},
            "invoice_sales.billing_period.start_date",
            "2025-02-30",
        ),
        ({"start_date": "2025-02-01"}, "invoice_sales.billing_period.end_date", None),
        (
            {"start_date": "2025-02-01", "end_date": "2025-02-28", "start_time": "8am"},
            "invoice_sales.billing_period.start_time",
            "8am",
        ),
    ],
)
def test_malformed_billing_period_names_the_key(raw: object, field: str, value: object) -> None:
    with pytest.raises(PayloadError) as caught:
        billing_period_from_json(raw)
    assert (caught.value.code, caught.value.field, caught.value.value) == (
        "malformed_json",
        field,
        value,
    )
