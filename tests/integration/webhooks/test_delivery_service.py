"""The delivery service on a real PostgreSQL and a real HTTP receiver, run in the test's process
(no worker: the steps a worker takes are called one by one, the publisher is a fake of our own
port): retries up to ``max_attempts``, redelivery, redirects, dispatching, dead workers,
disabled endpoints and where the secret goes."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.crypto import SecretBox
from einvoice.services import documents
from einvoice.services import webhooks as service
from einvoice.services.runner import WorkerContext
from einvoice.settings import load_settings
from einvoice.webhooks import WebhookError
from einvoice.webhooks.sender import WebhookSender
from tests.integration.pipeline.conftest import insert_job_sql, seed_invoice, seed_organization
from tests.integration.webhooks.conftest import Receiver, attempts, deliveries


class RecordingPublisher:
    """Keeps the ids it was asked to publish, per kind of wake-up."""

    def __init__(self) -> None:
        self.webhooks: list[uuid.UUID] = []
        self.followups: list[uuid.UUID] = []

    def publish_webhook(self, followup_id: uuid.UUID) -> None:
        self.webhooks.append(followup_id)

    def publish_followup(self, followup_id: uuid.UUID) -> None:
        self.followups.append(followup_id)


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(SecretBox.generate_key())


@pytest.fixture
def ctx(session_factory: sessionmaker[Session], box: SecretBox) -> WorkerContext:
    # Deliveries never call Factus: no clients. Backoff of a few milliseconds.
    settings = load_settings(einvoice_retry_base_seconds=0.01, einvoice_retry_cap_seconds=0.02,
                             einvoice_redispatch_seconds=60)
    return WorkerContext(session_factory=session_factory, clients=None,  # type: ignore[arg-type]
                         settings=settings, worker_id="test", secret_box=box)


def _endpoint(session: Session, box: SecretBox, url: str, org: int = 1) -> service.NewEndpoint:
    created = service.add_endpoint(session, box, organization_id=org, url=url)
    session.commit()
    return created


def _final_job(session: Session, status: str = "rejected", org: int = 1) -> uuid.UUID:
    """A job of ``org`` moved to ``status`` by plain SQL: the trigger queues its deliveries."""
    invoice_id = seed_invoice(session, org)
    session.commit()
    job_id = insert_job_sql(session, invoice_id, org)
    session.execute(text("UPDATE electronic_invoicing_jobs SET status = :s, "
                         "error_code = 'invalid_dv' WHERE id = :j"), {"s": status, "j": job_id})
    session.commit()
    return job_id


def _due_now(session: Session, delivery_id: uuid.UUID) -> None:
    session.execute(text("UPDATE electronic_invoicing_followups SET next_retry_at = now() "
                         "WHERE id = :f"), {"f": delivery_id})
    session.commit()


def _event_types(session: Session, job_id: uuid.UUID) -> list[str]:
    return list(session.execute(text(
        "SELECT event_type FROM electronic_invoicing_events WHERE job_id = :j "
        "ORDER BY created_at, id"), {"j": job_id}).scalars())


def test_a_dead_endpoint_gives_up_after_max_attempts_and_redelivery_revives_it_with_its_id(
    session: Session, session_factory: sessionmaker[Session], ctx: WorkerContext,
    box: SecretBox, receivers: Callable[..., Receiver],
) -> None:
    # Given an endpoint answering 500, and a rejected job's delivery allowed 3 attempts
    receiver = receivers(default=500)
    seed_organization(session)
    endpoint = _endpoint(session, box, receiver.url)
    job_id = _final_job(session)
    [delivery] = deliveries(session_factory, job_id=job_id)
    session.execute(text("UPDATE electronic_invoicing_followups SET max_attempts = 3 "
                         "WHERE id = :f"), {"f": delivery["id"]})
    session.commit()

    # When it is run each time it is due
    outcomes = []
    for _ in range(3):
        _due_now(session, delivery["id"])
        outcomes.append(service.deliver(ctx, delivery["id"]))

    # Then it was retried twice and failed at the third, every attempt logged with its 500
    assert outcomes == ["retry", "retry", "failed"]
    [failed] = deliveries(session_factory, job_id=job_id)
    assert (failed["status"], failed["error_code"]) == ("failed", "webhook_undeliverable")
    assert "http_500" in failed["error_message"]
    assert [(n, s) for n, s, _ in attempts(session_factory, delivery["id"])] == [
        (1, 500), (2, 500), (3, 500)]
    assert _event_types(session, job_id) == ["webhook_failed"]
    assert {r.webhook_id for r in receiver.received} == {delivery["event_id"]}

    # When an operator redelivers it and the endpoint is fixed
    publisher = RecordingPublisher()
    service.redeliver(session, delivery["id"], publisher=publisher)
    published_before_commit = list(publisher.webhooks)
    session.commit()
    receiver.default = 200
    outcome = service.deliver(ctx, delivery["id"])

    # Then it is published after the commit, sent from attempt 1 with the same webhook-id
    assert published_before_commit == []
    assert publisher.webhooks == [delivery["id"]]
    assert outcome == "done"
    assert [(n, s) for n, s, _ in attempts(session_factory, delivery["id"])][-1] == (1, 200)
    assert len(receiver.received) == 4
    assert receiver.received[-1].webhook_id == delivery["event_id"]
    body = receiver.received[-1].verify(endpoint.secret)
    assert body["type"] == "job.rejected"
    assert body["data"]["job_id"] == str(job_id)
    assert _event_types(session, job_id)[-2:] == ["webhook_redelivery_requested",
                                                  "webhook_delivered"]


def test_a_redirect_is_not_followed_and_the_delivery_is_retried(
    session: Session, session_factory: sessionmaker[Session], ctx: WorkerContext,
    box: SecretBox, receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers(default=302)
    seed_organization(session)
    _endpoint(session, box, receiver.url)
    [delivery] = deliveries(session_factory, job_id=_final_job(session))

    assert service.deliver(ctx, delivery["id"]) == "retry"

    [row] = deliveries(session_factory, endpoint_id=delivery["endpoint_id"])
    assert (row["status"], row["error_code"]) == ("pending", "http_302")
    assert "not followed" in row["error_message"]
    assert len(receiver.received) == 1


def test_a_receiver_that_does_not_answer_in_time_is_retried_as_a_timeout(
    session: Session, session_factory: sessionmaker[Session], ctx: WorkerContext,
    box: SecretBox, receivers: Callable[..., Receiver],
) -> None:
    # Given a receiver that takes 1 s to answer, and a sender allowed 0.3 s (10 s in production)
    receiver = receivers(delay=1.0)
    seed_organization(session)
    _endpoint(session, box, receiver.url)
    [delivery] = deliveries(session_factory, job_id=_final_job(session))
    sender = WebhookSender(httpx.Client(timeout=0.3, follow_redirects=False))

    # When the delivery runs, then it is put back for a retry as a timeout, with no status
    try:
        assert service.deliver(ctx, delivery["id"], sender=sender) == "retry"
    finally:
        sender.close()
    [row] = deliveries(session_factory, endpoint_id=delivery["endpoint_id"])
    assert (row["status"], row["error_code"]) == ("pending", "timeout")
    assert [(n, s, e) for n, s, e in attempts(session_factory, delivery["id"])] == [
        (1, None, "timeout")]


def test_new_deliveries_are_published_once_each_and_never_as_archive_followups(
    session: Session, session_factory: sessionmaker[Session], ctx: WorkerContext,
    box: SecretBox, receivers: Callable[..., Receiver],
) -> None:
    # Given two final jobs, each with a fresh delivery
    seed_organization(session)
    _endpoint(session, box, receivers().url)
    first, second = _final_job(session), _final_job(session, status="cancelled")
    [first_delivery] = deliveries(session_factory, job_id=first)
    [second_delivery] = deliveries(session_factory, job_id=second)
    publisher = RecordingPublisher()

    # When the job listener reports the first job (twice), then the dispatchers run twice
    by_jobs = [service.dispatch_deliveries_for_jobs(session_factory, publisher, [first])
               for _ in range(2)]
    followups = [documents.dispatch_due_followups(session_factory, publisher, ctx.settings)
                 for _ in range(2)]
    due = [service.dispatch_due_deliveries(session_factory, publisher, ctx.settings)
           for _ in range(2)]

    # Then each delivery was published once, to the webhooks queue only
    assert (by_jobs, followups, due) == ([1, 0], [0, 0], [1, 0])
    assert publisher.webhooks == [first_delivery["id"], second_delivery["id"]]
    assert publisher.followups == []
    assert second_delivery["event_id"] != first_delivery["event_id"]
    assert json.loads(json.dumps(second_delivery["payload"]))["type"] == "job.cancelled"


def test_a_delivery_whose_worker_died_is_logged_and_sent_again(
    session: Session, session_factory: sessionmaker[Session], ctx: WorkerContext,
    box: SecretBox, receivers: Callable[..., Receiver],
) -> None:
    # Given a delivery whose worker died mid-POST (its lease expired)
    receiver = receivers()
    seed_organization(session)
    endpoint = _endpoint(session, box, receiver.url)
    [delivery] = deliveries(session_factory, job_id=_final_job(session))
    session.execute(text(
        "UPDATE electronic_invoicing_followups SET status = 'processing', attempt_count = 1, "
        "leased_by = 'w1:42:7', lease_expires_at = now() - interval '1 second' "
        "WHERE id = :f"), {"f": delivery["id"]})
    session.commit()
    publisher = RecordingPublisher()

    # When the archive's dispatcher runs, then the webhook dispatcher
    documents.dispatch_due_followups(session_factory, publisher, ctx.settings)
    untouched = deliveries(session_factory, job_id=delivery["job_id"])[0]["status"]
    published = service.dispatch_due_deliveries(session_factory, publisher, ctx.settings)

    # Then only the webhook dispatcher took it: logged without answer and sent again
    assert untouched == "processing"
    assert published == 1
    assert publisher.webhooks == [delivery["id"]]
    [row] = deliveries(session_factory, job_id=delivery["job_id"])
    assert (row["status"], row["error_code"]) == ("pending", "lease_expired")
    [(number, status, error)] = attempts(session_factory, delivery["id"])
    assert (number, status) == (1, None)
    assert error.startswith("lease_expired")
    # and the worker that takes the published message delivers it (through run_followup too)
    assert documents.run_followup(ctx, delivery["id"]) == "done"
    [request] = receiver.wait_for(1)
    assert request.verify(endpoint.secret)["type"] == "job.rejected"
    assert [(n, s) for n, s, _ in attempts(session_factory, delivery["id"])][-1] == (2, 200)


def test_a_disabled_endpoint_gets_no_new_delivery_and_its_pending_one_is_not_sent(
    session: Session, session_factory: sessionmaker[Session], ctx: WorkerContext,
    box: SecretBox, receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    seed_organization(session)
    endpoint = _endpoint(session, box, receiver.url)
    [pending] = deliveries(session_factory, job_id=_final_job(session))

    service.disable_endpoint(session, endpoint.endpoint.id)
    session.commit()
    later = _final_job(session)

    assert deliveries(session_factory, job_id=later) == []
    assert service.deliver(ctx, pending["id"]) == "failed"
    [row] = deliveries(session_factory, job_id=pending["job_id"])
    assert (row["status"], row["error_code"]) == ("failed", "endpoint_disabled")
    assert receiver.received == []
    with pytest.raises(WebhookError) as refused:
        service.redeliver(session, pending["id"])
    assert refused.value.reason == "endpoint_disabled"


def test_the_secret_is_shown_once_stored_encrypted_and_found_nowhere_else(
    session: Session, session_factory: sessionmaker[Session], ctx: WorkerContext,
    box: SecretBox, receivers: Callable[..., Receiver],
) -> None:
    # Given an endpoint just added, and one delivery made to it
    receiver = receivers()
    seed_organization(session)
    created = _endpoint(session, box, receiver.url)
    job_id = _final_job(session)
    [delivery] = deliveries(session_factory, job_id=job_id)
    assert service.deliver(ctx, delivery["id"]) == "done"

    # Then the secret is whsec_ + base64 of 24 random bytes, kept only encrypted
    secret = created.secret
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    stored = session.execute(text("SELECT secret_encrypted FROM webhook_endpoints WHERE id = :e"),
                             {"e": created.endpoint.id}).scalar_one()
    assert secret not in stored
    assert box.decrypt(stored) == secret
    # and appears in no repr, listing, payload, event or attempt log
    shown = [repr(created), repr(service.list_endpoints(session, 1)),
             repr(service.list_deliveries(session, organization_id=1)),
             repr(service.delivery_attempts(session, delivery["id"]))]
    for table in ("electronic_invoicing_events", "electronic_invoicing_followups",
                  "webhook_delivery_attempts"):
        shown += [str(r) for r in session.execute(text(f"SELECT * FROM {table}")).all()]
    assert not [s for s in shown if secret in s or secret.removeprefix("whsec_") in s]


@pytest.mark.parametrize(("url", "events", "org", "reason"), [
    ("ftp://erp.example/hook", (), 1, "bad_webhook_url"),
    ("https://erp.example/hook", ("job.acepted",), 1, "unknown_event_type"),
    ("https://erp.example/hook", (), 999, "unknown_organization"),
])
def test_an_endpoint_that_could_never_receive_is_refused(
    session: Session, box: SecretBox, url: str, events: tuple[str, ...], org: int, reason: str,
) -> None:
    seed_organization(session)
    session.commit()
    with pytest.raises(WebhookError) as refused:
        service.add_endpoint(session, box, organization_id=org, url=url, event_types=events)
    assert refused.value.reason == reason
    session.rollback()
    assert service.list_endpoints(session) == []
