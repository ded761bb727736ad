"""B2 open-loop latency, and B5's soak (see ``scripts/bench.py``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from loadkit import Database, format_cpu, log, percentile

from benchmarks.common import (
    PIPELINE_ONLY,
    Context,
    cpu_meter,
    cpu_ms_per_job,
    start_system,
    stop_system,
)
from einvoice.sandbox.server import SandboxServer

# ------------------------------------------------------------------------------------------
# B2 (and the soak): open-loop arrivals
# ------------------------------------------------------------------------------------------


def open_loop(db: Database, invoice_ids: list[uuid.UUID], rate: float,
              tick: Callable[[int], None] | None = None) -> tuple[list[uuid.UUID], float]:
    """Insert one job per ``1/rate`` seconds on a fixed schedule (arrivals never wait for
    completions). Returns (job ids, the largest lag behind schedule in seconds)."""
    job_ids: list[uuid.UUID] = []
    worst_lag = 0.0
    with db.connect() as conn:
        started = time.monotonic()
        for index, invoice_id in enumerate(invoice_ids):
            due = started + index / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            else:
                worst_lag = max(worst_lag, now - due)
            job_ids.extend(db.insert_jobs([invoice_id], conn))
            if tick is not None:
                tick(index)
    return job_ids, worst_lag


def b2_latency(ctx: Context) -> dict[str, Any]:
    """B2: 100 arrivals/s for 60 s at 200 ms simulator latency, 50 worker threads."""
    p = ctx.profile
    count = int(p.b2_rate * p.b2_seconds)
    db = ctx.stack.new_database("bench_b2")
    templates = db.seed_organizations(1)
    invoices = db.clone_invoices(templates, count + 100)
    with SandboxServer(latency_ms=200, rate_limit_per_minute=None) as sim:
        workers, _ = start_system(ctx, db, sim.base_url, 50, **PIPELINE_ONLY)
        warm = db.insert_jobs(invoices[:100])
        db.wait_final(warm, timeout=120)
        log(f"B2: {p.b2_rate:g} arrivals/s for {p.b2_seconds:g} s, open loop")
        meter = cpu_meter(ctx, workers)
        meter.start()
        job_ids, lag = open_loop(db, invoices[100:], p.b2_rate)
        done, counts = db.wait_final(job_ids, timeout=120)
        cpu = meter.stop()
        stop_system(ctx)
    latencies = db.latencies_ms(job_ids)
    stages = db.stage_medians_ms(job_ids)
    result = {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
              "p99": percentile(latencies, 99), "max": max(latencies, default=float("nan")),
              "accepted": len(latencies), "jobs": len(job_ids), "all_final": done,
              "counts": counts, "lag": lag, "cpu": cpu, "stages": stages}
    log(f"B2: {len(latencies)}/{len(job_ids)} accepted; producer's worst lag behind schedule "
        f"{lag * 1000:.0f} ms; CPU {format_cpu(cpu)}; worker CPU per job "
        f"{cpu_ms_per_job(cpu, 'workers', meter.elapsed, len(latencies)):.1f} ms")
    log("B2: median ms per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
    return result


def b2_line(r: dict[str, Any]) -> str:
    """The B2 summary line."""
    ok = r["p50"] <= 250 and r["p95"] <= 300 and r["p99"] <= 400 and r["all_final"]
    return (f"B2 latency (open loop {r['jobs']} arrivals): insert-to-accepted p50 {r['p50']:.0f} ms"
            f", p95 {r['p95']:.0f} ms, p99 {r['p99']:.0f} ms, max {r['max']:.0f} ms "
            f"({r['accepted']}/{r['jobs']} accepted; other processes on the machine used "
            f"{r['cpu']['other']:.0f}% of a core) [target p50 ≤ 250, p95 ≤ 300, p99 ≤ 400: "
            f"{'PASS' if ok else 'MISS'}]")


def soak(ctx: Context) -> dict[str, Any]:
    """B5 soak: open-loop arrivals at ``ctx.soak_rate``/s for ``ctx.soak_minutes``; RSS of each
    worker after the first minute and at the end."""
    minutes, rate = ctx.soak_minutes, ctx.soak_rate
    count = int(minutes * 60 * rate)
    db = ctx.stack.new_database("bench_soak")
    templates = db.seed_organizations(1)
    invoices = db.clone_invoices(templates, count)
    samples: list[tuple[float, dict[str, int]]] = []
    with SandboxServer(latency_ms=200, rate_limit_per_minute=None) as sim:
        workers, _ = start_system(ctx, db, sim.base_url, 50, **PIPELINE_ONLY)
        started = time.monotonic()
        every = max(1, int(rate * 15))

        def tick(index: int) -> None:
            if index % every == 0:
                samples.append((time.monotonic() - started,
                                {w.name: w.rss_bytes() for w in workers}))
                log(f"soak {(time.monotonic() - started) / 60:.1f} min: RSS "
                    + ", ".join(f"{v / 1e6:.0f} MB" for v in samples[-1][1].values()))

        log(f"soak: {rate:g} arrivals/s for {minutes:g} min, 50 worker threads")
        job_ids, _ = open_loop(db, invoices, rate, tick)
        db.wait_final(job_ids, timeout=180)
        samples.append((time.monotonic() - started, {w.name: w.rss_bytes() for w in workers}))
        stop_system(ctx)
    first = next((s for t, s in samples if t >= 60), samples[0][1])
    last = samples[-1][1]
    growth = {k: (last[k] - first[k]) / first[k] * 100 if first[k] else 0.0 for k in last}
    ok = all(g <= 10 for g in growth.values())
    text = ", ".join(f"{first[k] / 1e6:.0f} → {last[k] / 1e6:.0f} MB ({growth[k]:+.1f} %)"
                     for k in last)
    return {"minutes": minutes, "growth": text, "ok": ok}
