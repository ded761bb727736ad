"""B4 producers: ``enqueue_invoice``, plain SQL inserts, bulk and publishing producers (see
``scripts/bench.py``)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from loadkit import log

from benchmarks.common import Context, cpu_meter, cpu_ms_per_job, stop_system

# ------------------------------------------------------------------------------------------
# B4 - producers
# ------------------------------------------------------------------------------------------


def b4_producers(ctx: Context) -> dict[str, Any]:
    """B4: jobs/s committed and enqueued, for enqueue_invoice and plain SQL, per transaction and
    in batches."""
    from einvoice.queueing import CeleryPublisher
    from einvoice.services.enqueue import enqueue_invoice, enqueue_invoices

    p = ctx.profile
    threads = 4
    db = ctx.stack.new_database("bench_b4")
    templates = db.seed_organizations(1)
    invoices = iter(db.clone_invoices(templates, 6 * p.b4_jobs))
    # Producers publish with this process's Celery app (celeryconfig reads the broker here).
    ctx.stack.use_in_this_process(db, "http://127.0.0.1:9")
    publisher = CeleryPublisher()
    publisher.publish_submit(uuid.uuid4())  # connect once before timing
    # A worker that consumes another queue: its LISTEN listener publishes plain SQL jobs, and the
    # messages stay in the submission queue to be counted.
    env = ctx.stack.worker_env(db, "http://127.0.0.1:9")
    workers = ctx.stack.start_workers(env, db, processes=1, concurrency=2, queues="reference")
    results: dict[str, dict[str, float]] = {}

    def measure(name: str, batches: list[list[uuid.UUID]],
                produce: Callable[[list[uuid.UUID]], None]) -> None:
        ctx.stack.flush_redis()
        queued_jobs = ctx.stack.queued_jobs()
        jobs = sum(len(b) for b in batches)
        chunks = [batches[i::threads] for i in range(threads)]
        meter = cpu_meter(ctx, workers)
        meter.start()
        started = time.monotonic()
        pool = [threading.Thread(target=lambda mine=mine: [produce(b) for b in mine])
                for mine in chunks]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        committed = time.monotonic() - started
        deadline = time.monotonic() + 120
        while queued_jobs.count() < jobs and time.monotonic() < deadline:
            time.sleep(0.01)
        enqueued = time.monotonic() - started
        queued = ctx.stack.queue_length()
        queued_jobs.close()
        cpu = meter.stop()
        results[name] = {"committed": jobs / committed, "enqueued": jobs / enqueued,
                         "jobs": jobs, "queued": queued}
        log(f"B4 {name}: {jobs} jobs, {jobs / committed:.0f}/s committed, {jobs / enqueued:.0f}/s "
            f"with every wake-up in Redis ({queued} messages); CPU per job: producers "
            f"{cpu_ms_per_job(cpu, 'driver', meter.elapsed, jobs):.2f} ms, worker's listener "
            f"{cpu_ms_per_job(cpu, 'workers', meter.elapsed, jobs):.2f} ms, PostgreSQL "
            f"{cpu_ms_per_job(cpu, 'postgres', meter.elapsed, jobs):.2f} ms; other processes "
            f"{cpu['other']:.0f}% of a core")

    def python_producer(batch: list[uuid.UUID]) -> None:
        with db.factory() as session:
            for invoice_id in batch:
                enqueue_invoice(session, invoice_id)
            session.commit()

    def publishing_producer(batch: list[uuid.UUID]) -> None:
        with db.factory() as session:
            for invoice_id in batch:
                enqueue_invoice(session, invoice_id, publisher=publisher)
            session.commit()

    def bulk_producer(batch: list[uuid.UUID]) -> None:
        with db.factory() as session:
            enqueue_invoices(session, batch)
            session.commit()

    def sql_producer(batch: list[uuid.UUID]) -> None:
        db.insert_jobs(batch, local.conn)

    local = threading.local()

    def sql_with_connection(batch: list[uuid.UUID]) -> None:
        if not hasattr(local, "conn"):
            local.conn = db.connect()
        sql_producer(batch)

    n = p.b4_jobs
    measure("enqueue_invoice, 1 job per transaction",
            [[next(invoices)] for _ in range(n)], python_producer)
    measure("enqueue_invoice with a publisher (the call publishes), 1 job per transaction",
            [[next(invoices)] for _ in range(n)], publishing_producer)
    measure("enqueue_invoice, 100 jobs per transaction",
            [[next(invoices) for _ in range(100)] for _ in range(n // 100)], python_producer)
    measure("enqueue_invoices, 100 jobs per call and transaction",
            [[next(invoices) for _ in range(100)] for _ in range(n // 100)], bulk_producer)
    measure("plain SQL, 1 job per transaction",
            [[next(invoices)] for _ in range(n)], sql_with_connection)
    measure("plain SQL, 100 jobs per INSERT",
            [[next(invoices) for _ in range(100)] for _ in range(n // 100)], sql_with_connection)
    stop_system(ctx)
    return {"threads": threads, "modes": results}


def b4_line(r: dict[str, Any]) -> str:
    """The B4 summary line: the slower of committed/enqueued per mode; the target (1,000/s) is
    checked on one job per transaction, the hardest case, for ``enqueue_invoice`` (its default,
    listener-woken mode) and for plain SQL."""
    modes = r["modes"]
    rate = {name: min(v["committed"], v["enqueued"]) for name, v in modes.items()}
    parts = [f"{name}: {value:.0f}/s" for name, value in rate.items()]
    checked = [rate.get("enqueue_invoice, 1 job per transaction", 0.0),
               rate.get("plain SQL, 1 job per transaction", 0.0)]
    ok = all(v >= 1000 for v in checked)
    return (f"B4 producers ({r['threads']} threads, committed and enqueued): " + "; ".join(parts)
            + " [target ≥ 1,000 jobs/s for enqueue_invoice and plain SQL, one job per "
            f"transaction: {'PASS' if ok else 'MISS'}]")
