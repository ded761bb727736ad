"""``scripts/bench.py --quick`` and ``scripts/chaos.py --quick`` still run end to end.

Each script starts its own PostgreSQL, Redis, simulator and Celery processes, so these tests run
them as subprocesses exactly as ``make bench`` / ``make chaos`` would, only small. They assert
that the figures are printed (and, for chaos, that every correctness target is met); never how
fast anything was: a shared 2-core machine makes timing assertions flaky and meaningless.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from einvoice.devservices import project_root

pytestmark = pytest.mark.slow

SCENARIO_LINE = re.compile(r"^(B[1-6]) .+\[target .+: (PASS|MISS)\]$", re.MULTILINE)


def run_script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``python scripts/<args>`` from the project root and capture its output."""
    return subprocess.run([sys.executable, *args], cwd=project_root(), capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.timeout(600)
def test_bench_quick_prints_one_line_per_scenario_and_the_ratio() -> None:
    # Given nothing running, when the quick benchmark runs
    run = run_script("scripts/bench.py", "--quick", timeout=580)

    # Then it exits 0 and prints a judged summary line for each of B1 to B6
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    scenarios = {match.group(1) for match in SCENARIO_LINE.finditer(run.stdout)}
    assert scenarios == {"B1", "B2", "B3", "B4", "B5", "B6"}, run.stdout[-3000:]

    # And the throughput figures and the ratio are real measurements, not placeholders
    b1 = re.search(r"^B1 throughput: 50 in flight: system ([\d.]+)/s vs httpx loop ([\d.]+)/s, "
                   r"ratio ([\d.]+)", run.stdout, re.MULTILINE)
    assert b1 is not None, run.stdout[-3000:]
    system, loop, ratio = (float(g) for g in b1.groups())
    assert system > 0
    assert loop > 0
    printed = re.search(r"^RATIO=([\d.]+)$", run.stdout, re.MULTILINE)
    assert printed is not None
    assert float(printed.group(1)) == pytest.approx(ratio, abs=1e-3)
    assert ratio == pytest.approx(system / loop, rel=0.01)

    # And the dispatcher's query plan was printed with the index it uses
    assert re.search(r"^#\s+.*Index Scan.* on ix_ei_jobs_due", run.stdout, re.MULTILINE), \
        run.stdout[-3000:]


@pytest.mark.timeout(600)
def test_chaos_quick_loses_nothing_and_exits_zero() -> None:
    # Given nothing running, when the quick chaos run kills workers and restarts Redis and
    # PostgreSQL while jobs are in flight
    run = run_script("scripts/chaos.py", "--quick", timeout=580)

    # Then every fault happened
    output = run.stdout + run.stderr
    faults = re.search(r"^CHAOS \d+ invoices, (\d+) worker kills, faults: (.+)$", run.stdout,
                       re.MULTILINE)
    assert faults is not None, output[-4000:]
    assert int(faults.group(1)) == 2
    assert "Redis stopped and restarted" in faults.group(2)
    assert "PostgreSQL stopped with -m immediate" in faults.group(2)

    # And every correctness target was met: nothing lost, nothing validated twice, every wrong
    # invoice rejected with its rule code
    figures = dict(re.findall(r"^CHAOS ([^:\n]+): (.+) \[(?:PASS|MISS[^\]]*|not judged[^\]]*)\]$",
                              run.stdout, re.MULTILINE))
    assert figures["jobs lost (every job final)"].startswith("0 "), figures
    assert figures["documents validated twice per reference code"] == "0"
    assert figures["accepted without CUFE"] == "0"
    wrong_ok, wrong_total = figures["wrong invoices rejected with their rule code"].split("/")
    assert int(wrong_ok) == int(wrong_total) > 0
    assert "CHAOS_RESULT=PASS" in run.stdout, output[-4000:]
    assert run.returncode == 0, output[-4000:]
