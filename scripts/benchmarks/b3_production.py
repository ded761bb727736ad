"""B3 production shape: 3 s latency, 80 requests/min per account, several organizations
(see ``scripts/bench.py``)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from loadkit import format_cpu, log

from benchmarks.common import Context, cpu_meter, start_system, stop_system
from einvoice.sandbox.server import MODES, SandboxServer
from einvoice.sandbox.state import AccountSpec

# ------------------------------------------------------------------------------------------
# B3: production shape
# ------------------------------------------------------------------------------------------


def b3_production(ctx: Context) -> dict[str, Any]:
    """B3: 10 organizations, own accounts, 3 s latency, 80 requests/min each, for whole minutes."""
    p = ctx.profile
    limit = 80
    accounts = [{"client_id": f"org{i}-client", "client_secret": f"org{i}-secret",
                 "username": f"org{i}@bench.einvoice.test", "password": f"org{i}-password"}
                for i in range(p.b3_orgs)]
    window = p.b3_minutes * 60
    windows_started = max(1, -(-int(window) // 60))  # the moving window refills once a minute
    bound = limit * p.b3_orgs * windows_started / (window / 60)
    db = ctx.stack.new_database("bench_b3")
    templates = db.seed_organizations(p.b3_orgs, secret_key=ctx.stack.secret_key,
                                      accounts=accounts)
    backlog = db.clone_invoices(templates, limit * (windows_started + 1))
    with db.connect() as conn:
        conn.execute("UPDATE factus_credentials SET api_version = %s", (ctx.api_version,))
    specs = [AccountSpec(**a, **MODES[ctx.api_version]) for a in accounts]
    with SandboxServer(latency_ms=p.b3_latency_ms, rate_limit_per_minute=limit,
                       accounts=specs) as sim:
        # Enough threads that the accounts, not the pool, are the limit: 80/min at 3 s is 4
        # requests in flight per account, and threads also sit in the limiter's waits.
        workers, _ = start_system(ctx, db, sim.base_url, 100,
                                  FACTUS_RATE_LIMIT_PER_MINUTE=str(limit))
        log(f"B3: {p.b3_orgs} organizations × {limit}/min, latency {p.b3_latency_ms} ms, "
            f"{len(backlog)} jobs of backlog, measuring {window:.0f} s")
        meter = cpu_meter(ctx, workers)
        meter.start()
        job_ids = db.insert_jobs(backlog)
        with db.connect() as conn:
            row = conn.execute("SELECT min(created_at) FROM electronic_invoicing_jobs "
                               "WHERE id = ANY(%s)", (job_ids,)).fetchone()
            assert row is not None
            t0 = row[0]
        end = time.monotonic() + window + 1.0
        while time.monotonic() < end:
            time.sleep(min(15.0, max(0.0, end - time.monotonic())))
            counts = db.status_counts(job_ids)
            log(f"B3: {counts.get('accepted', 0)} accepted so far")
        cpu = meter.stop()
        stats = sim.stats()
        stop_system(ctx)
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT organization_id, count(*) FILTER (WHERE status = 'accepted' AND "
            "processed_at <= %s + make_interval(secs => %s)) FROM electronic_invoicing_jobs "
            "WHERE id = ANY(%s) GROUP BY organization_id ORDER BY organization_id",
            (t0, window, job_ids)).fetchall()
    per_org = {int(r[0]): int(r[1]) / (window / 60) for r in rows}
    too_many = sum(codes.get("429", 0) for account in stats["accounts"].values()
                   for codes in account["requests"].values())
    where: Counter[str] = Counter()
    for account in stats["accounts"].values():
        for endpoint, codes in account["requests"].items():
            if codes.get("429"):
                where[endpoint] += codes["429"]
    if too_many:
        log(f"B3: 429 answers by endpoint: {dict(where)}")
    total = sum(per_org.values())
    per_org_bound = bound / p.b3_orgs
    starved = [org for org, rate in per_org.items() if rate < 0.9 * per_org_bound]
    result = {"per_minute": total, "bound": bound, "share": total / bound if bound else 0.0,
              "too_many": too_many, "per_org": per_org, "starved": starved, "cpu": cpu,
              "minutes": window / 60}
    log("B3: accepted per minute by organization: "
        + ", ".join(f"{org}: {rate:.1f}" for org, rate in per_org.items()))
    log(f"B3: CPU {format_cpu(cpu)}")
    return result


def b3_line(r: dict[str, Any]) -> str:
    """The B3 summary line."""
    ok = r["share"] >= 0.95 and r["too_many"] == 0 and not r["starved"]
    rates = list(r["per_org"].values()) or [0.0]
    return (f"B3 production shape: {r['per_minute']:.0f} accepted/min of {r['bound']:.0f} the "
            f"limit allows ({100 * r['share']:.1f} %) over {r['minutes']:g} min, "
            f"{r['too_many']} × 429, per organization {min(rates):.1f}–{max(rates):.1f}/min, "
            f"starved: {len(r['starved'])} [target ≥ 95 %, 0 × 429, none starved: "
            f"{'PASS' if ok else 'MISS'}]")
