"""Outcome webhooks end to end: a real worker and beat get invoices validated by the Factus
simulator, the outcome trigger queues deliveries, and a real HTTP receiver gets them signed.

Every test uses an organization of its own on the module's shared pipeline."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import WebhookVerificationError

from einvoice.crypto import SecretBox
from einvoice.services.webhooks import NewEndpoint, add_endpoint
from tests.integration.followups.conftest import run_cli
from tests.integration.pipeline.conftest import (
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)
from tests.integration.webhooks.conftest import (
    Receiver,
    WebhookPipeline,
    attempts,
    deliveries,
    wait_for_delivery,
)

#: A delivery is dispatched within 0.5 s of being due (EINVOICE_DISPATCH_INTERVAL of the
#: pipeline); after this long a stray or duplicate request would have arrived.
QUIET_SECONDS = 1.5


def _endpoint(factory: sessionmaker[Session], box: SecretBox, org: int, url: str,
              events: tuple[str, ...] = ()) -> NewEndpoint:
    with factory() as session:
        created = add_endpoint(session, box, organization_id=org, url=url, event_types=events)
        session.commit()
    return created


def _organization(factory: sessionmaker[Session], org: int) -> None:
    with factory() as session:
        seed_organization(session, org)
        session.commit()


def _job(factory: sessionmaker[Session], org: int, **invoice: Any) -> uuid.UUID:
    with factory() as session:
        invoice_id = seed_invoice(session, org, **invoice)
        session.commit()
        return insert_job_sql(session, invoice_id, org)


def _events(factory: sessionmaker[Session], job_id: uuid.UUID) -> list[tuple[str, str | None]]:
    with factory() as session:
        rows = session.execute(text(
            "SELECT event_type, event_code FROM electronic_invoicing_events WHERE job_id = :j "
            "ORDER BY created_at, id"), {"j": job_id}).all()
    return [(r[0], r[1]) for r in rows]


def test_an_accepted_job_sends_one_signed_job_accepted_event_to_its_organization_only(
    webhook_pipeline: WebhookPipeline, receivers: Callable[..., Receiver]
) -> None:
    # Given organizations 11 and 12, each with an endpoint listening
    p = webhook_pipeline
    ours, theirs = receivers(), receivers()
    _organization(p.factory, 11)
    _organization(p.factory, 12)
    mine = _endpoint(p.factory, p.box, 11, ours.url)
    other = _endpoint(p.factory, p.box, 12, theirs.url)

    # When a job of organization 11 is accepted
    [job] = wait_for_jobs(p.factory, [_job(p.factory, 11)], timeout=30)
    assert job.status == "accepted"
    [delivery] = wait_for_delivery(p.factory, mine.endpoint.id)

    # Then its endpoint got one job.accepted message, signed with its secret (and not another's)
    [request] = ours.wait_for(1)
    body = request.verify(mine.secret)
    with pytest.raises(WebhookVerificationError):
        request.verify(other.secret)
    assert body["type"] == "job.accepted"
    assert body["data"]["job_id"] == str(job.id)
    assert body["data"]["status"] == "accepted"
    assert body["data"]["cufe"] == job.cufe
    assert body["data"]["document_number"] == job.document_number
    assert request.webhook_id == delivery["event_id"]
    assert request.webhook_id.startswith("msg_")
    assert request.headers["content-type"] == "application/json"
    assert (delivery["status"], delivery["error_code"]) == ("done", None)
    assert attempts(p.factory, delivery["id"]) == [(1, 200, None)]
    assert ("webhook_delivered", "200") in _events(p.factory, job.id)
    # and nothing more: no duplicate to it, nothing at all to organization 12's endpoint
    time.sleep(QUIET_SECONDS)
    assert len(ours.received) == 1
    assert theirs.received == []
    assert deliveries(p.factory, endpoint_id=other.endpoint.id) == []


def test_a_rejected_job_sends_job_rejected_only_to_endpoints_subscribed_to_it(
    webhook_pipeline: WebhookPipeline, receivers: Callable[..., Receiver]
) -> None:
    # Given an endpoint for rejections only and another for acceptances only
    p = webhook_pipeline
    rejections, acceptances = receivers(), receivers()
    _organization(p.factory, 13)
    on_rejected = _endpoint(p.factory, p.box, 13, rejections.url, ("job.rejected",))
    on_accepted = _endpoint(p.factory, p.box, 13, acceptances.url, ("job.accepted",))

    # When one invoice is rejected (a wrong check digit) and another accepted
    rejected = _job(p.factory, 13, identification_type="NIT", identification_number="901724254",
                    dv=7, company_name="Cliente SAS")
    accepted = _job(p.factory, 13)
    done = wait_for_jobs(p.factory, [rejected, accepted], timeout=30)
    assert [j.status for j in done] == ["rejected", "accepted"]
    wait_for_delivery(p.factory, on_rejected.endpoint.id, statuses=("done",))
    wait_for_delivery(p.factory, on_accepted.endpoint.id, statuses=("done",))

    # Then each endpoint got exactly the event it subscribed to
    [rejection] = rejections.wait_for(1)
    body = rejection.verify(on_rejected.secret)
    assert body["type"] == "job.rejected"
    assert body["data"]["job_id"] == str(rejected)
    assert body["data"]["error_code"] == "invalid_dv"
    assert "customers.dv" in body["data"]["error_message"]
    [acceptance] = acceptances.wait_for(1)
    assert acceptance.verify(on_accepted.secret)["data"]["job_id"] == str(accepted)
    time.sleep(QUIET_SECONDS)
    assert (len(rejections.received), len(acceptances.received)) == (1, 1)


def test_a_receiver_that_is_down_gets_the_delivery_once_it_is_back(
    webhook_pipeline: WebhookPipeline, receivers: Callable[..., Receiver]
) -> None:
    # Given an endpoint whose server is down (its port refuses connections)
    p = webhook_pipeline
    receiver = receivers(start=False, answers=[503])
    _organization(p.factory, 14)
    endpoint = _endpoint(p.factory, p.box, 14, receiver.url)

    # When a job is accepted, the first attempts find nobody
    [job] = wait_for_jobs(p.factory, [_job(p.factory, 14)], timeout=30)
    assert job.status == "accepted"
    deadline = time.monotonic() + 20
    while True:
        [delivery] = deliveries(p.factory, endpoint_id=endpoint.endpoint.id) or [None]
        if delivery is not None and len(attempts(p.factory, delivery["id"])) >= 2:
            break
        assert time.monotonic() < deadline, "no two failed attempts within 20 s"
        time.sleep(0.1)
    assert delivery["status"] in ("pending", "processing")

    # and when the server comes back (answering 503 once, then 200)
    receiver.start()
    [delivery] = wait_for_delivery(p.factory, endpoint.endpoint.id, statuses=("done",))

    # Then the delivery arrived, and every attempt is in the log with what it got
    log = attempts(p.factory, delivery["id"])
    answered = [status for _, status, _ in log if status is not None]
    assert answered == [503, 200]
    refused = [error for _, status, error in log if status is None]
    assert len(refused) >= 2
    assert all(error.startswith("connect_error") for error in refused), refused
    assert [n for n, _, _ in log] == list(range(1, len(log) + 1))
    assert delivery["attempt_count"] == len(log)
    # both requests that reached it carry the same event id, each signed afresh
    requests = receiver.wait_for(2)
    assert [r.answered for r in requests] == [503, 200]
    assert {r.webhook_id for r in requests} == {delivery["event_id"]}
    assert all(r.verify(endpoint.secret)["type"] == "job.accepted" for r in requests)


def test_a_410_gone_answer_fails_the_delivery_at_once_and_keeps_the_endpoint(
    webhook_pipeline: WebhookPipeline, receivers: Callable[..., Receiver]
) -> None:
    # Given an endpoint that answers 410 Gone
    p = webhook_pipeline
    receiver = receivers(default=410)
    _organization(p.factory, 15)
    endpoint = _endpoint(p.factory, p.box, 15, receiver.url)

    # When a job is accepted
    [job] = wait_for_jobs(p.factory, [_job(p.factory, 15)], timeout=30)
    [delivery] = wait_for_delivery(p.factory, endpoint.endpoint.id)

    # Then the delivery failed after one attempt, with no retry, and the endpoint stays enabled
    assert (delivery["status"], delivery["error_code"]) == ("failed", "webhook_gone")
    assert [(n, s) for n, s, _ in attempts(p.factory, delivery["id"])] == [(1, 410)]
    assert ("webhook_failed", "webhook_gone") in _events(p.factory, job.id)
    time.sleep(QUIET_SECONDS)
    assert len(receiver.received) == 1
    with p.factory() as session:
        disabled = session.execute(text("SELECT disabled_at FROM webhook_endpoints WHERE id = :e"),
                                   {"e": endpoint.endpoint.id}).scalar_one()
    assert disabled is None


def _cli(p: WebhookPipeline, *args: str) -> Any:
    done = run_cli(p.env, "webhooks", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in args else done.stdout


def test_the_cli_adds_lists_tests_redelivers_and_disables_an_endpoint(
    webhook_pipeline: WebhookPipeline, receivers: Callable[..., Receiver]
) -> None:
    # Given organization 16 with an accepted job, and an ERP receiver
    p = webhook_pipeline
    receiver = receivers()
    _organization(p.factory, 16)
    [job] = wait_for_jobs(p.factory, [_job(p.factory, 16)], timeout=30)

    # When an operator adds an endpoint, the secret is shown once
    added = _cli(p, "add", "--org", "16", "--url", receiver.url, "--event", "job.accepted",
                 "--json")
    secret, endpoint_id = added["secret"], added["id"]
    assert secret.startswith("whsec_")
    assert added["event_types"] == ["job.accepted"]
    listed = _cli(p, "list", "--org", "16")
    listed_json = _cli(p, "list", "--org", "16", "--json")
    assert secret not in listed
    assert secret not in json.dumps(listed_json)
    assert [(e["id"], e["disabled_at"]) for e in listed_json] == [(endpoint_id, None)]

    # and sends a test message: it arrives signed with that secret
    test = _cli(p, "test", endpoint_id, "--json")
    [first] = receiver.wait_for(1)
    body = first.verify(secret)
    assert body["type"] == "webhook.test"
    assert body["data"]["endpoint_id"] == endpoint_id
    assert body["data"]["job_id"] == str(job.id)
    wait_for_delivery(p.factory, uuid.UUID(endpoint_id), statuses=("done",))
    [row] = _cli(p, "list", "--org", "16", "--deliveries", "--json")
    assert (row["id"], row["status"], row["attempt_count"], row["last_response_status"]) == (
        test["delivery_id"], "done", 1, 200)

    # When it is redelivered, the receiver gets the same webhook-id again
    _cli(p, "redeliver", test["delivery_id"])
    second = receiver.wait_for(2)[1]
    assert second.webhook_id == first.webhook_id
    assert second.verify(secret)["type"] == "webhook.test"
    assert [(a, s) for a, s, _ in attempts(p.factory, uuid.UUID(test["delivery_id"]))][-1] == (
        1, 200)

    # When it is disabled, it shows as disabled and takes no test message
    _cli(p, "disable", endpoint_id)
    [shown] = _cli(p, "list", "--org", "16", "--json")
    assert shown["disabled_at"] is not None
    refused = run_cli(p.env, "webhooks", "test", endpoint_id)
    assert refused.returncode == 1
    assert "disabled" in refused.stderr
