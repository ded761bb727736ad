"""The simulator's command line and the option → flag mapping of ``SandboxServer``."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from einvoice.sandbox.cli import app
from einvoice.sandbox.server import CLI_FLAGS, FAULT_FIELDS, SandboxServerError, cli_arguments


def test_every_fault_setting_has_a_cli_flag():
    assert set(CLI_FLAGS) == set(FAULT_FIELDS)


def test_options_become_flags_and_a_disabled_rate_limit_becomes_zero():
    arguments = cli_arguments(
        {"error_503": 0.25, "rate_limit_per_minute": None, "seed": None, "latency_ms": 200}
    )

    assert arguments == ["--fault-503", "0.25", "--rate-limit", "0", "--latency-ms", "200"]


def test_an_unknown_option_is_refused_before_anything_starts():
    with pytest.raises(SandboxServerError, match="unknown sandbox option"):
        cli_arguments({"error_404": 1.0})


def test_serve_has_the_flags_the_team_uses_and_every_flag_sandbox_server_passes():
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    flags = {opt for param in command.params for opt in param.opts}

    assert {
        "--host",
        "--port",
        "--latency-ms",
        "--latency-jitter-ms",
        "--fault-500",
        "--fault-503",
        "--fault-timeout",
        "--fault-429",
        "--fault-dian-rejection",
        "--fault-dian-slow",
        "--rate-limit",
        "--token-expires-in",
        "--seed",
    } <= flags
    assert set(CLI_FLAGS.values()) <= flags
    assert CliRunner().invoke(app, ["serve", "--help"]).exit_code == 0


def test_a_malformed_account_flag_is_a_usage_error():
    result = CliRunner().invoke(app, ["serve", "--account", "only:three:parts"])

    assert result.exit_code != 0
