"""The configuration pages against the Factus simulator: an admin adds an organization's Factus
account (its secrets never come back), tests the connection, syncs the ranges, and adds a
webhook endpoint whose secret is shown once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.db.engine import make_engine, make_session_factory
from tests.fixtures.worker import pipeline_environment
from tests.integration.api.conftest import Api, running_api
from tests.integration.console.conftest import operator
from tests.integration.pipeline.conftest import seed_organization

SECRET = "sandbox-secret"
ACCOUNT_PASSWORD = "sandbox-password"


@pytest.fixture
def console_api(db_url: str, redis_url: str, sandbox_clean: Any) -> Iterator[Api]:
    """A console whose process has the simulator as its Factus address and a secret key."""
    env = pipeline_environment(db_url, redis_url, sandbox_clean.base_url)
    settings = {name.lower(): env[name] for name in ("FACTUS_BASE_URL", "FACTUS_ENVIRONMENT",
                                                     "EINVOICE_SECRET_KEY")}
    engine = make_engine(db_url)
    factory: sessionmaker[Session] = make_session_factory(engine)
    with factory() as session:
        seed_organization(session, 1)
        session.commit()
    with running_api(db_url, redis_url, **settings) as base_url:
        yield Api(base_url=base_url, db_url=db_url, factory=factory)
    engine.dispose()


def _save(admin: Any, base_url: str, password: str) -> Any:
    return admin.post("/config/accounts", {
        "organization_id": "1", "environment": "sandbox", "client_id": "sandbox-client",
        "client_secret": SECRET, "username": "sandbox@einvoice.test", "password": password,
        "api_version": "v1", "base_url": base_url})


def test_an_admin_adds_a_factus_account_whose_secrets_never_come_back_and_tests_it(
        console_api: Api, sandbox_clean: Any) -> None:
    admin = operator(console_api, "admin")

    # When an admin saves the organization's account and tests the connection
    saved = _save(admin, sandbox_clean.base_url, ACCOUNT_PASSWORD)
    page = admin.client.get(saved.headers["location"])
    checked = admin.post("/config/accounts/check", {"organization_id": "1"})

    # Then the page lists it without any secret, the row holds ciphertext only, the change is
    # recorded in the admin's name, and Factus knows the account
    assert saved.status_code == 303, saved.text
    assert "sandbox@einvoice.test" in page.text
    for shown in (page.text, checked.text):
        assert SECRET not in shown
        assert ACCOUNT_PASSWORD not in shown
    with console_api.factory() as session:
        secret, stored_password = session.execute(text(
            "SELECT client_secret, password_encrypted FROM factus_credentials "
            "WHERE organization_id = 1")).one()
        actor = session.execute(text(
            "SELECT metadata->>'actor' FROM factus_account_events "
            "WHERE event_type = 'credentials_saved'")).scalar_one()
    assert SECRET not in secret
    assert ACCOUNT_PASSWORD not in stored_password
    assert actor == f"console:{admin.username}"
    assert checked.status_code == 200
    assert "La conexión funciona" in checked.text


def test_a_wrong_password_fails_the_connection_test_with_a_reason(
        console_api: Api, sandbox_clean: Any) -> None:
    admin = operator(console_api, "admin")

    _save(admin, sandbox_clean.base_url, "not-the-password")
    checked = admin.post("/config/accounts/check", {"organization_id": "1"})

    assert "La conexión falló" in checked.text
    assert "not-the-password" not in checked.text


def test_ranges_sync_from_factus_and_a_webhook_secret_is_shown_once(
        console_api: Api, sandbox_clean: Any) -> None:
    admin = operator(console_api, "admin")
    _save(admin, sandbox_clean.base_url, ACCOUNT_PASSWORD)

    synced = admin.post("/config/ranges/sync")
    added = admin.post("/config/webhooks", {"organization_id": "1",
                                            "url": "https://erp.example.co/hook",
                                            "event_types": "job.rejected"})
    secret = re.search(r'<p class="mono">(whsec_[^<]+)</p>', added.text)
    listed = admin.get("/config/webhooks")

    assert synced.status_code == 200, synced.text
    assert re.search(r"\d+ rangos sincronizados desde Factus", synced.text)
    assert secret, added.text
    assert "https://erp.example.co/hook" in listed.text
    assert secret[1] not in listed.text


def test_a_bad_account_form_is_refused_with_a_reason(console_api: Api) -> None:
    admin = operator(console_api, "admin")

    answer = admin.post("/config/accounts", {"organization_id": "1", "environment": "sandbox",
                                             "client_id": "", "client_secret": "",
                                             "username": "", "password": ""})

    assert answer.status_code == 409
    assert "Falta un valor o no es válido." in answer.text
