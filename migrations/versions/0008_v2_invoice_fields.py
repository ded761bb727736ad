"""ERP columns for what Factus API v2 adds (payments, rounding, currency, ...).

Added only where missing (an ERP may have some of them already), each marked with a ``COMMENT``
starting with ``einvoice:0008`` so that the downgrade removes exactly what this migration added:

* ``invoice_sales``: ``cash_rounding_amount`` (COP, ±500 at most), ``prepayments`` (JSONB list of
  ``{reference_code, received_date, amount, note}``), ``display_currency`` (ISO 4217) and
  ``exchange_rate`` (COP per unit), ``order_reference`` and ``order_issue_date``;
* ``invoice_items.taxes``: JSONB list of ``{code | tribute_id, rate, is_excluded}`` for a line
  with several taxes (NULL: the line's one ``tax_rate``);
* ``invoice_payments``: one row per means of payment of an invoice (Factus v2
  ``payment_details``), with its index on ``invoice_id``; an ERP's own table of that name gets
  only the missing columns.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MARK = "einvoice:0008"

ADDED_COLUMNS: list[tuple[str, str, str]] = [
    ("invoice_sales", "cash_rounding_amount", "NUMERIC"),
    ("invoice_sales", "prepayments", "JSONB"),
    ("invoice_sales", "display_currency", "TEXT"),
    ("invoice_sales", "exchange_rate", "NUMERIC"),
    ("invoice_sales", "order_reference", "TEXT"),
    ("invoice_sales", "order_issue_date", "DATE"),
    ("invoice_items", "taxes", "JSONB"),
    ("invoice_payments", "invoice_id", "UUID"),
    ("invoice_payments", "payment_form", "TEXT"),
    ("invoice_payments", "payment_method_code", "TEXT"),
    ("invoice_payments", "amount", "NUMERIC"),
    ("invoice_payments", "due_date", "DATE"),
    ("invoice_payments", "reference", "TEXT"),
]
PAYMENTS_TABLE = "id UUID PRIMARY KEY DEFAULT gen_random_uuid()"
INDEX = "CREATE INDEX IF NOT EXISTS ix_invoice_payments_invoice ON invoice_payments (invoice_id)"


def _scalar(sql: str, **params: object) -> object:
    return op.get_bind().execute(text(sql), params).scalar()


def _exec(sql: str) -> None:
    op.get_bind().execute(text(sql))


def _table_exists(name: str) -> bool:
    return bool(_scalar("SELECT to_regclass(:n) IS NOT NULL", n=f"public.{name}"))


def _column_exists(table: str, column: str) -> bool:
    return bool(_scalar(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = :t AND column_name = :c", t=table, c=column))


def _created_by_us(table: str) -> bool:
    comment = _scalar("SELECT obj_description(to_regclass(:n), 'pg_class')", n=f"public.{table}")
    return bool(comment and str(comment).startswith(MARK))


def upgrade() -> None:
    """Create ``invoice_payments`` if missing, then add the missing columns and the index."""
    if not _table_exists("invoice_payments"):
        _exec(f"CREATE TABLE invoice_payments ({PAYMENTS_TABLE})")
        _exec(f"COMMENT ON TABLE invoice_payments IS '{MARK}: created by einvoice'")
    for table, column, ddl in ADDED_COLUMNS:
        if not _column_exists(table, column):
            _exec(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
            _exec(f"COMMENT ON COLUMN {table}.{column} IS '{MARK}: added by einvoice'")
    if not _scalar("SELECT to_regclass('public.ix_invoice_payments_invoice') IS NOT NULL"):
        _exec(INDEX)
        _exec(f"COMMENT ON INDEX ix_invoice_payments_invoice IS '{MARK}: created by einvoice'")


def downgrade() -> None:
    """Remove what ``upgrade`` added; an ERP's own table, columns and rows are kept."""
    if _table_exists("invoice_payments") and _created_by_us("invoice_payments"):
        _exec("DROP TABLE invoice_payments CASCADE")
    index_comment = _scalar(
        "SELECT obj_description(to_regclass('public.ix_invoice_payments_invoice'), 'pg_class')")
    if index_comment and str(index_comment).startswith(MARK):
        _exec("DROP INDEX ix_invoice_payments_invoice")
    added = op.get_bind().execute(
        text(
            "SELECT c.relname, a.attname FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' "
            "WHERE a.attnum > 0 AND NOT a.attisdropped "
            "AND col_description(a.attrelid, a.attnum) LIKE :mark"
        ),
        {"mark": f"{MARK}%"},
    ).all()
    for table, column in added:
        _exec(f"ALTER TABLE {table} DROP COLUMN {column}")
