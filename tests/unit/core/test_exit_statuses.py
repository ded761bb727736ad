"""Which exit status and line the CLI gives an exception (``einvoice.cli.user_error``).

The subprocess scenarios live in tests/integration/cli/test_start_errors.py; these check the
classification of errors that are awkward to provoke for real (a wrong key, a cancelled query,
a bug raised while handling an expected error).
"""

from __future__ import annotations

import psycopg
import pytest
import redis
import sqlalchemy.exc
from kombu.exceptions import OperationalError as KombuOperationalError

from einvoice.cli import (
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_REDIS,
    EXIT_REFUSED,
    user_error,
)
from einvoice.crypto import SecretDecryptError
from einvoice.errors import ConfigError, JobError

REFUSED = ('connection failed: connection to server at "127.0.0.1", port 1 failed: Connection '
           'refused\n\tIs the server running on that host and accepting TCP/IP connections?')


def _wrapped(orig: BaseException) -> sqlalchemy.exc.OperationalError:
    """``orig`` as SQLAlchemy raises it (``orig`` attribute and ``__cause__``)."""
    try:
        try:
            raise orig
        except BaseException as exc:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, exc) from exc
    except sqlalchemy.exc.OperationalError as wrapped:
        return wrapped


def test_a_setting_problem_is_configuration_with_its_own_message() -> None:
    assert user_error(ConfigError("DATABASE_URL is not set")) == (EXIT_CONFIG,
                                                                 "DATABASE_URL is not set")


def test_a_key_that_cannot_open_the_stored_credentials_is_configuration() -> None:
    error = SecretDecryptError("EINVOICE_SECRET_KEY cannot decrypt factus_credentials 3")

    assert user_error(error) == (EXIT_CONFIG, str(error))


def test_a_refused_operation_is_status_1() -> None:
    assert user_error(JobError("no job 42")) == (EXIT_REFUSED, "no job 42")


def test_a_database_that_refuses_the_connection_is_one_line_status_4() -> None:
    status, line = user_error(_wrapped(psycopg.OperationalError(REFUSED))) or (None, "")

    assert status == EXIT_DATABASE
    assert "\n" not in line
    assert "Connection refused" in line
    assert "DATABASE_URL" in line


def test_a_schema_never_migrated_says_to_run_db_upgrade() -> None:
    error = _wrapped(psycopg.errors.UndefinedTable(
        'relation "electronic_invoicing_jobs" does not exist'))

    status, line = user_error(error) or (None, "")

    assert status == EXIT_DATABASE
    assert "einvoice db upgrade" in line


def test_a_cancelled_query_is_not_an_unreachable_database() -> None:
    # 57014 is an OperationalError too, but the database answered: a bug or a timeout to look at
    assert user_error(_wrapped(psycopg.errors.QueryCanceled("canceling statement"))) is None


@pytest.mark.parametrize(
    "error",
    [
        redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
        redis.TimeoutError("Timeout connecting to server"),
        redis.AuthenticationError("invalid username-password pair or user is disabled."),
        KombuOperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
    ],
)
def test_redis_that_cannot_be_reached_is_status_5(error: Exception) -> None:
    status, line = user_error(error) or (None, "")

    assert status == EXIT_REDIS
    assert str(error) in line


def test_a_missing_extra_names_the_extra_to_install() -> None:
    status, line = user_error(ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn")) \
        or (None, "")

    assert status == EXIT_CONFIG
    assert "pip install 'einvoice[sandbox]'" in line


@pytest.mark.parametrize(
    "error",
    [KeyError("job"), ModuleNotFoundError("No module named 'numpy'", name="numpy")],
)
def test_a_bug_keeps_its_traceback(error: Exception) -> None:
    assert user_error(error) is None


def test_a_bug_raised_while_handling_an_expected_error_keeps_its_traceback() -> None:
    # Given a bug in an except block that handled a ConfigError
    try:
        try:
            raise ConfigError("FACTUS_USERNAME is not set")
        except ConfigError:
            raise AttributeError("'NoneType' object has no attribute 'strip'")  # noqa: B904
    except AttributeError as bug:
        error = bug

    # Then the bug is not dressed up as the configuration problem
    assert user_error(error) is None
