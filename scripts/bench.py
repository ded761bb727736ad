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
  (:func:`einvoice.db.jobs.select_due_for_dispatch` with the default settings) timed 300 times,
  each committed as the real dispatcher commits (the picked jobs are then made due again,
  untimed), and its ``EXPLAIN ANALYZE`` plan printed.

Output: ``# ...`` progress and detail lines, then one summary line per scenario (``B1 ...`` to
``B6 ...``, each ending PASS or MISS against its target), then ``RATIO=`` (B1's ratio at 50
in flight). ``--quick`` runs every scenario with small numbers in well under a minute, to prove
the script works (its figures mean nothing). Exit status 0 when every scenario ran, 1 otherwise
(a missed target is reported, not an error).

Factus API version: ``--api v2`` (the default) or ``--api v1``. The workers speak that version
(``FACTUS_API_VERSION`` for the simulator's default account, which serves both; B3's own
accounts are registered in the simulator for that version only and their
``factus_credentials.api_version`` says it), and B1's bare loop POSTs to that version's
``/bills/validate``.

Usage::

    .venv/bin/python scripts/bench.py [--quick] [--only B1,B2] [--workers 2] [--soak 30]
                                      [--api v1|v2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadkit
from loadkit import (
    CeleryProcess,
    CpuMeter,
    Database,
    Stack,
    format_cpu,
    log,
    percentile,
    postgres_pid,
    simulator_pid,
)

from einvoice.sandbox.server import MODES, SandboxServer
from einvoice.sandbox.state import AccountSpec

PY_SPY = Path(sys.executable).parent / "py-spy"

#: B1, B2 and the soak measure the submission pipeline alone (claim, build, submit, record,
#: events): the simulator's rate limit is off and so, in effect, is the client's (shared) one,
#: and accepted documents schedule no PDF/XML archive (the archive follow-up, two downloads per
#: document on the ``reference`` queue, which these runs' workers do not take).
PIPELINE_ONLY = {"FACTUS_RATE_LIMIT_PER_MINUTE": "10000000", "FACTUS_RATE_LIMIT_PER_SECOND": "0",
                 "EINVOICE_ARCHIVE_DOCUMENTS": "false"}


@dataclass(frozen=True)
class Profile:
    """The sizes of one run (``full`` for ``make bench``, ``quick`` for the test suite)."""

    b1_invoices: int
    b1_warmup: int
    b2_rate: float
    b2_seconds: float
    b3_orgs: int
    b3_latency_ms: int
    b3_minutes: float
    b4_jobs: int
    b6_rows: int
    b6_iterations: int
    profile_seconds: float


FULL = Profile(b1_invoices=6000, b1_warmup=300, b2_rate=100.0, b2_seconds=60.0, b3_orgs=10,
               b3_latency_ms=3000, b3_minutes=3.0, b4_jobs=5000, b6_rows=1_000_000,
               b6_iterations=300, profile_seconds=10.0)
QUICK = Profile(b1_invoices=120, b1_warmup=20, b2_rate=20.0, b2_seconds=2.0, b3_orgs=2,
                b3_latency_ms=200, b3_minutes=0.1, b4_jobs=200, b6_rows=20_000,
                b6_iterations=20, profile_seconds=0.0)


@dataclass
class Context:
    """What every scenario gets: the stack, the run's sizes and the command-line choices."""

    stack: Stack
    profile: Profile
    processes: int
    quick: bool
    soak_minutes: float
    soak_rate: float
    queues: str
    api_version: str = "v2"


# ------------------------------------------------------------------------------------------
# Workers and measurements shared by the scenarios
# ------------------------------------------------------------------------------------------


def start_system(ctx: Context, db: Database, base_url: str, in_flight: int,
                 **env_extra: str) -> tuple[list[CeleryProcess], CeleryProcess]:
    """Start ``ctx.processes`` workers sharing ``in_flight`` threads, and beat."""
    concurrency = max(1, in_flight // ctx.processes)
    env = ctx.stack.worker_env(db, base_url, FACTUS_MAX_CONNECTIONS=str(max(concurrency, 10)),
                               FACTUS_API_VERSION=ctx.api_version, **env_extra)
    workers = ctx.stack.start_workers(env, db, processes=ctx.processes, concurrency=concurrency,
                                      queues=ctx.queues)
    beat = ctx.stack.start_beat(env)
    return workers, beat


def stop_system(ctx: Context) -> None:
    """Stop every worker and beat of the scenario, and empty Redis."""
    ctx.stack.stop_processes()
    ctx.stack.flush_redis()


def cpu_meter(ctx: Context, workers: list[CeleryProcess]) -> CpuMeter:
    """A CPU meter over the parts of the system."""
    return CpuMeter({
        "workers": lambda: [w.pid for w in workers if w.alive()],
        "simulator": lambda: [simulator_pid()],
        "postgres": lambda: [postgres_pid(ctx.stack)],
        "redis": lambda: [ctx.stack.services.redis.pid()],
        "driver": lambda: [-os.getpid()],
    })


class RssSampler:
    """Samples each worker's RSS every ``interval`` seconds in a thread; keeps the maximum."""

    def __init__(self, workers: list[CeleryProcess], interval: float = 0.5) -> None:
        self.workers = workers
        self.interval = interval
        self.max_rss: dict[str, int] = {w.name: 0 for w in workers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for worker in self.workers:
                self.max_rss[worker.name] = max(self.max_rss[worker.name], worker.rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class GilProfile:
    """``py-spy record --gil`` of one worker for a few seconds; summarised after.

    Sampling only the thread that holds the GIL tells what the process spends its one core on,
    and the share of samples against the sampling rate tells how busy that core is.
    """

    RATE = 100

    def __init__(self, pid: int, seconds: float, out: Path) -> None:
        self.seconds = seconds
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        if seconds > 0 and PY_SPY.exists():
            self.proc = subprocess.Popen(
                [str(PY_SPY), "record", "--gil", "--nonblocking", "-r", str(self.RATE), "-d",
                 str(int(seconds)), "-f", "raw", "-o", str(out), "-p", str(pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # Where a worker's GIL time goes, first match wins (frame names as py-spy prints them).
    CATEGORIES = (
        ("LISTEN dispatch", ("listen_for_new_jobs",)),
        ("claim+build", ("_claim",)),
        ("POST", ("_call_factus",)),
        ("record", ("_record",)),
        ("follow-ups", ("run_followup",)),
        ("task other", ("submit_job", "submit_invoice")),
    )

    def summary(self, top: int = 5) -> str | None:
        """``GIL held 72% of the time: claim+build 30%, ...; hottest frames: ...``, or None when
        py-spy did not run."""
        if self.proc is None:
            return None
        try:
            self.proc.wait(self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None
        if not self.out.exists():
            return None
        own: Counter[str] = Counter()
        parts: Counter[str] = Counter()
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [f.split(" (")[0] for f in stack.split(";")]
            own[frames[-1]] += n
            part = next((label for label, keys in self.CATEGORIES
                         if any(key in frame for frame in frames for key in keys)),
                        "Celery/kombu messaging")
            parts[part] += n
        if not total:
            return "GIL never sampled as held"
        held = 100.0 * total / (self.RATE * self.seconds)
        return (f"GIL held {held:.0f}% of the time: "
                + ", ".join(f"{label} {100 * n / total:.0f}%" for label, n in parts.most_common())
                + "; hottest frames: "
                + ", ".join(f"{f} {100 * n / total:.1f}%" for f, n in own.most_common(top)))


def cpu_ms_per_job(cpu: dict[str, float], part: str, seconds: float, jobs: int) -> float:
    """CPU milliseconds ``part`` spent per job, from its share of one core over ``seconds``."""
    return cpu.get(part, 0.0) / 100.0 * seconds * 1000 / jobs if jobs else float("nan")


def job_window(db: Database, job_ids: list[uuid.UUID]) -> tuple[int, float]:
    """(accepted count, seconds from the first ``created_at`` to the last ``processed_at``)."""
    with db.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'accepted'), "
            "extract(epoch FROM max(processed_at) - min(created_at)) "
            "FROM electronic_invoicing_jobs WHERE id = ANY(%s)", (job_ids,)).fetchone()
    assert row is not None
    return int(row[0]), float(row[1] or 0.0)


# ------------------------------------------------------------------------------------------
# The bare loops (the physical bound)
# ------------------------------------------------------------------------------------------


def password_token(base_url: str) -> str:
    """One access token of the simulator's default account (password grant, FACTUS_API.md §2)."""
    import httpx

    response = httpx.post(
        base_url + "/oauth/token",
        data={"grant_type": "password", **{k.lower(): v for k, v in {
            "client_id": loadkit.DEFAULT_FACTUS["FACTUS_CLIENT_ID"],
            "client_secret": loadkit.DEFAULT_FACTUS["FACTUS_CLIENT_SECRET"],
            "username": loadkit.DEFAULT_FACTUS["FACTUS_USERNAME"],
            "password": loadkit.DEFAULT_FACTUS["FACTUS_PASSWORD"]}.items()}},
        headers={"Accept": "application/json"}, timeout=30)
    response.raise_for_status()
    return str(response.json()["access_token"])


def baseline_bodies(db: Database, job_ids: list[uuid.UUID]) -> list[bytes]:
    """The payloads the workers sent for ``job_ids``, each with a new reference code, encoded."""
    with db.connect() as conn:
        rows = conn.execute("SELECT request_payload FROM electronic_invoicing_jobs "
                            "WHERE id = ANY(%s) AND request_payload IS NOT NULL",
                            (job_ids,)).fetchall()
    bodies = []
    for (payload,) in rows:
        payload = dict(payload)
        payload["reference_code"] = "BL" + str(payload["reference_code"])[2:]
        bodies.append(json.dumps(payload).encode())
    return bodies


def run_loop(kind: str, base_url: str, bodies: list[bytes], in_flight: int,
             api_version: str = "v2") -> tuple[int, float, dict[str, int]]:
    """POST every body to ``/<api_version>/bills/validate`` with ``in_flight`` concurrent
    requests, using ``kind`` (``httpx`` or ``aiohttp``). Returns (201 answers, elapsed seconds,
    other outcomes)."""
    token = password_token(base_url)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
               "Content-Type": "application/json"}
    url = f"{base_url}/{api_version}/bills/validate"
    errors: Counter[str] = Counter()
    ok = 0
    queue = iter(bodies)

    async def with_httpx() -> None:
        import httpx

        nonlocal ok
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:
            async def worker() -> None:
                nonlocal ok
                for body in queue:
                    try:
                        response = await http.post(url, content=body, headers=headers)
                    except httpx.HTTPError as exc:
                        errors[type(exc).__name__] += 1
                        continue
                    if response.status_code == 201:
                        ok += 1
                    else:
                        errors[str(response.status_code)] += 1
            await asyncio.gather(*(worker() for _ in range(in_flight)))

    async def with_aiohttp() -> None:
        import aiohttp

        nonlocal ok
        connector = aiohttp.TCPConnector(limit=in_flight)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            async def worker() -> None:
                nonlocal ok
                for body in queue:
                    try:
                        async with http.post(url, data=body, headers=headers) as response:
                            await response.read()
                            status = response.status
                    except aiohttp.ClientError as exc:
                        errors[type(exc).__name__] += 1
                        continue
                    if status == 201:
                        ok += 1
                    else:
                        errors[str(status)] += 1
            await asyncio.gather(*(worker() for _ in range(in_flight)))

    started = time.monotonic()
    asyncio.run(with_httpx() if kind == "httpx" else with_aiohttp())
    return ok, time.monotonic() - started, dict(errors)


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
    return f"B5 memory: {'; '.join(parts)} [target ≤ 150 MB, soak growth ≤ 10 %: " \
           f"{'PASS' if ok else 'MISS'}]"


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


# ------------------------------------------------------------------------------------------
# B4: producers
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


# ------------------------------------------------------------------------------------------
# B6: the dispatcher's query on a million rows
# ------------------------------------------------------------------------------------------


def b6_scale(ctx: Context) -> dict[str, Any]:
    """B6: fill ``electronic_invoicing_jobs`` with ``b6_rows`` rows, time the dispatcher's query."""
    from sqlalchemy import event
    from sqlalchemy import text as sql_text

    from einvoice.db import jobs as job_repo
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
                ids = job_repo.select_due_for_dispatch(
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


SCENARIOS = ("B1", "B2", "B3", "B4", "B6")


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
                        help="comma-separated scenarios (B1,B2,B3,B4,B6; B5 comes with B1)")
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
        ("B6", b6_scale)]
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
    }
    print()
    for name in ("B1", "B2", "B3", "B4", "B5", "B6"):
        if name in results or (name == "B5" and ("B1" in results or "soak" in results)):
            print(lines[name]())
        elif name in failed:
            print(f"{name} did not complete (see the traceback above)")
    if "B1" in results:
        print(f"RATIO={results['B1']['50']['ratio']:.3f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
