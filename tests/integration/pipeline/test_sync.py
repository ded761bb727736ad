"""Reference-data syncs fill their tables from the simulator or the shipped files, idempotently."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.db.models import DianMunicipality, DianTribute, DianUnitMeasure, InvoiceSequence
from einvoice.factus.client import FactusClients, create_factus_clients
from einvoice.services.sync import (
    refresh_tokens,
    sync_catalogs,
    sync_ranges,
    sync_reference_tables,
)
from einvoice.settings import Settings, load_settings
from tests.integration.pipeline.conftest import seed_organization


@pytest.fixture
def settings(sandbox_clean: Any, redis_url: str, db_url: str) -> Settings:
    return load_settings(
        database_url=db_url, redis_url=redis_url, factus_base_url=sandbox_clean.base_url,
        factus_client_id="sandbox-client", factus_client_secret="sandbox-secret",
        factus_username="sandbox@einvoice.test", factus_password="sandbox-password",
        einvoice_secret_key=Fernet.generate_key().decode(),
    )


@pytest.fixture
def clients(settings: Settings) -> Iterator[FactusClients]:
    made = create_factus_clients(settings)
    yield made
    made.close()


def test_range_sync_fills_invoice_sequences_and_is_idempotent(
    session: Session, session_factory: sessionmaker[Session], clients: FactusClients,
    settings: Settings,
) -> None:
    session.execute(text("INSERT INTO organizations (id, name) OVERRIDING SYSTEM VALUE "
                         "VALUES (1, 'Tienda')"))
    session.commit()

    first = sync_ranges(session_factory, clients, settings, date(2026, 11, 21))
    second = sync_ranges(session_factory, clients, settings, date(2026, 11, 21))

    assert first.written == second.written
    assert first.written["invoice_sequences"] > 0
    rows = session.scalars(select(InvoiceSequence).order_by(InvoiceSequence.factus_numbering_range_id)).all()
    assert len(rows) == first.written["invoice_sequences"]
    setp = next(r for r in rows if r.prefix == "SETP")
    assert (setp.document_type, setp.factus_numbering_range_id, setp.range_start, setp.range_end) == (
        "invoice", 8, 990000000, 995000000)
    assert setp.is_active
    assert setp.technical_key
    assert setp.resolution_number == "18760000001"
    assert any(r.document_type == "credit_note" and r.prefix == "NC" for r in rows)
    # The simulator's deliberately expired test range is stored inactive and not warned about.
    assert not any(r.is_active for r in rows if r.valid_until and r.valid_until < date(2026, 11, 21))


def test_range_sync_warns_when_a_range_runs_low(
    session: Session, session_factory: sessionmaker[Session], clients: FactusClients,
    settings: Settings,
) -> None:
    seed_organization(session)  # SETP range with factus id 8, as the ERP configured it
    session.execute(text("UPDATE invoice_sequences SET alert_threshold = 999999999"))
    session.commit()

    report = sync_ranges(session_factory, clients, settings, date(2026, 11, 21))

    assert any("numbers left" in w for w in report.warnings)
    count = session.scalar(select(func.count()).select_from(InvoiceSequence)
                           .where(InvoiceSequence.factus_numbering_range_id == 8))
    assert count == 1  # updated in place, not duplicated


def test_catalog_sync_fills_reference_tables_and_is_idempotent(
    session: Session, session_factory: sessionmaker[Session], clients: FactusClients,
    settings: Settings,
) -> None:
    first = sync_catalogs(session_factory, clients, settings)
    second = sync_catalogs(session_factory, clients, settings)

    assert first.written == second.written
    assert session.scalar(select(func.count()).select_from(DianMunicipality)) == 1122
    assert session.get(DianMunicipality, 980).name == "San Gil"
    assert session.get(DianUnitMeasure, 414).code == "KGM"
    assert session.get(DianTribute, 6).type == "withholding"


def test_catalog_sync_of_a_v2_only_account_warns_and_keeps_the_shipped_tables(
    session: Session, session_factory: sessionmaker[Session], sandbox_clean: Any,
    redis_url: str, db_url: str,
) -> None:
    # Given an account opened for Factus v2, which has no catalog endpoints
    sandbox_clean.add_account("v2-client", "v2-secret", "v2@einvoice.test", "v2-pass", mode="v2")
    v2 = load_settings(
        database_url=db_url, redis_url=redis_url, factus_base_url=sandbox_clean.base_url,
        factus_client_id="v2-client", factus_client_secret="v2-secret",
        factus_username="v2@einvoice.test", factus_password="v2-pass",
        einvoice_secret_key=Fernet.generate_key().decode(),
    )
    units = session.scalar(select(func.count()).select_from(DianUnitMeasure))
    made = create_factus_clients(v2)
    try:
        # When the daily catalog sync runs
        report = sync_catalogs(session_factory, made, v2)
    finally:
        made.close()

    # Then it says why nothing came from Factus, and the shipped tables are untouched
    assert report.written == {}
    assert "sync tables" in report.warnings[0]
    assert session.scalar(select(func.count()).select_from(DianUnitMeasure)) == units


def test_token_refresh_task_obtains_a_token_once(
    session: Session, session_factory: sessionmaker[Session], clients: FactusClients,
    settings: Settings, sandbox_clean: Any,
) -> None:
    seed_organization(session)
    session.commit()
    assert refresh_tokens(session_factory, clients, settings) == 1
    assert refresh_tokens(session_factory, clients, settings) == 1
    token_calls = sandbox_clean.stats()["global"]["requests"].get("POST /oauth/token", {})
    assert sum(token_calls.values()) == 1


def test_reference_table_sync_reloads_the_shipped_files_and_keeps_the_erps_rows(
    session: Session, session_factory: sessionmaker[Session],
) -> None:
    # Given a migrated database where a shipped unit went missing, a shipped row went stale,
    # and the ERP made the "CA" row its own (no source: einvoice must not touch it)
    session.execute(text("DELETE FROM dian_unit_measures WHERE code = 'LTR'"))
    session.execute(text("UPDATE dian_unit_measures SET name = 'old' WHERE code = 'BX'"))
    session.execute(text("UPDATE dian_unit_measures SET name = 'Caja de la tienda', source = NULL "
                         "WHERE code = 'CA'"))
    session.execute(text("DELETE FROM dian_standard_codes"))
    session.commit()

    # When einvoice sync tables runs (twice)
    first = sync_reference_tables(session_factory)
    second = sync_reference_tables(session_factory)

    # Then the missing rows are back, the stale one is refreshed, the ERP's row is kept
    names = dict(session.execute(text(
        "SELECT code, name FROM dian_unit_measures WHERE code IN ('LTR', 'BX', 'CA')")).all())
    assert names == {"LTR": "litro", "BX": "caja", "CA": "Caja de la tienda"}
    assert session.scalar(select(func.count()).select_from(DianUnitMeasure)) == 1089
    assert first.written["dian_unit_measures"] == 2  # LTR inserted, BX updated
    assert first.loaded["dian_unit_measures"].inserted == 1
    assert first.written["dian_standard_codes"] == 4
    # and a second run has nothing left to write
    assert all(count == 0 for count in second.written.values())
