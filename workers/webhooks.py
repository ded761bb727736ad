"""Celery tasks of the outcome webhooks: thin adapters over :mod:`einvoice.services.webhooks`,
with the defaults of :class:`workers.base.EinvoiceTask`.

Registered by :mod:`workers.app`, which autodiscovers this module beside :mod:`workers.tasks`
and :mod:`workers.followups`. Arguments are follow-up ids only (never a URL, body or secret).
"""

from __future__ import annotations

from einvoice import queueing
from einvoice.services import webhooks
from workers.app import app
from workers.base import EinvoiceTask
from workers.resources import get_resources


@app.task(base=EinvoiceTask, name=queueing.TASK_DELIVER_WEBHOOK)
def deliver_webhook(followup_id: str) -> str:
    """Claim webhook delivery ``followup_id``, POST it signed, record the attempt.

    Returns the outcome label (``done``, ``retry``, ``failed``, ``not_due``, ``lease_lost``).
    """
    return webhooks.deliver(get_resources().worker, followup_id)


@app.task(base=EinvoiceTask, name=queueing.TASK_DISPATCH_WEBHOOKS, max_retries=0)
def dispatch_due_webhooks() -> int:
    """Recover expired delivery leases and publish due deliveries (beat). Returns how many."""
    res = get_resources()
    return webhooks.dispatch_due_deliveries(res.worker.session_factory, res.publisher,
                                            res.settings)
