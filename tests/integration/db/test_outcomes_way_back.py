"""Every final outcome reaches the ERP, whichever path made it: its ``invoice_sales`` row and
``NOTIFY einvoice_outcomes`` (the ``einvoice_job_outcome`` trigger, migration 0010).

The transitions are written here as plain SQL, the way an operator's or the ERP's own statement
would, because the trigger, not a code path, is what promises them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.settings import libpq_url
from tests.integration.db.test_one_document_per_invoice import CUFE, _accept
from tests.integration.pipeline.conftest import insert_job_sql, seed_invoice, seed_organization


@pytest.fixture
def outcomes(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection that LISTENs on ``einvoice_outcomes``, as an ERP would."""
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("LISTEN einvoice_outcomes")
        yield conn


def _heard(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return [json.loads(n.payload) for n in conn.notifies(timeout=1.0, stop_after=10)]


def _invoice_row(session: Session, invoice_id: uuid.UUID) -> Any:
    session.expire_all()
    return session.execute(text(
        "SELECT status, einvoice_job_id, einvoice_error_code, einvoice_error_message, "
        "einvoice_outcome_at, validated_at FROM invoice_sales WHERE id = :i"),
        {"i": invoice_id}).one()


def _end(session: Session, job_id: uuid.UUID, status: str, code: str | None,
         message: str | None) -> None:
    session.execute(text(
        "UPDATE electronic_invoicing_jobs SET status = :s, error_code = :c, error_message = :m, "
        "processed_at = now() WHERE id = :j"), {"s": status, "c": code, "m": message, "j": job_id})
    session.commit()


@pytest.mark.parametrize(("status", "code"), [("rejected", "dian_rejected"),
                                              ("failed", "internal_error"),
                                              ("cancelled", "cancelled_by_operator")])
def test_a_final_outcome_is_written_onto_the_invoice_and_notified(
    session: Session, outcomes: psycopg.Connection[Any], status: str, code: str
) -> None:
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()
    job_id = insert_job_sql(session, invoice_id)
    assert _heard(outcomes) == []  # a pending job is no outcome

    _end(session, job_id, status, code, "FAK24: the customer's NIT check digit is wrong")

    row = _invoice_row(session, invoice_id)
    assert (row.status, row.einvoice_job_id, row.einvoice_error_code) == (status, job_id, code)
    assert row.einvoice_error_message == "FAK24: the customer's NIT check digit is wrong"
    assert row.einvoice_outcome_at is not None
    assert _heard(outcomes) == [{"job_id": str(job_id), "invoice_id": str(invoice_id),
                                 "organization_id": 1, "document_type": "invoice",
                                 "status": status, "error_code": code}]


def test_a_later_acceptance_clears_the_error_and_a_duplicate_keeps_the_invoice_validated(
    session: Session, outcomes: psycopg.Connection[Any]
) -> None:
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()
    first = insert_job_sql(session, invoice_id)
    _end(session, first, "rejected", "dian_rejected", "rule FAD06")
    second = insert_job_sql(session, invoice_id)
    _accept(session, second)

    row = _invoice_row(session, invoice_id)
    assert (row.status, row.einvoice_job_id, row.einvoice_error_code,
            row.einvoice_error_message) == ("validated", second, None, None)

    # A new job for the validated invoice is ended at once as a no-op (migration 0006): it is
    # an outcome the ERP hears of, but the invoice stays validated with its CUFE.
    duplicate = insert_job_sql(session, invoice_id)
    row = _invoice_row(session, invoice_id)
    assert (row.status, row.einvoice_job_id) == ("validated", second)
    assert session.execute(text("SELECT xml_uuid FROM invoice_sales WHERE id = :i"),
                           {"i": invoice_id}).scalar() == CUFE
    heard = [(h["job_id"], h["status"], h["error_code"]) for h in _heard(outcomes)]
    assert heard == [(str(first), "rejected", "dian_rejected"), (str(second), "accepted", None),
                     (str(duplicate), "cancelled", "already_accepted")]


def test_a_rolled_back_outcome_notifies_nobody_and_changes_nothing(
    session: Session, outcomes: psycopg.Connection[Any]
) -> None:
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()
    job_id = insert_job_sql(session, invoice_id)
    session.execute(text("UPDATE electronic_invoicing_jobs SET status = 'failed', "
                         "error_code = 'internal_error' WHERE id = :j"), {"j": job_id})
    session.rollback()
    assert _heard(outcomes) == []
    assert _invoice_row(session, invoice_id).einvoice_job_id is None
