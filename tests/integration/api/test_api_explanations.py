"""The ERP reads why a job was refused, and what to fix, from the HTTP API: the job view and the
problems carry the error catalogue's explanation (docs/dian-errors.md), in Spanish unless the
client prefers English."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.services.api_keys import create_key
from tests.integration.api.conftest import Org, running_api
from tests.integration.pipeline.conftest import (
    Pipeline,
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)

#: What the worker leaves on a job DIAN rejected for a wrong check digit (factus_call).
REJECTED_BY_DIAN = {"error_code": "dian_rejected:FAK24",
                    "error_message": "FAK24: DV no corresponde al NIT informado"}


def _rejected_job(org: Org) -> uuid.UUID:
    """A job of ``org`` rejected by DIAN, written as the worker writes it."""
    invoice_id = org.invoice()
    with org.api.factory() as session:
        job_id = session.execute(text(
            "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, status, "
            "attempt_count, error_code, error_message) VALUES (:org, :inv, 'rejected', 1, "
            ":code, :message) RETURNING id"),
            {"org": org.id, "inv": invoice_id, "code": REJECTED_BY_DIAN["error_code"],
             "message": REJECTED_BY_DIAN["error_message"]}).scalar_one()
        session.commit()
    return uuid.UUID(str(job_id))


def _codes(explanation: list[dict[str, Any]]) -> list[str]:
    return [item["code"] for item in explanation]


def test_a_rejected_jobs_view_explains_the_rule_in_spanish_then_in_english(org: Org) -> None:
    # Given a job DIAN rejected with rule FAK24
    job_id = _rejected_job(org)
    with org.client() as erp:
        # When the ERP reads the job
        job = erp.get(f"/api/jobs/{job_id}").json()
        english = erp.get(f"/api/jobs/{job_id}", headers={"Accept-Language": "en-US,en"}).json()
    # Then it gets our code explained, then DIAN's rule, in Spanish by default,
    assert job["error_code"] == "dian_rejected:FAK24"
    assert _codes(job["explanation"]) == ["dian_rejected", "FAK24"]
    rule = job["explanation"][1]
    assert rule["kind"] == "dian"
    assert "dígito de verificación" in rule["message"]
    assert rule["erp_field"] == "customers.dv"
    assert rule["retryable"] == "after_fix"
    assert "customers.dv" in rule["fix"]
    assert "Anexo" in rule["source"]
    # and in English when the client prefers it.
    assert _codes(english["explanation"]) == ["dian_rejected", "FAK24"]
    assert "check digit" in english["explanation"][1]["message"]


def test_a_job_without_error_has_nothing_to_explain(org: Org) -> None:
    with org.api.factory() as session:
        job_id = insert_job_sql(session, seed_invoice(session, org.id), org.id)
    with org.client() as erp:
        job = erp.get(f"/api/jobs/{job_id}").json()
    assert job["error_code"] is None
    assert job["explanation"] == []


def test_problems_carry_the_explanation_of_their_code(org: Org) -> None:
    # Given a rejected job, which has no documents
    job_id = _rejected_job(org)
    with org.client() as erp:
        # When the ERP asks for its PDF, and for a job that does not exist
        pdf = erp.get(f"/api/jobs/{job_id}/pdf")
        missing = erp.get(f"/api/jobs/{uuid.uuid4()}", headers={"Accept-Language": "en"})
    # Then each problem says, in the catalogue's words, what it means and what to do
    assert pdf.status_code == 409
    assert pdf.headers["content-type"].startswith("application/problem+json")
    problem = pdf.json()
    assert problem["code"] == "not_accepted"
    assert problem["explanation"]["code"] == "not_accepted"
    assert "aceptados" in problem["explanation"]["message"]
    assert problem["explanation"]["retryable"] == "no"
    assert missing.status_code == 404
    assert missing.json()["explanation"]["message"] == (
        "There is no such job (or it belongs to another organization).")


def test_a_problem_the_catalogue_does_not_know_has_no_explanation(org: Org) -> None:
    # Given a request without a key (the catalogue has no row for "unauthorized")
    with org.api.client() as anonymous:
        answer = anonymous.get("/api/jobs")
    # Then the problem is the usual one, without an explanation member
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthorized"
    assert "explanation" not in answer.json()


@pytest.mark.slow
def test_a_job_the_simulated_dian_rejects_is_explained_over_http(
    make_pipeline: Callable[..., Pipeline], session: Session, db_url: str, redis_url: str,
) -> None:
    # Given a real worker whose Factus simulator has DIAN reject every document
    pipeline = make_pipeline()
    pipeline.sandbox.set_faults(dian_rejection=1.0, seed=1)
    seed_organization(session)
    invoice_id = seed_invoice(session)
    key = create_key(session, 1, "erp").key
    session.commit()
    # When the ERP's job is rejected
    [job] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, invoice_id)], timeout=30)
    assert job.status == "rejected"
    assert job.error_code == "dian_rejected:FAD06"
    # Then the API shows why, in Spanish: the rejection and the DIAN rule it names
    with running_api(db_url, redis_url) as base_url, httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as erp:
        shown = erp.get(f"/api/jobs/{job.id}").json()
    assert _codes(shown["explanation"]) == ["dian_rejected", "FAD06"]
    assert shown["explanation"][0]["message"].startswith("La DIAN rechazó el documento")
    assert "CUFE" in shown["explanation"][1]["message"]
