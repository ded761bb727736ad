"""Start errors that are the user's: one line on stderr and an exit status that says which.

The real ``einvoice`` console script and the real ``celery -A workers`` run as subprocesses, as an
operator types them. The statuses are the table of :mod:`einvoice.cli`'s docstring: 2 usage,
3 configuration, 4 database, 5 Redis; a worker refused at start exits 78 (``EX_CONFIG``).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.devservices import DevServices, free_port, project_root
from tests.fixtures.services import create_database, drop_database
from tests.integration.pipeline.conftest import seed_invoice, seed_organization

EINVOICE = str(Path(sys.executable).with_name("einvoice"))


def _env(**values: str) -> dict[str, str]:
    """This process's environment without any einvoice setting, plus ``values``."""
    names = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "FACTUS_", "EINVOICE_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(names)}
    env.update(EINVOICE_SECRET_KEY=Fernet.generate_key().decode(), **values)
    return env


def _einvoice(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EINVOICE, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def _lines(stream: str) -> list[str]:
    return [line for line in stream.splitlines() if line.strip()]


def test_a_database_that_cannot_be_reached_is_one_line_and_status_4(tmp_path: Path) -> None:
    # Given DATABASE_URL pointing at a port where nothing listens, with a password in it
    port = free_port()
    env = _env(DATABASE_URL=f"postgresql://ops:Sup3rSecret@127.0.0.1:{port}/erp")

    # When the operator asks for the job counts
    result = _einvoice(env, "jobs", "status", cwd=tmp_path)

    # Then one line names the variable and the refused port, and the status is 4
    assert result.returncode == 4, result.stderr[-2000:]
    [line] = _lines(result.stderr)
    assert line.startswith("error: the database (DATABASE_URL) cannot be reached")
    assert str(port) in line
    assert "Connection refused" in line
    # And neither a traceback nor the password is shown
    assert "Traceback" not in result.stderr
    assert "Sup3rSecret" not in result.stderr


def test_a_database_without_the_schema_says_to_run_db_upgrade(
    services: DevServices, tmp_path: Path
) -> None:
    # Given a database that exists but was never migrated
    name, url = create_database(services)
    try:
        # When the operator lists jobs
        result = _einvoice(_env(DATABASE_URL=url), "jobs", "list", cwd=tmp_path)
    finally:
        drop_database(services, name)

    # Then one line tells them to migrate, status 4
    assert result.returncode == 4, result.stderr[-2000:]
    [line] = _lines(result.stderr)
    assert "no einvoice schema" in line
    assert "einvoice db upgrade" in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FACTUS_RATE_LIMIT_PER_MINUTE", "lots"),
        # A Celery knob: read through Settings, like every other variable
        ("EINVOICE_VISIBILITY_TIMEOUT", "soon"),
        ("EINVOICE_TASK_EVENTS", "maybe"),
        ("DATABASE_URL", "mysql://u:p@db/erp"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it_and_status_3(
    variable: str, value: str, tmp_path: Path
) -> None:
    # Given one malformed variable
    env = _env(**{"DATABASE_URL": f"postgresql://u:p@127.0.0.1:{free_port()}/erp",
                  variable: value})

    # When any command that reads the settings runs
    result = _einvoice(env, "jobs", "status", cwd=tmp_path)

    # Then it stops before touching anything, with one line naming the variable, status 3
    assert result.returncode == 3, result.stderr[-2000:]
    [line] = _lines(result.stderr)
    assert line.startswith(f"error: {variable}: ")
    assert "Traceback" not in result.stderr


def test_redis_that_cannot_be_reached_is_one_line_and_status_5(
    db_url: str, session: Session, tmp_path: Path
) -> None:
    # Given a failed job, and a broker URL where nothing listens
    seed_organization(session)
    invoice_id = seed_invoice(session)
    job_id = session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, status, attempt_count,"
        " error_code) VALUES (1, :i, 'failed', 5, 'server_error') RETURNING id"),
        {"i": invoice_id}).scalar_one()
    session.commit()
    broker = f"redis://127.0.0.1:{free_port()}/0"
    env = _env(DATABASE_URL=db_url, REDIS_URL=broker, CELERY_BROKER_URL=broker)

    # When the operator retries it
    result = _einvoice(env, "jobs", "retry", str(job_id), cwd=tmp_path)

    # Then one line says Redis cannot be reached, status 5
    assert result.returncode == 5, result.stderr[-2000:]
    [line] = _lines(result.stderr)
    assert line.startswith("error: Redis (REDIS_URL / CELERY_BROKER_URL) cannot be reached")
    # And the retry itself is recorded: the job waits as pending for beat's dispatcher
    session.expire_all()
    status = session.execute(text("SELECT status FROM electronic_invoicing_jobs WHERE id = :j"),
                             {"j": job_id}).scalar_one()
    assert status == "pending"


@pytest.mark.parametrize("how", ["--debug", "EINVOICE_DEBUG=1"])
def test_debug_shows_the_traceback_instead_of_the_line(how: str, tmp_path: Path) -> None:
    # Given an unreachable database
    env = _env(DATABASE_URL=f"postgresql://u:p@127.0.0.1:{free_port()}/erp")
    args = ["jobs", "status"]
    if how == "--debug":
        args.insert(0, "--debug")
    else:
        env["EINVOICE_DEBUG"] = "1"

    # When the command runs in debug mode
    result = _einvoice(env, *args, cwd=tmp_path)

    # Then the full traceback is there, ending in the driver's own error
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "OperationalError" in result.stderr
    assert len(_lines(result.stderr)) > 10


def test_version_prints_the_installed_package_version(tmp_path: Path) -> None:
    result = _einvoice(_env(), "--version", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"einvoice {importlib.metadata.version('einvoice')}"


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        (["jobs", "list", "--status", "pendng"], ["pending", "failed", "cancelled"]),
        (["jobs", "enqueue", "--all-unsent", "--document-type", "creditnote"],
         ["invoice", "credit_note"]),
        (["sync", "catalog"], ["tables", "ranges", "municipalities"]),
        (["demo", "--api", "v3"], ["v1", "v2"]),
    ],
)
def test_a_typo_in_a_choice_is_a_usage_error_listing_the_choices(
    args: list[str], listed: list[str], tmp_path: Path
) -> None:
    # Given no database at all: the value is refused before anything is opened
    result = _einvoice(_env(), *args, cwd=tmp_path)

    assert result.returncode == 2, result.stderr[-2000:]
    assert "is not one of" in result.stderr
    for choice in listed:
        assert f"'{choice}'" in result.stderr


def test_the_simulator_commands_without_the_sandbox_extra_say_how_to_install_it(
    tmp_path: Path,
) -> None:
    # Given an install without the simulator's dependencies (the production image): uvicorn
    # cannot be imported
    script = ("import sys; sys.modules['uvicorn'] = None; sys.argv = ['einvoice', *sys.argv[1:]];"
              " from einvoice.cli import main; main()")
    run = [sys.executable, "-c", script]

    # When the operator runs the simulator, and another command
    serve = subprocess.run([*run, "sandbox", "serve", "--port", "8787"], env=_env(), cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=False)
    other = subprocess.run([*run, "db", "--help"], env=_env(), cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=False)

    # Then the simulator's command says which extra to install, status 3
    assert serve.returncode == 3, serve.stderr[-2000:]
    [line] = _lines(serve.stderr)
    assert "einvoice[sandbox]" in line
    # And the other commands work without a warning
    assert other.returncode == 0
    assert other.stderr == ""


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_a_worker_with_a_bad_celery_variable_stops_at_start_with_one_line(
    role: str, tmp_path: Path
) -> None:
    # Given a malformed Celery knob (before, celeryconfig parsed it itself: a raw traceback)
    env = _env(EINVOICE_VISIBILITY_TIMEOUT="five minutes",
               DATABASE_URL=f"postgresql://u:p@127.0.0.1:{free_port()}/erp",
               REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    env["PYTHONPATH"] = str(project_root())

    # When the worker (or beat) starts
    argv = [sys.executable, "-m", "celery", "-A", "workers", role]
    if role == "beat":
        argv += ["--schedule", str(tmp_path / "beat-schedule")]
    result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=90, check=False)

    # Then it exits with EX_CONFIG and one line naming the variable, before taking any job
    assert result.returncode == 78, (result.stdout + result.stderr)[-2000:]
    assert _lines(result.stderr) == [
        ("einvoice worker cannot start: EINVOICE_VISIBILITY_TIMEOUT: Input should be a valid "
         "integer, unable to parse string as an integer")]
    assert "Traceback" not in result.stdout + result.stderr
