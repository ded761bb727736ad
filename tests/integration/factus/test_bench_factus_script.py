"""``scripts/bench_factus.py`` still runs and prints its figures (a short run, so it never rots)."""

from __future__ import annotations

import re
import subprocess
import sys

from einvoice.devservices import project_root


def test_the_benchmark_prints_both_rates_and_their_ratio() -> None:
    # When the benchmark runs briefly with a few requests in flight
    run = subprocess.run(
        [
            sys.executable,
            "scripts/bench_factus.py",
            "--seconds",
            "1",
            "--concurrency",
            "5",
            "--latency-ms",
            "20",
        ],
        check=False,
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    # Then it succeeds and prints both rates, their ratio and no errors
    assert run.returncode == 0, run.stdout + run.stderr
    figures = dict(re.findall(r"^([A-Z_]+)=(.+)$", run.stdout, re.MULTILINE))
    baseline, client, ratio = (float(figures[k]) for k in ("BASELINE_RPS", "CLIENT_RPS", "RATIO"))
    assert baseline > 0
    assert client > 0
    assert abs(ratio - client / baseline) <= 0.05 * ratio  # printed figures are rounded
    assert figures["BASELINE_ERRORS"] == "{}"
    assert figures["CLIENT_ERRORS"] == "{}"
