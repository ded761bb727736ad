"""make_invoice, sample_organization and generate_sample's arguments, each on a fresh database."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum.co import nit as co_nit

from einvoice.db.invoices import known_municipality_ids, load_invoice
from einvoice.db.models import Customer, InvoiceItem, InvoiceSale, InvoiceSequence, Organization
from einvoice.db.reference import known_unit_measures
from einvoice.domain.errors import PayloadError
from einvoice.domain.payload import build_document
from einvoice.factus import v2_body as v2_body_module
from einvoice.factus.v1_body import build_bill_payload
from einvoice.factus.v2 import encode_body
from einvoice.sample import WRONG_KINDS, generate_sample, make_invoice, sample_organization
from einvoice.sandbox.v2_validation import validate_bill_v2
from tests.integration.sample.conftest import TODAY


def _build(session: Session, invoice_id: object) -> dict[str, object]:
    return build_bill_payload(
        load_invoice(session, invoice_id, "invoice"),  # type: ignore[arg-type]
        reference_code="FACTORY1",
        today=TODAY,
        known_municipality_ids=known_municipality_ids(session),
    )


def _refusal(session: Session, invoice_id: object) -> PayloadError:
    with pytest.raises(PayloadError) as refused:
        _build(session, invoice_id)
    return refused.value


def test_make_invoice_creates_one_valid_invoice_with_its_issuer_and_ranges(
    session: Session,
) -> None:
    invoice_id = make_invoice(session, today=TODAY)

    invoice = session.get(InvoiceSale, invoice_id)
    assert invoice is not None
    assert invoice.document_type == "invoice"
    items = list(session.scalars(select(InvoiceItem).where(InvoiceItem.invoice_id == invoice_id)))
    assert len(items) == 2
    # 2 × 15,900 at 5 % + 23,900 − 10 % at 19 %: net 31,800 + 21,510, IVA 1,590 + 4,086.90.
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (
        Decimal("53310.00"), Decimal("5676.90"), Decimal("58986.90")
    )
    ranges = session.scalars(
        select(InvoiceSequence.document_type).where(
            InvoiceSequence.organization_id == invoice.organization_id
        )
    ).all()
    assert sorted(ranges) == ["credit_note", "invoice"]

    payload = _build(session, invoice_id)
    assert payload["customer"]["identification_document_id"] == 3  # type: ignore[index]
    assert "establishment" not in payload


def test_make_invoice_with_iva_included_prices_on_credit(session: Session) -> None:
    invoice_id = make_invoice(
        session,
        today=TODAY,
        tax_included=True,
        payment_form="2",
        items=[{"description": "Panela redonda 1 kg", "qty": 3, "unit_price": "4200",
                "tax_rate": 0, "is_excluded": 1}],
    )

    payload = _build(session, invoice_id)
    assert payload["payment_form"] == "2"
    assert payload["payment_due_date"] == "2025-04-13"
    (item,) = payload["items"]  # type: ignore[misc]
    assert (item["price"], item["quantity"], item["is_excluded"]) == (4200, 3, 1)
    assert session.get(InvoiceSale, invoice_id).total == Decimal("12600.00")  # type: ignore[union-attr]


def test_make_invoice_makes_wrong_invoices_on_purpose_for_one_shared_issuer(
    session: Session,
) -> None:
    org = sample_organization(session, today=TODAY, with_branches=False)
    wrong_dv = make_invoice(
        session,
        org=org,
        today=TODAY,
        customer_overrides={
            "identification_type": "NIT", "identification_number": "900373115",
            "dv": (int(co_nit.calc_check_digit("900373115")) + 1) % 10,
            "company_name": "Supermercado La Ceiba S.A.S.", "legal_organization_id": 1,
        },
    )
    fractional = make_invoice(
        session, org=org, today=TODAY,
        items=[{"description": "Queso campesino", "qty": "2.5", "unit_price": "19500",
                "tax_rate": 5, "unit_measure_id": 414}],
    )
    mismatched = make_invoice(
        session, org=org, today=TODAY, invoice_overrides={"total": Decimal("1000.00")}
    )

    assert _refusal(session, wrong_dv).code == "invalid_dv"
    assert _refusal(session, fractional).code == "non_integer_quantity"
    assert _refusal(session, mismatched).code == "total_mismatch"
    assert session.scalar(select(func.count()).select_from(Organization)) == 1


def test_make_invoice_rejects_what_is_not_a_column_or_a_float(session: Session) -> None:
    org = sample_organization(session, today=TODAY, with_branches=False)
    with pytest.raises(ValueError, match="qyt"):
        make_invoice(session, org=org, today=TODAY, items=[{"qyt": 2}])
    with pytest.raises(TypeError):
        make_invoice(session, org=org, today=TODAY, items=[{"unit_price": 10.5}])


def test_sample_organization_recomputes_the_dv_of_an_overridden_nit(session: Session) -> None:
    org = sample_organization(session, index=2, today=TODAY, nit="900373115")

    assert org.name == "Tostadora Valle Alto"
    assert org.municipality_id == 1079
    assert org.dv == int(co_nit.calc_check_digit("900373115"))
    with pytest.raises(ValueError, match="nitt"):
        sample_organization(session, today=TODAY, nitt="1")


def test_generate_sample_flushes_and_leaves_the_commit_to_the_caller(session: Session) -> None:
    summary = generate_sample(
        session, organizations=1, customers=8, invoices=20, credit_notes=1, today=TODAY
    )
    assert session.scalar(select(func.count()).select_from(InvoiceSale)) == 21

    session.rollback()

    assert len(summary.invoice_ids) == 20
    assert session.scalar(select(func.count()).select_from(InvoiceSale)) == 0
    assert session.scalar(select(func.count()).select_from(Customer)) == 0


def test_wrong_share_sets_how_many_invoices_are_wrong(session: Session) -> None:
    tenth = generate_sample(session, seed=3, invoices=40, wrong_share=0.1, today=TODAY)
    none = generate_sample(session, seed=4, invoices=40, wrong_share=0, today=TODAY)

    codes = Counter(w["expected_error_code"] for w in tenth.wrong_invoices)
    assert codes == dict.fromkeys(WRONG_KINDS, 1)
    assert none.wrong_invoices == ()
    assert len(none.valid_invoice_ids) == 40
    for entry in tenth.wrong_invoices:
        assert _refusal(session, entry["invoice_id"]).code == entry["expected_error_code"]
    for invoice_id in none.valid_invoice_ids:
        _build(session, invoice_id)


def test_a_dataset_for_factus_v2_is_valid_there_and_wrong_where_v2_is_strict(
    session: Session,
) -> None:
    # Given a dataset for a v2 account (no ReteICA: v2 has no code 07; a 3-decimal quantity)
    summary = generate_sample(session, seed=3, invoices=60, wrong_share=0.1, today=TODAY,
                              api_version="v2")
    units = known_unit_measures(session)
    municipalities = known_municipality_ids(session)

    def v2_body(invoice_id: object) -> dict[str, object]:
        document = build_document(
            load_invoice(session, invoice_id, "invoice"),  # type: ignore[arg-type]
            reference_code="FACTORY2", today=TODAY, known_municipality_ids=municipalities,
            rules=v2_body_module.V2_RULES, known_units=units)
        return v2_body_module.bill_body(document)

    # Then every valid invoice maps to a v2 body the simulator's v2 validation takes (a galón
    # sold as GLL was refused there), and every wrong one is refused with its code
    for invoice_id in summary.valid_invoice_ids:
        _request, errors = validate_bill_v2(json.loads(encode_body(v2_body(invoice_id))))
        assert not errors, (invoice_id, errors.errors)
    codes = Counter(w["expected_error_code"] for w in summary.wrong_invoices)
    assert codes["quantity_too_precise"] == 1
    assert "non_integer_quantity" not in codes
    for entry in summary.wrong_invoices:
        with pytest.raises(PayloadError) as refused:
            v2_body(entry["invoice_id"])
        assert refused.value.code == entry["expected_error_code"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"organizations": 4}, "organizations must be 1"),
     ({"organizations": 0}, "organizations must be 1"),
     ({"wrong_share": 1.5}, r"wrong_share must be in \[0, 1\]"),
     ({"customers": 3}, "need at least"),
     ({"invoices": 2, "credit_notes": 3}, "more credit notes than valid invoices")],
)
def test_generate_sample_refuses_impossible_requests(
    session: Session, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        generate_sample(session, today=TODAY, **arguments)  # type: ignore[arg-type]


def test_loading_an_invoice_names_a_missing_row_or_issuer(session: Session) -> None:
    import uuid

    from sqlalchemy import text

    # An invoice id with no row
    missing = _refusal(session, uuid.uuid4())
    assert (missing.reason, missing.field) == ("invoice_not_found", "invoice_sales.id")
    # An invoice whose issuer row is gone (the ERP's tables have no foreign key to it)
    invoice_id = make_invoice(session, today=TODAY)
    session.execute(text("UPDATE invoice_sales SET organization_id = 987654 WHERE id = :i"),
                    {"i": invoice_id})
    orphan = _refusal(session, invoice_id)
    assert (orphan.reason, orphan.field) == ("missing_organization",
                                             "invoice_sales.organization_id")
    # and a complete one loads with its issuer, customer and branch
    session.execute(text("UPDATE invoice_sales SET organization_id = "
                         "(SELECT min(id) FROM organizations) WHERE id = :i"), {"i": invoice_id})
    data = load_invoice(session, invoice_id, "invoice")
    assert data.organization.nit
    assert data.customer is not None
