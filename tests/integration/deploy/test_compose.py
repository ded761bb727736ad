"""``docker-compose.yml``, ``Dockerfile`` and ``.env.example`` agree with the code they deploy.

Docker is not available where these tests run, so nothing is started: the compose file is parsed
with PyYAML and every claim it makes is checked against the real source of truth: the queues
``celeryconfig.task_queues`` declares, the worker flags the pipeline tests run with
(``tests/fixtures/worker.py``), the ``einvoice`` CLI's own options, the fields of
``einvoice.settings.Settings`` and the options Flower reads from its environment.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis as redis_lib
import typer
import yaml
from cryptography.fernet import Fernet
from dotenv import dotenv_values
from flower.options import default_options as flower_options
from typer.testing import CliRunner

import celeryconfig
import einvoice.settings
from einvoice.cli import app as einvoice_cli
from einvoice.devservices import find_redis_server, free_port, port_open, project_root
from einvoice.errors import ConfigError
from einvoice.sandbox.cli import app as sandbox_cli
from einvoice.settings import Settings, load_settings
from tests.fixtures.worker import CeleryLauncher

ROOT = project_root()
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

APP_SERVICES = ("migrate", "worker", "beat", "flower")
# The app services that read the whole .env; Flower gets only the broker URL and its credentials.
ENV_FILE_SERVICES = ("migrate", "worker", "beat")
# Variables the postgres image and docker compose itself read (their documentation).
POSTGRES_IMAGE_VARIABLES = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
COMPOSE_VARIABLES = {"COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"}
# Flower reads FLOWER_<option> for each of its options (flower/command.py apply_env_options),
# plus this one directly (flower/views/__init__.py).
FLOWER_VARIABLES = {f"FLOWER_{name.upper()}" for name in flower_options} | {
    "FLOWER_UNAUTHENTICATED_API"
}

# ${NAME}, ${NAME:-default}, ${NAME:?error}; "$$" is an escaped dollar for the container's shell.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:]?[-?+][^}]*)?\}")
COMMENTED_ASSIGNMENT = re.compile(r"^#\s*([A-Z][A-Z0-9_]*)=(.*)$", re.MULTILINE)


def compose() -> dict[str, Any]:
    """The parsed compose file (YAML merge keys resolved)."""
    parsed: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return parsed


def services() -> dict[str, dict[str, Any]]:
    parsed: dict[str, dict[str, Any]] = compose()["services"]
    return parsed


def interpolated_variables() -> set[str]:
    """The names the compose file interpolates as ``${VAR...}`` (``$$`` is the container's ``$``)."""
    text = "\n".join(
        line
        for line in COMPOSE_FILE.read_text().replace("$$", "").splitlines()
        if not line.lstrip().startswith("#")
    )
    return set(INTERPOLATION.findall(text))


def env_example() -> dict[str, str | None]:
    """The active assignments of .env.example, parsed like pydantic-settings parses .env."""
    return dict(dotenv_values(ENV_EXAMPLE))


def commented_assignments() -> dict[str, str]:
    """The ``# NAME=value`` lines of .env.example: the optional knobs, shown with their defaults."""
    return dict(COMMENTED_ASSIGNMENT.findall(ENV_EXAMPLE.read_text()))


def command_of(service: str) -> list[str]:
    command = services()[service]["command"]
    assert isinstance(command, list), f"{service}: use the exec (list) form of command"
    return [str(part) for part in command]


def option_value(argv: list[str], *names: str) -> str | None:
    """The value of the first of ``names`` in ``argv`` (``--x v``, ``--x=v`` or ``-x v``)."""
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def celeryconfig_variables() -> dict[str, str]:
    """``os.environ.get("NAME", "default")`` calls in celeryconfig.py: name -> default."""
    tree = ast.parse(Path(celeryconfig.__file__).read_text())
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and ast.unparse(node.func.value) == "os.environ"
        ):
            name, default = (ast.literal_eval(arg) for arg in node.args)
            found[name] = default
    return found


def docstring_variables() -> list[str]:
    """The variable names of the table in einvoice/settings.py's module docstring."""
    doc = einvoice.settings.__doc__ or ""
    return re.findall(r"^([A-Z][A-Z0-9_]+)\s{2,}", doc, re.MULTILINE)


def cli_help(app: typer.Typer, *path: str) -> str:
    """The ``--help`` text of the command at ``path`` of a typer app (fails if it does not exist)."""
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, f"{' '.join(path)}: {result.output}"
    return result.output


# --- services -----------------------------------------------------------------------------------


def test_every_service_the_issue_names_exists() -> None:
    # Given the compose file
    # Then it runs the databases, the one-shot migration, the three Celery roles and the simulator
    assert set(services()) == {
        "postgres",
        "redis",
        "migrate",
        "worker",
        "beat",
        "flower",
        "sandbox",
        "api",
    }


def test_the_simulator_is_left_out_of_production_by_its_profile() -> None:
    # Given the compose file
    svc = services()

    # Then only the simulator sits behind a profile, the "sandbox" one
    assert svc["sandbox"]["profiles"] == ["sandbox"]
    assert [name for name, spec in svc.items() if "profiles" in spec] == ["sandbox"]
    # And no always-on service waits for it (compose would refuse to start without the profile)
    for name, spec in svc.items():
        assert "sandbox" not in spec.get("depends_on", {}), name
    # And it serves on the port and interface the CLI takes
    argv = command_of("sandbox")
    assert argv[:3] == ["einvoice", "sandbox", "serve"]
    serve_help = cli_help(sandbox_cli, "serve")
    assert "--host" in serve_help
    assert "--port" in serve_help
    assert option_value(argv, "--host") == "0.0.0.0"  # noqa: S104 - the container's bind address
    assert option_value(argv, "--port") == "8787"


def test_postgres_is_16_keeps_its_data_and_reports_ready_with_pg_isready() -> None:
    postgres = services()["postgres"]

    assert postgres["image"] == "postgres:16"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_redis_is_7_with_append_only_persistence_and_a_healthcheck() -> None:
    redis_svc = services()["redis"]
    argv = [str(part) for part in redis_svc["command"]]

    assert redis_svc["image"] == "redis:7"
    assert option_value(argv, "--appendonly") == "yes"
    assert any(v.endswith(":/data") for v in redis_svc["volumes"])
    probe = " ".join(redis_svc["healthcheck"]["test"])
    assert "redis-cli" in probe
    assert "ping" in probe


def test_every_long_running_service_has_a_healthcheck_except_beat() -> None:
    # Beat has nothing to ask; every other long-running process answers a probe
    for name in ("postgres", "redis", "worker", "flower", "sandbox"):
        assert services()[name]["healthcheck"]["test"], name


def test_migrate_runs_einvoice_db_upgrade_once_after_postgres_is_healthy() -> None:
    migrate = services()["migrate"]

    assert command_of("migrate") == ["einvoice", "db", "upgrade"]
    assert "Create the schema" in cli_help(einvoice_cli, "db", "upgrade")
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_worker_beat_and_flower_start_only_after_the_migration_succeeded() -> None:
    for name in ("worker", "beat", "flower"):
        depends = services()[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_worker_runs_the_threads_pool_on_every_queue_celeryconfig_declares() -> None:
    # Given the worker's command and the queues the producers route to
    argv = command_of("worker")
    declared = {queue.name for queue in celeryconfig.task_queues}

    # Then it is the command the pipeline tests run (tests/fixtures/worker.py): threads pool,
    # 32 threads, all four queues
    assert argv[:4] == ["celery", "-A", "workers", "worker"]
    assert option_value(argv, "--pool", "-P") == "threads"
    assert option_value(argv, "-c", "--concurrency") == "32"
    queues = option_value(argv, "-Q", "--queues")
    assert queues is not None
    assert set(queues.split(",")) == declared
    assert declared == {"submission", "maintenance", "reference", "webhooks"}
    tested_queues = inspect.signature(CeleryLauncher.worker).parameters["queues"].default
    assert set(tested_queues.split(",")) == declared


def test_a_warm_worker_shutdown_outlasts_the_task_time_limit() -> None:
    grace = services()["worker"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > celeryconfig.task_time_limit


def test_exactly_one_beat_runs() -> None:
    # Given every service's command
    svc = services()

    # Then the beat service runs beat as a single replica
    assert command_of("beat")[:4] == ["celery", "-A", "workers", "beat"]
    assert svc["beat"]["deploy"]["replicas"] == 1
    # And no other process embeds a beat (`worker -B`)
    for name in svc:
        if name == "beat" or "command" not in svc[name]:
            continue
        argv = [str(part) for part in svc[name]["command"]]
        assert "beat" not in argv, name
        assert "-B" not in argv, name
        assert "--beat" not in argv, name


def test_flower_is_behind_basic_auth_from_flower_basic_auth_on_port_5555() -> None:
    flower = services()["flower"]
    argv = command_of("flower")

    assert argv[:4] == ["celery", "-A", "workers", "flower"]
    assert option_value(argv, "--port") == "5555"
    assert "127.0.0.1:5555:5555" in flower["ports"]
    # The credentials come from the environment, are required (":?"), and stay out of argv
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert "FLOWER_BASIC_AUTH" in FLOWER_VARIABLES  # a name Flower really reads
    assert not any("basic" in arg for arg in argv)
    # And the tasks page shows each task's argument, its job id
    columns = option_value(argv, "--tasks_columns", "--tasks-columns")
    assert columns is not None
    assert {"name", "args", "state"} <= set(columns.split(","))


def test_app_services_share_one_image_built_from_the_dockerfile_and_read_env() -> None:
    svc = services()
    for name in APP_SERVICES:
        assert svc[name]["image"] == "einvoice:latest", name
        assert svc[name]["build"] == ".", name
    # The simulator is built from the same Dockerfile with its extra, as an image of its own
    assert svc["sandbox"]["build"] == {"context": ".", "args": {"EXTRAS": "sandbox"}}
    assert svc["sandbox"]["image"] == "einvoice-sandbox:latest"
    for name in ENV_FILE_SERVICES:
        assert svc[name]["env_file"] == ".env", name
    # The databases and Flower get only their own variables, not the app's secrets
    for name in ("postgres", "redis", "flower"):
        assert "env_file" not in svc[name], name


def test_the_dockerfile_installs_the_project_on_python_311_slim_with_its_migrations() -> None:
    # Given the Dockerfile's instructions
    lines = [
        ln.strip()
        for ln in DOCKERFILE.read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    copies = [ln.split()[1:] for ln in lines if ln.startswith("COPY ")]
    copied = {src for *sources, _dest in copies for src in sources}

    # Then it starts from python:3.11-slim and pip-installs the checkout
    assert lines[0] == "FROM python:3.11-slim"
    assert any(ln.startswith("RUN pip install") and ln.endswith(" .") for ln in lines)
    # And it copies what pip and `einvoice db upgrade` read, every one of which exists here
    assert {
        "pyproject.toml",
        "einvoice",
        "workers",
        "celeryconfig.py",
        "alembic.ini",
        "migrations",
    } <= copied
    for src in copied:
        assert (ROOT / src).exists(), src
    # And .env never reaches the build context
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()


# --- variables ----------------------------------------------------------------------------------


def test_every_variable_the_compose_file_interpolates_is_in_env_example() -> None:
    # Given the ${VAR} references of the compose file ($$ escapes the container's own shell)
    used = interpolated_variables()
    # And the variables services set by name
    for spec in services().values():
        environment = spec.get("environment", {})
        used |= set(
            environment
            if isinstance(environment, dict)
            else (item.split("=", 1)[0] for item in environment)
        )

    # Then .env.example defines every one
    assert used, "the compose file interpolates nothing?"
    assert used <= set(env_example()), sorted(used - set(env_example()))


def test_every_variable_in_env_example_is_read_by_something() -> None:
    # Given every name .env.example sets or shows
    names = set(env_example()) | set(commented_assignments())
    known = (
        {name.upper() for name in Settings.model_fields}
        | set(celeryconfig_variables())
        | FLOWER_VARIABLES
        | POSTGRES_IMAGE_VARIABLES
        | COMPOSE_VARIABLES
        | interpolated_variables()
    )

    # Then each is a setting, a celeryconfig knob, a Flower, postgres or compose variable, or one
    # the compose file itself interpolates (REDIS_PASSWORD)
    assert names - known == set()


def test_env_example_sets_every_variable_of_the_settings_docstring() -> None:
    documented = docstring_variables()
    assert "DATABASE_URL" in documented
    assert "EINVOICE_SECRET_KEY" in documented
    assert set(documented) <= set(env_example()), sorted(set(documented) - set(env_example()))


def test_env_example_shows_every_tuning_knob_with_its_real_default() -> None:
    # Given the optional knobs .env.example shows commented out
    shown = commented_assignments()
    knobs = set(Settings.model_fields) - {v.lower() for v in docstring_variables()}

    # Then every Settings knob and celeryconfig knob is there
    assert {k.upper() for k in knobs} | set(celeryconfig_variables()) <= set(shown)
    # And each value is what the code uses when the variable is unset
    for name in knobs:
        field = Settings.model_fields[name]
        loaded = load_settings(_env_file=None, **{name: shown[name.upper()]})
        assert getattr(loaded, name) == field.default, name
    for name, default in celeryconfig_variables().items():
        if default.replace(".", "", 1).isdigit():
            assert float(shown[name]) == float(default), name
        else:  # a flag such as EINVOICE_TASK_EVENTS
            assert shown[name].lower() == default.lower(), name


def test_env_example_values_load_once_a_real_secret_key_replaces_the_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the example's values as the process environment
    values = {k: v for k, v in env_example().items() if v is not None}
    settings_names = {field.upper() for field in Settings.model_fields}
    for name in [n for n in os.environ if n.upper() in settings_names]:
        monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)

    # When settings load with the placeholder key, they fail naming it (no known key ships)
    with pytest.raises(ConfigError, match="EINVOICE_SECRET_KEY"):
        load_settings(_env_file=None)

    # When a generated key replaces it, every other placeholder is a valid value
    monkeypatch.setenv("EINVOICE_SECRET_KEY", Fernet.generate_key().decode())
    settings = load_settings(_env_file=None)
    assert settings.has_default_factus_account()
    assert settings.factus_base_url == "http://sandbox:8787"
    assert settings.require_database_url().startswith("postgresql+psycopg://")
    # And DATABASE_URL agrees with the bundled postgres service's user, password and database
    assert settings.require_database_url() == (
        f"postgresql+psycopg://{values['POSTGRES_USER']}:{values['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{values['POSTGRES_DB']}"
    )


# --- exposed surfaces: Flower and Redis ---------------------------------------------------------
#
# The entrypoint scripts are run here with the local /bin/sh, as the containers run them: "$$" is
# compose's escape for the container's "$", and the command is replaced by a harmless one so the
# test sees whether the script would have started the service.

STARTED = "service command ran"


def published_ports() -> dict[str, list[str]]:
    """Every service's ``ports`` entries (short syntax), by service name."""
    return {name: [str(p) for p in spec.get("ports", [])] for name, spec in services().items()}


def entrypoint_script(service: str) -> str:
    """The ``/bin/sh -c`` script of a service's entrypoint, as the container's shell receives it."""
    entrypoint = [str(part) for part in services()[service]["entrypoint"]]
    assert entrypoint[:2] == ["/bin/sh", "-c"], f"{service}: entrypoint is not a /bin/sh -c script"
    # The script then execs the service's command, passed as "$@" after $0 (entrypoint[3]).
    assert len(entrypoint) == 4, entrypoint
    return entrypoint[2].replace("$$", "$")


def run_entrypoint(
    service: str, env: dict[str, str], command: list[str]
) -> subprocess.CompletedProcess[str]:
    """Run a service's entrypoint script with ``env`` and ``command`` as its "$@"."""
    return subprocess.run(
        ["/bin/sh", "-c", entrypoint_script(service), f"{service}-entrypoint", *command],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30, check=False,
    )


def test_flower_is_published_on_the_hosts_loopback_only_and_the_databases_not_at_all() -> None:
    # Given every port the compose file publishes
    ports = published_ports()

    # Then Flower is bound to 127.0.0.1 of the host (basic auth over plain HTTP must not face a
    # network), and so is every other published port
    assert ports["flower"] == ["127.0.0.1:5555:5555"]
    for name, entries in ports.items():
        for entry in entries:
            assert entry.startswith("127.0.0.1:"), (name, entry)
    # And PostgreSQL and Redis publish nothing: only the compose services reach them
    assert ports["postgres"] == []
    assert ports["redis"] == []


def test_flower_receives_only_the_broker_url_and_its_own_credentials() -> None:
    # Given Flower's service definition
    flower = services()["flower"]

    # Then it reads no env_file (which holds the Factus secrets and EINVOICE_SECRET_KEY)
    assert "env_file" not in flower
    # And its environment is exactly the broker URL and the basic-auth credentials
    assert set(flower["environment"]) == {"CELERY_BROKER_URL", "FLOWER_BASIC_AUTH"}
    assert flower["environment"]["CELERY_BROKER_URL"].startswith("${CELERY_BROKER_URL:?")
    referenced = set(INTERPOLATION.findall(" ".join(flower["environment"].values())))
    assert referenced == {"CELERY_BROKER_URL", "FLOWER_BASIC_AUTH"}
    # And it still runs the Celery app's Flower, which needs nothing else (test_flower.py starts
    # it with this environment only)
    assert command_of("flower")[:4] == ["celery", "-A", "workers", "flower"]


@pytest.mark.parametrize(
    "basic_auth",
    [
        pytest.param(None, id="the example value of .env.example"),
        pytest.param("", id="empty"),
        pytest.param("ops:change-me", id="another change-me password"),
        pytest.param("ops:a-real-password,admin:change-me-flower-password", id="example as 2nd"),
        pytest.param("admin:", id="no password"),
        pytest.param(":secret", id="no user"),
        pytest.param("just-a-password", id="no colon"),
    ],
)
def test_flower_refuses_to_start_with_the_example_or_a_malformed_password(
    basic_auth: str | None,
) -> None:
    # Given FLOWER_BASIC_AUTH left at the example value, empty, or malformed
    value = env_example()["FLOWER_BASIC_AUTH"] if basic_auth is None else basic_auth
    assert value is not None

    # When the flower container starts
    result = run_entrypoint("flower", {"FLOWER_BASIC_AUTH": value}, ["echo", STARTED])

    # Then it exits non-zero with one line naming the variable, before Flower runs
    assert result.returncode != 0
    assert STARTED not in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert "FLOWER_BASIC_AUTH" in result.stderr
    assert "refusing to start" in result.stderr


@pytest.mark.parametrize("basic_auth", ["ops:Xr7-long-random", "ops:one,viewer:two*?"])
def test_flower_starts_with_real_credentials(basic_auth: str) -> None:
    result = run_entrypoint("flower", {"FLOWER_BASIC_AUTH": basic_auth}, ["echo", STARTED])

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == STARTED


def test_every_redis_url_carries_the_password_redis_demands() -> None:
    # Given the example settings and the redis service
    values = env_example()
    password = values["REDIS_PASSWORD"]
    redis_svc = services()["redis"]

    # Then redis gets its password from REDIS_PASSWORD, required
    assert redis_svc["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    # And never as an argument of redis-server (visible to every `ps` on the host)
    argv = [str(part) for part in redis_svc["command"]]
    assert argv[:2] == ["redis-server", "-"]  # "-": configuration read from stdin
    assert not any("PASSWORD" in arg or "requirepass" in arg for arg in argv)
    # And every URL the app and Flower use to reach it carries that password
    assert password
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        url = urlsplit(values[name] or "")
        assert (url.scheme, url.hostname, url.password) == ("redis", "redis", password), name
    # (Flower's broker URL is the same variable, interpolated)
    assert "CELERY_BROKER_URL" in INTERPOLATION.findall(
        services()["flower"]["environment"]["CELERY_BROKER_URL"]
    )


@pytest.fixture
def redis_entrypoint_path(tmp_path: Path) -> str:
    """A PATH where ``docker-entrypoint.sh`` and ``redis-server`` behave as in the redis image.

    The image's entrypoint (docker-library/redis) drops to its redis user and execs "$@"; here it
    only execs "$@", with the embedded Redis standing in for the image's redis-server and
    redis-cli.
    """
    bindir = tmp_path / "bin"
    bindir.mkdir()
    server = find_redis_server()
    (bindir / "redis-server").symlink_to(server)
    cli = server.with_name("redis-cli")
    if cli.exists():
        (bindir / "redis-cli").symlink_to(cli)
    fake = bindir / "docker-entrypoint.sh"
    fake.write_text('#!/bin/sh\nexec "$@"\n')
    fake.chmod(0o755)
    return f"{bindir}:{os.environ['PATH']}"


@pytest.mark.parametrize(
    "password",
    [
        pytest.param(None, id="the example value of .env.example"),
        pytest.param("", id="empty"),
        pytest.param("p@ss word", id="characters REDIS_URL would have to escape"),
    ],
)
def test_redis_refuses_to_start_with_the_example_or_an_unusable_password(
    password: str | None, redis_entrypoint_path: str
) -> None:
    value = env_example()["REDIS_PASSWORD"] if password is None else password
    assert value is not None

    result = run_entrypoint(
        "redis", {"REDIS_PASSWORD": value, "PATH": redis_entrypoint_path}, ["echo", STARTED]
    )

    assert result.returncode != 0
    assert STARTED not in result.stdout
    assert "REDIS_PASSWORD" in result.stderr
    assert "refusing to start" in result.stderr


def test_redis_started_by_its_entrypoint_demands_the_password_and_hides_it_from_ps(
    tmp_path: Path, redis_entrypoint_path: str
) -> None:
    # Given a new password, and the app's URL built as .env.example shows
    password = "Xr7-t3st.pass_word~1"
    port = free_port()
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    argv = [str(part) for part in services()["redis"]["command"]]

    # When the redis service's entrypoint starts its command (on a free port, in a temp folder)
    env = {"PATH": redis_entrypoint_path, "REDIS_PASSWORD": password}
    server = subprocess.Popen(
        ["/bin/sh", "-c", entrypoint_script("redis"), "redis-entrypoint", *argv,
         "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not port_open(port) and time.monotonic() < deadline:
            assert server.poll() is None, "redis-server exited"
            time.sleep(0.05)

        # Then a client without the password is refused
        with pytest.raises(redis_lib.exceptions.AuthenticationError):
            redis_lib.Redis(port=port).ping()
        # And the app's URL with the password works, with the compose file's persistence on
        client = redis_lib.Redis.from_url(url)
        assert client.ping() is True
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
        # And the password is not in the server's command line (what `ps` shows)
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
        assert "redis-server" in cmdline
        assert password not in cmdline
        # And the compose healthcheck answers healthy with the container's environment
        probe = services()["redis"]["healthcheck"]["test"]
        assert probe[0] == "CMD-SHELL"
        if Path(redis_entrypoint_path.split(":", maxsplit=1)[0], "redis-cli").exists():
            check = probe[1].replace("$$", "$").replace("redis-cli", f"redis-cli -p {port}")
            healthy = subprocess.run(["/bin/sh", "-c", check], env=env, timeout=15, check=False)
            assert healthy.returncode == 0
            wrong = subprocess.run(
                ["/bin/sh", "-c", check], env={**env, "REDIS_PASSWORD": "wrong"}, timeout=15,
                check=False,
            )
            assert wrong.returncode != 0
    finally:
        server.terminate()
        server.wait(15)
