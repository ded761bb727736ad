"""End to end over HTTP: an ERP submits an invoice to the API, a real Celery worker gets it
validated by the Factus simulator, and the ERP reads the outcome, the PDF and the XML back over
HTTP, then issues a credit note the same way."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.services.api_keys import create_key
from tests.integration.api.conftest import running_api
from tests.integration.pipeline.conftest import Pipeline, seed_organization

pytestmark = pytest.mark.slow

FINAL = ("accepted", "rejected", "failed", "cancelled")

INVOICE = {
    "customer": {"identification_type": "CC", "identification_number": "1020304050",
                 "first_name": "María", "last_name": "Gómez", "legal_organization_id": 2,
                 "email": "maria@example.com", "municipality_id": 980},
    "lines": [
        {"description": "Café 500 g", "sku": "CAF-500", "qty": 2, "unit_price": 23800,
         "tax_rate": 19},
        {"description": "Queso", "code_reference": "QSO", "qty": 1, "unit_price": 10500,
         "tax_rate": 5},
    ],
}


def _wait_final(erp: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = erp.get(f"/api/jobs/{job_id}").json()
        if job["status"] in FINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.2)


def test_an_invoice_submitted_over_http_is_accepted_and_its_documents_served(
    make_pipeline: Callable[..., Pipeline], session: Session, db_url: str, redis_url: str,
) -> None:
    # Given a running worker and an API speaking to the same database and Factus account,
    pipeline = make_pipeline()
    seed_organization(session)
    session.execute(text(
        "INSERT INTO invoice_sequences (organization_id, document_type, prefix, range_start, "
        "range_end, current_number, valid_from, valid_until, is_active, factus_numbering_range_id) "
        "VALUES (1, 'credit_note', 'NC', 1, 99999999, 1, '2019-01-19', '2030-01-19', true, 9)"))
    created = create_key(session, 1, "erp")
    session.commit()
    account = {name.lower(): value for name, value in pipeline.env.items()
               if name.startswith("FACTUS_") or name == "EINVOICE_SECRET_KEY"}
    with running_api(db_url, redis_url, **account) as base_url, httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {created.key}"},
            timeout=30) as erp:
        # when the ERP submits a whole invoice as JSON,
        answer = erp.post("/api/invoices", json=INVOICE)
        assert answer.status_code == 201, answer.text
        job = _wait_final(erp, answer.json()["job"]["id"])
        # then it reads the acceptance back: CUFE, number and the event timeline,
        assert job["status"] == "accepted", job
        assert len(job["cufe"]) == 96
        assert job["document_number"].startswith("SETP")
        events = [e["type"] for e in job["events"]]
        assert events[0] == "enqueued"
        assert "accepted" in events
        # and the documents (archived by the worker, or fetched once by the API).
        pdf = erp.get(f"/api/jobs/{job['id']}/pdf")
        xml = erp.get(f"/api/jobs/{job['id']}/xml")
        assert pdf.status_code == 200, pdf.text
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF")
        assert xml.status_code == 200, xml.text
        assert b"<" in xml.content[:100]
        stored = pipeline.factory().execute(text(
            "SELECT count(*) FROM electronic_invoicing_documents WHERE job_id = :j"),
            {"j": job["id"]}).scalar()
        assert stored == 2

        # When the ERP cancels the sale with a full credit note (concept 2, anulación),
        note = erp.post(f"/api/jobs/{job['id']}/credit-note", json={"concept_code": 2},
                        headers={"Idempotency-Key": "nc-1"})
        again = erp.post(f"/api/jobs/{job['id']}/credit-note", json={"concept_code": 2},
                         headers={"Idempotency-Key": "nc-1"})
        assert note.status_code == 201, note.text
        assert again.json() == note.json()
        credit = _wait_final(erp, note.json()["job"]["id"])
    # then DIAN accepts it with its CUDE, and the invoice was enqueued once.
    assert credit["status"] == "accepted", (credit["error_code"], credit["error_message"])
    assert credit["document_type"] == "credit_note"
    assert len(credit["cufe"]) == 96
    assert credit["document_number"].startswith("NC")
    assert sum(pipeline.requests_to("validate_bill").values()) == 1


def test_a_rejected_invoice_fixed_and_retried_over_http_is_accepted(
    make_pipeline: Callable[..., Pipeline], session: Session, db_url: str, redis_url: str,
) -> None:
    # Given an invoice whose customer names a DANE code where a Factus municipality id belongs,
    make_pipeline()  # a running worker
    seed_organization(session)
    created = create_key(session, 1, "erp")
    session.commit()
    bad = {**INVOICE, "customer": {**INVOICE["customer"], "municipality_id": 999999}}
    with running_api(db_url, redis_url) as base_url, httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {created.key}"},
            timeout=30) as erp:
        answer = erp.post("/api/invoices", json=bad)
        assert answer.status_code == 201, answer.text
        rejected = _wait_final(erp, answer.json()["job"]["id"])
        assert (rejected["status"], rejected["error_code"]) == ("rejected", "unknown_municipality")
        # when the ERP fixes the row and retries over HTTP (no beat runs: the retry's NOTIFY
        # wakes the workers),
        session.execute(text("UPDATE customers SET municipality_id = 980 WHERE id = (SELECT "
                             "customer_id FROM invoice_sales WHERE id = :i)"),
                        {"i": answer.json()["invoice_id"]})
        session.commit()
        retried = erp.post(f"/api/jobs/{rejected['id']}/retry")
        assert retried.status_code == 200, retried.text
        job = _wait_final(erp, rejected["id"], timeout=30)
    # then the same job, with the same reference code, ends accepted.
    assert job["status"] == "accepted", (job["error_code"], job["error_message"])
    assert job["reference_code"] == rejected["reference_code"]
    assert [e["type"] for e in job["events"]].count("operator_retry") == 1


def test_enqueued_over_http_accepted_and_told_back_by_one_signed_webhook(
    make_pipeline: Callable[..., Pipeline], session: Session, db_url: str, redis_url: str,
) -> None:
    """The whole round trip of an ERP in another language: enqueue over HTTP, the worker gets
    it accepted, and the ERP's endpoint receives one ``job.accepted`` it can verify. No beat
    runs: the delivery is woken by the outcome trigger's NOTIFY through the workers' listener."""
    from einvoice.crypto import SecretBox
    from einvoice.services.webhooks import add_endpoint
    from tests.integration.pipeline.conftest import seed_invoice
    from tests.integration.webhooks.conftest import Receiver

    pipeline = make_pipeline()  # a worker on every queue, webhooks included; no beat
    seed_organization(session)
    invoice_id = seed_invoice(session)
    created = create_key(session, 1, "erp")
    receiver = Receiver().start()
    endpoint = add_endpoint(session, SecretBox(pipeline.env["EINVOICE_SECRET_KEY"]),
                            organization_id=1, url=receiver.url)
    session.commit()
    try:
        with running_api(db_url, redis_url) as base_url, httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {created.key}"},
                timeout=30) as erp:
            answer = erp.post(f"/api/invoices/{invoice_id}/jobs",
                              headers={"Idempotency-Key": f"sale-{invoice_id}"})
            assert answer.status_code == 201, answer.text
            job = _wait_final(erp, answer.json()["job"]["id"])
        assert job["status"] == "accepted", (job["error_code"], job["error_message"])
        [delivery] = receiver.wait_for(1, timeout=20)
        event = delivery.verify(endpoint.secret)  # raises unless signed with the secret
        time.sleep(1.0)  # nothing more comes: delivered once
    finally:
        receiver.stop()
    assert len(receiver.received) == 1
    assert event["type"] == "job.accepted"
    assert event["data"]["job_id"] == job["id"]
    assert event["data"]["cufe"] == job["cufe"]
    assert event["data"]["document_number"] == job["document_number"]
