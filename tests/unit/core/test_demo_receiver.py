"""The demo's webhook receiver (einvoice.demo_erp.WebhookReceiver), over real HTTP: it counts a
verified event once per webhook-id and refuses a bad signature, as an ERP's receiver must."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from einvoice.demo_erp import WebhookReceiver
from einvoice.devservices import free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _signed(msg_id: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    now = datetime.now(UTC)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode()),
            "content-type": "application/json"}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(free_port()).start()
    receiver.secrets["/org/1"] = SECRET
    yield receiver
    receiver.stop()


def test_a_verified_event_is_counted_once_per_webhook_id(receiver: WebhookReceiver) -> None:
    body = json.dumps({"type": "job.accepted", "timestamp": "2026-12-07T23:00:00Z",
                       "data": {"job_id": "j1"}}).encode()
    url = receiver.url("/org/1")

    assert _post(url, body, _signed("msg_1", body)) == 204
    assert _post(url, body, _signed("msg_1", body)) == 204  # a redelivery: same id
    assert receiver.received() == 1
    assert receiver.events == {"job.accepted": 1}


def test_a_bad_signature_or_unknown_endpoint_is_refused(receiver: WebhookReceiver) -> None:
    body = b'{"type": "job.rejected", "timestamp": "2026-12-07T23:00:00Z", "data": {}}'
    other = "whsec_" + "A" * 32

    assert _post(receiver.url("/org/1"), body, _signed("msg_2", body, other)) == 401
    assert _post(receiver.url("/org/9"), body, _signed("msg_3", body)) == 401
    assert receiver.received() == 0
    assert receiver.refused == 2
