"""Migration 0009: Factus's published reference tables loaded from the shipped files.

On an empty database every table is filled; on an ERP database that already has DIAN tables of
its own (the seed's ids and constraints) the ERP's rows are kept; the downgrade takes back
exactly what 0009 added.
"""

from __future__ import annotations

import csv
import importlib.resources
from typing import Any

import psycopg
from sqlalchemy.orm import Session

from einvoice.db import migrate
from einvoice.db.engine import make_engine, make_session_factory
from einvoice.db.reference import (
    known_identification_types,
    known_legal_organizations,
    known_payment_method_codes,
    known_standard_codes,
    known_tributes,
    known_unit_codes,
    known_unit_measures,
)
from einvoice.settings import libpq_url
from tests.integration.db.test_migrations import _prefill

DIAN_TABLES = (
    "dian_municipalities", "dian_unit_measures", "dian_tributes", "dian_identification_types",
    "dian_legal_organizations", "dian_payment_methods", "dian_standard_codes",
)

# The seed's own DIAN tables as an ERP created them ("Tablas de Referencia DIAN"): its unit ids
# 71-73 are not Factus's, and its tributes declare code UNIQUE.
ERP_DIAN_DDL = """
CREATE TABLE dian_unit_measures (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE,
  name TEXT NOT NULL, description TEXT, created_at TIMESTAMPTZ DEFAULT now());
INSERT INTO dian_unit_measures (id, code, name) VALUES
  (70, '94', 'Unidad'), (71, 'KGM', 'Kilogramo'), (72, 'LTR', 'Litro'), (73, 'MTR', 'Metro');
CREATE TABLE dian_tributes (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE,
  name TEXT NOT NULL, description TEXT, type TEXT, created_at TIMESTAMPTZ DEFAULT now());
INSERT INTO dian_tributes (id, code, name, type) VALUES (1, '01', 'IVA', 'product'),
  (4, '04', 'Impoconsumo', 'product');
"""


def _shipped(file: str) -> list[dict[str, str]]:
    with (importlib.resources.files("einvoice") / "data" / file).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _snapshot(url: str) -> dict[str, Any]:
    """Every dian_* table's columns and rows (without created_at), and the table list."""
    with psycopg.connect(libpq_url(url)) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        shot: dict[str, Any] = {"tables": tables}
        for table in DIAN_TABLES:
            if table not in tables:
                continue
            columns = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND column_name <> 'created_at' ORDER BY column_name", (table,))]
            shot[table] = (columns, sorted(conn.execute(
                f"SELECT {', '.join(columns)} FROM {table}").fetchall(), key=repr))
    return shot


def _session(url: str) -> tuple[Session, Any]:
    engine = make_engine(url)
    return make_session_factory(engine)(), engine


def test_upgrade_on_empty_database_loads_every_published_table(empty_db_url: str) -> None:
    # Given an empty database, when einvoice db upgrade runs
    migrate.upgrade(empty_db_url)

    session, engine = _session(empty_db_url)
    try:
        units = known_unit_measures(session)
        # Then every distinct unit Factus publishes is known (1,093 rows; MGM, ONZ, PD and SO
        # are listed twice, the first meaning is kept), under ids that are Factus's v1 ids.
        assert len(_shipped("unit_measures.csv")) == 1093
        assert len(units) == 1089
        assert {i: units[i] for i in (70, 414, 449, 512, 874)} == {
            70: "94", 414: "KGM", 449: "LBR", 512: "MTR", 874: "GLL"}
        # A shop selling litres, square metres or boxes is no longer turned away.
        assert {"LTR", "MTK", "BX", "CA", "DZN", "KWH", "HUR"} <= known_unit_codes(session)
        assert known_legal_organizations(session) == {1: "1", 2: "2"}
        assert known_standard_codes(session) == {1: "999", 2: "001", 3: "020", 4: "010"}
        assert known_payment_method_codes(session) == frozenset(
            {"10", "42", "20", "47", "71", "72", "1", "49", "48", "ZZZ"})
        identification = known_identification_types(session)
        assert identification[6] == "31"
        assert identification[3] == "13"
        assert len(identification) == 11
        # v1 product tributes 1-17 are all there now (the seed had 11), customer tributes 18 and 21.
        assert set(known_tributes(session, "product")) >= {1, 2, 3, 4, 8, 9, 12, 13, 14, 15, 16, 17}
        assert known_tributes(session, "withholding") == {5: "05", 6: "06", 7: "07"}
        assert {18: "01", 21: "ZZ"}.items() <= known_tributes(session, "customer").items()
    finally:
        session.close()
        engine.dispose()
    with psycopg.connect(libpq_url(empty_db_url)) as conn:
        litre = conn.execute(
            "SELECT id, name, source FROM dian_unit_measures WHERE code = 'LTR'").fetchone()
        assert litre[1:] == ("litro", "unit_measures.csv")
        # The id is the unit's position in Factus's table (as for the five documented ones).
        position = next(i for i, r in enumerate(_shipped("unit_measures.csv"), 1)
                        if r["code"] == "LTR")
        assert litre[0] == position
        # Rows migration 0001 already seeded stay its own (no source).
        assert conn.execute("SELECT source FROM dian_unit_measures WHERE id = 70").fetchone() == (
            None,)


def test_upgrade_on_prefilled_erp_database_keeps_the_erps_own_rows(empty_db_url: str) -> None:
    # Given an ERP database with the seed's tables and its own DIAN units and tributes
    _prefill(empty_db_url)
    with psycopg.connect(libpq_url(empty_db_url), autocommit=True) as conn:
        conn.execute(ERP_DIAN_DDL)

    # When einvoice db upgrade runs
    migrate.upgrade(empty_db_url)

    with psycopg.connect(libpq_url(empty_db_url)) as conn:
        # Then the ERP's rows are untouched: same ids, codes and names, no source
        erp_units = conn.execute(
            "SELECT id, code, name, source FROM dian_unit_measures WHERE id BETWEEN 70 AND 73 "
            "ORDER BY id").fetchall()
        assert erp_units == [(70, "94", "Unidad", None), (71, "KGM", "Kilogramo", None),
                             (72, "LTR", "Litro", None), (73, "MTR", "Metro", None)]
        # A code the ERP holds under another id is not added twice
        assert conn.execute("SELECT count(*) FROM dian_unit_measures WHERE code IN "
                            "('KGM', 'LTR', 'MTR', '94')").fetchone() == (4,)
        # and every other unit of Factus's table is there
        assert conn.execute("SELECT name, source FROM dian_unit_measures WHERE code = 'BX'"
                            ).fetchone() == ("caja", "unit_measures.csv")
        # 4 rows of the ERP's, LBR and GLL from migration 0001, and the file's other 1,080
        # (its rows with ids 70-73, 449, 874 or codes 94, KGM, LTR, MTR, LBR, GLL step aside).
        assert conn.execute("SELECT count(*) FROM dian_unit_measures").fetchone() == (1086,)
        assert conn.execute("SELECT name FROM dian_tributes WHERE id = 4").fetchone() == (
            "Impoconsumo",)
        # Its UNIQUE(code) on tributes holds: 14 (code 24, like 13) is skipped, not an error
        assert conn.execute("SELECT count(*) FROM dian_tributes WHERE code = '24'"
                            ).fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM dian_legal_organizations").fetchone() == (2,)


def test_downgrade_removes_exactly_what_0009_added(empty_db_url: str) -> None:
    # Given an ERP database with its own DIAN rows, migrated up to 0008
    _prefill(empty_db_url)
    with psycopg.connect(libpq_url(empty_db_url), autocommit=True) as conn:
        conn.execute(ERP_DIAN_DDL)
    migrate.upgrade(empty_db_url, "0008")
    before = _snapshot(empty_db_url)

    # When 0009 is applied and then undone
    migrate.upgrade(empty_db_url, "0009")
    after_upgrade = _snapshot(empty_db_url)
    migrate.downgrade(empty_db_url, "0008")

    # Then tables, columns and rows are as they were before
    assert after_upgrade != before
    assert _snapshot(empty_db_url) == before


def test_downgrade_on_einvoice_tables_then_upgrade_again(empty_db_url: str) -> None:
    # Given einvoice's own DIAN tables (an empty database), up and down and up again
    migrate.upgrade(empty_db_url, "0008")
    before = _snapshot(empty_db_url)
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url, "0008")
    assert _snapshot(empty_db_url) == before
    migrate.upgrade(empty_db_url)
    with psycopg.connect(libpq_url(empty_db_url)) as conn:
        assert conn.execute("SELECT count(*) FROM dian_unit_measures").fetchone() == (1089,)
        assert conn.execute("SELECT count(*) FROM dian_standard_codes").fetchone() == (4,)
