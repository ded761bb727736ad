"""What every benchmark scenario shares: the run's sizes, the context, starting and stopping
the measured workers, CPU, memory and GIL measurements."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from loadkit import CeleryProcess, CpuMeter, Database, Stack, postgres_pid, simulator_pid

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
    b7_seconds: float


FULL = Profile(b1_invoices=6000, b1_warmup=300, b2_rate=100.0, b2_seconds=60.0, b3_orgs=10,
               b3_latency_ms=3000, b3_minutes=3.0, b4_jobs=5000, b6_rows=1_000_000,
               b6_iterations=300, profile_seconds=10.0, b7_seconds=20.0)
QUICK = Profile(b1_invoices=120, b1_warmup=20, b2_rate=20.0, b2_seconds=2.0, b3_orgs=2,
                b3_latency_ms=200, b3_minutes=0.1, b4_jobs=200, b6_rows=20_000,
                b6_iterations=20, profile_seconds=0.0, b7_seconds=1.0)


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
        ("claim+build", ("_claim", "claim_job")),
        ("POST", ("_call_factus",)),
        ("record", ("_record", "record_outcome")),
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
