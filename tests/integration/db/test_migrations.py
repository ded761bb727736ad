"""Migrations on an empty database and on an ERP database that already has the seed's tables."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from einvoice.db import migrate
from einvoice.db.models import Base
from einvoice.settings import libpq_url

NEW_TABLES = {
    "factus_credentials", "dian_municipalities", "dian_unit_measures", "dian_tributes",
    "dian_identification_types", "dian_payment_methods",
}
ERP_TABLES = {
    "organizations", "branches", "customers", "products", "invoice_sales", "invoice_items",
    "invoice_sequences", "electronic_invoicing_jobs", "electronic_invoicing_events",
}

# The seed's nine original tables as the ERP (Supabase) has them: "Análisis de Tablas Existentes",
# with the seed's provider CHECK that does not allow 'factus' yet.
SEED_ORIGINAL_DDL = """
CREATE TABLE organizations (id INTEGER PRIMARY KEY, name VARCHAR, legal_name TEXT, nit TEXT,
  tax_id VARCHAR, email VARCHAR, phone VARCHAR, address TEXT, city TEXT, country_code VARCHAR,
  logo_url TEXT);
CREATE TABLE branches (id INTEGER PRIMARY KEY, organization_id INTEGER, name VARCHAR,
  address TEXT, city VARCHAR, phone VARCHAR, email VARCHAR);
CREATE TABLE customers (id UUID PRIMARY KEY, organization_id INTEGER, email TEXT, phone TEXT,
  first_name TEXT, last_name TEXT, identification_type TEXT, identification_number TEXT,
  address TEXT, city TEXT);
CREATE TABLE products (id INTEGER PRIMARY KEY, organization_id INTEGER, sku TEXT, name TEXT,
  unit_code CHAR, tax_id INTEGER, barcode TEXT);
CREATE TABLE invoice_sales (id UUID PRIMARY KEY, organization_id INTEGER, branch_id INTEGER,
  customer_id UUID, sale_id UUID, number TEXT, issue_date TIMESTAMPTZ, due_date TIMESTAMPTZ,
  currency CHAR(3), subtotal NUMERIC, tax_total NUMERIC, total NUMERIC, balance NUMERIC,
  status TEXT, xml_uuid TEXT, notes TEXT, payment_method TEXT, tax_included BOOLEAN,
  payment_terms INTEGER, document_type TEXT, related_invoice_id UUID);
CREATE TABLE invoice_items (id UUID PRIMARY KEY, invoice_id UUID, product_id INTEGER,
  description TEXT, qty NUMERIC, unit_price NUMERIC, tax_code TEXT, tax_rate NUMERIC,
  total_line NUMERIC, discount_amount NUMERIC, tax_included BOOLEAN);
CREATE TABLE invoice_sequences (id INTEGER PRIMARY KEY, organization_id INTEGER,
  branch_id INTEGER, document_type TEXT, resolution_number VARCHAR, resolution_date DATE,
  prefix VARCHAR, range_start INTEGER, range_end INTEGER, current_number INTEGER,
  valid_from DATE, valid_until DATE, technical_key TEXT, test_set_id TEXT, is_active BOOLEAN,
  alert_threshold INTEGER);
CREATE TABLE electronic_invoicing_jobs (id UUID PRIMARY KEY, organization_id INTEGER NOT NULL,
  invoice_id UUID NOT NULL, document_type TEXT, provider TEXT
  CONSTRAINT electronic_invoicing_jobs_provider_check
  CHECK (provider = ANY (ARRAY['carvajal', 'facturatech', 'siigo', 'alegra', 'world_office'])),
  status TEXT, attempt_count SMALLINT DEFAULT 0, max_attempts SMALLINT DEFAULT 5,
  next_retry_at TIMESTAMPTZ, request_payload JSONB, response_payload JSONB, cufe VARCHAR(100),
  qr_code TEXT, error_code TEXT, error_message TEXT, processed_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ);
CREATE TABLE electronic_invoicing_events (id UUID PRIMARY KEY,
  job_id UUID REFERENCES electronic_invoicing_jobs(id), event_type TEXT, event_code VARCHAR,
  event_message TEXT, metadata JSONB, created_at TIMESTAMPTZ);
"""

INVOICE_ID = uuid.UUID("11111111-1111-1111-1111-111111111111")
JOB_IDS = [uuid.UUID("22222222-2222-2222-2222-22222222222" + str(i)) for i in range(2)]


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _prefill(url: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(SEED_ORIGINAL_DDL)
        conn.execute("INSERT INTO organizations (id, name, nit) VALUES (7, 'Tienda Uno', '900123456')")
        conn.execute(
            "INSERT INTO invoice_sales (id, organization_id, number, total, status) "
            "VALUES (%s, 7, 'POS-1', 119000.50, 'issued')",
            (INVOICE_ID,),
        )
        conn.execute(
            "INSERT INTO invoice_items (id, invoice_id, description, qty, unit_price) "
            "VALUES (gen_random_uuid(), %s, 'Café', 2, 50000)", (INVOICE_ID,)
        )
        for job_id, provider in zip(JOB_IDS, ["siigo", "alegra"], strict=True):
            conn.execute(
                "INSERT INTO electronic_invoicing_jobs (id, organization_id, invoice_id, "
                "document_type, provider, status) VALUES (%s, 7, %s, 'invoice', %s, 'failed')",
                (job_id, INVOICE_ID, provider),
            )
        conn.execute(
            "INSERT INTO electronic_invoicing_events (id, job_id, event_type, created_at) "
            "VALUES (gen_random_uuid(), %s, 'error', now())", (JOB_IDS[0],)
        )


def test_upgrade_on_empty_database_creates_whole_schema_matching_the_models(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)

    assert _tables(empty_db_url) >= ERP_TABLES | NEW_TABLES
    engine = create_engine(empty_db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    # The models and the migrated database agree: no table, column, type or index differs.
    # (Comments are the migration's own bookkeeping for the downgrade, not schema.)
    flat = [d for entry in diff for d in (entry if isinstance(entry, list) else [entry])]
    significant = [
        d for d in flat
        if d[0] not in {"modify_comment", "add_table_comment", "remove_table_comment"}
        and not (d[0] == "remove_table" and d[1].name == "alembic_version")
    ]
    assert significant == []


def test_downgrade_on_empty_database_removes_everything_then_upgrade_again(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url)
    assert _tables(empty_db_url) == {"alembic_version"}
    migrate.upgrade(empty_db_url)
    assert _tables(empty_db_url) >= ERP_TABLES | NEW_TABLES


def test_upgrade_on_prefilled_erp_database_keeps_rows_and_adds_columns(empty_db_url: str) -> None:
    _prefill(empty_db_url)

    migrate.upgrade(empty_db_url)

    with psycopg.connect(libpq_url(empty_db_url)) as conn:
        org = conn.execute("SELECT name, nit, dv FROM organizations WHERE id = 7").fetchone()
        assert org == ("Tienda Uno", "900123456", None)
        inv = conn.execute(
            "SELECT number, total, operation_type, payment_form, allowance_charges "
            "FROM invoice_sales WHERE id = %s", (INVOICE_ID,)
        ).fetchone()
        assert inv == ("POS-1", Decimal("119000.50"), "10", "1", [])
        item = conn.execute("SELECT unit_measure_id, tribute_id FROM invoice_items").fetchone()
        assert item == (70, 1)
        jobs = conn.execute(
            "SELECT provider, status, reference_code, next_retry_at IS NOT NULL "
            "FROM electronic_invoicing_jobs ORDER BY id"
        ).fetchall()
        assert [(p, s) for p, s, _, _ in jobs] == [("siigo", "failed"), ("alegra", "failed")]
        refs = [r for _, _, r, _ in jobs]
        assert all(r.startswith("EI") and len(r) == 20 for r in refs)
        assert len(set(refs)) == 2
        assert conn.execute("SELECT count(*) FROM electronic_invoicing_events").fetchone() == (1,)
        # 'factus' is now an allowed provider, and a plain SQL insert gets every default.
        conn.execute(
            "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, document_type, "
            "provider) VALUES (7, gen_random_uuid(), 'invoice', 'factus')"
        )
        row = conn.execute(
            "SELECT status, attempt_count, max_attempts, reference_code IS NOT NULL "
            "FROM electronic_invoicing_jobs WHERE provider = 'factus'"
        ).fetchone()
        assert row == ("pending", 0, 5, True)
    assert _tables(empty_db_url) >= NEW_TABLES


def test_downgrade_on_prefilled_database_keeps_the_erp_tables_and_rows(empty_db_url: str) -> None:
    _prefill(empty_db_url)
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url)

    assert _tables(empty_db_url) == ERP_TABLES | {"alembic_version"}
    with psycopg.connect(libpq_url(empty_db_url)) as conn:
        cols = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'")}
        assert "dv" not in cols
        assert "identification_number" in cols
        assert conn.execute("SELECT count(*) FROM electronic_invoicing_jobs").fetchone() == (2,)
        assert conn.execute("SELECT total FROM invoice_sales").fetchone() == (Decimal("119000.50"),)


def _item_indexes(url: str) -> list[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        return [r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'invoice_items' "
            "AND indexdef LIKE '%(invoice_id%' ORDER BY indexname")]


def test_invoice_lines_are_indexed_by_invoice_once_even_when_the_erp_indexed_them(
        empty_db_url: str) -> None:
    # Migration 0005: every submission reads its lines by invoice_id. An ERP with its own index
    # on that column gets no duplicate, and the downgrade leaves the ERP's index alone.
    _prefill(empty_db_url)
    with psycopg.connect(libpq_url(empty_db_url), autocommit=True) as conn:
        conn.execute("CREATE INDEX erp_items_by_invoice ON invoice_items (invoice_id, id)")

    migrate.upgrade(empty_db_url)
    assert _item_indexes(empty_db_url) == ["erp_items_by_invoice"]
    migrate.downgrade(empty_db_url)
    assert _item_indexes(empty_db_url) == ["erp_items_by_invoice"]


def test_invoice_lines_index_comes_and_goes_with_its_migration(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    assert _item_indexes(empty_db_url) == ["ix_invoice_items_invoice"]
    migrate.downgrade(empty_db_url, "0004")
    assert _item_indexes(empty_db_url) == []


@pytest.mark.parametrize(
    ("table", "key", "expected"),
    [
        ("dian_municipalities", 980, ("68679", "San Gil")),
        ("dian_municipalities", 169, ("11001", "Bogotá, D.C.")),
        ("dian_unit_measures", 70, ("94", "unidad")),
        ("dian_unit_measures", 414, ("KGM", "kilogramo")),
        ("dian_identification_types", 6, ("31", "NIT")),
        ("dian_identification_types", 3, ("13", "Cédula de ciudadanía")),
        ("dian_tributes", 1, ("01", "IVA")),
        ("dian_tributes", 21, ("ZZ", "No aplica")),
        ("dian_payment_methods", 10, ("ZZZ", "Otro")),
    ],
)
def test_lookup_tables_hold_factus_ids(db_url: str, table: str, key: int, expected: tuple) -> None:
    with psycopg.connect(libpq_url(db_url)) as conn:
        assert conn.execute(f"SELECT code, name FROM {table} WHERE id = %s", (key,)).fetchone() == expected


def test_municipalities_table_has_every_factus_municipality(db_url: str) -> None:
    with psycopg.connect(libpq_url(db_url)) as conn:
        count, low, high = conn.execute(
            "SELECT count(*), min(id), max(id) FROM dian_municipalities").fetchone()
    assert (count, low, high) == (1122, 1, 1122)


def _unit_code_type(url: str) -> str:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                           "WHERE attrelid = 'products'::regclass AND attname = 'unit_code'"
                           ).fetchone()
    assert row is not None
    return str(row[0])


def test_products_created_by_einvoice_take_dian_unit_codes_an_erps_own_column_is_kept(
    empty_db_url: str, db_url: str
) -> None:
    # An empty database: einvoice creates products, with a unit code wide enough for "94".
    assert _unit_code_type(db_url) == "text"
    # An ERP's database: its own CHAR column is its business; einvoice leaves it alone.
    _prefill(empty_db_url)
    migrate.upgrade(empty_db_url)
    assert _unit_code_type(empty_db_url) == "character(1)"


def test_an_einvoice_products_table_created_as_char_is_widened_by_the_upgrade(
    empty_db_url: str,
) -> None:
    # Given a database migrated before unit_code was text (einvoice's table, character(1))
    migrate.upgrade(empty_db_url, "0005")
    with psycopg.connect(libpq_url(empty_db_url), autocommit=True) as conn:
        conn.execute("ALTER TABLE products ALTER COLUMN unit_code TYPE char(1)")
    # When it is upgraded
    migrate.upgrade(empty_db_url)
    # Then a DIAN unit code fits
    assert _unit_code_type(empty_db_url) == "text"
