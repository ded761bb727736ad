"""Index ``invoice_items(invoice_id)``: the worker reads an invoice's lines by it (benchmark B1).

Every submission loads its invoice's lines with ``WHERE invoice_id = ...``
(:func:`einvoice.db.invoices.load_invoice`). Without an index that is a sequential scan of the
whole ``invoice_items`` table per job: 2.0 ms per job with 22,000 lines in the B1 benchmark
(``pg_stat_statements``), the most expensive statement after the dispatcher's, and it grows with
the ERP's history.

An ERP database that already has an index whose first column is ``invoice_items.invoice_id``
(under any name) gets no second one; the downgrade drops only the index this migration created.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEX = "ix_invoice_items_invoice"

# Any valid index of invoice_items whose first key column is invoice_id.
_HAS_INVOICE_INDEX = text("""
SELECT 1
  FROM pg_index i
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
 WHERE i.indrelid = to_regclass('invoice_items') AND a.attname = 'invoice_id' AND i.indisvalid
 LIMIT 1
""")


def upgrade() -> None:
    """Create ``ix_invoice_items_invoice`` unless ``invoice_items`` is already indexed by
    ``invoice_id``."""
    if op.get_bind().execute(_HAS_INVOICE_INDEX).first() is None:
        op.execute(f"CREATE INDEX {INDEX} ON invoice_items (invoice_id)")
        op.execute(f"COMMENT ON INDEX {INDEX} IS 'einvoice:0005'")


def downgrade() -> None:
    """Drop the index if this migration created it (an ERP's own index is left alone)."""
    op.execute(f"""
DO $$
BEGIN
  IF obj_description(to_regclass('{INDEX}'), 'pg_class') = 'einvoice:0005' THEN
    DROP INDEX {INDEX};
  END IF;
END $$""")
