"""Console accounts as an operator manages them (``einvoice users ...`` in real subprocesses) and
the sign-in rules on a real database: argon2 hashes, one answer for every refusal, lock-out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.services.console_auth import (
    LOCK_AFTER_FAILURES,
    ConsoleAuthError,
    SignInRefused,
    create_user,
    disable_user,
    identify,
    sign_in,
    sign_out,
)
from tests.integration.pipeline.conftest import seed_organization

PASSWORD = "correct horse battery"


def _cli(db_url: str, *args: str, stdin: str | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTUS_", "EINVOICE_"))}
    env.update(DATABASE_URL=db_url, COLUMNS="200")
    result = subprocess.run([sys.executable, "-m", "einvoice.cli", *args], env=env, input=stdin,
                            capture_output=True, text=True, timeout=60, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_users_are_created_listed_and_disabled_from_the_command_line(
        db_url: str, session: Session) -> None:
    # Given an organization
    seed_organization(session, 7)
    session.commit()

    # When an admin creates two accounts, one scoped to organization 7, and lists them
    created = json.loads(_cli(db_url, "users", "create", "--username", "Ana", "--role", "admin",
                              "--password-stdin", "--json", stdin=PASSWORD + "\n").stdout)
    _cli(db_url, "users", "create", "--username", "luis", "--role", "viewer", "--org", "7",
         "--password-stdin", stdin=PASSWORD + "\n")
    listed = json.loads(_cli(db_url, "users", "list", "--json").stdout)
    table = _cli(db_url, "users", "list").stdout
    duplicate = _cli(db_url, "users", "create", "--username", "ana", "--role", "viewer",
                     "--password-stdin", stdin=PASSWORD + "\n", check=False)
    short = _cli(db_url, "users", "create", "--username", "eva", "--role", "viewer",
                 "--password-stdin", stdin="short\n", check=False)
    bad_role = _cli(db_url, "users", "create", "--username", "eva", "--role", "root",
                    "--password-stdin", stdin=PASSWORD + "\n", check=False)
    no_org = _cli(db_url, "users", "create", "--username", "eva", "--role", "viewer", "--org",
                  "999", "--password-stdin", stdin=PASSWORD + "\n", check=False)
    _cli(db_url, "users", "disable", "luis")
    after = {u["username"]: u for u in json.loads(_cli(db_url, "users", "list", "--json").stdout)}

    # Then the names are stored in lower case, with the role and scope given
    assert created["username"] == "ana"
    assert [(u["username"], u["role"], u["organization_id"]) for u in listed] == [
        ("ana", "admin", None), ("luis", "viewer", 7)]
    assert "luis" in table
    # And the password is an argon2id hash, never shown
    stored = session.execute(text("SELECT password_hash FROM operator_users WHERE username = "
                                  "'ana'")).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert "argon2" not in table
    assert "$argon2" not in json.dumps(listed)
    # And each refusal is one line with exit status 1
    for refused, words in ((duplicate, "exists"), (short, "at least"), (bad_role, "role"),
                           (no_org, "organization")):
        assert refused.returncode == 1, refused.stderr
        assert words in refused.stderr
    assert after["luis"]["state"] == "disabled"
    assert after["ana"]["state"] == "active"


def test_sign_in_gives_the_same_answer_for_an_unknown_user_and_a_wrong_password(
        session: Session) -> None:
    create_user(session, username="ana", password=PASSWORD, role="operator")

    with pytest.raises(SignInRefused) as unknown:
        sign_in(session, "nadie", PASSWORD)
    with pytest.raises(SignInRefused) as wrong:
        sign_in(session, "ana", "not the password")
    opened = sign_in(session, "ANA ", PASSWORD)

    assert str(unknown.value) == str(wrong.value)
    identity = identify(session, opened.token)
    assert identity is not None
    assert (identity.username, identity.role, identity.organization_id) == ("ana", "operator",
                                                                            None)
    assert identity.actor == "console:ana"
    # Only the token's hash is stored
    tokens = session.execute(text("SELECT token_sha256 FROM operator_sessions")).scalars().all()
    assert opened.token not in tokens
    assert len(tokens) == 1


def test_repeated_failures_lock_the_account_even_against_the_right_password(
        session: Session) -> None:
    # Given an account
    create_user(session, username="ana", password=PASSWORD, role="viewer")
    now = datetime.now(UTC)

    # When the wrong password is tried LOCK_AFTER_FAILURES times
    for _ in range(LOCK_AFTER_FAILURES):
        with pytest.raises(SignInRefused):
            sign_in(session, "ana", "guess guess guess", now=now)

    # Then the right password is refused for the next 15 minutes, and accepted after
    with pytest.raises(SignInRefused):
        sign_in(session, "ana", PASSWORD, now=now + timedelta(minutes=14))
    locked_until = session.execute(text(
        "SELECT locked_until FROM operator_users WHERE username = 'ana'")).scalar_one()
    assert locked_until > now + timedelta(minutes=14)
    assert sign_in(session, "ana", PASSWORD, now=now + timedelta(minutes=16)).token


def test_a_disabled_user_and_a_signed_out_session_lose_access(session: Session) -> None:
    create_user(session, username="ana", password=PASSWORD, role="admin")
    create_user(session, username="luis", password=PASSWORD, role="admin")
    ana = sign_in(session, "ana", PASSWORD)
    luis = sign_in(session, "luis", PASSWORD)
    ana_identity = identify(session, ana.token)
    assert ana_identity is not None

    sign_out(session, ana_identity.token_sha256)
    disable_user(session, "luis")

    assert identify(session, ana.token) is None
    assert identify(session, luis.token) is None
    with pytest.raises(SignInRefused):
        sign_in(session, "luis", PASSWORD)
    assert identify(session, "made-up-token") is None


def test_an_expired_session_is_refused(session: Session) -> None:
    create_user(session, username="ana", password=PASSWORD, role="viewer")
    opened = sign_in(session, "ana", PASSWORD)

    assert identify(session, opened.token, now=opened.expires_at - timedelta(seconds=1))
    assert identify(session, opened.token, now=opened.expires_at) is None


def test_bad_usernames_are_refused(session: Session) -> None:
    with pytest.raises(ConsoleAuthError, match="valid username"):
        create_user(session, username="ana maría", password=PASSWORD, role="viewer")
