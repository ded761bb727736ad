"""The one Celery task base of the house (STYLE.md habit 6): every task's defaults in one place.

Its own module so that every task module (:mod:`workers.tasks`, :mod:`workers.followups`) imports
it without importing another task module: task modules never import each other, and
:mod:`workers.app` registers each of them by autodiscovery.
"""

from __future__ import annotations

from celery import Task

from einvoice.services.runner import INFRASTRUCTURE_ERRORS

# PostgreSQL or Redis unreachable: retried. Not every DBAPIError: a row PostgreSQL refuses
# (DataError, IntegrityError) would fail again at every retry; the submit service ends that
# job itself (internal_error) and its task returns normally.
INFRA_ERRORS = INFRASTRUCTURE_ERRORS


class EinvoiceTask(Task):
    """Task defaults in one place: acks late (a crash means redelivery, STYLE.md habit 5), a
    worker lost means the message is rejected back to the queue, and an infrastructure blip
    (:data:`INFRA_ERRORS`) is retried with exponential backoff (2 s doubling, capped at 60 s,
    jittered, at most 20 times). Results are ignored: the job row is the outcome."""

    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = INFRA_ERRORS
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 20
    ignore_result = True
