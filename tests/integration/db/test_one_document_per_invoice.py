"""One legal document per invoice, held by the database whoever writes to it.

An ERP writes these tables directly, so each rule is tried the way an ERP would break it: a plain
SQL insert, update or delete, and through the Python producer and the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from einvoice.domain.jobs import AMBIGUOUS_FAILURE_CODES
from einvoice.errors import JobError
from einvoice.services.enqueue import enqueue_invoice
from einvoice.services.operator import retry_job
from tests.integration.pipeline.conftest import insert_job_sql, seed_invoice, seed_organization

CUFE = "a" * 96


def _job(session: Session, job_id: uuid.UUID) -> Any:
    return session.execute(text("SELECT * FROM electronic_invoicing_jobs WHERE id = :j"),
                           {"j": job_id}).one()


def _events(session: Session, job_id: uuid.UUID) -> list[Any]:
    return session.execute(text(
        "SELECT event_type, event_code, event_message, metadata FROM electronic_invoicing_events "
        "WHERE job_id = :j ORDER BY created_at, id"), {"j": job_id}).all()


def _accept(session: Session, job_id: uuid.UUID, number: str = "SETP990000001") -> None:
    """What the worker writes on acceptance: the job and its invoice, in one transaction."""
    session.execute(text(
        "UPDATE electronic_invoicing_jobs SET status = 'accepted', cufe = :cufe, "
        "document_number = :number, processed_at = now() WHERE id = :j"),
        {"j": job_id, "cufe": CUFE, "number": number})
    session.execute(text(
        "UPDATE invoice_sales SET xml_uuid = :cufe, number = :number, validated_at = now(), "
        "status = 'validated' FROM electronic_invoicing_jobs j "
        "WHERE j.id = :j AND invoice_sales.id = j.invoice_id"),
        {"j": job_id, "cufe": CUFE, "number": number})
    session.commit()


def _fail(session: Session, job_id: uuid.UUID, code: str, *, unknown: bool = False) -> None:
    session.execute(text(
        "UPDATE electronic_invoicing_jobs SET status = 'failed', error_code = :code, "
        "outcome_unknown = :unknown, processed_at = now() WHERE id = :j"),
        {"j": job_id, "code": code, "unknown": unknown})
    session.commit()


@pytest.fixture
def invoice(session: Session) -> uuid.UUID:
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()
    return invoice_id


@pytest.fixture
def accepted(session: Session, invoice: uuid.UUID) -> uuid.UUID:
    """The invoice's first job, accepted by DIAN."""
    job_id = insert_job_sql(session, invoice)
    _accept(session, job_id)
    return job_id


# --- An accepted invoice is never sent again ----------------------------------------------------

def test_plain_sql_insert_for_an_accepted_invoice_ends_at_once_pointing_to_the_accepted_job(
    session: Session, invoice: uuid.UUID, accepted: uuid.UUID
) -> None:
    # Given an invoice whose first job is accepted
    # When the ERP inserts another job for it with plain SQL
    second = insert_job_sql(session, invoice)
    # Then the row is kept but ended at once: no worker will ever claim it
    row = _job(session, second)
    assert (row.status, row.error_code) == ("cancelled", "already_accepted")
    assert str(accepted) in row.error_message
    assert row.processed_at is not None
    [(event_type, code, _message, metadata)] = _events(session, second)
    assert (event_type, code) == ("already_accepted", "already_accepted")
    assert metadata["accepted_job"] == str(accepted)
    assert metadata["document_number"] == "SETP990000001"


def test_python_producer_returns_the_accepted_job_and_inserts_nothing(
    session: Session, invoice: uuid.UUID, accepted: uuid.UUID
) -> None:
    job = enqueue_invoice(session, invoice)
    session.commit()

    assert job.id == accepted
    assert job.status == "accepted"
    count = session.scalar(text("SELECT count(*) FROM electronic_invoicing_jobs"))
    assert count == 1


def test_cli_enqueue_says_the_invoice_is_already_accepted(
    db_url: str, redis_url: str, session: Session, invoice: uuid.UUID, accepted: uuid.UUID
) -> None:
    result = _cli(db_url, redis_url, "jobs", "enqueue", "--invoice", str(invoice))

    assert "already has an accepted document" in result.stdout
    assert str(accepted) in result.stdout
    assert "SETP990000001" in result.stdout
    assert session.scalar(text("SELECT count(*) FROM electronic_invoicing_jobs")) == 1


def test_a_final_job_of_an_accepted_invoice_cannot_be_reopened(
    session: Session, invoice: uuid.UUID
) -> None:
    # Given a job that failed, then a second one that got the invoice accepted
    first = insert_job_sql(session, invoice)
    _fail(session, first, "attempts_exhausted")
    second = insert_job_sql(session, invoice)
    _accept(session, second)
    # When an operator retries the failed one, or an ERP re-opens it with SQL
    with pytest.raises(JobError) as refused:
        retry_job(session, first)
    session.rollback()
    with pytest.raises(DBAPIError, match="already has an accepted invoice"):
        session.execute(text("UPDATE electronic_invoicing_jobs SET status = 'pending' "
                             "WHERE id = :j"), {"j": first})
    session.rollback()
    # Then both are refused, and the failed job stays failed
    assert refused.value.reason == "already_accepted"
    assert _job(session, first).status == "failed"


# --- An unknown outcome keeps its reference code -------------------------------------------------

@pytest.mark.parametrize("code", AMBIGUOUS_FAILURE_CODES)
def test_new_job_after_an_ambiguous_ending_reuses_the_reference_code_and_looks_it_up_first(
    session: Session, invoice: uuid.UUID, code: str
) -> None:
    first = insert_job_sql(session, invoice)
    _fail(session, first, code)

    second = insert_job_sql(session, invoice)
    first_row = _job(session, first)
    row = _job(session, second)

    assert row.status == "pending"
    assert row.reference_code == first_row.reference_code
    assert row.outcome_unknown is True


def test_new_job_after_a_failure_with_the_outcome_unknown_flag_reuses_the_code(
    session: Session, invoice: uuid.UUID
) -> None:
    first = insert_job_sql(session, invoice)
    _fail(session, first, "attempts_exhausted", unknown=True)

    job = enqueue_invoice(session, invoice)
    session.commit()

    assert job.reference_code == _job(session, first).reference_code
    assert job.outcome_unknown


def test_an_ambiguous_failure_is_remembered_past_a_later_clean_failure(
    session: Session, invoice: uuid.UUID
) -> None:
    # Given a job that ended with its outcome unknown, and its successor (same code) that then
    # failed for a reason of its own before reaching Factus
    first = insert_job_sql(session, invoice)
    _fail(session, first, "outcome_unknown")
    second = insert_job_sql(session, invoice)
    _fail(session, second, "no_factus_account")

    # When the ERP asks again
    third = insert_job_sql(session, invoice)

    # Then the code whose document may exist at Factus is still the one used
    assert _job(session, third).reference_code == _job(session, first).reference_code
    assert _job(session, third).outcome_unknown is True


def test_new_job_after_a_clean_rejection_gets_a_fresh_reference_code(
    session: Session, invoice: uuid.UUID
) -> None:
    first = insert_job_sql(session, invoice)
    _fail(session, first, "payload_invalid")
    session.execute(text("UPDATE electronic_invoicing_jobs SET status = 'rejected' WHERE id = :j"),
                    {"j": first})
    session.commit()

    second = insert_job_sql(session, invoice)

    assert _job(session, second).reference_code != _job(session, first).reference_code
    assert _job(session, second).outcome_unknown is False


def test_a_reference_code_of_another_invoice_is_refused(
    session: Session, invoice: uuid.UUID
) -> None:
    first = insert_job_sql(session, invoice)
    other_invoice = seed_invoice(session)
    session.commit()
    reference = _job(session, first).reference_code

    with pytest.raises(IntegrityError, match="belongs to a job of another invoice"):
        session.execute(text(
            "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, reference_code) "
            "VALUES (1, :inv, :ref)"), {"inv": other_invoice, "ref": reference})


def test_retry_with_new_document_draws_a_fresh_code_and_records_who_asked(
    db_url: str, redis_url: str, session: Session, invoice: uuid.UUID
) -> None:
    first = insert_job_sql(session, invoice)
    _fail(session, first, "reconcile_mismatch")
    old = _job(session, first).reference_code

    refused = _cli(db_url, redis_url, "jobs", "retry", str(first), "--new-document", check=False)
    assert refused.returncode != 0  # no confirmation on stdin: nothing done
    assert _job(session, first).reference_code == old
    _cli(db_url, redis_url, "jobs", "retry", str(first), "--new-document", "--yes")
    session.expire_all()

    row = _job(session, first)
    assert row.status == "pending"
    assert row.reference_code != old
    assert not row.outcome_unknown
    new_document = [e for e in _events(session, first) if e.event_type == "new_document"]
    assert new_document[0].metadata["old_reference_code"] == old
    assert new_document[0].metadata["new_reference_code"] == row.reference_code
    assert new_document[0].metadata["actor"].startswith("cli:")


def test_plain_retry_of_an_ambiguous_job_keeps_its_code_and_looks_it_up(
    session: Session, invoice: uuid.UUID
) -> None:
    first = insert_job_sql(session, invoice)
    _fail(session, first, "dian_already_processed")
    old = _job(session, first).reference_code

    retry_job(session, first)
    session.commit()

    row = _job(session, first)
    assert (row.status, row.reference_code, row.outcome_unknown) == ("pending", old, True)


def test_cli_enqueue_new_document_gives_the_new_job_a_fresh_code(
    db_url: str, redis_url: str, session: Session, invoice: uuid.UUID
) -> None:
    first = insert_job_sql(session, invoice)
    _fail(session, first, "outcome_unknown")
    old = _job(session, first).reference_code

    out = json.loads(_cli(db_url, redis_url, "jobs", "enqueue", "--invoice", str(invoice),
                          "--new-document", "--yes", "--json").stdout)

    [job] = out
    assert job["reference_code"] != old
    assert job["status"] == "pending"
    assert "new_document" in [e.event_type for e in _events(session, uuid.UUID(job["id"]))]


# --- What DIAN validated stays as it is ----------------------------------------------------------

@pytest.mark.parametrize("change", [
    "cufe = 'b'", "document_number = 'SETP990000002'", "status = 'cancelled'",
    "request_payload = '{}'::jsonb", "reference_code = 'EIOTHER'", "invoice_id = gen_random_uuid()",
])
def test_an_accepted_job_cannot_be_changed(
    session: Session, accepted: uuid.UUID, change: str
) -> None:
    with pytest.raises(DBAPIError, match="its document cannot be changed"):
        session.execute(text(f"UPDATE electronic_invoicing_jobs SET {change} WHERE id = :j"),
                        {"j": accepted})


def test_an_accepted_job_cannot_be_deleted_or_truncated(
    session: Session, accepted: uuid.UUID
) -> None:
    with pytest.raises(DBAPIError, match="never deleted"):
        session.execute(text("DELETE FROM electronic_invoicing_jobs WHERE id = :j"),
                        {"j": accepted})
    session.rollback()
    with pytest.raises(DBAPIError, match="never truncated"):
        session.execute(text("TRUNCATE electronic_invoicing_jobs CASCADE"))
    session.rollback()
    assert _job(session, accepted).status == "accepted"


def test_an_accepted_job_still_takes_bookkeeping_columns(
    session: Session, accepted: uuid.UUID
) -> None:
    session.execute(text("UPDATE electronic_invoicing_jobs SET updated_at = now(), "
                         "dispatched_at = now() WHERE id = :j"), {"j": accepted})
    session.commit()


@pytest.mark.parametrize("change", [
    "total = total + 1", "number = 'X1'", "xml_uuid = NULL", "customer_id = NULL",
    "validated_at = NULL",
])
def test_a_validated_invoice_keeps_its_cufe_number_totals_and_customer(
    session: Session, invoice: uuid.UUID, accepted: uuid.UUID, change: str
) -> None:
    with pytest.raises(DBAPIError, match="cannot be changed"):
        session.execute(text(f"UPDATE invoice_sales SET {change} WHERE id = :i"), {"i": invoice})


def test_a_validated_invoice_and_its_lines_cannot_be_deleted_or_edited(
    session: Session, invoice: uuid.UUID, accepted: uuid.UUID
) -> None:
    statements = [
        "DELETE FROM invoice_sales WHERE id = :i",
        "DELETE FROM invoice_items WHERE invoice_id = :i",
        "UPDATE invoice_items SET qty = qty + 1 WHERE invoice_id = :i",
        ("INSERT INTO invoice_items (invoice_id, description, qty, unit_price, tax_rate) "
         "VALUES (:i, 'extra', 1, 100, 19)"),
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="validated by DIAN"):
            session.execute(text(statement), {"i": invoice})
        session.rollback()


def test_a_validated_invoice_still_takes_the_erps_own_columns(
    session: Session, invoice: uuid.UUID, accepted: uuid.UUID
) -> None:
    session.execute(text("UPDATE invoice_sales SET balance = 0, status = 'paid' WHERE id = :i"),
                    {"i": invoice})
    session.commit()


# --- Tenants and the product catalogue -----------------------------------------------------------

@pytest.mark.parametrize(("column", "insert_other"), [
    ("customer_id", "INSERT INTO customers (id, organization_id) VALUES (:other, 2)"),
    ("related_invoice_id", "INSERT INTO invoice_sales (id, organization_id) VALUES (:other, 2)"),
])
def test_an_invoice_cannot_point_to_another_organizations_rows(
    session: Session, invoice: uuid.UUID, column: str, insert_other: str
) -> None:
    seed_organization(session, 2, range_id=9)
    other = uuid.uuid4()
    session.execute(text(insert_other), {"other": other})
    session.commit()

    session.execute(text(f"UPDATE invoice_sales SET {column} = :other WHERE id = :i"),
                    {"other": other, "i": invoice})
    with pytest.raises(IntegrityError, match="fk_invoice_sales_"):
        session.commit()


def test_a_branch_of_another_organization_is_refused(session: Session, invoice: uuid.UUID) -> None:
    seed_organization(session, 2, range_id=9)
    branch = session.scalar(text("INSERT INTO branches (organization_id, name) VALUES (2, 'B') "
                                 "RETURNING id"))
    session.commit()

    session.execute(text("UPDATE invoice_sales SET branch_id = :b WHERE id = :i"),
                    {"b": branch, "i": invoice})
    with pytest.raises(IntegrityError, match="fk_invoice_sales_branch_organization"):
        session.commit()


def test_products_hold_dian_unit_codes(session: Session) -> None:
    session.execute(text("INSERT INTO products (organization_id, name, unit_code) "
                         "VALUES (1, 'Aceite', '94'), (1, 'Arroz', 'KGM')"))
    session.commit()

    codes = session.scalars(text("SELECT unit_code FROM products ORDER BY id")).all()
    assert codes == ["94", "KGM"]


def _cli(db_url: str, redis_url: str, *args: str,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTUS_", "EINVOICE_"))}
    env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url,
               EINVOICE_SECRET_KEY=Fernet.generate_key().decode())
    result = subprocess.run([sys.executable, "-m", "einvoice.cli", *args], env=env,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                            check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result
