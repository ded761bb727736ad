"""B6 scale: the dispatcher's query on a million job rows (see ``scripts/bench.py``)."""

from __future__ import annotations

import time
from typing import Any

from loadkit import log, percentile

from benchmarks.common import Context

# ------------------------------------------------------------------------------------------
# B6: the dispatcher's query on a million rows
# ------------------------------------------------------------------------------------------


def b6_scale(ctx: Context) -> dict[str, Any]:
    """B6: fill ``electronic_invoicing_jobs`` with ``b6_rows`` rows, time the dispatcher's query."""
    from sqlalchemy import event
    from sqlalchemy import text as sql_text

    from einvoice.db import dispatcher as dispatch_repo
    from einvoice.settings import load_settings

    p = ctx.profile
    db = ctx.stack.new_database("bench_b6")
    log(f"B6: inserting {p.b6_rows:,} job rows")
    chunk = 200_000
    with db.connect() as conn:
        # Shares per 10,000 rows: 9,720 accepted, 100 rejected, 100 failed (final, with their
        # processed_at); 10 pending and due, never dispatched (fresh plain SQL inserts); 40 pending
        # waiting for a retry; 20 sent (DIAN slow, re-check later); 10 processing (leased,
        # dispatched a while ago). Organizations 1-50 spread evenly over every status. Accepted
        # rows carry a CUFE-sized value, as real ones do.
        for start in range(0, p.b6_rows, chunk):
            conn.execute(
                """
                INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, document_type,
                    provider, status, attempt_count, next_retry_at, created_at, updated_at,
                    processed_at, dispatched_at, cufe, lease_expires_at)
                SELECT 1 + ((g / 10000) + g) %% 50, gen_random_uuid(), 'invoice', 'factus',
                       s.status, 1,
                       CASE s.status
                            WHEN 'pending' THEN CASE WHEN g %% 10000 < 10
                                                     THEN now() - interval '1 second'
                                                     ELSE now() + interval '5 minutes' END
                            WHEN 'sent' THEN now() + interval '10 minutes'
                            ELSE t END,
                       t, t,
                       CASE WHEN s.status IN ('accepted', 'rejected', 'failed') THEN t END,
                       CASE WHEN s.status = 'processing' THEN now() - interval '30 seconds' END,
                       CASE WHEN s.status = 'accepted' THEN md5(g::text) || md5((g + 1)::text)
                            || md5((g + 2)::text) END,
                       CASE WHEN s.status = 'processing' THEN now() + interval '90 seconds' END
                  FROM generate_series(%s::bigint, %s::bigint) g,
                       LATERAL (SELECT now() - make_interval(secs => (%s - g) * 3) AS t) tt,
                       LATERAL (SELECT CASE
                            WHEN g %% 10000 < 50 THEN 'pending'
                            WHEN g %% 10000 < 70 THEN 'sent'
                            WHEN g %% 10000 < 80 THEN 'processing'
                            WHEN g %% 10000 < 180 THEN 'rejected'
                            WHEN g %% 10000 < 280 THEN 'failed'
                            ELSE 'accepted' END AS status) s
                """, (start, min(start + chunk, p.b6_rows) - 1, p.b6_rows))
            log(f"B6: {min(start + chunk, p.b6_rows):,} rows")
        conn.execute("VACUUM ANALYZE electronic_invoicing_jobs")
        total = conn.execute("SELECT count(*) FROM electronic_invoicing_jobs").fetchone()
        counts = dict(conn.execute("SELECT status, count(*) FROM electronic_invoicing_jobs "
                                   "GROUP BY status").fetchall())
    settings = load_settings()
    captured: list[tuple[str, Any]] = []
    timings: list[float] = []
    started_at: list[float] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        started_at.append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        elapsed = (time.perf_counter() - started_at.pop()) * 1000
        if "SKIP LOCKED" in statement:
            timings.append(elapsed)
            if not captured:
                captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    whole: list[float] = []
    picked = 0
    try:
        for _ in range(p.b6_iterations):
            with db.factory() as session:
                began = time.perf_counter()
                ids = dispatch_repo.select_due_for_dispatch(
                    session, limit=settings.einvoice_dispatch_batch,
                    per_organization=settings.einvoice_org_dispatch_share,
                    redispatch_seconds=settings.einvoice_redispatch_seconds)
                whole.append((time.perf_counter() - began) * 1000)
                picked = len(ids)
                # Committed, as the real dispatcher does (a rollback would also undo psycopg's
                # PREPARE of the statement, so every round would pay its planning again); then,
                # untimed, the picked jobs are made due again so every round sees the same rows.
                session.commit()
                session.execute(sql_text(
                    "UPDATE electronic_invoicing_jobs SET dispatched_at = NULL "
                    "WHERE id = ANY(:ids)"), {"ids": ids})
                session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)
    statement, parameters = captured[0]
    with db.engine.connect() as conn:
        plan = [r[0] for r in conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)]
        conn.rollback()
    log(f"B6: {int(total[0]) if total else 0:,} rows {counts}; each round picks {picked} due jobs")
    log("B6: plan of the dispatcher's query:")
    for line in plan:
        print(f"#   {line}")
    index_names = sorted({word for line in plan for word in line.replace(",", " ").split()
                          if word.startswith(("ix_ei_", "ux_ei_"))})
    seq_scan = any("Seq Scan on electronic_invoicing_jobs" in line for line in plan)
    return {"rows": int(total[0]) if total else 0, "p50": percentile(timings, 50),
            "p99": percentile(timings, 99), "whole_p99": percentile(whole, 99),
            "indexes": index_names, "seq_scan": seq_scan, "picked": picked}


def b6_line(r: dict[str, Any]) -> str:
    """The B6 summary line."""
    ok = r["p99"] <= 5.0 and bool(r["indexes"]) and not r["seq_scan"]
    return (f"B6 scale: dispatcher query on {r['rows']:,} rows: p50 {r['p50']:.2f} ms, p99 "
            f"{r['p99']:.2f} ms (whole dispatch transaction p99 {r['whole_p99']:.2f} ms, "
            f"{r['picked']} jobs picked), indexes {', '.join(r['indexes']) or 'none'}"
            f"{', a sequential scan of the jobs table' if r['seq_scan'] else ''} "
            f"[target ≤ 5 ms p99 with an index: {'PASS' if ok else 'MISS'}]")
