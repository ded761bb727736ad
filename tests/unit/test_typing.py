"""``einvoice/`` type-checks under ``mypy --strict`` (the ``[tool.mypy]`` of ``pyproject.toml``).

The same check as ``make lint``, run by the suite so that CI keeps it: a wrong attribute or a
version string that is not an ``ApiVersion`` fails here before it fails a worker.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_product_type_checks_strictly(tmp_path: Path) -> None:
    # Given the project's mypy configuration, with a fresh cache
    # When mypy checks einvoice/
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    # Then it finds nothing
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
