"""Index for the dispatcher's in-flight count (benchmark B6: <= 5 ms p99 with 1,000,000 jobs).

:func:`einvoice.db.dispatcher.select_due_for_dispatch` counts, per organization, the jobs in flight:
its ``processing`` jobs plus its due jobs whose wake-up is still queued. The second part comes
from the due jobs it reads anyway (``ix_ei_jobs_due``); for the first, the existing
``ix_ei_jobs_lease`` (keyed by ``lease_expires_at``) makes PostgreSQL visit every processing row
in the table. ``ix_ei_jobs_processing_by_org`` (organization_id) over the processing factus rows
answers it from the index alone when the pages are all-visible (measured on the B6 table: 2
buffers instead of 123, about 0.2 ms of the query's 2 ms); where they are not, PostgreSQL keeps
using ``ix_ei_jobs_lease``. It holds only the processing rows, so it costs an index entry per
claim and nothing else.

Deliberately not indexed: ``dispatched_at``. The dispatcher sets it on every job it publishes;
as long as no index refers to it, that UPDATE can be HOT (no index entry per marked row), and
the indexes the dispatcher reads do not fill up with the versions it leaves behind.

The table is shared with the ERP and may already hold millions of rows, so the index is built
with ``CREATE INDEX CONCURRENTLY`` (no lock that blocks the ERP's inserts and updates) inside an
Alembic autocommit block: ``migrations/env.py`` runs one transaction per migration, so the
migrations before this one are committed first, as Alembic requires. A concurrent build that
failed leaves an invalid index behind; the upgrade drops such a leftover and builds it again.
The downgrade drops the index (concurrently as well); no table, column or row is touched.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Keep in sync with ElectronicInvoicingJob.__table_args__ (einvoice.db.models).
INDEX = "ix_ei_jobs_processing_by_org"
DEFINITION = (
    "ON electronic_invoicing_jobs (organization_id) "
    "WHERE status = 'processing' AND provider = 'factus'"
)

INVALID_INDEX = """
SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname = :name AND NOT i.indisvalid
"""


def _exec(sql: str, **params: str) -> object:
    return op.get_bind().execute(text(sql), params)


def upgrade() -> None:
    """Build the index concurrently (dropping an invalid leftover of a failed build first)."""
    with op.get_context().autocommit_block():
        if _exec(INVALID_INDEX, name=INDEX).first() is not None:  # type: ignore[attr-defined]
            _exec(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        _exec(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} {DEFINITION}")


def downgrade() -> None:
    """Drop the index concurrently."""
    with op.get_context().autocommit_block():
        _exec(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
