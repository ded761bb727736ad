"""celeryconfig.py takes every tunable value from ``einvoice.settings.Settings``.

Each scenario imports celeryconfig in a fresh interpreter (it reads the settings at import), with
the environment an operator would set.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import celeryconfig
from einvoice.devservices import project_root

PROBE = """
import json, celeryconfig as c
print(json.dumps({
    "broker_url": c.broker_url,
    "visibility_timeout": c.broker_transport_options["visibility_timeout"],
    "dispatch_every": c.beat_schedule["dispatch-due-jobs"]["schedule"],
    "followups_every": c.beat_schedule["dispatch-due-followups"]["schedule"],
    "task_events": c.worker_send_task_events,
    "sent_event": c.task_send_sent_event,
}))
"""


def _celeryconfig(**values: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("EINVOICE_", "CELERY_", "REDIS_URL"))}
    env.update(values)
    return subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=project_root(),
                          capture_output=True, text=True, timeout=60, check=False)


def test_defaults_come_from_settings() -> None:
    result = _celeryconfig(REDIS_URL="redis://cache:6379/3")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "broker_url": "redis://cache:6379/3", "visibility_timeout": 300, "dispatch_every": 2.0,
        "followups_every": 2.0, "task_events": False, "sent_event": False}


def test_the_operators_values_reach_celery() -> None:
    result = _celeryconfig(CELERY_BROKER_URL="redis://broker:6380/1",
                           EINVOICE_VISIBILITY_TIMEOUT="45", EINVOICE_DISPATCH_INTERVAL="0.5",
                           EINVOICE_TASK_EVENTS="yes")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "broker_url": "redis://broker:6380/1", "visibility_timeout": 45, "dispatch_every": 0.5,
        "followups_every": 0.5, "task_events": True, "sent_event": True}


@pytest.mark.parametrize(
    ("variable", "value"),
    [("EINVOICE_VISIBILITY_TIMEOUT", "5m"), ("EINVOICE_VISIBILITY_TIMEOUT", "0"),
     ("EINVOICE_DISPATCH_INTERVAL", "-1"), ("EINVOICE_TASK_EVENTS", "sometimes")],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(variable: str, value: str) -> None:
    # Before, celeryconfig parsed these itself: "5m" was a ValueError traceback, "sometimes"
    # silently meant off, and 0 or -1 reached Celery
    result = _celeryconfig(**{variable: value})

    assert result.returncode != 0
    assert f"ConfigError: {variable}: " in result.stderr


def test_celeryconfig_reads_no_variable_itself() -> None:
    # One place decides each value: no os.environ / os.getenv in celeryconfig.py
    tree = ast.parse(Path(celeryconfig.__file__).read_text())
    names = {ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not {"os.environ", "os.getenv"} & names
