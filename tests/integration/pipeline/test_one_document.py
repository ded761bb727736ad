"""One legal document per invoice, end to end: a real worker, PostgreSQL, Redis and the simulator.

The simulator counts every validate POST and every validation per reference code, which is what
proves that an invoice was not sent a second time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.services.enqueue import enqueue_invoice
from tests.integration.pipeline.conftest import (
    Pipeline,
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)

pytestmark = pytest.mark.slow


def _stats(pipeline: Pipeline) -> dict[str, Any]:
    return dict(pipeline.sandbox.stats()["global"])


def test_an_accepted_invoice_is_never_posted_again_whatever_door_the_erp_uses(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given an invoice validated by DIAN through a first job
    pipeline = make_pipeline()
    seed_organization(session)
    invoice = seed_invoice(session)
    session.commit()
    [first] = wait_for_jobs(pipeline.factory, [insert_job_sql(session, invoice)])
    assert first.status == "accepted"
    posts = _stats(pipeline)["validate_posts"]["bill"]

    # When the ERP asks again: a plain SQL insert, and the Python producer
    again = insert_job_sql(session, invoice)
    returned = enqueue_invoice(session, invoice)
    session.commit()
    time.sleep(3)  # what a worker would need to claim and POST it

    # Then nothing more reaches Factus: the insert is ended at once, the producer returns the
    # accepted job, and the invoice keeps its one document
    [refused] = wait_for_jobs(pipeline.factory, [again])
    assert (refused.status, refused.error_code) == ("cancelled", "already_accepted")
    assert ("already_accepted", "already_accepted") in pipeline.events(again)
    assert returned.id == first.id
    assert _stats(pipeline)["validate_posts"]["bill"] == posts == 1


def test_a_new_job_after_an_unknown_outcome_adopts_the_document_factus_already_has(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given a job whose document reached Factus (pending at DIAN) and was then given up with its
    # outcome unknown (what an operator sees after DIAN stayed silent too long)
    pipeline = make_pipeline()
    seed_organization(session)
    invoice = seed_invoice(session)
    session.commit()
    pipeline.sandbox.set_faults(dian_slow=1.0, seed=3)
    first = insert_job_sql(session, invoice)
    wait_for_jobs(pipeline.factory, [first], statuses=("sent",), timeout=30)
    given_up = 0
    while not given_up:  # a re-check may hold the row for an instant
        given_up = session.execute(text(
            "UPDATE electronic_invoicing_jobs SET status = 'failed', error_code = 'dian_timeout', "
            "outcome_unknown = true, processed_at = now() WHERE id = :j AND status = 'sent'"),
            {"j": first}).rowcount
        session.commit()
        time.sleep(0.1)
    pipeline.sandbox.set_faults(dian_slow=0.0)

    # When the ERP enqueues the invoice again
    second = insert_job_sql(session, invoice)

    # Then the new job reuses the reference code, finds the document at Factus and records it:
    # one document for the invoice, under the first reference code
    [done] = wait_for_jobs(pipeline.factory, [second], timeout=40)
    with pipeline.factory() as check:
        reference = check.scalar(text("SELECT reference_code FROM electronic_invoicing_jobs "
                                      "WHERE id = :j"), {"j": first})
    assert done.status == "accepted"
    assert done.reference_code == reference
    steps = [t for t, _ in pipeline.events(second) if t != "api_version"]
    assert steps[:2] == ["claimed", "reconciled"]
    stats = _stats(pipeline)
    assert stats["validations_by_reference"]["bill"] == {reference: 1}
    assert stats["documents_stored"]["bill"] == 1
