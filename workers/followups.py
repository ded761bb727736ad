"""Celery tasks of the follow-ups of accepted jobs (archive the documents, resend the e-mail):
thin adapters over :mod:`einvoice.services.documents`, with the defaults of
:class:`workers.base.EinvoiceTask`.

Registered by :mod:`workers.app`, which autodiscovers this module beside :mod:`workers.tasks`.
Arguments are follow-up ids only.
"""

from __future__ import annotations

from einvoice import queueing
from einvoice.services import documents
from workers.app import app
from workers.base import EinvoiceTask
from workers.resources import get_resources


@app.task(base=EinvoiceTask, name=queueing.TASK_FOLLOWUP)
def run_followup(followup_id: str) -> str:
    """Claim follow-up ``followup_id`` and archive the job's PDF/XML or send its e-mail.

    Returns the outcome label (``done``, ``retry``, ``failed``, ``not_due``, ``lease_lost``).
    """
    return documents.run_followup(get_resources().worker, followup_id)


@app.task(base=EinvoiceTask, name=queueing.TASK_DISPATCH_FOLLOWUPS, max_retries=0)
def dispatch_due_followups() -> int:
    """Recover expired follow-up leases and publish due follow-ups (beat). Returns how many."""
    res = get_resources()
    return documents.dispatch_due_followups(res.worker.session_factory, res.publisher, res.settings)
