"""The ERP's side of ``make demo``: an HTTP client of our API and a webhook receiver.

Both use only the standard library and ``standardwebhooks`` (what an ERP developer would use), so
the demo exercises the HTTP way in and the signed way back exactly as an outside ERP does:

* :func:`post_job` enqueues an invoice with ``POST /api/invoices/{id}/jobs`` and a bearer key;
* :class:`WebhookReceiver` is a real HTTP server that verifies each delivery's Standard Webhooks
  signature and counts the events once per ``webhook-id`` (a delivery may come twice).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


def wait_healthy(base_url: str, timeout: float = 30.0) -> None:
    """Poll ``GET {base_url}/healthz`` until it answers 200.

    Raises:
        TimeoutError: not healthy within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API at {base_url} was not healthy within {timeout:.0f} s")
        time.sleep(0.2)


def post_job(base_url: str, api_key: str, invoice_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
    """``POST /api/invoices/{invoice_id}/jobs`` with ``api_key``; returns (status, JSON body).

    The idempotency key is the invoice id: a retried call returns the first answer.
    """
    request = urllib.request.Request(  # noqa: S310 - our own API, http(s) only
        f"{base_url}/api/invoices/{invoice_id}/jobs", method="POST", data=b"",
        headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": str(invoice_id)})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class WebhookReceiver:
    """A webhook endpoint on ``127.0.0.1:port`` that verifies and counts deliveries.

    Args:
        port: the TCP port to listen on.

    ``secrets`` maps a URL path (one per organization) to the endpoint's ``whsec_`` secret; set
    it before deliveries arrive. A delivery with a bad signature is answered 401 and counted in
    :attr:`refused`; a verified one 204, counted once per ``webhook-id`` in :attr:`events`.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.secrets: dict[str, str] = {}
        self.events: Counter[str] = Counter()
        self.refused = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                ok = receiver.receive(self.path, body, dict(self.headers.items()))
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *_: object) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="demo-webhook-receiver")

    def url(self, path: str) -> str:
        """The endpoint URL of ``path`` (e.g. ``/org/1``)."""
        return f"http://127.0.0.1:{self.port}{path}"

    def receive(self, path: str, body: bytes, headers: dict[str, str]) -> bool:
        """Verify one delivery against the secret of ``path`` and count it; False if refused."""
        with self._lock:
            secret = self.secrets.get(path)
            try:
                if secret is None:
                    raise ValueError(f"no endpoint at {path}")
                event = Webhook(secret).verify(body, headers)
            except Exception:  # noqa: BLE001 - any verification failure is a refusal
                self.refused += 1
                return False
            msg_id = headers.get("webhook-id") or headers.get("Webhook-Id") or ""
            if msg_id not in self._seen:
                self._seen.add(msg_id)
                self.events[str(event["type"])] += 1
            return True

    def received(self) -> int:
        """How many distinct events were received and verified."""
        with self._lock:
            return sum(self.events.values())

    def start(self) -> WebhookReceiver:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
