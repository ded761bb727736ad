"""Sign and POST one Standard Webhooks message, and say what the answer means.

The only module outside :mod:`einvoice.factus` that imports httpx (STYLE.md: one package per
external system; the receiver is the ERP's). Nothing here touches the database: the service
(:mod:`einvoice.services.webhooks`) claims a delivery, calls :meth:`WebhookSender.send` outside
any transaction and records the :class:`SendResult`.

Signature (Standard Webhooks, https://www.standardwebhooks.com/): ``standardwebhooks.Webhook
(secret).sign(msg_id, timestamp, body)`` = ``v1,`` + base64 HMAC-SHA256 over
``"{webhook-id}.{webhook-timestamp}.{body}"`` with the secret's base64-decoded bytes. Headers:
``webhook-id`` (the event id, the same on every attempt so the receiver deduplicates),
``webhook-timestamp`` (Unix seconds of this attempt: receivers refuse one older than 5 minutes,
so a retry is signed afresh), ``webhook-signature``, ``content-type: application/json``.

What an answer means (:class:`Verdict`):

* ``2xx``: ``delivered``;
* ``410 Gone``: ``gone``, the receiver asked us to stop: the delivery fails at once and is not
  retried (Standard Webhooks); the endpoint stays enabled (an operator disables it with
  ``einvoice webhooks disable``; nothing is disabled automatically);
* any other status (``3xx``: redirects are not followed; ``4xx``; ``5xx``), a timeout, a refused
  or dropped connection, a TLS error: ``retry`` (the jobs' backoff, up to the follow-up's
  ``max_attempts``).

Timeouts: 5 s to connect, 10 s for each read or write, and the whole exchange is abandoned once
10 s have passed while the answer is still being read (:data:`TOTAL_TIMEOUT_SECONDS`). At most
:data:`MAX_ERROR_BODY_BYTES` of a non-2xx answer are kept, for the attempt log.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
from standardwebhooks import Webhook

from einvoice import metrics

#: Seconds to open the TCP (and TLS) connection.
CONNECT_TIMEOUT_SECONDS = 5.0
#: Seconds for the whole exchange once connected (each read or write is bounded by it too).
TOTAL_TIMEOUT_SECONDS = 10.0
#: Bytes of a failed answer's body kept in the attempt log.
MAX_ERROR_BODY_BYTES = 300
#: Bytes of random key material in a new secret (Standard Webhooks: 24 to 64).
SECRET_BYTES = 24
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
USER_AGENT = "einvoice-webhooks/1"


class Verdict(StrEnum):
    """What one attempt's answer means for the delivery."""

    DELIVERED = "delivered"  # 2xx
    GONE = "gone"  # 410: the receiver asked to stop; never retried
    RETRY = "retry"  # anything else: backoff and try again


@dataclass(frozen=True)
class SendResult:
    """The outcome of one POST.

    Attributes:
        verdict: see :class:`Verdict`.
        status: the receiver's HTTP status, None when no answer came.
        error: a short reason when not delivered (``http_503: <body start>``, ``timeout``,
            ``connect_error: ...``), None when delivered.
        duration_ms: wall time of the attempt in milliseconds.
    """

    verdict: Verdict
    status: int | None
    error: str | None
    duration_ms: int


def new_secret() -> str:
    """A new endpoint secret: ``whsec_`` + base64 of 24 random bytes (``secrets.token_bytes``).

    Shown once to the operator and stored encrypted (:class:`einvoice.crypto.SecretBox`).
    """
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The request body for ``payload`` (``{type, timestamp, data}``): compact UTF-8 JSON.

    The signature covers these exact bytes; a receiver verifies the raw body it received.
    """
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def signed_headers(secret: str, msg_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt.

    Args:
        secret: the endpoint's ``whsec_...`` secret (in clear; never logged).
        msg_id: the event id (``msg_...``), the same on every attempt.
        body: the exact request body.
        at: the attempt's time (timezone-aware UTC); sent as Unix seconds.
    Returns:
        ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``, ``content-type`` and
        ``user-agent``.
    """
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class WebhookSender:
    """POSTs signed messages with one pooled ``httpx.Client`` (thread-safe; one per process).

    Args:
        client: an ``httpx.Client`` to use (tests); by default one with the module's timeouts,
            no redirects followed.
    """

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(TOTAL_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    def __repr__(self) -> str:
        return "WebhookSender()"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def send(self, url: str, secret: str, msg_id: str, body: bytes,
             at: datetime | None = None) -> SendResult:
        """POST ``body`` to ``url`` signed with ``secret``; never raises for a network problem.

        Args:
            url: the endpoint's URL (``http://`` or ``https://``).
            secret: its ``whsec_...`` secret in clear.
            msg_id: the event id (``webhook-id``).
            body: the exact bytes to send (:func:`encode_body`).
            at: the attempt's time (default: now, UTC).
        Returns:
            A :class:`SendResult`; its ``error`` never holds the secret or the signature.
        """
        headers = signed_headers(secret, msg_id, body, at or datetime.now(UTC))
        started = time.monotonic()
        try:
            with self._client.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
                kept = self._read_capped(response, started)
        except httpx.TimeoutException:
            return self._result(Verdict.RETRY, None, "timeout", started)
        except httpx.ConnectError as exc:
            return self._result(Verdict.RETRY, None, f"connect_error: {_short(str(exc))}",
                                started)
        except httpx.HTTPError as exc:  # dropped connection, protocol error, bad scheme
            return self._result(Verdict.RETRY, None, f"transport_error: {_short(str(exc))}",
                                started)
        except httpx.InvalidURL as exc:  # stored before the URL check existed, or edited by SQL
            return self._result(Verdict.RETRY, None, f"invalid_url: {_short(str(exc))}", started)
        if kept is None:
            return self._result(Verdict.RETRY, status, "timeout: answer not read within "
                                f"{TOTAL_TIMEOUT_SECONDS:g} s", started)
        if 200 <= status < 300:
            return self._result(Verdict.DELIVERED, status, None, started)
        text = _short(kept.decode("utf-8", "replace"))
        if status == httpx.codes.GONE:
            return self._result(Verdict.GONE, status, f"http_410: {text}".rstrip(": "), started)
        if 300 <= status < 400:
            location = _short(response.headers.get("location", ""))
            return self._result(Verdict.RETRY, status,
                                f"http_{status}: redirect to {location or '?'} not followed",
                                started)
        return self._result(Verdict.RETRY, status, f"http_{status}: {text}".rstrip(": "), started)

    @staticmethod
    def _read_capped(response: httpx.Response, started: float) -> bytes | None:
        """Up to :data:`MAX_ERROR_BODY_BYTES` of the body; None when the total time ran out."""
        kept = b""
        for chunk in response.iter_raw():
            if len(kept) < MAX_ERROR_BODY_BYTES:
                kept += chunk[:MAX_ERROR_BODY_BYTES - len(kept)]
            if time.monotonic() - started > TOTAL_TIMEOUT_SECONDS:
                return None
        return kept

    @staticmethod
    def _result(verdict: Verdict, status: int | None, error: str | None,
                started: float) -> SendResult:
        metrics.webhook_delivered(verdict.value)
        return SendResult(verdict, status, error,
                          round((time.monotonic() - started) * 1000))


def _short(text: str, limit: int = 200) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[:limit - 1] + "…"


_default: tuple[int, WebhookSender] | None = None
_default_lock = threading.Lock()


def default_sender() -> WebhookSender:
    """This process's sender, built on first use (never at import time, rebuilt after a fork:
    STYLE.md habit 7)."""
    global _default  # noqa: PLW0603 - one pooled client per process, created lazily
    pid = os.getpid()
    if _default is None or _default[0] != pid:
        with _default_lock:
            if _default is None or _default[0] != pid:
                _default = (pid, WebhookSender())
    return _default[1]
