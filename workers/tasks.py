"""Celery tasks: thin adapters over ``einvoice`` services (STYLE.md habit 1).

Each task takes ids, calls one service, and maps a passing infrastructure failure (PostgreSQL or
Redis unreachable) to a Celery retry. Every task is safe to run twice. Arguments are job ids
only, so Flower shows ids and nothing else.
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from einvoice import queueing
from einvoice.services import dispatch, sync
from einvoice.services.submit import submit_job, submit_jobs
from workers.app import app
from workers.base import EinvoiceTask
from workers.resources import get_resources

log = logging.getLogger(__name__)


@app.task(base=EinvoiceTask, name=queueing.TASK_SUBMIT)
def submit_invoice(job_id: str) -> str:
    """Claim job ``job_id`` and get its document validated (see einvoice.services.submit).

    Returns the outcome label (``accepted``, ``retry``, ``not_due``, ...).
    """
    return submit_job(get_resources().worker, job_id)


@app.task(base=EinvoiceTask, name=queueing.TASK_SUBMIT_MANY)
def submit_invoices(job_ids: list[str]) -> dict[str, int]:
    """Run ``submit_invoice`` for each of ``job_ids`` in turn: one wake-up message of a burst
    (see einvoice.queueing.wakeup_chunks and einvoice.services.submit.submit_jobs).

    Returns ``{outcome: count}``. Jobs not started within 60 s are published again.
    """
    res = get_resources()
    return submit_jobs(res.worker, job_ids, requeue=res.publisher.publish_submit_many)


@app.task(base=EinvoiceTask, name=queueing.TASK_DISPATCH, max_retries=0)
def dispatch_due_jobs() -> int:
    """Publish a wake-up for every due job (beat, every few seconds). Returns how many."""
    res = get_resources()
    return dispatch.dispatch_due_jobs(res.worker.session_factory, res.publisher, res.settings,
                                      res.clients.limiter)


@app.task(base=EinvoiceTask, name=queueing.TASK_RECOVER, max_retries=0)
def recover_expired_leases() -> int:
    """Re-queue jobs whose worker died (beat, every 30 s). Returns how many."""
    return dispatch.recover_expired_leases(get_resources().worker.session_factory)


@app.task(base=EinvoiceTask, name=queueing.TASK_REFRESH_TOKENS, max_retries=3)
def refresh_tokens() -> int:
    """Renew every account's token that is close to expiry (beat, every 5 min)."""
    res = get_resources()
    return sync.refresh_tokens(res.worker.session_factory, res.clients, res.settings)


@app.task(base=EinvoiceTask, name=queueing.TASK_SYNC, max_retries=3)
def sync_reference_data(kind: str) -> dict[str, int]:
    """Sync ``kind`` (``ranges``, ``catalogs``, or one of municipalities/units/tributes) from
    Factus into the reference tables. Returns rows written per table."""
    res = get_resources()
    factory = res.worker.session_factory
    if kind == "ranges":
        report = sync.sync_ranges(factory, res.clients, res.settings,
                                  datetime.now(ZoneInfo("America/Bogota")).date())
    else:
        kinds = ("municipalities", "units", "tributes") if kind == "catalogs" else (kind,)
        report = sync.sync_catalogs(factory, res.clients, res.settings, kinds)
    return report.written

