"""B7: the HTTP way in and the webhook way back (see ``scripts/bench.py``).

* **Enqueue over HTTP.** ``POST /api/invoices/{id}/jobs`` on one ``einvoice api serve`` process,
  from 8 client threads with keep-alive connections, one job per request (each its own
  transaction), against ``enqueue_invoice`` one job per transaction from 4 threads in the same
  run: the ratio is the figure (target ≥ 0.5). Then 200 requests/s open loop for a few seconds:
  p50/p99 latency of the answer.
* **Webhook delivery.** Workers, beat and the simulator (200 ms latency) at B2's arrival rate,
  with one webhook endpoint on a receiver in this process that verifies every signature: p50/p99
  from the job's acceptance (``processed_at``, PostgreSQL's clock) to the verified delivery.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from loadkit import log, percentile

from benchmarks.b2_latency import open_loop
from benchmarks.common import PIPELINE_ONLY, Context, start_system, stop_system
from einvoice.devservices import free_port
from einvoice.launch import ChildProcess, einvoice_command
from einvoice.sandbox.server import SandboxServer

#: Client threads for the closed-loop HTTP measure, and for ``enqueue_invoice``'s.
HTTP_THREADS = 8
PRODUCER_THREADS = 4


def _closed_loop(items: list[Any], threads: int, call: Callable[[Any], None]) -> float:
    """Run ``call(item)`` for every item from ``threads`` threads; return items per second."""
    chunks = [items[i::threads] for i in range(threads)]
    started = time.monotonic()
    pool = [threading.Thread(target=lambda mine=mine: [call(x) for x in mine]) for mine in chunks]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return len(items) / (time.monotonic() - started)


def _api_process(ctx: Context, env: dict[str, str], port: int) -> ChildProcess:
    """Start ``einvoice api serve`` on ``port`` and wait until ``/healthz`` answers."""
    process = ChildProcess("api", einvoice_command("api", "serve", "--port", str(port)), env,
                           ctx.stack.base_dir / "logs" / "api.log", append=True)
    process.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API did not start; see {process.log_path}")
        time.sleep(0.2)


def b7_http(ctx: Context) -> dict[str, Any]:
    """B7: HTTP enqueue rate vs ``enqueue_invoice``, its latency at 200/s, webhook latency."""
    from einvoice.services.api_keys import create_key
    from einvoice.services.enqueue import enqueue_invoice

    p = ctx.profile
    count = p.b4_jobs
    db = ctx.stack.new_database("bench_b7")
    templates = db.seed_organizations(1)
    [org] = templates
    invoices = iter(db.clone_invoices(templates, 3 * count + 4000))
    ctx.stack.use_in_this_process(db, "http://127.0.0.1:9")
    with db.factory() as session:
        key = create_key(session, org, "bench").key
        session.commit()
    port = free_port()
    api = _api_process(ctx, ctx.stack.worker_env(db, "http://127.0.0.1:9"), port)
    base = f"http://127.0.0.1:{port}"
    local = threading.local()

    def post(invoice_id: uuid.UUID) -> float:
        if not hasattr(local, "client"):
            local.client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30)
        started = time.monotonic()
        answer = local.client.post(f"{base}/api/invoices/{invoice_id}/jobs")
        if answer.status_code != 201:
            raise RuntimeError(f"POST answered {answer.status_code}: {answer.text[:200]}")
        return time.monotonic() - started

    def produce(invoice_id: uuid.UUID) -> None:
        with db.factory() as session:
            enqueue_invoice(session, invoice_id)
            session.commit()

    # Warm both paths (connections, the key cache, plans) before timing.
    _closed_loop([next(invoices) for _ in range(200)], HTTP_THREADS, post)
    _closed_loop([next(invoices) for _ in range(200)], PRODUCER_THREADS, produce)
    python_rate = _closed_loop([next(invoices) for _ in range(count)], PRODUCER_THREADS, produce)
    http_rate = _closed_loop([next(invoices) for _ in range(count)], HTTP_THREADS, post)
    log(f"B7 enqueue: HTTP {http_rate:.0f}/s ({HTTP_THREADS} client threads, one API process) vs "
        f"enqueue_invoice {python_rate:.0f}/s ({PRODUCER_THREADS} threads): "
        f"ratio {http_rate / python_rate:.2f}")

    latencies = _open_loop_http(post, [next(invoices) for _ in range(int(200 * p.b7_seconds))],
                                rate=200.0)
    log(f"B7 latency at 200 requests/s: p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms ({len(latencies)} requests)")
    api.stop()
    stop_system(ctx)
    webhook = _webhook_latency(ctx)
    return {"http_rate": http_rate, "python_rate": python_rate,
            "ratio": http_rate / python_rate, "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99), "requests": len(latencies), **webhook}


def _open_loop_http(post: Callable[[uuid.UUID], float], invoice_ids: list[uuid.UUID],
                    rate: float) -> list[float]:
    """POST one invoice every ``1/rate`` s from a pool of threads (arrivals never wait for
    answers); returns each request's latency in milliseconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    started = time.monotonic()
    slots = iter(enumerate(invoice_ids))

    def run() -> None:
        for index, invoice_id in slots:
            due = started + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            took = post(invoice_id)
            with lock:
                latencies.append(took * 1000)

    pool = [threading.Thread(target=run) for _ in range(32)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return latencies


class _Receiver:
    """A webhook endpoint that verifies each delivery and notes when it arrived (epoch s)."""

    def __init__(self, secret_of: dict[str, str]) -> None:
        from standardwebhooks import Webhook

        self.arrived: dict[str, float] = {}
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                now = time.time()
                try:
                    event = Webhook(secret_of["secret"]).verify(body, dict(self.headers.items()))
                except Exception:  # noqa: BLE001 - any failure is a refusal, counted
                    receiver.refused += 1
                    self.send_response(401)
                else:
                    receiver.arrived.setdefault(str(event["data"]["job_id"]), now)
                    self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The endpoint's URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/einvoice"

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def _webhook_latency(ctx: Context) -> dict[str, Any]:
    """Acceptance-to-delivery latency of ``job.accepted`` webhooks at B2's arrival rate."""
    from einvoice.crypto import SecretBox
    from einvoice.services.webhooks import add_endpoint

    p = ctx.profile
    count = int(p.b2_rate * p.b7_seconds)
    db = ctx.stack.new_database("bench_b7_webhooks")
    templates = db.seed_organizations(1)
    [org] = templates
    invoices = db.clone_invoices(templates, count)
    secret_of: dict[str, str] = {}
    receiver = _Receiver(secret_of)
    with db.factory() as session:
        endpoint = add_endpoint(session, SecretBox(ctx.stack.secret_key), organization_id=org,
                                url=receiver.url, event_types=["job.accepted"])
        secret_of["secret"] = endpoint.secret
        session.commit()
    try:
        with SandboxServer(latency_ms=200, rate_limit_per_minute=None) as sim:
            start_system(ctx, db, sim.base_url, 50, **PIPELINE_ONLY)
            log(f"B7 webhooks: {p.b2_rate:g} arrivals/s for {p.b7_seconds:g} s, one endpoint")
            job_ids, _ = open_loop(db, invoices, p.b2_rate)
            db.wait_final(job_ids, timeout=120)
            deadline = time.monotonic() + 60
            while len(receiver.arrived) < len(job_ids) and time.monotonic() < deadline:
                time.sleep(0.1)
            stop_system(ctx)
        with db.connect() as conn:
            accepted = dict(conn.execute(
                "SELECT id::text, extract(epoch FROM processed_at) FROM electronic_invoicing_jobs "
                "WHERE id = ANY(%s) AND status = 'accepted'", (job_ids,)).fetchall())
    finally:
        receiver.stop()
    delays = [(receiver.arrived[j] - float(at)) * 1000
              for j, at in accepted.items() if j in receiver.arrived]
    log(f"B7 webhooks: {len(delays)}/{len(accepted)} accepted jobs delivered and verified "
        f"({receiver.refused} refused); from acceptance p50 {percentile(delays, 50):.0f} ms, "
        f"p99 {percentile(delays, 99):.0f} ms; at {datetime.now(UTC):%H:%M} UTC")
    return {"webhook_p50": percentile(delays, 50), "webhook_p99": percentile(delays, 99),
            "webhooks": len(delays), "webhook_jobs": len(accepted),
            "webhook_refused": receiver.refused}


def b7_line(r: dict[str, Any]) -> str:
    """The B7 summary line."""
    ok = r["ratio"] >= 0.5 and r["webhooks"] == r["webhook_jobs"] and not r["webhook_refused"]
    return (f"B7 HTTP: POST /api/invoices/{{id}}/jobs {r['http_rate']:.0f}/s vs enqueue_invoice "
            f"{r['python_rate']:.0f}/s, ratio {r['ratio']:.2f}; at 200 requests/s p50 "
            f"{r['p50']:.1f} ms, p99 {r['p99']:.1f} ms; webhooks {r['webhooks']}/"
            f"{r['webhook_jobs']} delivered and verified, from acceptance p50 "
            f"{r['webhook_p50']:.0f} ms, p99 {r['webhook_p99']:.0f} ms "
            f"[target ratio ≥ 0.5, every delivery verified: {'PASS' if ok else 'MISS'}]")
