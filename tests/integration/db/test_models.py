"""Model round trips through a real PostgreSQL, including JSONB and array columns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from einvoice.db.models import (
    Customer,
    ElectronicInvoicingEvent,
    ElectronicInvoicingJob,
    InvoiceItem,
    InvoiceSale,
    Organization,
)


def test_organization_round_trip_with_array(session: Session) -> None:
    org = Organization(name="Tienda", nit="900123456", dv=8, fiscal_responsibilities=["O-13", "O-15"])
    session.add(org)
    session.commit()
    session.expunge_all()

    loaded = session.get(Organization, org.id)
    assert loaded is not None
    assert loaded.fiscal_responsibilities == ["O-13", "O-15"]
    assert loaded.dv == 8


def test_invoice_with_jsonb_and_decimal_round_trip(session: Session) -> None:
    customer = Customer(organization_id=1, identification_type="CC",
                        identification_number="1020304050")
    session.add(customer)
    session.flush()
    invoice = InvoiceSale(
        organization_id=1, customer_id=customer.id, total=Decimal("47600.00"),
        allowance_charges=[{"concept_type": "03", "is_surcharge": True, "amount": "1000.00"}],
        billing_period={"start_date": "2026-11-01", "end_date": "2026-11-30"},
        issue_date=datetime(2026, 11, 21, 15, 0, tzinfo=UTC),
    )
    session.add(invoice)
    session.flush()
    session.add(InvoiceItem(invoice_id=invoice.id, qty=Decimal("2"), unit_price=Decimal("23800"),
                            withholding_taxes=[{"code": "06", "withholding_tax_rate": "2.50"}]))
    session.commit()
    session.expunge_all()

    loaded = session.get(InvoiceSale, invoice.id)
    assert loaded is not None
    assert loaded.total == Decimal("47600.00")
    assert loaded.allowance_charges[0]["is_surcharge"] is True
    assert loaded.billing_period == {"start_date": "2026-11-01", "end_date": "2026-11-30"}
    assert loaded.payment_form == "1"
    assert loaded.operation_type == "10"
    item = session.scalars(select(InvoiceItem).where(InvoiceItem.invoice_id == invoice.id)).one()
    assert item.withholding_taxes == [{"code": "06", "withholding_tax_rate": "2.50"}]
    assert (item.unit_measure_id, item.standard_code_id, item.is_excluded) == (70, 1, 0)


def test_job_defaults_and_event_metadata(session: Session) -> None:
    job = ElectronicInvoicingJob(organization_id=1, invoice_id=uuid.uuid4())
    session.add(job)
    session.flush()
    session.add(ElectronicInvoicingEvent(job_id=job.id, event_type="enqueued",
                                         metadata_={"attempt": 0, "to": "pending"}))
    session.commit()
    session.expunge_all()

    loaded = session.get(ElectronicInvoicingJob, job.id)
    assert loaded is not None
    assert (loaded.status, loaded.provider, loaded.document_type) == ("pending", "factus", "invoice")
    assert loaded.reference_code.startswith("EI")
    assert len(loaded.reference_code) == 20
    event = session.scalars(select(ElectronicInvoicingEvent)).one()
    assert event.metadata_ == {"attempt": 0, "to": "pending"}


def test_only_one_non_final_job_per_invoice_and_document_type(session: Session) -> None:
    invoice_id = uuid.uuid4()
    session.add(ElectronicInvoicingJob(organization_id=1, invoice_id=invoice_id))
    session.commit()
    session.add(ElectronicInvoicingJob(organization_id=1, invoice_id=invoice_id))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    # A final job does not block a new one, and another document type is independent.
    session.add(ElectronicInvoicingJob(organization_id=1, invoice_id=invoice_id, status="failed"))
    session.add(ElectronicInvoicingJob(organization_id=1, invoice_id=invoice_id,
                                       document_type="credit_note"))
    session.commit()


def test_status_and_provider_checks_reject_unknown_values(session: Session) -> None:
    session.add(ElectronicInvoicingJob(organization_id=1, invoice_id=uuid.uuid4(), status="done"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    session.add(ElectronicInvoicingJob(organization_id=1, invoice_id=uuid.uuid4(), provider="acme"))
    with pytest.raises(IntegrityError):
        session.commit()
