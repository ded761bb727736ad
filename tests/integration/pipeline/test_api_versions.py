"""Factus API v1 and v2 per account: ``auto`` finds the version, every job records the one it used.

Real PostgreSQL, Redis, simulator and (where the scenario is a deployment's) a real Celery worker.

- A v2-only account (403 on every ``/v1`` route, like a Factus account opened today) with
  ``FACTUS_API_VERSION`` unset gets every valid invoice accepted.
- The switch itself: the first attempt's v1 call is refused, the account is stored as v2 (with an
  account event), the job is sent through v2 at once with no attempt counted, the switch is an
  event on the job and its reference code never changes.
- A job whose outcome is unknown after a v1 attempt is looked up through v1 even after the
  account was set to v2, and adopts the document found there (no second document).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.db.models import ElectronicInvoicingJob
from einvoice.factus.client import FactusClients, create_factus_clients
from einvoice.services import operator
from einvoice.services.runner import WorkerContext
from einvoice.services.submit import submit_job
from einvoice.settings import load_settings
from tests.integration.pipeline.conftest import (
    Pipeline,
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)

pytestmark = pytest.mark.slow

V2_ONLY = {"FACTUS_CLIENT_ID": "v2only-client", "FACTUS_CLIENT_SECRET": "v2only-secret",
           "FACTUS_USERNAME": "v2only@einvoice.test", "FACTUS_PASSWORD": "v2only-password"}


def _v2_only_account(pipeline_sandbox: Any) -> None:
    pipeline_sandbox.add_account(V2_ONLY["FACTUS_CLIENT_ID"], V2_ONLY["FACTUS_CLIENT_SECRET"],
                                 V2_ONLY["FACTUS_USERNAME"], V2_ONLY["FACTUS_PASSWORD"],
                                 mode="v2")


def _requests(pipeline: Pipeline, client_id: str, username: str) -> dict[str, dict[str, int]]:
    return dict(pipeline.sandbox.account_stats(username, client_id)["requests"])


def _stored_versions(pipeline: Pipeline) -> list[tuple[str, str]]:
    with pipeline.factory() as session:
        return [(r[0], r[1]) for r in session.execute(text(
            "SELECT account_key, api_version FROM factus_account_versions ORDER BY 1"))]


def _account_events(pipeline: Pipeline) -> list[tuple[str, str]]:
    with pipeline.factory() as session:
        return [(r[0], r[1]) for r in session.execute(text(
            "SELECT event_type, event_code FROM factus_account_events ORDER BY created_at"))]


def _cli(pipeline: Pipeline, *args: str) -> Any:
    result = subprocess.run([sys.executable, "-m", "einvoice.cli", *args], env=pipeline.env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_v2_only_account_with_api_version_unset_gets_every_valid_invoice_accepted(
    make_pipeline: Any, session: Session,
) -> None:
    # Given the default account is a v2-only Factus account and FACTUS_API_VERSION is unset
    pipeline = make_pipeline(start=False, **V2_ONLY)
    _v2_only_account(pipeline.sandbox)
    assert "FACTUS_API_VERSION" not in pipeline.env
    pipeline.launcher.worker(concurrency=8)
    pipeline.launcher.beat()  # re-publishes the jobs a saturated account parked
    seed_organization(session)
    invoices = [seed_invoice(session) for _ in range(6)]
    session.commit()

    # When an ERP inserts a job for each of its invoices
    jobs = [insert_job_sql(session, invoice) for invoice in invoices]

    # Then every one is accepted through v2, once, its first attempt counted and no other
    done = wait_for_jobs(pipeline.factory, jobs)
    assert [(j.status, j.factus_api_version, j.attempt_count) for j in done] == \
        [("accepted", "v2", 1)] * len(jobs)
    assert all(j.cufe and len(j.cufe) == 96 for j in done)
    validations = pipeline.sandbox.account_stats(
        V2_ONLY["FACTUS_USERNAME"], V2_ONLY["FACTUS_CLIENT_ID"])["validations_by_reference"]["bill"]
    assert sorted(validations.items()) == sorted((j.reference_code, 1) for j in done)
    # and the account is remembered as v2, so later jobs go to v2 straight away
    assert [v for _, v in _stored_versions(pipeline)] == ["v2"]
    accounts = _cli(pipeline, "accounts", "--json")
    assert [(a["organization_id"], a["configured"], a["detected"], a["effective"])
            for a in accounts] == [(None, "auto", "v2", "v2")]
    assert "v2only-password" not in json.dumps(accounts)


def test_auto_switches_a_refused_v1_account_to_v2_without_counting_an_attempt(
    make_pipeline: Any, session: Session,
) -> None:
    # Given a v2-only default account that has never been used (no version stored)
    pipeline = make_pipeline(start=False, **V2_ONLY)
    _v2_only_account(pipeline.sandbox)
    pipeline.launcher.worker(concurrency=2)
    seed_organization(session)
    invoice = seed_invoice(session)
    session.commit()
    assert _stored_versions(pipeline) == []

    # When its first job runs
    job_id = insert_job_sql(session, invoice)
    reference = session.scalar(text("SELECT reference_code FROM electronic_invoicing_jobs "
                                    "WHERE id = :j"), {"j": job_id})
    [job] = wait_for_jobs(pipeline.factory, [job_id])

    # Then the v1 POST was refused with 403 and nothing else went to v1
    requests = _requests(pipeline, V2_ONLY["FACTUS_CLIENT_ID"], V2_ONLY["FACTUS_USERNAME"])
    v1 = {path: codes for path, codes in requests.items() if " /v1/" in path}
    assert v1 == {"POST /v1/bills/validate": {"403": 1}}
    # and the account is stored as v2, with an account event
    assert [v for _, v in _stored_versions(pipeline)] == ["v2"]
    assert _account_events(pipeline) == [("api_version_detected", "v2")]
    # and the job was accepted through v2 in one counted attempt, same reference code
    assert (job.status, job.factus_api_version, job.attempt_count) == ("accepted", "v2", 1)
    assert job.reference_code == reference
    validations = pipeline.sandbox.account_stats(
        V2_ONLY["FACTUS_USERNAME"], V2_ONLY["FACTUS_CLIENT_ID"])["validations_by_reference"]
    assert validations["bill"] == {reference: 1}
    # and its history tells the story
    events = pipeline.events(job_id)
    assert [e for e in events if e[0] in ("api_version", "api_version_switched", "accepted")] == [
        ("api_version", "v1"), ("api_version_switched", "v2"), ("api_version", "v2"),
        ("accepted", job.document_number)]
    shown = _cli(pipeline, "jobs", "show", str(job_id), "--json")
    assert shown["job"]["factus_api_version"] == "v2"
    assert (shown["account"]["configured"], shown["account"]["effective"]) == ("auto", "v2")


def test_configured_version_the_account_lacks_fails_the_job_with_a_clear_reason(
    make_pipeline: Any, session: Session,
) -> None:
    # Given a v2-only account configured as v1 (no guessing: the operator said v1)
    pipeline = make_pipeline(start=False, FACTUS_API_VERSION="v1", **V2_ONLY)
    _v2_only_account(pipeline.sandbox)
    pipeline.launcher.worker(concurrency=2)
    seed_organization(session)
    invoice = seed_invoice(session)
    session.commit()

    # When a job runs
    [job] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, invoice)])

    # Then it fails, saying which version was refused and which setting to change
    assert (job.status, job.error_code) == ("failed", "factus_version_not_enabled")
    assert "FACTUS_API_VERSION" in (job.error_message or "")
    assert job.outcome_unknown is False
    assert _stored_versions(pipeline) == []


# --- the reconcile lookup goes through the version the document may have been created with ---


@pytest.fixture
def clients_made() -> Iterator[list[FactusClients]]:
    made: list[FactusClients] = []
    yield made
    for clients in made:
        clients.close()


def _context(pipeline: Pipeline, made: list[FactusClients], **overrides: Any) -> WorkerContext:
    values: dict[str, Any] = {k.lower(): v for k, v in pipeline.env.items()
                              if k.startswith(("FACTUS_", "EINVOICE_", "REDIS_URL",
                                               "DATABASE_URL"))}
    values.update(overrides)
    settings = load_settings(**values)
    clients = create_factus_clients(settings)
    made.append(clients)
    return WorkerContext(session_factory=pipeline.factory, clients=clients, settings=settings,
                         worker_id="test")


def test_unknown_outcome_under_v1_is_looked_up_through_v1_after_the_account_moves_to_v2(
    make_pipeline: Any, session: Session, clients_made: list[FactusClients],
) -> None:
    # Given an account with both versions configured as v1, whose first POST of a job was
    # stored at Factus but answered too late (the outcome is unknown)
    pipeline = make_pipeline(start=False)
    seed_organization(session)
    invoice = seed_invoice(session)
    session.commit()
    job_id = insert_job_sql(session, invoice)
    pipeline.sandbox.set_faults(timeout_after_store=1.0, timeout_hang_seconds=3.0, seed=5)
    on_v1 = _context(pipeline, clients_made, factus_api_version="v1",
                     factus_validate_timeout=1.0)
    assert submit_job(on_v1, job_id) == "retry"
    pipeline.sandbox.set_faults(timeout_after_store=0.0)
    with pipeline.factory() as check:
        first = check.get(ElectronicInvoicingJob, job_id)
        assert first is not None
        assert first.outcome_unknown
        assert first.factus_api_version == "v1"
        reference = first.reference_code
        operator.bring_forward(check, [uuid.UUID(str(job_id))])
        check.commit()
    before = pipeline.sandbox.account_stats()["requests"]

    # When the operator moves the account to v2 and the job runs again
    on_v2 = _context(pipeline, clients_made, factus_api_version="v2")
    outcome = submit_job(on_v2, job_id)

    # Then the document is found through v1, where it was created, and adopted: accepted
    # with the same reference code, validated once, nothing POSTed again
    assert outcome == "accepted"
    after = pipeline.sandbox.account_stats()
    new = {path: sum(codes.values()) - sum(before.get(path, {}).values())
           for path, codes in after["requests"].items()}
    assert new.get("GET /v1/bills", 0) >= 1
    assert new.get("POST /v1/bills/validate", 0) == new.get("POST /v2/bills/validate", 0) == 0
    assert after["validations_by_reference"]["bill"] == {reference: 1}
    with pipeline.factory() as check:
        job = check.get(ElectronicInvoicingJob, job_id)
        assert job is not None
        assert (job.status, job.reference_code, job.factus_api_version) == \
            ("accepted", reference, "v2")
    events = pipeline.events(job_id)
    assert ("reconciled", "found") in events
    assert ("api_version", "v2") in events


# --- numbering ranges in v2: onboarding by an operator ---------------------------------------


def test_operator_creates_the_dian_range_and_a_credit_note_range_and_they_are_synced(
    make_pipeline: Any, session: Session,
) -> None:
    # Given a new v2-only account whose ranges DIAN associated are not registered at Factus
    pipeline = make_pipeline(start=False, FACTUS_API_VERSION="v2", **V2_ONLY)
    pipeline.sandbox.add_account(V2_ONLY["FACTUS_CLIENT_ID"], V2_ONLY["FACTUS_CLIENT_SECRET"],
                                 V2_ONLY["FACTUS_USERNAME"], V2_ONLY["FACTUS_PASSWORD"],
                                 mode="v2", ranges_registered=False)
    session.execute(text(
        "INSERT INTO organizations (id, name, nit, dv, municipality_id) OVERRIDING SYSTEM VALUE "
        "VALUES (1, 'Tienda 1', '901724254', 1, 980)"))
    session.commit()

    # When the operator lists what DIAN associated, then creates the invoice range from it and
    # a credit-note range
    dian = _cli(pipeline, "ranges", "dian", "--org", "1", "--json")
    assert dian
    assert all(r["resolution_number"] for r in dian)
    chosen = dian[0]
    invoice_range = _cli(pipeline, "ranges", "create", "--org", "1", "--from-dian",
                         chosen["resolution_number"], "--prefix", chosen["prefix"], "--json")
    note_range = _cli(pipeline, "ranges", "create", "--org", "1", "--credit-note",
                      "--prefix", "NC", "--json")

    # Then Factus has both, they are in invoice_sequences, and each is an account event
    assert (invoice_range["document"], invoice_range["prefix"]) == ("21", chosen["prefix"])
    assert invoice_range["resolution_number"] == chosen["resolution_number"]
    assert (note_range["document"], note_range["prefix"], note_range["current"]) == ("22", "NC", 1)
    sequences = session.execute(text(
        "SELECT document_type, prefix, factus_numbering_range_id FROM invoice_sequences "
        "WHERE organization_id = 1 ORDER BY document_type")).all()
    assert [tuple(r) for r in sequences] == [
        ("credit_note", "NC", note_range["id"]), ("invoice", chosen["prefix"], invoice_range["id"])]
    assert _account_events(pipeline) == [("numbering_range_created", str(invoice_range["id"])),
                                         ("numbering_range_created", str(note_range["id"]))]
    shown = _cli(pipeline, "accounts", "--events", "--json")
    assert [e["type"] for e in shown["events"]] == ["numbering_range_created"] * 2
