"""Accounts and secrets through real processes: a worker, the simulator, PostgreSQL and Redis.

* an organization without its own Factus account is refused while another has one
  (``EINVOICE_DEFAULT_ACCOUNT``), and accepted when the deployment says ``shared``;
* a ``factus_credentials.base_url`` outside the allow-list never receives the credentials;
* ``einvoice secrets rotate`` leaves every stored secret readable with the new key alone;
* a worker with the wrong ``EINVOICE_SECRET_KEY`` stops at start with one line; a row it cannot
  read makes its job wait, never fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.crypto import SecretBox
from einvoice.devservices import project_root
from einvoice.errors import ConfigError
from einvoice.factus.tokens import TOKEN_KEY_PREFIX, RedisTokenStore, StoredToken
from einvoice.services.accounts import save_credentials
from tests.fixtures.worker import CeleryProcess
from tests.integration.pipeline.conftest import (
    Pipeline,
    insert_job_sql,
    seed_invoice,
    seed_organization,
    wait_for_jobs,
)


def _own_account(pipeline: Pipeline, session: Session, org: int,
                 key: str | None = None) -> dict[str, str]:
    """Give organization ``org`` its own simulator account and ``factus_credentials`` row,
    encrypted with ``key`` (the worker's by default)."""
    creds = {"client_id": f"org{org}-client", "client_secret": f"org{org}-secret",
             "username": f"org{org}@einvoice.test", "password": f"org{org}-pass"}
    pipeline.sandbox.add_account(**creds)
    save_credentials(session, organization_id=org, environment="sandbox",
                     box=SecretBox(key or pipeline.env["EINVOICE_SECRET_KEY"]), **creds)
    return creds


def _start_worker(pipeline: Pipeline) -> CeleryProcess:
    """Start a worker and wait until it LISTENs for inserted jobs (a job inserted between
    "ready." and the LISTEN would wait for a beat these tests do not always run)."""
    worker = pipeline.launcher.worker()
    worker.wait_for("job listener active", timeout=30)
    return worker


def _bills_of_default_account(pipeline: Pipeline) -> dict[str, int]:
    return pipeline.sandbox.account_stats()["validations_by_reference"].get("bill", {})


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "einvoice.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=project_root(),
                          check=False)


# ------------------------------------------------------------------------------ default account


def test_an_organization_without_its_own_account_is_refused_while_another_has_one(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given organization 2 with its own Factus account, organization 1 without one, and a
    # deployment that does not say what organizations without an account use
    pipeline = make_pipeline(start=False)
    seed_organization(session, 1)
    seed_organization(session, 2)
    _own_account(pipeline, session, 2)
    invoices = [(1, seed_invoice(session, 1)), (2, seed_invoice(session, 2))]
    session.commit()
    _start_worker(pipeline)

    # When both organizations' ERPs insert a job
    jobs = [insert_job_sql(session, invoice, org) for org, invoice in invoices]
    refused, own = wait_for_jobs(pipeline.factory, jobs, timeout=40)

    # Then organization 1's job fails, saying which organization and which setting
    assert (refused.status, refused.error_code) == ("failed", "no_factus_account")
    assert "organization 1" in refused.error_message
    assert "EINVOICE_DEFAULT_ACCOUNT" in refused.error_message
    assert refused.attempt_count == 1
    assert refused.document_number is None
    # and nothing was issued with the shared account's NIT
    assert _bills_of_default_account(pipeline) == {}
    # while organization 2 issued with its own account, whose token sits in its own row
    assert (own.status, own.factus_account) == ("accepted", "org2@einvoice.test")
    session.expire_all()
    assert session.execute(text("SELECT access_token IS NOT NULL FROM factus_credentials "
                                "WHERE organization_id = 2")).scalar_one()


def test_with_the_default_account_shared_an_organization_without_one_uses_it(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given the same organizations, and a deployment that says every organization without its
    # own account issues with the FACTUS_* one
    pipeline = make_pipeline(start=False, EINVOICE_DEFAULT_ACCOUNT="shared")
    seed_organization(session, 1)
    seed_organization(session, 2)
    _own_account(pipeline, session, 2)
    invoices = [(1, seed_invoice(session, 1)), (2, seed_invoice(session, 2))]
    session.commit()
    _start_worker(pipeline)

    # When both insert a job
    jobs = [insert_job_sql(session, invoice, org) for org, invoice in invoices]
    shared, own = wait_for_jobs(pipeline.factory, jobs, timeout=40)

    # Then both are accepted, organization 1 with the shared account
    assert (shared.status, shared.factus_account) == ("accepted", "sandbox@einvoice.test")
    assert (own.status, own.factus_account) == ("accepted", "org2@einvoice.test")
    assert set(_bills_of_default_account(pipeline)) == {shared.reference_code}


# ------------------------------------------------------------------------------ base_url


def test_credentials_pointing_at_a_foreign_host_never_leave(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given an ERP that wrote organization 1's credentials by plain SQL with a base_url on a
    # host that is neither Factus nor allowed (the cloud metadata address)
    pipeline = make_pipeline(start=False)
    seed_organization(session, 1)
    box = SecretBox(pipeline.env["EINVOICE_SECRET_KEY"])
    session.execute(text(
        "INSERT INTO factus_credentials (organization_id, environment, client_id, client_secret, "
        "username, password_encrypted, base_url) VALUES (1, 'sandbox', 'c', :secret, "
        "'u@empresa.co', :password, 'http://169.254.169.254/latest')"),
        {"secret": box.encrypt("s"), "password": box.encrypt("p")})
    invoice = seed_invoice(session, 1)
    session.commit()
    _start_worker(pipeline)

    # When a job is inserted for it
    (job,) = wait_for_jobs(pipeline.factory, [insert_job_sql(session, invoice, 1)], timeout=30)

    # Then it fails, naming the value and the allow-list setting, before any call
    assert (job.status, job.error_code) == ("failed", "no_factus_account")
    assert "169.254.169.254" in job.error_message
    assert "EINVOICE_FACTUS_ALLOWED_HOSTS" in job.error_message
    assert job.request_payload is None
    assert job.document_number is None


# ------------------------------------------------------------------------------ rotation


def _rotation_env(db_url: str, redis_url: str, keys: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTUS_", "EINVOICE_"))}
    env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, EINVOICE_SECRET_KEY=keys)
    return env


def _stored_values(session: Session) -> list[str]:
    session.expire_all()
    rows = session.execute(text(
        "SELECT client_secret, password_encrypted, access_token, refresh_token "
        "FROM factus_credentials ORDER BY organization_id")).all()
    return [value for row in rows for value in row if value]


def test_secrets_rotate_leaves_every_secret_readable_with_the_new_key_alone(
    db_url: str, redis_url: str, session: Session, redis_client: redis.Redis
) -> None:
    # Given two organizations' credentials and tokens, and a cached token in Redis, all written
    # with the OLD key
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    old_box = SecretBox(old)
    seed_organization(session, 1)
    seed_organization(session, 2)
    for org in (1, 2):
        save_credentials(session, organization_id=org, environment="sandbox",
                         client_id=f"c{org}", client_secret=f"secret-{org}",
                         username=f"u{org}@empresa.co", password=f"pass-{org}", box=old_box)
    session.execute(text("UPDATE factus_credentials SET access_token = :a, refresh_token = :r, "
                         "token_expires_at = now() + interval '1 hour' WHERE organization_id = 1"),
                    {"a": old_box.encrypt("access-1"), "r": old_box.encrypt("refresh-1")})
    # and a webhook endpoint's secret
    session.execute(text("INSERT INTO webhook_endpoints (organization_id, url, secret_encrypted) "
                         "VALUES (1, 'https://erp.example/hook', :s)"),
                    {"s": old_box.encrypt("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")})
    session.commit()
    now = datetime.now(UTC)
    token = StoredToken("access-default", "refresh-default", now + timedelta(hours=1),
                        now + timedelta(minutes=58))
    RedisTokenStore(redis_client, old_box).save("default:0123456789abcdef", token)
    ttl_before = redis_client.ttl(TOKEN_KEY_PREFIX + "default:0123456789abcdef")

    # When the operator runs `einvoice secrets rotate` with NEW,OLD
    result = _cli(_rotation_env(db_url, redis_url, f"{new},{old}"), "secrets", "rotate")

    # Then it reports what it re-encrypted
    assert result.returncode == 0, result.stderr
    assert ("6 values in 2 factus_credentials rows, 1 Redis tokens, 1 webhook secrets"
            in result.stdout)
    # and every stored value now opens with NEW alone
    new_only = SecretBox(new)
    assert sorted(new_only.decrypt(v) for v in _stored_values(session)) == sorted(
        ["secret-1", "pass-1", "access-1", "refresh-1", "secret-2", "pass-2"])
    endpoint_secret = session.execute(text(
        "SELECT secret_encrypted FROM webhook_endpoints")).scalar_one()
    assert new_only.decrypt(endpoint_secret) == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert RedisTokenStore(redis_client, new_only).load("default:0123456789abcdef") == token
    # and the cached token kept its time to live
    assert ttl_before - 5 <= redis_client.ttl(TOKEN_KEY_PREFIX + "default:0123456789abcdef") <= ttl_before


def test_secrets_rotate_reports_values_no_key_opens_and_rotates_the_rest(
    db_url: str, redis_url: str, session: Session
) -> None:
    # Given organization 1's row under OLD and organization 2's under a key nobody has any more
    old, new, lost = (SecretBox.generate_key() for _ in range(3))
    seed_organization(session, 1)
    seed_organization(session, 2)
    save_credentials(session, organization_id=1, environment="sandbox", client_id="c1",
                     client_secret="secret-1", username="u1@empresa.co", password="pass-1",
                     box=SecretBox(old))
    lost_row = save_credentials(session, organization_id=2, environment="sandbox",
                                client_id="c2", client_secret="secret-2",
                                username="u2@empresa.co", password="pass-2", box=SecretBox(lost))
    session.commit()

    # When the operator rotates with NEW,OLD
    result = _cli(_rotation_env(db_url, redis_url, f"{new},{old}"), "secrets", "rotate")

    # Then it exits 1, names the unreadable values, and rotated the readable ones
    assert result.returncode == 1
    assert f"factus_credentials {lost_row.id}.client_secret" in result.stderr
    assert f"factus_credentials {lost_row.id}.password_encrypted" in result.stderr
    assert "2 values in 2 factus_credentials rows" in result.stdout
    org1 = session.execute(text("SELECT client_secret FROM factus_credentials "
                                "WHERE organization_id = 1")).scalar_one()
    assert SecretBox(new).decrypt(org1) == "secret-1"


# ------------------------------------------------------------------------------ wrong key


def test_a_worker_with_the_wrong_key_stops_at_start_with_one_line(
    make_pipeline: Callable[..., Pipeline], session: Session
) -> None:
    # Given organization 2's credentials written with another key than the worker's
    pipeline = make_pipeline(start=False)
    seed_organization(session, 2)
    _own_account(pipeline, session, 2, key=SecretBox.generate_key())
    session.commit()

    # When a worker starts
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool", "threads", "-c", "2",
         "-n", f"wrongkey-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip",
         "-l", "info"],
        env=pipeline.env, cwd=project_root(), capture_output=True, text=True, timeout=90,
        check=False)

    # Then it exits at once with EX_CONFIG and one line naming the organization, no traceback
    output = result.stdout + result.stderr
    assert result.returncode == 78, output[-2000:]
    assert time.monotonic() - started < 60
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "cannot start" in line]
    assert len(lines) == 1, output[-2000:]
    assert "EINVOICE_SECRET_KEY" in lines[0]
    assert "organization 2" in lines[0]
    assert "ready." not in output


def test_a_row_no_key_opens_makes_its_job_wait_not_fail_until_the_key_is_fixed(
    make_pipeline: Callable[..., Pipeline], session: Session, db_url: str, redis_url: str
) -> None:
    # Given a worker (and beat) whose key reads organization 1's credentials, while organization
    # 2's were written with an OLD key the worker does not hold
    pipeline = make_pipeline(start=False, beat=True)
    new, old = pipeline.env["EINVOICE_SECRET_KEY"], SecretBox.generate_key()
    seed_organization(session, 1)
    seed_organization(session, 2)
    _own_account(pipeline, session, 1)
    _own_account(pipeline, session, 2, key=old)
    # (the start check reads the most recently updated row: organization 1's)
    session.execute(text("UPDATE factus_credentials SET updated_at = now() - interval '1 day' "
                         "WHERE organization_id = 2"))
    invoice = seed_invoice(session, 2)
    session.commit()
    _start_worker(pipeline)

    # When organization 2's ERP inserts a job, and the worker has tried it for a while
    job_id = insert_job_sql(session, invoice, 2)
    time.sleep(8)

    # Then the job is waiting, saying why: not failed, no attempt spent, nothing sent
    (waiting,) = wait_for_jobs(pipeline.factory, [job_id], statuses=("pending",), timeout=5)
    assert (waiting.attempt_count, waiting.error_code) == (0, "credentials_unreadable")
    assert "organization 2" in waiting.error_message
    assert "EINVOICE_SECRET_KEY" in waiting.error_message
    assert pipeline.sandbox.account_stats("org2@einvoice.test", "org2-client")[
        "validate_posts"]["bill"] == 0

    # When the operator rotates with NEW,OLD (the runbook)
    result = _cli(_rotation_env(db_url, redis_url, f"{new},{old}"), "secrets", "rotate")
    assert result.returncode == 0, result.stderr

    # Then the job goes through with organization 2's own account
    (done,) = wait_for_jobs(pipeline.factory, [job_id], timeout=60)
    assert (done.status, done.factus_account) == ("accepted", "org2@einvoice.test")


# ------------------------------------------------------------------------------ periodic work


def test_periodic_work_skips_refused_organizations_and_asks_one_query_per_account(
    session: Session,
) -> None:
    # Given organization 1 without a row, 2 with its own, 3 with a row on a foreign host
    from sqlalchemy import event

    from einvoice.services.accounts import account_for_organization, usable_accounts
    from einvoice.settings import load_settings

    key = SecretBox.generate_key()
    box = SecretBox(key)
    for org in (1, 2, 3):
        seed_organization(session, org)
    save_credentials(session, organization_id=2, environment="sandbox", client_id="c2",
                     client_secret="s2", username="u2@empresa.co", password="p2", box=box)
    session.execute(text(
        "INSERT INTO factus_credentials (organization_id, environment, client_id, client_secret, "
        "username, password_encrypted, base_url) VALUES (3, 'sandbox', 'c3', :s, 'u3@empresa.co', "
        ":p, 'https://factus.attacker.example')"), {"s": box.encrypt("s3"), "p": box.encrypt("p3")})
    session.commit()
    shared_factus = {"factus_client_id": "sandbox-client", "factus_client_secret": "x",
                     "factus_username": "sandbox@einvoice.test", "factus_password": "y"}
    settings = load_settings(_env_file=None, einvoice_secret_key=key, **shared_factus)

    # When the range sync or token refresh asks which accounts to use
    accounts = usable_accounts(session, settings, box)

    # Then only organization 2's own account is used, nobody is given the shared one
    assert {org: a.username for org, a in accounts.items()} == {2: "u2@empresa.co"}
    # and with EINVOICE_DEFAULT_ACCOUNT=shared organization 1 joins with the shared account
    shared = load_settings(_env_file=None, einvoice_secret_key=key,
                           einvoice_default_account="shared", **shared_factus)
    assert {org: a.username for org, a in usable_accounts(session, shared, box).items()} == {
        1: "sandbox@einvoice.test", 2: "u2@empresa.co"}

    # and deciding an organization's account (the rule included) is a single statement
    statements: list[str] = []
    bind = session.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(bind, "before_cursor_execute", listener)
    try:
        account_for_organization(session, 2, settings, box)
        with pytest.raises(ConfigError, match="EINVOICE_DEFAULT_ACCOUNT"):
            account_for_organization(session, 1, settings, box)
    finally:
        event.remove(bind, "before_cursor_execute", listener)
    assert len(statements) == 2


# ------------------------------------------------------------------------------ redaction


def _with_password(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest.split('@', 1)[-1]}"


def test_a_worker_log_never_shows_the_url_passwords(
    make_pipeline: Callable[..., Pipeline], session: Session, db_url: str, redis_url: str
) -> None:
    # Given a worker whose PostgreSQL, Redis and broker URLs carry a password (the test servers
    # accept any: PostgreSQL trusts loopback, Redis's default user has none)
    password = "S3cret-" + uuid.uuid4().hex[:8]
    pg = _with_password(db_url, "postgres", password)
    rd = _with_password(redis_url, "default", password)
    pipeline = make_pipeline(start=False, DATABASE_URL=pg, REDIS_URL=rd, CELERY_BROKER_URL=rd)
    seed_organization(session, 1)
    invoice = seed_invoice(session, 1)
    session.commit()
    worker = _start_worker(pipeline)

    # When it starts and gets a job through
    (job,) = wait_for_jobs(pipeline.factory, [insert_job_sql(session, invoice, 1)], timeout=30)
    worker.stop()

    # Then the log shows the URLs (Celery's banner) but never the password
    assert job.status == "accepted"
    log = worker.log()
    assert "ready." in log
    assert ":**@" in log
    assert password not in log
