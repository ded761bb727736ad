"""Credit notes and cancellation through the real pipeline.

Every scenario runs on both Factus API versions (``BOTH_VERSIONS``). What differs is asserted
through small helpers: a v1 credit note names its bill by Factus id (``bill_id``), a v2 one by
number (``bill_number``), and v2 sends its codes as strings."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.db.models import ElectronicInvoicingJob, InvoiceSale
from einvoice.errors import JobError
from einvoice.factus.client import create_factus_clients
from einvoice.queueing import CeleryPublisher
from einvoice.services.documents import request_email_resend
from einvoice.services.operator import cancel_job
from einvoice.settings import load_settings
from tests.integration.pipeline.conftest import (
    BOTH_VERSIONS,
    Pipeline,
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)

pytestmark = pytest.mark.slow

ITEMS = (("Café 500 g", Decimal(2), Decimal(23800), Decimal(19)),
         ("Queso", Decimal(1), Decimal(10500), Decimal(5)))


def _credit_note_range(session: Session) -> None:
    session.execute(text(
        "INSERT INTO invoice_sequences (organization_id, document_type, prefix, range_start, "
        "range_end, current_number, valid_from, valid_until, is_active, factus_numbering_range_id) "
        "VALUES (1, 'credit_note', 'NC', 1, 99999999, 1, '2019-01-19', '2030-01-19', true, 9)"))


def _credit_note(session: Session, invoice_id: uuid.UUID, items: tuple, concept: int) -> uuid.UUID:
    """A credit note row copying the invoice's customer, crediting ``items``."""
    note_id = uuid.uuid4()
    total = sum((qty * price for _, qty, price, _ in items), Decimal(0))
    session.execute(text(
        "INSERT INTO invoice_sales (id, organization_id, customer_id, issue_date, total, "
        "tax_included, payment_form, payment_method_code, document_type, related_invoice_id, "
        "correction_concept_code) SELECT :id, organization_id, customer_id, now(), :total, true, "
        "'1', '10', 'credit_note', id, :concept FROM invoice_sales WHERE id = :inv"),
        {"id": note_id, "total": total, "concept": concept, "inv": invoice_id})
    for index, (name, qty, price, rate) in enumerate(items):
        session.execute(text(
            "INSERT INTO invoice_items (invoice_id, description, qty, unit_price, tax_rate, "
            "code_reference, tax_included) VALUES (:inv, :name, :qty, :price, :rate, :code, true)"),
            {"inv": note_id, "name": name, "qty": qty, "price": price, "rate": rate,
             "code": f"SKU-{index}"})
    return note_id


def _named_bill(pipeline: Pipeline, invoice: ElectronicInvoicingJob) -> tuple[str, object]:
    """The field of a credit note's body that names its bill, and the value it must hold: v1's
    Factus bill id (``bill_id``), v2's bill number (``bill_number``; v2 bills have no id)."""
    if pipeline.api_version == "v2":
        return "bill_number", invoice.document_number
    return "bill_id", invoice.factus_document_id


def _credit_job(session: Session, note_id: uuid.UUID) -> uuid.UUID:
    job_id = session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, document_type) "
        "VALUES (1, :n, 'credit_note') RETURNING id"), {"n": note_id}).scalar_one()
    session.commit()
    return job_id


@BOTH_VERSIONS
def test_full_and_partial_credit_notes_are_accepted_with_cude(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline()
    seed_organization(session)
    _credit_note_range(session)
    first, second = seed_invoice(session, items=ITEMS), seed_invoice(session, items=ITEMS)
    session.commit()
    invoices = wait_for_jobs(pipeline.factory, [insert_job_sql(session, first),
                                                insert_job_sql(session, second)], timeout=30)
    assert [j.status for j in invoices] == ["accepted", "accepted"]

    full = _credit_note(session, first, ITEMS, concept=2)
    partial = _credit_note(session, second, ITEMS[1:], concept=1)
    notes = wait_for_jobs(pipeline.factory, [_credit_job(session, full), _credit_job(session, partial)],
                          timeout=30)

    assert [n.status for n in notes] == ["accepted", "accepted"], [n.error_message for n in notes]
    assert all(n.cufe and len(n.cufe) == 96 and n.document_number.startswith("NC") for n in notes)
    field, bill = _named_bill(pipeline, invoices[0])
    assert bill is not None
    assert notes[0].request_payload[field] == bill
    assert str(notes[0].request_payload["correction_concept_code"]) == "2"
    assert str(notes[0].request_payload["customization_id"]) == "20"
    assert notes[0].factus_api_version == invoices[0].factus_api_version == pipeline.api_version
    session.expire_all()
    assert session.get(InvoiceSale, full).xml_uuid == notes[0].cufe
    assert session.get(InvoiceSale, full).status == "validated"

    # An operator resends the credit note's e-mail: POST /v1/credit-notes/send-email/{number}
    # (v2: POST /v2/credit-notes/{number}/send-email).
    publisher = CeleryPublisher()
    publisher.app.conf.broker_url = pipeline.env["CELERY_BROKER_URL"]
    request_email_resend(session, notes[0].id, to="contabilidad@cliente.co", publisher=publisher)
    session.commit()
    deadline = time.monotonic() + 30
    sent: dict[str, int] = {}
    while time.monotonic() < deadline and not sent:
        sent = pipeline.requests_to("send_credit_note_email")
        time.sleep(0.2)
    assert sent == {"200": 1}


@BOTH_VERSIONS
def test_credit_note_over_the_invoice_total_is_rejected_before_any_call(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline()
    seed_organization(session)
    _credit_note_range(session)
    invoice_id = seed_invoice(session, items=ITEMS[1:])
    session.commit()
    wait_for_jobs(pipeline.factory, [insert_job_sql(session, invoice_id)], timeout=30)

    too_much = _credit_note(session, invoice_id, ITEMS, concept=1)
    [note] = wait_for_jobs(pipeline.factory, [_credit_job(session, too_much)], timeout=30)

    assert note.status == "rejected"
    assert note.error_code == "credit_exceeds_invoice"
    assert pipeline.sandbox.stats()["global"]["validate_posts"]["credit_note"] == 0


@BOTH_VERSIONS
def test_credit_note_waits_for_its_invoice_then_is_sent(
    make_pipeline: Callable[..., Pipeline], session: Session, api_version: str | None
) -> None:
    pipeline = make_pipeline(beat=True)
    pipeline.sandbox.set_faults(dian_slow=1.0, seed=9)
    seed_organization(session)
    _credit_note_range(session)
    invoice_id = seed_invoice(session, items=ITEMS)
    session.commit()
    invoice_job = insert_job_sql(session, invoice_id)
    wait_for_jobs(pipeline.factory, [invoice_job], statuses=("sent",), timeout=30)

    note_job = _credit_job(session, _credit_note(session, invoice_id, ITEMS, concept=2))
    wait_for_jobs(pipeline.factory, [note_job], statuses=("pending",), timeout=10)
    pipeline.sandbox.set_faults(dian_slow=0.0)

    [invoice, note] = wait_for_jobs(pipeline.factory, [invoice_job, note_job], timeout=40)
    assert (invoice.status, note.status) == ("accepted", "accepted")
    assert (invoice.factus_api_version, note.factus_api_version) == (api_version, api_version)
    assert "waiting" in [t for t, _ in pipeline.events(note_job)]


@BOTH_VERSIONS
def test_cancel_deletes_a_stored_unvalidated_document_and_refuses_a_validated_one(
    make_pipeline: Callable[..., Pipeline], session: Session, db_url: str, redis_url: str,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    pipeline = make_pipeline()
    pipeline.sandbox.set_faults(dian_slow=1.0, seed=10)
    seed_organization(session)
    slow_invoice = seed_invoice(session)
    session.commit()
    [slow] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, slow_invoice)],
                           statuses=("sent",), timeout=30)
    settings = load_settings(**{k.lower(): v for k, v in pipeline.env.items()
                                if k.startswith(("FACTUS_", "EINVOICE_", "REDIS_URL"))})
    clients = create_factus_clients(settings)
    try:
        message = cancel_job(session_factory, clients, settings, slow.id, actor="test")
        assert "deleted unvalidated document" in message
        assert pipeline.sandbox.stats()["global"]["documents_deleted"]["bill"] == 1

        pipeline.sandbox.set_faults(dian_slow=0.0)
        ok_invoice = seed_invoice(session)
        session.commit()
        [ok] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, ok_invoice)], timeout=30)
        assert ok.status == "accepted"  # the deletion released the account's 409 block
        with pytest.raises(JobError, match="credit note"):
            cancel_job(session_factory, clients, settings, ok.id, actor="test")
    finally:
        clients.close()
    types = [t for t, _ in pipeline.events(slow.id)]
    assert types[-1] == "cancelled"
