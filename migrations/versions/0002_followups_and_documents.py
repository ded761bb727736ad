"""Follow-ups of accepted jobs (documents archive, e-mail resend) and the stored documents.

Both tables are einvoice's own (no ERP has them), so the upgrade simply
creates them and the downgrade drops them; the ERP tables are not touched.

* ``electronic_invoicing_followups``: one row per follow-up of a job (``archive`` or ``email``),
  with its own status, attempts, ``next_retry_at`` and lease, so that a failed download or
  e-mail never changes the job's ``accepted`` status. A job has at most one ``archive`` row.
* ``electronic_invoicing_documents``: the PDF and XML bytes of a job (FACTUS_API.md §6.4) with
  their SHA-256 and size, at most one of each kind per job.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MARK = "einvoice:0002"

FOLLOWUPS = """
CREATE TABLE electronic_invoicing_followups (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id UUID NOT NULL REFERENCES electronic_invoicing_jobs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL
        CONSTRAINT electronic_invoicing_followups_kind_check CHECK (kind IN ('archive', 'email')),
    status TEXT NOT NULL DEFAULT 'pending'
        CONSTRAINT electronic_invoicing_followups_status_check
        CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    attempt_count SMALLINT NOT NULL DEFAULT 0,
    max_attempts SMALLINT NOT NULL DEFAULT 5,
    next_retry_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_expires_at TIMESTAMPTZ,
    leased_by TEXT,
    dispatched_at TIMESTAMPTZ,
    to_address TEXT,
    error_code TEXT,
    error_message TEXT,
    completed_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""

DOCUMENTS = """
CREATE TABLE electronic_invoicing_documents (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id UUID NOT NULL REFERENCES electronic_invoicing_jobs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL
        CONSTRAINT electronic_invoicing_documents_kind_check CHECK (kind IN ('pdf', 'xml')),
    file_name TEXT NOT NULL,
    content BYTEA NOT NULL,
    sha256 CHAR(64) NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT electronic_invoicing_documents_size_check CHECK (size_bytes = octet_length(content)),
    CONSTRAINT uq_ei_documents_job_kind UNIQUE (job_id, kind)
)"""

INDEXES = [
    ("CREATE INDEX ix_ei_followups_due ON electronic_invoicing_followups (next_retry_at) "
     "WHERE status = 'pending'"),
    ("CREATE INDEX ix_ei_followups_lease ON electronic_invoicing_followups (lease_expires_at) "
     "WHERE status = 'processing'"),
    ("CREATE UNIQUE INDEX ux_ei_followups_one_archive_per_job "
     "ON electronic_invoicing_followups (job_id) WHERE kind = 'archive'"),
    "CREATE INDEX ix_ei_followups_job ON electronic_invoicing_followups (job_id, created_at)",
]


def _exec(sql: str) -> None:
    op.get_bind().execute(text(sql))


def upgrade() -> None:
    """Create the follow-up and document tables with their indexes."""
    _exec(FOLLOWUPS)
    _exec(DOCUMENTS)
    for statement in INDEXES:
        _exec(statement)
    for table in ("electronic_invoicing_followups", "electronic_invoicing_documents"):
        _exec(f"COMMENT ON TABLE {table} IS '{MARK}: created by einvoice'")


def downgrade() -> None:
    """Drop both tables (their indexes and constraints go with them)."""
    _exec("DROP TABLE IF EXISTS electronic_invoicing_documents")
    _exec("DROP TABLE IF EXISTS electronic_invoicing_followups")
