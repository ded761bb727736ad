"""Factus API version per account and per job.

* ``factus_credentials.api_version``: ``v1``, ``v2`` or ``auto`` (default). ``auto`` starts on v1
  and moves the account to v2 the first time Factus answers v1 with the 403 "this account is not
  enabled for API v1" (what an account opened today gets); the version found is stored in
* ``factus_account_versions``: one row per Factus account identity
  (:attr:`einvoice.factus.tokens.FactusAccount.token_key`: the row id or ``default``, plus a hash
  of environment, base URL, client id and user), so the default ``FACTUS_*`` account, which has
  no ``factus_credentials`` row, remembers its version too; a changed user or base URL is a new
  identity and is detected afresh;
* ``factus_account_events``: what happened to an account outside any job (version detected,
  numbering range created by an operator), for operators;
* ``electronic_invoicing_jobs.factus_api_version``: the version the job's last attempt used.

Everything added carries a ``COMMENT`` starting with ``einvoice:0007``; the downgrade removes
exactly that.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MARK = "einvoice:0007"

#: (table, column, DDL) added when missing.
ADDED_COLUMNS = [
    ("factus_credentials", "api_version",
     ("TEXT NOT NULL DEFAULT 'auto' CONSTRAINT factus_credentials_api_version_check "
      "CHECK (api_version IN ('v1', 'v2', 'auto'))")),
    ("electronic_invoicing_jobs", "factus_api_version",
     ("TEXT CONSTRAINT electronic_invoicing_jobs_factus_api_version_check "
      "CHECK (factus_api_version IN ('v1', 'v2'))")),
]

NEW_TABLES = {
    "factus_account_versions": """
        account_key TEXT PRIMARY KEY,
        organization_id INTEGER,
        api_version TEXT NOT NULL
            CONSTRAINT factus_account_versions_api_version_check
            CHECK (api_version IN ('v1', 'v2')),
        detected_by TEXT,
        detected_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    """,
    "factus_account_events": """
        id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        account_key TEXT NOT NULL,
        organization_id INTEGER,
        event_type TEXT NOT NULL,
        event_code TEXT,
        event_message TEXT,
        metadata JSONB,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    """,
}
INDEXES = [
    ("CREATE INDEX IF NOT EXISTS ix_factus_account_events_created "
     "ON factus_account_events (created_at)"),
    ("CREATE INDEX IF NOT EXISTS ix_factus_account_events_org "
     "ON factus_account_events (organization_id, created_at)"),
]


def _scalar(sql: str, **params: object) -> object:
    return op.get_bind().execute(text(sql), params).scalar()


def _table_exists(name: str) -> bool:
    return bool(_scalar("SELECT to_regclass(:n) IS NOT NULL", n=f"public.{name}"))


def _column_exists(table: str, column: str) -> bool:
    return bool(_scalar("SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
                        "AND table_name = :t AND column_name = :c", t=table, c=column))


def _table_comment(table: str) -> str:
    return str(_scalar("SELECT obj_description(to_regclass(:n), 'pg_class')",
                       n=f"public.{table}") or "")


def _column_comment(table: str, column: str) -> str:
    return str(_scalar("SELECT col_description(to_regclass(:t), attnum) FROM pg_attribute "
                       "WHERE attrelid = to_regclass(:t) AND attname = :c AND NOT attisdropped",
                       t=f"public.{table}", c=column) or "")


def upgrade() -> None:
    """Add the version columns and the two account tables (only what is missing)."""
    for table, column, ddl in ADDED_COLUMNS:
        if _table_exists(table) and not _column_exists(table, column):
            op.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
            op.execute(f"COMMENT ON COLUMN {table}.{column} IS '{MARK}: added by einvoice'")
    for table, columns in NEW_TABLES.items():
        if not _table_exists(table):
            op.execute(f"CREATE TABLE {table} ({columns})")
            op.execute(f"COMMENT ON TABLE {table} IS '{MARK}: created by einvoice'")
    for statement in INDEXES:
        op.execute(statement)


def downgrade() -> None:
    """Drop what :func:`upgrade` added; an ERP's own tables and columns are kept."""
    for table in reversed(list(NEW_TABLES)):
        if _table_exists(table) and _table_comment(table).startswith(MARK):
            op.execute(f"DROP TABLE {table}")
    for table, column, _ddl in reversed(ADDED_COLUMNS):
        if _table_exists(table) and _column_comment(table, column).startswith(MARK):
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
