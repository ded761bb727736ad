"""B7: the HTTP way in and the webhook way back (see ``scripts/bench.py``).

* **Enqueue over HTTP.** ``POST /api/invoices/{id}/jobs`` on one ``einvoice api serve`` process,
  over 16 keep-alive connections (aiohttp), one job per request (each its own
  transaction), against ``enqueue_invoice`` one job per transaction from 4 threads in the same
  run: the ratio is the figure (target ≥ 0.5). Then 200 requests/s open loop for a few seconds:
  p50/p99 latency of the answer.
* **Webhook delivery.** Workers (also on the ``webhooks`` queue), beat and the simulator (200 ms
  latency) at B2's arrival rate,
  with one webhook endpoint on a receiver in this process that verifies every signature: p50/p99
  from the job's acceptance (``processed_at``, PostgreSQL's clock) to the verified delivery.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import httpx
from loadkit import CpuMeter, format_cpu, log, percentile, postgres_pid

from benchmarks.b2_latency import open_loop
from benchmarks.common import PIPELINE_ONLY, Context, start_system, stop_system
from einvoice.devservices import free_port
from einvoice.launch import ChildProcess, einvoice_command
from einvoice.sandbox.server import SandboxServer

#: Keep-alive connections of the closed-loop HTTP measure; threads of ``enqueue_invoice``'s.
HTTP_CONNECTIONS = 16
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

    def produce(invoice_id: uuid.UUID) -> None:
        with db.factory() as session:
            enqueue_invoice(session, invoice_id)
            session.commit()

    # Warm both paths (connections, the key cache, plans) before timing.
    asyncio.run(_http_closed_loop(base, key, [next(invoices) for _ in range(200)]))
    _closed_loop([next(invoices) for _ in range(200)], PRODUCER_THREADS, produce)
    meter = CpuMeter({"api": lambda: [api.pid], "postgres": lambda: [postgres_pid(ctx.stack)],
                      "driver": lambda: [-os.getpid()]})
    meter.start()
    python_rate = _closed_loop([next(invoices) for _ in range(count)], PRODUCER_THREADS, produce)
    python_cpu = meter.stop()
    meter.start()
    http_rate = asyncio.run(_http_closed_loop(base, key, [next(invoices) for _ in range(count)]))
    http_cpu = meter.stop()
    log(f"B7 enqueue: HTTP {http_rate:.0f}/s ({HTTP_CONNECTIONS} keep-alive connections, one API "
        f"process) vs enqueue_invoice {python_rate:.0f}/s ({PRODUCER_THREADS} threads): ratio "
        f"{http_rate / python_rate:.2f}; CPU (% of a core) HTTP {format_cpu(http_cpu)}, "
        f"enqueue_invoice {format_cpu(python_cpu)}")

    latencies = asyncio.run(_http_open_loop(
        base, key, [next(invoices) for _ in range(int(200 * p.b7_seconds))], rate=200.0))
    log(f"B7 latency at 200 requests/s: p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms ({len(latencies)} requests)")
    api.stop()
    stop_system(ctx)
    webhook = _webhook_latency(ctx)
    return {"http_rate": http_rate, "python_rate": python_rate,
            "ratio": http_rate / python_rate, "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99), "requests": len(latencies), **webhook}


async def _post(session: aiohttp.ClientSession, base: str, invoice_id: uuid.UUID) -> float:
    """POST one enqueue; return its latency in seconds (raises unless the answer is 201)."""
    started = time.monotonic()
    async with session.post(f"{base}/api/invoices/{invoice_id}/jobs") as answer:
        if answer.status != 201:
            raise RuntimeError(f"POST answered {answer.status}: {(await answer.text())[:200]}")
        await answer.read()
    return time.monotonic() - started


def _client(key: str) -> aiohttp.ClientSession:
    # aiohttp costs the driver a fraction of httpx's CPU per request, so the one API process,
    # not the load generator, is what the figure measures.
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {key}"},
        connector=aiohttp.TCPConnector(limit=HTTP_CONNECTIONS),
        timeout=aiohttp.ClientTimeout(total=30))


async def _http_closed_loop(base: str, key: str, invoice_ids: list[uuid.UUID]) -> float:
    """POST every invoice over ``HTTP_CONNECTIONS`` connections; return requests per second."""
    pending = iter(invoice_ids)
    async with _client(key) as session:
        async def run() -> None:
            for invoice_id in pending:
                await _post(session, base, invoice_id)

        started = time.monotonic()
        await asyncio.gather(*(run() for _ in range(HTTP_CONNECTIONS)))
        return len(invoice_ids) / (time.monotonic() - started)


async def _http_open_loop(base: str, key: str, invoice_ids: list[uuid.UUID],
                          rate: float) -> list[float]:
    """POST one invoice every ``1/rate`` s (arrivals never wait for answers); returns each
    request's latency in milliseconds."""
    async with _client(key) as session:
        started = time.monotonic()

        async def one(index: int, invoice_id: uuid.UUID) -> float:
            await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            return await _post(session, base, invoice_id) * 1000

        return list(await asyncio.gather(*(one(i, x) for i, x in enumerate(invoice_ids))))


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


#: Median milliseconds from a job's acceptance (``processed_at``; the trigger inserts its
#: delivery in that transaction) to the delivery's wake-up (``dispatched_at``), its claim (the
#: lease's start) and its recorded attempt.
_STAGES = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY 1000 * extract(epoch FROM
           f.dispatched_at - j.processed_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY 1000 * extract(epoch FROM
           a.started - j.processed_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY 1000 * extract(epoch FROM
           a.recorded - j.processed_at))
  FROM electronic_invoicing_jobs j
  JOIN electronic_invoicing_followups f ON f.job_id = j.id AND f.kind = 'webhook'
  JOIN LATERAL (SELECT min(created_at - make_interval(secs => duration_ms / 1000.0)) AS started,
                       min(created_at) AS recorded
                  FROM webhook_delivery_attempts WHERE followup_id = f.id) a ON true
 WHERE j.id = ANY(%s) AND j.status = 'accepted'
"""


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
            # The measured workers also take the webhooks queue here (its own, as in production).
            start_system(replace(ctx, queues=f"{ctx.queues},webhooks"), db, sim.base_url, 50,
                         **PIPELINE_ONLY)
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
            stages = conn.execute(_STAGES, (job_ids,)).fetchone()
    finally:
        receiver.stop()
    delays = [(receiver.arrived[j] - float(at)) * 1000
              for j, at in accepted.items() if j in receiver.arrived]
    if stages is not None:
        log("B7 webhooks: median ms from acceptance to " + ", ".join(
            f"{name} {value:.0f}" for name, value in zip(
                ("published", "claimed", "answered and recorded"), stages, strict=True)
            if value is not None))
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
