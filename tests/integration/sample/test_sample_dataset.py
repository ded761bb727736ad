"""The default sample dataset, as the demo and other tests use it, on a real migrated PostgreSQL."""

from __future__ import annotations

import dataclasses
import unicodedata
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.co import nit as co_nit

from einvoice.db.engine import make_engine, make_session_factory
from einvoice.db.invoices import known_municipality_ids, load_invoice
from einvoice.db.models import (
    Branch,
    Customer,
    DianMunicipality,
    InvoiceItem,
    InvoiceSale,
    InvoiceSequence,
    Organization,
)
from einvoice.devservices import DevServices
from einvoice.domain.errors import PayloadError
from einvoice.factus.v1_body import (
    build_bill_payload,
    build_credit_note_payload,
    factus_payload_total,
)
from einvoice.sample import WRONG_KINDS, catalog
from tests.fixtures.services import create_database, drop_database
from tests.integration.sample.conftest import TODAY, SampleDatabase, generate_into


def _folded(name: str) -> str:
    """Lower case without accents: the table spells "Itagui", the ERP's text "Itagüí"."""
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()


def _invoices(session: Session, document_type: str = "invoice") -> list[InvoiceSale]:
    return list(
        session.scalars(select(InvoiceSale).where(InvoiceSale.document_type == document_type))
    )


def _items_by_invoice(session: Session) -> dict[Any, list[InvoiceItem]]:
    grouped: dict[Any, list[InvoiceItem]] = {}
    for item in session.scalars(select(InvoiceItem)):
        grouped.setdefault(item.invoice_id, []).append(item)
    return grouped


def test_issuers_have_valid_nits_branches_and_sandbox_like_ranges(
    sample_session: Session, sample_db: SampleDatabase
) -> None:
    orgs = list(sample_session.scalars(select(Organization).order_by(Organization.id)))
    assert [o.id for o in orgs] == list(sample_db.summary.organization_ids)
    assert len(orgs) == 3
    for org in orgs:
        assert org.nit is not None
        assert org.dv == int(co_nit.calc_check_digit(org.nit))
    branch_counts = Counter(sample_session.scalars(select(Branch.organization_id)))
    assert max(branch_counts.values()) >= 3

    ranges = list(sample_session.scalars(select(InvoiceSequence)))
    for org in orgs:
        own = [r for r in ranges if r.organization_id == org.id and r.branch_id is None]
        invoice_range = next(r for r in own if r.document_type == "invoice")
        assert (invoice_range.prefix, invoice_range.range_start, invoice_range.range_end) == (
            "SETP", 990000000, 995000000
        )
        assert invoice_range.resolution_number == "18760000001"
        assert invoice_range.technical_key
        assert invoice_range.factus_numbering_range_id == 8
        note_range = next(r for r in own if r.document_type == "credit_note")
        assert (note_range.prefix, note_range.factus_numbering_range_id) == ("NC", catalog.CREDIT_NOTE_RANGE_FACTUS_ID)
        for active in (invoice_range, note_range):
            assert active.is_active
            assert active.valid_from is not None
            assert active.valid_until is not None
            assert active.valid_from <= TODAY <= active.valid_until
    (expired,) = [r for r in ranges if r.branch_id is not None]
    assert expired.valid_until is not None
    assert expired.valid_until < TODAY


def test_every_place_is_a_real_factus_municipality(sample_session: Session) -> None:
    table = {m.id: m for m in sample_session.scalars(select(DianMunicipality))}
    for place in catalog.PLACES:
        assert table[place.factus_id].code == place.dane_code
        assert _folded(table[place.factus_id].name) == _folded(place.name)
    assert table[980].name == "San Gil"
    assert table[169].code == "11001"


def test_customers_are_many_and_varied_with_correct_check_digits(
    sample_session: Session,
) -> None:
    customers = list(sample_session.scalars(select(Customer)))
    assert len(customers) == 60

    kinds = Counter(c.identification_type for c in customers)
    assert kinds["CC"] >= 30
    assert kinds["NIT"] >= 10
    assert kinds["PP"] == 1
    assert kinds["CE"] == 1

    companies = [c for c in customers if c.identification_type == "NIT"]
    for company in companies:
        assert company.legal_organization_id == 1
        assert company.company_name
        assert company.identification_number is not None
    wrong_dv = [
        c for c in companies if c.dv != int(co_nit.calc_check_digit(c.identification_number))
    ]
    assert len(wrong_dv) == 1  # the deliberately broken one

    for person in (c for c in customers if c.identification_type != "NIT"):
        assert person.legal_organization_id == 2
        assert person.first_name
        assert person.last_name
        assert person.email
        assert person.email.startswith(_folded(person.first_name.split()[0]))
    for customer in customers:
        assert customer.email
        assert "@" in customer.email
        assert customer.email.isascii()
    (foreigner,) = [c for c in customers if c.identification_type == "PP"]
    assert foreigner.municipality_id is None


def test_invoices_are_many_varied_and_add_up(sample_session: Session) -> None:
    invoices = _invoices(sample_session)
    items = _items_by_invoice(sample_session)
    customers = {c.id: c for c in sample_session.scalars(select(Customer))}
    assert len(invoices) == 240

    assert {i.payment_form for i in invoices} == {"1", "2"}
    assert len({i.status for i in invoices}) >= 3
    for invoice in invoices:
        assert invoice.tax_included is not None
        assert invoice.issue_date is not None
        assert invoice.issue_date.date() <= TODAY
        if invoice.payment_form == "2":
            assert invoice.due_date is not None
            assert invoice.due_date >= invoice.issue_date
        else:
            assert invoice.due_date is None
            assert invoice.status == "paid"

    every_item = [item for invoice in invoices for item in items[invoice.id]]
    assert {item.tax_rate for item in every_item} == {Decimal(0), Decimal(5), Decimal(19)}
    excluded = [item for item in every_item if item.is_excluded == 1]
    assert excluded
    assert all(item.tax_rate == 0 for item in excluded)
    assert any(item.tax_rate == 0 and item.is_excluded == 0 for item in every_item)  # exento
    assert sum(1 for item in every_item if item.discount_rate) >= 10
    assert Counter(len(items[i.id]) for i in invoices).keys() >= {1, 2, 3}

    withheld_codes = Counter()
    for invoice in invoices:
        for item in items[invoice.id]:
            assert item.tax_included == invoice.tax_included
            if item.withholding_taxes:
                assert customers[invoice.customer_id].legal_organization_id == 1
                withheld_codes.update(entry["code"] for entry in item.withholding_taxes)
        gross = sum((item.total_line for item in items[invoice.id]), Decimal(0))
        surcharges = sum(
            (Decimal(c["amount"]) for c in invoice.allowance_charges or []), Decimal(0)
        )
        assert invoice.subtotal is not None
        assert invoice.tax_total is not None
        assert invoice.subtotal + invoice.tax_total == gross
        assert invoice.total == gross + surcharges
    assert set(withheld_codes) == {"05", "06", "07"}


def test_every_valid_invoice_builds_a_factus_payload(
    sample_session: Session, sample_db: SampleDatabase
) -> None:
    known = known_municipality_ids(sample_session)
    valid_ids = sample_db.summary.valid_invoice_ids
    assert len(valid_ids) == 228

    with_establishment = 0
    for number, invoice_id in enumerate(valid_ids):
        invoice = load_invoice(sample_session, invoice_id, "invoice")
        payload = build_bill_payload(
            invoice, reference_code=f"SAMPLE{number}", today=TODAY, known_municipality_ids=known
        )
        assert payload["numbering_range_id"] == 8
        assert all(isinstance(item["quantity"], int) for item in payload["items"])
        assert invoice.total is not None
        assert abs(factus_payload_total(payload) - invoice.total) <= Decimal("1.00")
        with_establishment += "establishment" in payload
    assert 0 < with_establishment < len(valid_ids)


def test_every_wrong_invoice_is_refused_with_its_expected_code(
    sample_session: Session, sample_db: SampleDatabase
) -> None:
    known = known_municipality_ids(sample_session)
    wrong = sample_db.summary.wrong_invoices
    assert len(wrong) == 12  # 5 % of 240
    assert Counter(w["expected_error_code"] for w in wrong) == dict.fromkeys(WRONG_KINDS, 3)

    for entry in wrong:
        invoice = load_invoice(sample_session, entry["invoice_id"], "invoice")
        with pytest.raises(PayloadError) as refused:
            build_bill_payload(
                invoice, reference_code="SAMPLEWRONG", today=TODAY, known_municipality_ids=known
            )
        assert refused.value.code == entry["expected_error_code"]


def test_credit_notes_reference_valid_invoices_and_fit_within_them(
    sample_session: Session, sample_db: SampleDatabase
) -> None:
    summary = sample_db.summary
    notes = _invoices(sample_session, "credit_note")
    assert sorted(n.id for n in notes) == sorted(summary.credit_note_ids)
    assert len(notes) == 4
    items = _items_by_invoice(sample_session)
    known = known_municipality_ids(sample_session)

    def lines(invoice_id: Any) -> Counter[tuple[Any, ...]]:
        return Counter(
            (i.description, i.qty, i.unit_price, i.discount_rate) for i in items[invoice_id]
        )

    assert Counter(n.correction_concept_code for n in notes) == {1: 2, 2: 2}
    for note in notes:
        assert note.related_invoice_id in summary.valid_invoice_ids
        original = sample_session.get(InvoiceSale, note.related_invoice_id)
        assert original is not None
        assert original.total is not None
        assert note.total is not None
        assert note.organization_id == original.organization_id
        assert note.customer_id == original.customer_id
        assert note.issue_date is not None
        assert original.issue_date is not None
        assert original.issue_date <= note.issue_date <= original.issue_date + timedelta(days=7)
        if note.correction_concept_code == 2:
            assert lines(note.id) == lines(original.id)
            assert note.total == original.total
        else:
            assert len(items[note.id]) < len(items[original.id])
            assert not lines(note.id) - lines(original.id)
            assert note.total < original.total

        # Before the invoice is accepted no Factus bill id exists; give it one to check the rest.
        loaded = load_invoice(sample_session, note.id, "credit_note")
        payload = build_credit_note_payload(
            dataclasses.replace(loaded, related_bill_id=4321),
            reference_code="SAMPLENOTE",
            today=TODAY,
            known_municipality_ids=known,
        )
        assert payload["correction_concept_code"] == note.correction_concept_code
        assert payload["numbering_range_id"] == catalog.CREDIT_NOTE_RANGE_FACTUS_ID


def test_same_seed_gives_identical_rows_in_another_database(
    services: DevServices, template_db: str, sample_db: SampleDatabase
) -> None:
    def snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
        return {
            "invoices": [
                (i.id, i.organization_id, i.branch_id, i.customer_id, i.issue_date, i.due_date,
                 i.subtotal, i.tax_total, i.total, i.status, i.related_invoice_id)
                for i in session.scalars(select(InvoiceSale).order_by(InvoiceSale.id))
            ],
            "items": [
                (i.id, i.invoice_id, i.description, i.qty, i.unit_price, i.tax_rate,
                 i.discount_rate, i.total_line, i.withholding_taxes)
                for i in session.scalars(select(InvoiceItem).order_by(InvoiceItem.id))
            ],
            "customers": [
                (c.id, c.organization_id, c.identification_number, c.dv, c.email)
                for c in session.scalars(select(Customer).order_by(Customer.id))
            ],
        }

    name, url = create_database(services, template_db)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        again = generate_into(url)
        with make_session_factory(engine)() as second_session:
            second = snapshot(second_session)
        other_seed = generate_into(url, seed=8, invoices=20, customers=10, credit_notes=1)
    finally:
        engine.dispose()
        drop_database(services, name)
    with sample_db.sessions() as first_session:
        first = snapshot(first_session)

    assert again == sample_db.summary
    assert second == first
    assert len(first["invoices"]) == 244
    assert len(first["items"]) > 500
    assert set(other_seed.invoice_ids).isdisjoint(again.invoice_ids)
