"""``make demo`` (``einvoice demo``) never runs against the production Factus.

The demo sends a few hundred synthetic invoices. Against production each would become a legal DIAN
document and use up a real number of the company's numbering range, so the demo stops before it
starts anything, with one line that names the variable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from einvoice.demo import refuse_production
from einvoice.errors import ConfigError


def demo_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any Factus or einvoice setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("FACTUS_", "EINVOICE_"))}
    env.update(extra)
    return env


def run_demo_cli(env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """``einvoice demo`` as an operator types it (``make demo`` runs exactly this command)."""
    started = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).with_name("einvoice")), "demo"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60, check=False,
    )
    return result, time.monotonic() - started


def test_einvoice_demo_with_factus_environment_production_stops_with_one_line(
    tmp_path: Path,
) -> None:
    # Given an operator's shell that points einvoice at production
    env = demo_environment(FACTUS_ENVIRONMENT="production")

    # When they run the demo
    result, elapsed = run_demo_cli(env, tmp_path)

    # Then it exits with the configuration status (3) and one line on stderr naming the variable
    # and its value
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "FACTUS_ENVIRONMENT=production" in lines[0]
    # And it started nothing: no stage of the demo printed a line, and it took no server's time
    assert "starting PostgreSQL" not in result.stdout
    assert result.stdout.strip() == ""
    assert elapsed < 30


@pytest.mark.parametrize(
    "environ",
    [
        {"FACTUS_ENVIRONMENT": "production"},
        {"FACTUS_ENVIRONMENT": " Production "},
        # pydantic-settings reads variable names case-insensitively
        {"factus_environment": "PRODUCTION"},
        {"FACTUS_BASE_URL": "https://api.factus.com.co/"},
        {"FACTUS_ENVIRONMENT": "sandbox", "FACTUS_BASE_URL": "https://API.factus.com.co"},
    ],
)
def test_the_demo_refuses_every_spelling_of_production(environ: dict[str, str]) -> None:
    # Given an environment that would make the demo's workers talk to the production Factus
    # When the demo checks it
    with pytest.raises(ConfigError) as refused:
        refuse_production(environ, env_files=[])

    # Then it refuses, naming the variable
    assert refused.value.reason == "demo_refuses_production"
    assert ("FACTUS_ENVIRONMENT" in str(refused.value)) or ("FACTUS_BASE_URL" in str(refused.value))


def test_a_dotenv_file_saying_production_is_refused_unless_the_environment_overrides_it(
    tmp_path: Path,
) -> None:
    # Given a checkout's .env that points at production (the workers read it from their folder)
    env_file = tmp_path / ".env"
    env_file.write_text("FACTUS_ENVIRONMENT=production\n")

    # When nothing in the environment overrides it, the demo refuses
    with pytest.raises(ConfigError, match="FACTUS_ENVIRONMENT=production"):
        refuse_production({}, env_files=[env_file])

    # And when the environment says sandbox (it wins over .env), the demo may run
    refuse_production({"FACTUS_ENVIRONMENT": "sandbox"}, env_files=[env_file])


def test_the_sandbox_and_the_simulator_are_allowed() -> None:
    # Given the environments the demo is made for, nothing is refused
    refuse_production({}, env_files=[])
    refuse_production({"FACTUS_ENVIRONMENT": "sandbox"}, env_files=[])
    refuse_production(
        {"FACTUS_ENVIRONMENT": "sandbox", "FACTUS_BASE_URL": "https://api-sandbox.factus.com.co"},
        env_files=[],
    )
    refuse_production({"FACTUS_BASE_URL": "http://127.0.0.1:8787"}, env_files=[])
