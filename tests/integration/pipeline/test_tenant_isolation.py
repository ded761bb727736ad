"""Tenants stay apart: a document only draws on its own organization's rows.

Two organizations share one database, as in a multi-company ERP. An invoice of organization 1
that points at organization 2's customer, product, branch or invoice (for a credit note), or a job
whose organization is not the invoice's, is ``rejected`` with ``organization_mismatch`` naming the
row, and the simulator never sees it; the other jobs of the burst go through.

Migration 0006 makes most such rows impossible to write from now on (composite foreign keys), but
its keys are ``NOT VALID``: rows an ERP wrote before stay, and products and jobs have no such key.
The scenarios write their foreign rows as those older rows were written, with the foreign-key
triggers off (``session_replication_role = replica``), so the runtime check is what is tested.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.db.invoices import load_invoice
from einvoice.domain.errors import PayloadError
from tests.integration.pipeline.conftest import (
    Pipeline,
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)

pytestmark = pytest.mark.slow


def _validations(pipeline: Pipeline, reference: str) -> int:
    stats = pipeline.sandbox.stats()["global"]["validations_by_reference"]
    return sum(int(by_kind.get(reference, 0)) for by_kind in stats.values())


def _two_organizations(session: Session) -> None:
    seed_organization(session, 1)
    seed_organization(session, 2)


def _as_rows_written_before_the_keys(session: Session) -> None:
    """Turn the foreign-key triggers off until this transaction commits (see the module doc)."""
    session.execute(text("SET LOCAL session_replication_role = replica"))


def _customer_of(session: Session, invoice_id: uuid.UUID, org_id: int | None) -> None:
    session.execute(text(
        "UPDATE customers SET organization_id = :org WHERE id = "
        "(SELECT customer_id FROM invoice_sales WHERE id = :inv)"), {"org": org_id, "inv": invoice_id})


def _product_of(session: Session, invoice_id: uuid.UUID, org_id: int) -> int:
    product_id = session.execute(text(
        "INSERT INTO products (organization_id, sku, name) VALUES (:org, 'CAFE-500', 'Café') "
        "RETURNING id"), {"org": org_id}).scalar_one()
    session.execute(text("UPDATE invoice_items SET product_id = :p WHERE invoice_id = :inv"),
                    {"p": product_id, "inv": invoice_id})
    return int(product_id)


def _branch_of(session: Session, invoice_id: uuid.UUID, org_id: int) -> int:
    branch_id = session.execute(text(
        "INSERT INTO branches (organization_id, name, address, phone, email, municipality_id) "
        "VALUES (:org, 'Sucursal Norte', 'Calle 3 # 4-5', '6077000000', 'norte@tienda.co', 980) "
        "RETURNING id"), {"org": org_id}).scalar_one()
    session.execute(text("UPDATE invoice_sales SET branch_id = :b WHERE id = :inv"),
                    {"b": branch_id, "inv": invoice_id})
    return int(branch_id)


def _credit_note_for(session: Session, org_id: int, related_id: uuid.UUID) -> uuid.UUID:
    """A credit note of ``org_id`` (with its own customer and one line) correcting ``related_id``."""
    note_id = seed_invoice(session, org_id)
    session.execute(text(
        "UPDATE invoice_sales SET document_type = 'credit_note', related_invoice_id = :rel, "
        "correction_concept_code = 2 WHERE id = :id"), {"rel": related_id, "id": note_id})
    return note_id


def _job(session: Session, invoice_id: uuid.UUID, org_id: int, document_type: str) -> uuid.UUID:
    job_id = session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, document_type) "
        "VALUES (:org, :inv, :kind) RETURNING id"),
        {"org": org_id, "inv": invoice_id, "kind": document_type}).scalar_one()
    session.commit()
    return uuid.UUID(str(job_id))


def test_rows_of_another_organization_are_refused_before_any_call(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline()
    # Given two organizations, and invoices of organization 1 that draw on organization 2's rows
    _two_organizations(session)
    own = seed_invoice(session, 1)
    _as_rows_written_before_the_keys(session)
    foreign_customer = seed_invoice(session, 1)
    _customer_of(session, foreign_customer, 2)
    foreign_product = seed_invoice(session, 1)
    product_id = _product_of(session, foreign_product, 2)
    foreign_branch = seed_invoice(session, 1)
    branch_id = _branch_of(session, foreign_branch, 2)
    other_company_invoice = seed_invoice(session, 2)
    foreign_credit = _credit_note_for(session, 1, other_company_invoice)
    # and one whose customer row has no organization at all (a single-company ERP's rows)
    unowned_customer = seed_invoice(session, 1)
    _customer_of(session, unowned_customer, None)
    session.commit()

    # When the ERP inserts their jobs in one burst
    jobs = {
        "own": insert_job_sql(session, own),
        "customer": insert_job_sql(session, foreign_customer),
        "product": insert_job_sql(session, foreign_product),
        "branch": insert_job_sql(session, foreign_branch),
        "credit": _job(session, foreign_credit, 1, "credit_note"),
        "unowned": insert_job_sql(session, unowned_customer),
    }
    done = dict(zip(jobs, wait_for_jobs(pipeline.factory, list(jobs.values()), timeout=40),
                    strict=True))

    # Then every foreign row ends its job rejected, naming the table, the row and its owner
    assert {name: job.status for name, job in done.items()} == {
        "own": "accepted", "customer": "rejected", "product": "rejected", "branch": "rejected",
        "credit": "rejected", "unowned": "accepted"}
    for name in ("customer", "product", "branch", "credit"):
        assert done[name].error_code == "organization_mismatch", done[name].error_message
        assert "organization 2" in done[name].error_message
        assert ("rejected", "organization_mismatch") in pipeline.events(jobs[name])
    assert done["customer"].error_message.startswith("customers.organization_id = 2: customers row")
    assert f"products row {product_id} " in done["product"].error_message
    assert f"branches row {branch_id} " in done["branch"].error_message
    assert str(other_company_invoice) in done["credit"].error_message
    # and none of them reached Factus, while the good ones were validated once
    for name in ("customer", "product", "branch", "credit"):
        assert _validations(pipeline, done[name].reference_code) == 0
        assert done[name].request_payload is None
    assert _validations(pipeline, done["own"].reference_code) == 1
    assert _validations(pipeline, done["unowned"].reference_code) == 1


def test_a_job_whose_organization_is_not_the_invoices_is_refused(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    pipeline = make_pipeline()
    # Given organization 1's invoice, and an ERP's plain INSERT that files its job under 2
    _two_organizations(session)
    invoice_id = seed_invoice(session, 1)
    session.commit()

    job_id = insert_job_sql(session, invoice_id, org_id=2)

    # Then the job is rejected (organization 2's Factus account must not issue it)
    [job] = wait_for_jobs(pipeline.factory, [job_id], timeout=30)
    assert (job.status, job.error_code) == ("rejected", "organization_mismatch")
    assert job.error_message.startswith("electronic_invoicing_jobs.organization_id = 2: ")
    assert _validations(pipeline, job.reference_code) == 0


def test_load_invoice_checks_the_asking_jobs_organization(session: Session) -> None:
    # Given organization 1's invoice
    _two_organizations(session)
    invoice_id = seed_invoice(session, 1)
    session.commit()
    # When it is read for a job of organization 1 (or without saying), it loads
    assert load_invoice(session, invoice_id, "invoice", organization_id=1).organization.id == 1
    assert load_invoice(session, invoice_id, "invoice").organization.id == 1
    # and for a job of organization 2 it is refused, naming both organizations
    with pytest.raises(PayloadError) as caught:
        load_invoice(session, invoice_id, "invoice", organization_id=2)
    error = caught.value
    assert (error.code, error.field, error.value) == (
        "organization_mismatch", "electronic_invoicing_jobs.organization_id", 2)
    assert f"invoice_sales row {invoice_id} belongs to organization 1" in error.message
