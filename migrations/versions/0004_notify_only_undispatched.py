"""The insert trigger notifies only jobs whose wake-up nobody published yet (benchmark B4).

``enqueue_invoice`` publishes its job's wake-up itself after the commit and stamps
``dispatched_at`` in the same ``INSERT``; the ``NOTIFY einvoice_jobs`` of migration 0001 then only
made the listener run an ``UPDATE`` that matched nothing. Plain SQL inserts leave
``dispatched_at`` NULL and are notified as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TRIGGER = """
CREATE TRIGGER einvoice_job_inserted AFTER INSERT ON electronic_invoicing_jobs
FOR EACH ROW WHEN (NEW.status = 'pending' AND NEW.provider = 'factus'{extra})
EXECUTE FUNCTION einvoice_notify_job()"""


def upgrade() -> None:
    """Re-create the trigger with ``NEW.dispatched_at IS NULL`` in its condition."""
    op.execute("DROP TRIGGER IF EXISTS einvoice_job_inserted ON electronic_invoicing_jobs")
    op.execute(_TRIGGER.format(extra=" AND NEW.dispatched_at IS NULL"))


def downgrade() -> None:
    """Re-create the trigger of migration 0001 (every pending factus insert notifies)."""
    op.execute("DROP TRIGGER IF EXISTS einvoice_job_inserted ON electronic_invoicing_jobs")
    op.execute(_TRIGGER.format(extra=""))
