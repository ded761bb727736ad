"""``make bench``: does einvoice keep up? Throughput, latency, limits, producers, memory, scale.

Everything runs on this machine: PostgreSQL and Redis (:mod:`einvoice.devservices`, durable
settings), the Factus simulator (:mod:`einvoice.sandbox`), Celery workers with the threads pool
and beat as subprocesses, and this driver. Scenarios:

* **B1 throughput ratio.** Simulator at 200 ms latency, faults and rate limit off. The system:
  plain SQL inserts of N jobs in one transaction, timed from their ``created_at`` to the last
  ``processed_at`` (accepted, committed), with 50 worker threads in all, and no PDF/XML archive
  scheduled (:data:`PIPELINE_ONLY`). The bound: a bare async
  httpx loop POSTing the very payloads the workers sent (read back from ``request_payload``, new
  reference codes) with 50 in flight, against the same simulator in the same run. Then again at 100
  in flight against an aiohttp loop (httpx collapses above ~50, encode/httpx#3215). What limits
  the system is shown as CPU per part, the share of time each worker holds its GIL and its hottest
  frames (py-spy), and the median time of each stage of a job.
* **B2 latency.** Open-loop arrivals: one plain SQL insert every 10 ms for 60 s whatever the
  completions; insert-to-accepted percentiles from the rows' ``created_at``/``processed_at``.
* **B3 production shape.** 3 s simulator latency, 80 requests/min per account enforced by the
  simulator, 10 organizations each with its own ``factus_credentials`` row and simulator account,
  a backlog larger than the limit allows; accepted per minute over a whole number of minutes vs
  the bound (80 × organizations × minutes, the moving window's most), 429s received, per
  organization.
* **B4 producers.** ``enqueue_invoice`` and plain SQL inserts, one job per transaction from several
  producer threads and in batches of 100 (and ``enqueue_invoices``, the bulk call, 100 invoices
  per call), and ``enqueue_invoice`` with a publisher (the call publishes after the commit):
  jobs/s committed, and until every wake-up message is in the Redis queue (published by the
  workers' ``LISTEN`` listener, or by the call given a publisher; the worker used here consumes
  another queue, so messages stay counted). The target is checked on one job per transaction.
* **B5 memory.** Worker RSS (psutil) sampled through B1's 50-in-flight run; ``--soak MINUTES``
  runs open-loop load for that long and reports the growth from the first minute to the end.
* **B6 scale.** 1,000,000 job rows (most final); the dispatcher's query
  (:func:`einvoice.db.dispatcher.select_due_for_dispatch` with the default settings) timed 300
  times, each committed as the real dispatcher commits (the picked jobs are then made due again,
  untimed), and its ``EXPLAIN ANALYZE`` plan printed.
* **B7 HTTP and webhooks.** ``POST /api/invoices/{id}/jobs`` per second on one API process
  (16 keep-alive connections) as a ratio to ``enqueue_invoice`` (4 threads) in the same run (target
  ≥ 0.5); its p50/p99 at 200 requests/s; then, at B2's arrival rate with 200 ms of Factus
  latency, each ``job.accepted`` webhook's delay from the acceptance to the verified delivery.

Output: ``# ...`` progress and detail lines, then one summary line per scenario (``B1 ...`` to
``B7 ...``, each ending PASS or MISS against its target), then ``RATIO=`` (B1's ratio at 50
in flight). ``--quick`` runs every scenario with small numbers in well under a minute, to prove
the script works (its figures mean nothing). Exit status 0 when every scenario ran, 1 otherwise
(a missed target is reported, not an error).

Factus API version: ``--api v2`` (the default) or ``--api v1``. The workers speak that version
(``FACTUS_API_VERSION`` for the simulator's default account, which serves both; B3's own
accounts are registered in the simulator for that version only and their
``factus_credentials.api_version`` says it), and B1's bare loop POSTs to that version's
``/bills/validate``.

Each scenario lives in its module of ``scripts/benchmarks/`` (``b1_throughput.py`` ...
``b6_scale.py``, with what they share in ``common.py`` and the bare loops in ``baseline.py``);
this file parses the flags, runs the scenarios asked for and prints the summary.

Usage::

    .venv/bin/python scripts/bench.py [--quick] [--only B1,B2] [--workers 2] [--soak 30]
                                      [--api v1|v2]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadkit
from benchmarks.b1_throughput import b1_line, b1_throughput, b5_line
from benchmarks.b2_latency import b2_latency, b2_line, soak
from benchmarks.b3_production import b3_line, b3_production
from benchmarks.b4_producers import b4_line, b4_producers
from benchmarks.b6_scale import b6_line, b6_scale
from benchmarks.b7_http import b7_http, b7_line
from benchmarks.common import FULL, QUICK, Context, stop_system
from loadkit import Stack, log

# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------


def reference_loop_seconds(iterations: int = 10_000_000) -> float:
    """Seconds of CPU a fixed pure-Python loop takes now: how fast this (virtual) machine runs at
    the moment. Runs on a shared host vary with the neighbours' load; printing this beside the
    figures tells a slow hour from a slower system (same code, same loop, another time)."""
    started = time.process_time()
    total = 0
    for i in range(iterations):
        total += i
    return time.process_time() - started


def machine_line(stack: Stack) -> str:
    """Date, CPU, cores, memory and the versions the figures were measured with."""
    import celery
    import httpx
    import psutil

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pg = loadkit.psycopg.connect(stack.services.postgres.admin_url())
    with pg:
        version = pg.execute("SHOW server_version").fetchone()
    redis_info = loadkit.redis.Redis.from_url(stack.redis_url).info("server")
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: {cpu}, "
            f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
            f"Python {platform.python_version()}, PostgreSQL {version[0] if version else '?'}, "
            f"Redis {redis_info.get('redis_version')}, Celery {celery.__version__}, "
            f"httpx {httpx.__version__}; reference loop (10M additions) "
            f"{reference_loop_seconds():.2f} s of CPU")


SCENARIOS = ("B1", "B2", "B3", "B4", "B6", "B7")


def minutes(text: str) -> float:
    """``30``, ``30m``, ``30min`` or ``1.5m`` → minutes as a float (the ``--soak`` argument).

    Raises:
        argparse.ArgumentTypeError: not a positive number of minutes.
    """
    try:
        value = float(text.strip().lower().removesuffix("min").removesuffix("m"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("minutes must not be negative")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios and print their summary lines; returns the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small numbers, a few seconds each")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help="comma-separated scenarios (B1,B2,B3,B4,B6,B7; B5 comes with B1)")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes sharing the threads (default 2, one per core)")
    parser.add_argument("--soak", type=minutes, default=0.0, metavar="MINUTES",
                        help="B5 soak: run open-loop load this long (30 or 30m) and report RSS "
                        "growth")
    parser.add_argument("--soak-rate", type=float, default=100.0, help="soak arrivals per second")
    parser.add_argument("--queues", default="submission,maintenance",
                        help="queues the measured workers consume (default: not 'reference', so "
                        "the follow-ups of accepted jobs wait instead of sharing the threads and "
                        "the accounts' request quota)")
    parser.add_argument("--keep", action="store_true", help="keep logs and data in .einvoice/")
    parser.add_argument("--api", choices=("v1", "v2"), default="v2",
                        help="Factus API version the workers speak (default v2)")
    args = parser.parse_args(argv)
    wanted = [s.strip().upper() for s in args.only.split(",") if s.strip()]

    stack = Stack("bench", keep=args.keep)
    ctx = Context(stack=stack, profile=QUICK if args.quick else FULL, processes=args.workers,
                  quick=args.quick, soak_minutes=args.soak, soak_rate=args.soak_rate,
                  queues=args.queues, api_version=args.api)
    results: dict[str, Any] = {}
    failed: list[str] = []
    steps: list[tuple[str, Callable[[Context], Any]]] = [
        ("B1", b1_throughput), ("B2", b2_latency), ("B3", b3_production), ("B4", b4_producers),
        ("B6", b6_scale), ("B7", b7_http)]
    try:
        log("starting PostgreSQL and Redis")
        stack.up()
        log(machine_line(stack))
        log(f"workers: {args.workers} processes, threads pool, threads split between them, "
            f"queues {args.queues}")
        for name, run in steps:
            if name not in wanted:
                continue
            log(f"--- {name}")
            try:
                results[name] = run(ctx)
            except Exception:  # noqa: BLE001 - report the scenario as broken, run the others
                failed.append(name)
                traceback.print_exc()
                stop_system(ctx)
        if args.soak > 0:
            log("--- B5 soak")
            try:
                results["soak"] = soak(ctx)
            except Exception:  # noqa: BLE001
                failed.append("soak")
                traceback.print_exc()
    finally:
        stack.down()

    lines = {
        "B1": lambda: b1_line(results["B1"]),
        "B2": lambda: b2_line(results["B2"]),
        "B3": lambda: b3_line(results["B3"]),
        "B4": lambda: b4_line(results["B4"]),
        "B5": lambda: b5_line(results.get("B1"), results.get("soak")),
        "B6": lambda: b6_line(results["B6"]),
        "B7": lambda: b7_line(results["B7"]),
    }
    print()
    for name in ("B1", "B2", "B3", "B4", "B5", "B6", "B7"):
        if name in results or (name == "B5" and ("B1" in results or "soak" in results)):
            print(lines[name]())
        elif name in failed:
            print(f"{name} did not complete (see the traceback above)")
    if "B1" in results:
        print(f"RATIO={results['B1']['50']['ratio']:.3f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
