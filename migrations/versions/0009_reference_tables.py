"""DIAN reference tables from Factus's published tables.

Factus v2 publishes its reference data as tables ("Tablas de referencia") instead of v1's lookup
endpoints. einvoice ships them as CSV files under ``einvoice/data/`` (source page and date in
``einvoice/data/README.md``); this migration:

* creates ``dian_legal_organizations`` and ``dian_standard_codes`` where missing (v1 ids with
  v2 codes: ``legal_organization_code``, ``standard_code``);
* adds ``source`` to every ``dian_*`` table where missing: the shipped file that wrote a row,
  NULL for the ERP's own rows and for rows loaded before this migration;
* loads every shipped file (:func:`einvoice.db.reference.load_reference_files`): a row goes in
  only when its id, and where unique its code, are free, so an ERP's own rows are kept.

What it creates or adds carries a ``COMMENT`` starting with ``einvoice:0009``; the downgrade
deletes the rows a file wrote (``source`` set), drops the ``source`` columns it added and the
tables it created, and nothing else.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from einvoice.db.reference import REFERENCE_FILES, delete_loaded_rows, load_reference_files

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

MARK = "einvoice:0009"

NEW_TABLES: dict[str, str] = {
    "dian_legal_organizations": """
        id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE, name TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(), source TEXT""",
    "dian_standard_codes": """
        id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE, name TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(), source TEXT""",
}
#: Every table this migration loads (pinned: a later migration's files are not 0009's).
TABLES = (
    "dian_municipalities", "dian_unit_measures", "dian_tributes", "dian_identification_types",
    "dian_legal_organizations", "dian_payment_methods", "dian_standard_codes",
)


def _scalar(sql: str, **params: object) -> object:
    return op.get_bind().execute(text(sql), params).scalar()


def _exec(sql: str) -> None:
    op.get_bind().execute(text(sql))


def _table_exists(name: str) -> bool:
    return bool(_scalar("SELECT to_regclass(:n) IS NOT NULL", n=f"public.{name}"))


def _column_comment(table: str, column: str) -> str | None:
    """The column's comment; None when it has none or does not exist."""
    return _scalar(  # type: ignore[return-value]
        "SELECT col_description(a.attrelid, a.attnum) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(:t) AND a.attname = :c AND NOT a.attisdropped",
        t=f"public.{table}", c=column)


def _column_exists(table: str, column: str) -> bool:
    return bool(_scalar(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = :t AND column_name = :c", t=table, c=column))


def _created_by_us(table: str) -> bool:
    comment = _scalar("SELECT obj_description(to_regclass(:n), 'pg_class')", n=f"public.{table}")
    return bool(comment and str(comment).startswith(MARK))


def upgrade() -> None:
    """Create the missing tables and ``source`` columns, then load the shipped files."""
    for table, columns in NEW_TABLES.items():
        if not _table_exists(table):
            _exec(f"CREATE TABLE {table} ({columns})")
            _exec(f"COMMENT ON TABLE {table} IS '{MARK}: created by einvoice'")
    for table in TABLES:
        if not _column_exists(table, "source"):
            _exec(f"ALTER TABLE {table} ADD COLUMN source TEXT")
            _exec(f"COMMENT ON COLUMN {table}.source IS '{MARK}: added by einvoice'")
    load_reference_files(op.get_bind(), [f for f in REFERENCE_FILES if f.table in TABLES])


def downgrade() -> None:
    """Remove the loaded rows, the ``source`` columns and the tables this migration added."""
    for table in TABLES:
        if not _table_exists(table) or _created_by_us(table):
            continue
        comment = _column_comment(table, "source")
        if comment and comment.startswith(MARK):
            # Our column: every value in it is ours, so these are exactly the rows we loaded.
            delete_loaded_rows(op.get_bind(), table)
            _exec(f"ALTER TABLE {table} DROP COLUMN source")
    for table in NEW_TABLES:
        if _table_exists(table) and _created_by_us(table):
            _exec(f"DROP TABLE {table}")
