"""B1 throughput against the bare loop, and B5 worker memory (see ``scripts/bench.py``)."""

from __future__ import annotations

from typing import Any

from loadkit import format_cpu, log

from benchmarks.baseline import baseline_bodies, run_loop
from benchmarks.common import (
    PIPELINE_ONLY,
    Context,
    GilProfile,
    RssSampler,
    cpu_meter,
    cpu_ms_per_job,
    job_window,
    start_system,
    stop_system,
)
from einvoice.sandbox.server import SandboxServer

# ------------------------------------------------------------------------------------------
# B1 + B5: throughput against the bare loop, worker memory
# ------------------------------------------------------------------------------------------


def b1_throughput(ctx: Context) -> dict[str, Any]:
    """B1 at 50 in flight (vs httpx) and 100 in flight (vs aiohttp); B5's RSS comes from the
    50-in-flight run. Returns the figures of both runs."""
    p = ctx.profile
    db = ctx.stack.new_database("bench_b1")
    templates = db.seed_organizations(1)
    invoices = iter(db.clone_invoices(templates, 2 * (p.b1_invoices + p.b1_warmup)))
    results: dict[str, Any] = {}
    with SandboxServer(latency_ms=200, rate_limit_per_minute=None) as sim:
        for in_flight, loop in ((50, "httpx"), (100, "aiohttp")):
            log(f"B1: {in_flight} in flight: {ctx.processes} worker processes × "
                f"{in_flight // ctx.processes} threads, simulator 200 ms")
            workers, _beat = start_system(
                ctx, db, sim.base_url, in_flight,
                **PIPELINE_ONLY)
            warm = db.insert_jobs([next(invoices) for _ in range(p.b1_warmup)])
            db.wait_final(warm, timeout=120)
            meter = cpu_meter(ctx, workers)
            spy_seconds = p.profile_seconds if in_flight == 100 else 0.0
            with RssSampler(workers) as rss:
                meter.start()
                job_ids = db.insert_jobs([next(invoices) for _ in range(p.b1_invoices)])
                spy = GilProfile(workers[0].pid, spy_seconds,
                                 ctx.stack.base_dir / f"py-spy-{in_flight}.txt")
                # Polled once a second: each poll reads every job of the run (15-18 ms of
                # PostgreSQL's CPU with 6,000), which the system under test pays for.
                done, counts = db.wait_final(job_ids, timeout=max(120.0, p.b1_invoices / 10),
                                             poll=1.0)
                cpu = meter.stop()
            accepted, seconds = job_window(db, job_ids)
            system_rate = accepted / seconds if seconds else 0.0
            stages = db.stage_medians_ms(job_ids)
            profile = spy.summary()
            stop_system(ctx)
            bodies = baseline_bodies(db, job_ids)
            sim.reset()
            ok, elapsed, errors = run_loop(loop, sim.base_url, bodies, in_flight,
                                           ctx.api_version)
            loop_rate = ok / elapsed if elapsed else 0.0
            sim.reset()
            run = {
                "in_flight": in_flight, "loop": loop, "system_rate": system_rate,
                "loop_rate": loop_rate, "ratio": system_rate / loop_rate if loop_rate else 0.0,
                "accepted": accepted, "jobs": len(job_ids), "all_final": done, "counts": counts,
                "loop_errors": errors, "cpu": cpu, "stages": stages, "profile": profile,
                "rss_mb": {k: v / 1e6 for k, v in rss.max_rss.items()},
            }
            results[str(in_flight)] = run
            log(f"B1 {in_flight}: system {system_rate:.1f}/s ({accepted}/{len(job_ids)} accepted "
                f"in {seconds:.1f} s), {loop} loop {loop_rate:.1f}/s ({ok} 201s, errors {errors})"
                f", ratio {run['ratio']:.3f}")
            log(f"B1 {in_flight}: CPU (% of one core; 2 cores) {format_cpu(cpu)}; worker CPU per "
                f"accepted job {cpu_ms_per_job(cpu, 'workers', meter.elapsed, accepted):.1f} ms, "
                f"simulator {cpu_ms_per_job(cpu, 'simulator', meter.elapsed, accepted):.1f} ms, "
                f"PostgreSQL {cpu_ms_per_job(cpu, 'postgres', meter.elapsed, accepted):.1f} ms")
            log("B1 {}: median ms per stage: {}".format(
                in_flight, ", ".join(f"{k} {v:.0f}" for k, v in stages.items())))
            if profile:
                log(f"B1 {in_flight}: worker-0 py-spy: {profile}")
    return results


def b1_line(r: dict[str, Any]) -> str:
    """The B1 summary line."""
    a, b = r["50"], r["100"]
    ok = a["ratio"] >= 0.75 and a["system_rate"] >= 160
    return (f"B1 throughput: 50 in flight: system {a['system_rate']:.1f}/s vs httpx loop "
            f"{a['loop_rate']:.1f}/s, ratio {a['ratio']:.3f}; 100 in flight: system "
            f"{b['system_rate']:.1f}/s vs aiohttp loop {b['loop_rate']:.1f}/s, ratio "
            f"{b['ratio']:.3f}; other processes on the machine used {a['cpu']['other']:.0f}% of a "
            f"core [target ratio ≥ 0.75 and ≥ 160/s at 50: {'PASS' if ok else 'MISS'}]")


def b5_line(b1: dict[str, Any] | None, soak: dict[str, Any] | None) -> str:
    """The B5 summary line (RSS from B1's 50-in-flight run, and the soak if one ran); judged on
    what was measured."""
    parts = []
    ok = True
    if b1 is not None:
        rss = b1["50"]["rss_mb"]
        ok = all(v <= 150 for v in rss.values())
        parts.append("max RSS at 50 in flight " + ", ".join(f"{v:.0f} MB" for v in rss.values())
                     + " per process")
    else:
        parts.append("RSS not measured (B1 did not run)")
    if soak is not None:
        parts.append(f"soak {soak['minutes']:g} min: {soak['growth']}")
        ok = ok and soak["ok"]
    else:
        parts.append("soak not run (--soak MINUTES)")
    return (f"B5 memory: {'; '.join(parts)} [target ≤ 150 MB, soak growth ≤ 10 %: "
            f"{'PASS' if ok else 'MISS'}]")
