"""The HTTP API as an ERP developer uses it: a real uvicorn server, PostgreSQL and Redis.

Each test reads as given / when / then and checks what the ERP sees (statuses, bodies, problem
codes) and the rows the API wrote.
"""

from __future__ import annotations

import logging
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from einvoice.db.invoices import load_invoice
from einvoice.devservices import DevServices, free_port
from einvoice.services.api_keys import revoke_key
from tests.integration.api.conftest import Api, Org, running_api

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == f"urn:einvoice:problem:{code}"
    assert body["title"]
    assert body["detail"]
    return body


def _accept(api: Api, job_id: str, number: str = "SETP990000001") -> None:
    """Record the job as DIAN-accepted (what the worker writes), for tests without a worker."""
    with api.factory() as session:
        session.execute(text(
            "UPDATE electronic_invoicing_jobs SET status = 'accepted', cufe = repeat('a', 96), "
            "document_number = :n, factus_document_id = 4321, processed_at = now() "
            "WHERE id = :j"), {"j": job_id, "n": number})
        session.commit()


def _set_status(api: Api, job_id: str, status: str, code: str | None = None) -> None:
    with api.factory() as session:
        session.execute(text(
            "UPDATE electronic_invoicing_jobs SET status = :s, error_code = :c, "
            "processed_at = now() WHERE id = :j"), {"j": job_id, "s": status, "c": code})
        session.commit()


# --------------------------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------------------------


def test_health_and_readiness_need_no_key(api: Api) -> None:
    with api.client() as client:
        health = client.get("/healthz")
        ready = client.get("/readyz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgresql": "ok", "redis": "ok"}


def test_readiness_is_a_503_problem_when_redis_is_down(
    api: Api, services: DevServices
) -> None:
    # Given an API whose Redis is a closed port,
    with running_api(api.db_url, f"redis://127.0.0.1:{free_port()}/0") as base_url, \
            httpx.Client(base_url=base_url) as client:
        # when a load balancer asks whether it is ready,
        ready = client.get("/readyz")
        health = client.get("/healthz")
    # then it is not, saying which dependency failed, while the process itself is healthy.
    body = _problem(ready, 503, "not_ready")
    assert body["checks"] == {"postgresql": "ok", "redis": "unreachable"}
    assert health.status_code == 200


# --------------------------------------------------------------------------------------------
# Authentication and tenancy
# --------------------------------------------------------------------------------------------


def test_missing_malformed_unknown_and_revoked_keys_get_401(api: Api, org: Org) -> None:
    invoice = org.invoice()
    path = f"/api/invoices/{invoice}/jobs"
    unknown = "ei_abcdefgh_" + "x" * 43
    with api.client() as anonymous, api.client("not-a-key") as malformed, \
            api.client(unknown) as stranger, org.client() as erp:
        for client in (anonymous, malformed, stranger):
            body = _problem(client.post(path), 401, "unauthorized")
            assert org.key not in str(body)
        assert anonymous.get("/api/jobs").headers["www-authenticate"] == "Bearer"
        assert erp.get("/api/stats").status_code == 200
        # When the key is revoked, it is refused within the key cache's TTL (1 s here).
        with api.factory() as session:
            revoke_key(session, org.id, org.key.split("_")[1])
            session.commit()
        deadline = time.monotonic() + 10
        while (answer := erp.get("/api/stats")).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.1)
        _problem(answer, 401, "unauthorized")
        # and nothing was enqueued by any refused call.
    assert api.scalar("SELECT count(*) FROM electronic_invoicing_jobs WHERE invoice_id = :i",
                      i=invoice) == 0


def test_the_key_records_when_it_was_last_used(api: Api, org: Org) -> None:
    assert api.scalar("SELECT last_used_at FROM api_keys WHERE organization_id = :o",
                      o=org.id) is None
    with org.client() as erp:
        assert erp.get("/api/stats").status_code == 200
    used = api.scalar("SELECT last_used_at FROM api_keys WHERE organization_id = :o", o=org.id)
    assert used is not None


def test_another_organizations_invoice_and_job_are_not_found(
    api: Api, org: Org, other_org: Org
) -> None:
    # Given an invoice of the organization with a job, and one without,
    invoice, untouched = org.invoice(), org.invoice()
    with org.client() as owner, other_org.client() as stranger:
        job = owner.post(f"/api/invoices/{invoice}/jobs").json()["job"]
        _accept(api, job["id"])
        # when another organization's key asks for them, every route says "not found",
        _problem(stranger.post(f"/api/invoices/{invoice}/jobs"), 404, "invoice_not_found")
        _problem(stranger.post(f"/api/invoices/{untouched}/jobs"), 404, "invoice_not_found")
        for method, path in (("GET", f"/api/jobs/{job['id']}"),
                             ("GET", f"/api/jobs/{job['id']}/pdf"),
                             ("GET", f"/api/jobs/{job['id']}/xml"),
                             ("POST", f"/api/jobs/{job['id']}/retry"),
                             ("POST", f"/api/jobs/{job['id']}/cancel")):
            _problem(stranger.request(method, path), 404, "job_not_found")
        _problem(stranger.post(f"/api/jobs/{job['id']}/credit-note", json={"concept_code": 2}),
                 404, "job_not_found")
        listed = stranger.get("/api/jobs", params={"invoice_id": str(invoice)}).json()
        stats = stranger.get("/api/stats").json()
        # while the owner sees its job.
        assert owner.get(f"/api/jobs/{job['id']}").json()["status"] == "accepted"
    assert listed == {"items": [], "next_cursor": None}
    assert stats["total"] == 0
    assert api.scalar("SELECT count(*) FROM invoice_sales WHERE related_invoice_id = :i",
                      i=invoice) == 0
    assert api.scalar("SELECT count(*) FROM electronic_invoicing_jobs WHERE invoice_id = :i",
                      i=untouched) == 0


# --------------------------------------------------------------------------------------------
# Enqueue
# --------------------------------------------------------------------------------------------


def test_enqueue_creates_one_pending_job_and_returns_it_again(api: Api, org: Org) -> None:
    invoice = org.invoice()
    with org.client() as erp:
        first = erp.post(f"/api/invoices/{invoice}/jobs")
        again = erp.post(f"/api/invoices/{invoice}/jobs", json={"document_type": "invoice"})
        unknown = erp.post(f"/api/invoices/{uuid.uuid4()}/jobs")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] is True
    assert body["already_accepted"] is False
    assert body["job"]["status"] == "pending"
    assert body["job"]["invoice_id"] == str(invoice)
    assert body["job"]["organization_id"] == org.id
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["job"]["id"] == body["job"]["id"]
    _problem(unknown, 404, "invoice_not_found")
    assert api.scalar("SELECT count(*) FROM electronic_invoicing_jobs WHERE invoice_id = :i",
                      i=invoice) == 1
    assert api.scalar("SELECT event_type FROM electronic_invoicing_events WHERE job_id = :j",
                      j=body["job"]["id"]) == "enqueued"


def test_enqueue_of_an_accepted_invoice_returns_the_accepted_job(api: Api, org: Org) -> None:
    # Given an invoice whose document DIAN accepted,
    invoice = org.invoice()
    with org.client() as erp:
        job = erp.post(f"/api/invoices/{invoice}/jobs").json()["job"]
        _accept(api, job["id"])
        # when the ERP asks again,
        answer = erp.post(f"/api/invoices/{invoice}/jobs")
    # then it gets the accepted job, flagged, and nothing new is enqueued.
    assert answer.status_code == 200
    assert answer.json()["already_accepted"] is True
    assert answer.json()["created"] is False
    assert answer.json()["job"]["id"] == job["id"]
    assert answer.json()["job"]["document_number"] == "SETP990000001"
    assert api.scalar("SELECT count(*) FROM electronic_invoicing_jobs WHERE invoice_id = :i",
                      i=invoice) == 1


# --------------------------------------------------------------------------------------------
# Idempotency
# --------------------------------------------------------------------------------------------


def test_an_idempotency_key_replays_the_first_answer(api: Api, org: Org) -> None:
    invoice, other = org.invoice(), org.invoice()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    with org.client() as erp:
        first = erp.post(f"/api/invoices/{invoice}/jobs", headers=key)
        _set_status(api, first.json()["job"]["id"], "failed", "boom")  # the job moves on
        replay = erp.post(f"/api/invoices/{invoice}/jobs", headers=key)
        reused = erp.post(f"/api/invoices/{invoice}/jobs", headers=key,
                          json={"document_type": "credit_note"})
        elsewhere = erp.post(f"/api/invoices/{other}/jobs", headers=key)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    _problem(reused, 422, "idempotency_key_reused")
    _problem(elsewhere, 422, "idempotency_key_reused")
    assert api.scalar("SELECT count(*) FROM electronic_invoicing_jobs WHERE invoice_id IN "
                      "(:a, :b)", a=invoice, b=other) == 1
    assert api.scalar("SELECT response_status FROM api_idempotency_keys WHERE "
                      "idempotency_key = :k", k=key["Idempotency-Key"]) == 201


def test_a_key_whose_first_request_is_in_flight_gets_409(api: Api, org: Org) -> None:
    # Given a request with this key being answered right now (its lock held),
    invoice, idem = org.invoice(), str(uuid.uuid4())
    with api.factory() as holder:
        holder.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                       {"k": f"{org.id}:{idem}"})
        with org.client() as erp:
            # when the ERP retries with the same key,
            busy = erp.post(f"/api/invoices/{invoice}/jobs", headers={"Idempotency-Key": idem})
        holder.rollback()
        # then it is told to come back, and after the first one ends its retry is answered.
        with org.client() as erp:
            later = erp.post(f"/api/invoices/{invoice}/jobs", headers={"Idempotency-Key": idem})
    _problem(busy, 409, "idempotency_in_progress")
    assert later.status_code == 201


def test_an_error_is_not_stored_under_the_key(api: Api, org: Org) -> None:
    idem = {"Idempotency-Key": "retry-me-1"}
    with org.client() as erp:
        missing = erp.post(f"/api/invoices/{uuid.uuid4()}/jobs", headers=idem)
    _problem(missing, 404, "invoice_not_found")
    assert api.scalar("SELECT count(*) FROM api_idempotency_keys WHERE organization_id = :o",
                      o=org.id) == 0


# --------------------------------------------------------------------------------------------
# A whole invoice as JSON
# --------------------------------------------------------------------------------------------

INVOICE = {
    "customer": {"identification_type": "NIT", "identification_number": "900123456",
                 "company_name": "Cliente SAS", "legal_organization_id": 1,
                 "email": "compras@cliente.co", "municipality_id": 980},
    "payment_form": "2", "due_date": "2030-01-31", "payment_method_code": "42",
    "notes": "Pedido 77", "reference_code": "ERP-0001",
    "lines": [
        {"description": "Café 500 g", "sku": "CAF-500", "qty": 2, "unit_price": 23800,
         "tax_rate": 19},
        {"description": "Queso", "code_reference": "QSO", "qty": 1, "unit_price": 10500,
         "tax_rate": 5, "discount_rate": 10,
         "withholding_taxes": [{"code": "06", "withholding_tax_rate": 2.5}]},
    ],
    "payments": [{"payment_form": "2", "payment_method_code": "42", "amount": 57050,
                  "due_date": "2030-01-31"}],
}


def test_a_whole_invoice_is_stored_with_its_job(api: Api, org: Org) -> None:
    with org.client() as erp:
        answer = erp.post("/api/invoices", json=INVOICE)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["created"] is True
    assert body["job"]["status"] == "pending"
    invoice_id = uuid.UUID(body["invoice_id"])
    # The rows are what an ERP would have written, and the worker's reader loads them.
    with api.factory() as session:
        data = load_invoice(session, invoice_id, "invoice", org.id)
    assert data.customer is not None
    assert data.customer.identification_number == "900123456"
    assert data.customer.company_name == "Cliente SAS"
    assert sorted((i.description, i.qty, i.unit_price, i.tax_rate) for i in data.items) == [
        ("Café 500 g", Decimal(2), Decimal(23800), Decimal(19)),
        ("Queso", Decimal(1), Decimal(10500), Decimal(5))]
    assert data.payment_form == "2"
    assert data.due_date is not None
    assert data.due_date.isoformat() == "2030-01-31"
    assert data.notes == "Pedido 77"
    assert data.numbering_range is not None  # the organization's active SETP range
    assert len(data.payments) == 1
    assert data.payments[0].amount == Decimal(57050)
    assert api.scalar("SELECT sku FROM products p JOIN invoice_items i ON i.product_id = p.id "
                      "WHERE i.invoice_id = :i", i=invoice_id) == "CAF-500"
    assert api.scalar("SELECT code_reference FROM invoice_items WHERE invoice_id = :i AND "
                      "description = 'Café 500 g'", i=invoice_id) == "CAF-500"
    assert api.scalar("SELECT c.organization_id FROM customers c JOIN invoice_sales s ON "
                      "s.customer_id = c.id WHERE s.id = :i", i=invoice_id) == org.id


def test_a_bad_field_is_a_422_problem_naming_it(api: Api, org: Org) -> None:
    bad_rate = {**INVOICE, "lines": [{**INVOICE["lines"][0], "tax_rate": 150}]}
    unknown_field = {**INVOICE, "colour": "blue"}
    no_due_date = {k: v for k, v in INVOICE.items() if k != "due_date"}
    with org.client() as erp:
        rate = erp.post("/api/invoices", json=bad_rate)
        extra = erp.post("/api/invoices", json=unknown_field)
        due = erp.post("/api/invoices", json=no_due_date)
        customer = erp.post("/api/invoices", json={**{k: v for k, v in INVOICE.items()
                                                      if k != "customer"},
                                                   "customer_id": str(uuid.uuid4())})
    body = _problem(rate, 422, "validation_error")
    assert body["errors"][0]["loc"] == "lines[0].tax_rate"
    assert "lines[0].tax_rate" in body["detail"]
    assert _problem(extra, 422, "validation_error")["errors"][0]["loc"] == "colour"
    assert "due_date" in _problem(due, 422, "validation_error")["detail"]
    assert _problem(customer, 422, "customer_not_found")["field"] == "customer_id"
    assert api.scalar("SELECT count(*) FROM invoice_sales WHERE organization_id = :o",
                      o=org.id) == 0


# --------------------------------------------------------------------------------------------
# Listing, retry, cancel
# --------------------------------------------------------------------------------------------


def test_jobs_are_listed_with_filters_and_a_cursor(api: Api, org: Org) -> None:
    invoices = [org.invoice() for _ in range(5)]
    with org.client() as erp:
        jobs = [erp.post(f"/api/invoices/{i}/jobs").json()["job"] for i in invoices]
        _set_status(api, jobs[1]["id"], "failed", "boom")
        _set_status(api, jobs[3]["id"], "rejected", "invalid_dv")
        pages, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = erp.get("/api/jobs", params=params).json()
            pages.append([j["id"] for j in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        unhappy = erp.get("/api/jobs", params=[("status", "failed"), ("status", "rejected")])
        one = erp.get("/api/jobs", params={"invoice_id": str(invoices[2])}).json()
        future = erp.get("/api/jobs", params={"created_from": "2100-01-01T00:00:00Z"}).json()
        credit = erp.get("/api/jobs", params={"document_type": "credit_note"}).json()
        bad_cursor = erp.get("/api/jobs", params={"cursor": "nonsense!"})
        bad_status = erp.get("/api/jobs", params={"status": "lost"})
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [job_id for page in pages for job_id in page]
    assert listed == [j["id"] for j in reversed(jobs)]  # newest first, each once
    assert sorted(j["id"] for j in unhappy.json()["items"]) == sorted(
        [jobs[1]["id"], jobs[3]["id"]])
    assert [j["id"] for j in one["items"]] == [jobs[2]["id"]]
    assert future["items"] == []
    assert credit["items"] == []
    _problem(bad_cursor, 422, "invalid_cursor")
    _problem(bad_status, 422, "validation_error")


def test_a_job_shows_its_event_timeline(api: Api, org: Org) -> None:
    invoice = org.invoice()
    with org.client() as erp:
        job = erp.post(f"/api/invoices/{invoice}/jobs").json()["job"]
        detail = erp.get(f"/api/jobs/{job['id']}")
        missing = erp.get(f"/api/jobs/{uuid.uuid4()}")
        not_uuid = erp.get("/api/jobs/12")
    assert detail.status_code == 200
    assert detail.json()["reference_code"] == job["reference_code"]
    assert [e["type"] for e in detail.json()["events"]] == ["enqueued"]
    _problem(missing, 404, "job_not_found")
    _problem(not_uuid, 422, "validation_error")


def test_retry_and_cancel(api: Api, org: Org) -> None:
    invoice = org.invoice()
    with org.client() as erp:
        job = erp.post(f"/api/invoices/{invoice}/jobs").json()["job"]
        not_yet = erp.post(f"/api/jobs/{job['id']}/retry")
        _set_status(api, job["id"], "rejected", "invalid_dv")
        retried = erp.post(f"/api/jobs/{job['id']}/retry")
        cancelled = erp.post(f"/api/jobs/{job['id']}/cancel")
        twice = erp.post(f"/api/jobs/{job['id']}/cancel")
        detail = erp.get(f"/api/jobs/{job['id']}").json()
    _problem(not_yet, 409, "not_retryable")
    assert retried.status_code == 200, retried.text
    assert retried.json()["job"]["status"] == "pending"
    assert retried.json()["job"]["error_code"] is None
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["job"]["status"] == "cancelled"
    _problem(twice, 409, "already_cancelled")
    assert [e["type"] for e in detail["events"]][:1] == ["enqueued"]
    assert detail["status"] == "cancelled"
    assert any(e["message"] and f"api:{org.key.split('_')[1]}" in e["message"]
               for e in detail["events"])


def test_an_accepted_job_cannot_be_cancelled(api: Api, org: Org) -> None:
    invoice = org.invoice()
    with org.client() as erp:
        job = erp.post(f"/api/invoices/{invoice}/jobs").json()["job"]
        _accept(api, job["id"])
        refused = erp.post(f"/api/jobs/{job['id']}/cancel", headers={"Idempotency-Key": "c-1"})
        again = erp.post(f"/api/jobs/{job['id']}/cancel", headers={"Idempotency-Key": "c-1"})
    _problem(refused, 409, "cannot_cancel_accepted")
    _problem(again, 409, "cannot_cancel_accepted")  # the error was not stored: it ran again
    assert api.scalar("SELECT count(*) FROM api_idempotency_keys WHERE organization_id = :o",
                      o=org.id) == 0


# --------------------------------------------------------------------------------------------
# Credit notes
# --------------------------------------------------------------------------------------------

ITEMS = (("Café 500 g", Decimal(2), Decimal(23800), Decimal(19)),
         ("Queso", Decimal(3), Decimal(10500), Decimal(5)))


def test_full_and_partial_credit_notes_are_stored_and_enqueued(api: Api, org: Org) -> None:
    invoice = org.invoice(items=ITEMS)
    with org.client() as erp:
        job = erp.post(f"/api/invoices/{invoice}/jobs").json()["job"]
        pending = erp.post(f"/api/jobs/{job['id']}/credit-note", json={"concept_code": 2})
        _accept(api, job["id"])
        with api.factory() as session:
            cheese = session.execute(text(
                "SELECT id FROM invoice_items WHERE invoice_id = :i AND description = 'Queso'"),
                {"i": invoice}).scalar_one()
        partial = erp.post(f"/api/jobs/{job['id']}/credit-note", json={
            "concept_code": 1, "lines": [{"item_id": str(cheese), "quantity": 2}]})
        full_while_partial_in_flight = erp.post(f"/api/jobs/{job['id']}/credit-note",
                                                json={"concept_code": 2})
        too_many = erp.post(f"/api/jobs/{job['id']}/credit-note", json={
            "concept_code": 1, "lines": [{"item_id": str(cheese), "quantity": 4}]})
        stranger_line = erp.post(f"/api/jobs/{job['id']}/credit-note", json={
            "concept_code": 1, "lines": [{"item_id": str(uuid.uuid4()), "amount": 100}]})
        bad_concept = erp.post(f"/api/jobs/{job['id']}/credit-note", json={"concept_code": 7})
    _problem(pending, 409, "not_accepted")
    assert partial.status_code == 201, partial.text
    note = partial.json()
    assert note["job"]["document_type"] == "credit_note"
    assert note["job"]["status"] == "pending"
    with api.factory() as session:
        row = session.execute(text(
            "SELECT related_invoice_id, correction_concept_code, total, document_type, "
            "customer_id = (SELECT customer_id FROM invoice_sales WHERE id = :inv) AS same "
            "FROM invoice_sales WHERE id = :n"),
            {"n": note["credit_note_id"], "inv": invoice}).one()
        lines = session.execute(text(
            "SELECT description, qty, unit_price, tax_rate FROM invoice_items WHERE "
            "invoice_id = :n"), {"n": note["credit_note_id"]}).all()
    assert row.related_invoice_id == invoice
    assert row.correction_concept_code == 1
    assert row.total == Decimal(21000)
    assert row.document_type == "credit_note"
    assert row.same is True
    assert [tuple(line) for line in lines] == [("Queso", Decimal(2), Decimal(10500), Decimal(5))]
    # A full credit note is a second credit note of the invoice; its total is the invoice's.
    assert full_while_partial_in_flight.status_code == 201, full_while_partial_in_flight.text
    full_id = full_while_partial_in_flight.json()["credit_note_id"]
    assert api.scalar("SELECT total FROM invoice_sales WHERE id = :n", n=full_id) == Decimal(
        2 * 23800 + 3 * 10500)
    assert api.scalar("SELECT count(*) FROM invoice_items WHERE invoice_id = :n", n=full_id) == 2
    assert _problem(too_many, 422, "invalid_quantity")["field"] == "lines[0].quantity"
    assert _problem(stranger_line, 422, "unknown_line")["field"] == "lines[0].item_id"
    _problem(bad_concept, 422, "validation_error")


# --------------------------------------------------------------------------------------------
# Ranges and counts
# --------------------------------------------------------------------------------------------


def test_numbering_ranges_and_stats_are_the_organizations(api: Api, org: Org) -> None:
    invoices = [org.invoice() for _ in range(3)]
    with org.client() as erp:
        jobs = [erp.post(f"/api/invoices/{i}/jobs").json()["job"] for i in invoices]
        _set_status(api, jobs[0]["id"], "failed", "boom")
        ranges = erp.get("/api/numbering-ranges").json()["items"]
        stats = erp.get("/api/stats").json()
    assert [(r["prefix"], r["document_type"], r["factus_numbering_range_id"]) for r in ranges] == [
        ("SETP", "invoice", 8)]
    assert ranges[0]["remaining"] == 995000000 - 990000000 + 1
    assert stats["by_status"]["pending"] == 2
    assert stats["by_status"]["failed"] == 1
    assert stats["by_status"]["accepted"] == 0
    assert stats["total"] == 3
    assert stats["oldest_unfinished_age_s"] is not None


# --------------------------------------------------------------------------------------------
# Access log
# --------------------------------------------------------------------------------------------


def test_every_call_is_logged_with_its_organization_and_key_prefix_never_the_key(
    api: Api, org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = org.key.split("_")[1]
    with caplog.at_level(logging.INFO, logger="einvoice.api.access"), org.client() as erp:
        erp.get("/api/stats")
        erp.get(f"/api/jobs/{uuid.uuid4()}")
        with api.client() as anonymous:
            anonymous.get("/api/stats")
        deadline = time.monotonic() + 5
        while len([r for r in caplog.records if r.name == "einvoice.api.access"]) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    records = [r for r in caplog.records if r.name == "einvoice.api.access"]
    lines = [r.getMessage() for r in records]
    assert lines[0].startswith("GET /api/stats 200 ")
    assert lines[0].endswith(f"org={org.id} key={prefix}")
    assert lines[1].startswith("GET /api/jobs/")
    assert " 404 " in lines[1]
    assert lines[2].startswith("GET /api/stats 401 ")
    assert lines[2].endswith("org=- key=-")
    assert all(org.key not in line for line in lines)
    assert records[0].duration_ms >= 0  # type: ignore[attr-defined]
    assert records[0].organization_id == org.id  # type: ignore[attr-defined]
