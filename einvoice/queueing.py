"""The message contract between producers and workers: task names, queues, and the publisher.

Messages carry a job id and nothing else (STYLE.md habit 3: the database is the source of truth,
the broker is a doorbell). Producers in ``einvoice`` publish by task *name*, so the library never
imports ``workers/``; the worker registers its tasks under the same names.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Protocol

from celery import Celery

# Task names (STYLE.md habit 6: ``einvoice.<verb>``).
TASK_SUBMIT = "einvoice.submit_invoice"
TASK_SUBMIT_MANY = "einvoice.submit_invoices"
TASK_DISPATCH = "einvoice.dispatch_due_jobs"
TASK_RECOVER = "einvoice.recover_expired_leases"
TASK_REFRESH_TOKENS = "einvoice.refresh_tokens"
TASK_SYNC = "einvoice.sync_reference_data"
TASK_FOLLOWUP = "einvoice.run_followup"
TASK_DISPATCH_FOLLOWUPS = "einvoice.dispatch_due_followups"
TASK_DELIVER_WEBHOOK = "einvoice.deliver_webhook"
TASK_DISPATCH_WEBHOOKS = "einvoice.dispatch_due_webhooks"

# Queues: submissions must never wait behind a slow reference sync or a sweep; webhook
# deliveries have their own, so a slow or dead receiver delays nothing else.
QUEUE_SUBMISSION = "submission"
QUEUE_REFERENCE = "reference"
QUEUE_MAINTENANCE = "maintenance"
QUEUE_WEBHOOKS = "webhooks"


#: A burst of up to this many jobs gets one wake-up message per job (see :func:`wakeup_chunks`).
WAKEUP_SPREAD = 100


def wakeup_chunks(job_ids: Sequence[uuid.UUID], max_per_message: int) -> list[list[uuid.UUID]]:
    """Split the wake-ups of ``job_ids`` into messages: one per job for up to
    :data:`WAKEUP_SPREAD` jobs; a larger burst over at least that many messages, each carrying
    at most ``max_per_message`` jobs (``EINVOICE_WAKEUP_MAX_JOBS``), in the given order.

    Each message costs a publish, a delivery, an ack and a task run, whatever it carries; a
    burst of 6,000 plain SQL inserts cost the listener's worker 40 % of its CPU in benchmark
    B1 with one job per message. Up to :data:`WAKEUP_SPREAD` messages still let that many worker threads
    start at once, and a small burst (the open-loop case) keeps one job per message, so no job
    waits behind another in its message.

    Returns:
        Lists of job ids, none empty, together ``job_ids`` exactly once each.
    Raises:
        ValueError: ``max_per_message`` < 1.
    """
    if max_per_message < 1:
        raise ValueError(f"max_per_message must be >= 1, got {max_per_message}")
    ids = list(job_ids)
    size = max(1, min(max_per_message, len(ids) // WAKEUP_SPREAD))
    return [ids[i:i + size] for i in range(0, len(ids), size)]


class Publisher(Protocol):
    """Sends the wake-up message of a job. Must be cheap and must not raise on success."""

    def publish_submit(self, job_id: uuid.UUID) -> None:
        """Ask a worker to run ``einvoice.submit_invoice(job_id)``."""

    def publish_submit_many(self, job_ids: Sequence[uuid.UUID]) -> None:
        """Wake the jobs ``job_ids`` up, a burst in fewer messages (:func:`wakeup_chunks`)."""


class CeleryPublisher:
    """Publishes by task name through a small Celery app configured from ``celeryconfig``.

    Args:
        app: an existing Celery app (the worker's own, inside a worker); else one is built from
            ``celeryconfig`` on first use, so importing this module opens no connection.
        max_jobs_per_message: most jobs one wake-up carries (default
            ``EINVOICE_WAKEUP_MAX_JOBS``, read on first use).
    """

    def __init__(self, app: Celery | None = None, max_jobs_per_message: int | None = None) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._max_jobs = max_jobs_per_message

    @property
    def app(self) -> Celery:
        """The Celery app used to send messages (built lazily)."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    app = Celery("einvoice-producer")
                    app.config_from_object("celeryconfig")
                    self._app = app
        return self._app

    def publish_submit(self, job_id: uuid.UUID) -> None:
        """Send ``einvoice.submit_invoice(str(job_id))`` to the ``submission`` queue."""
        self.app.send_task(TASK_SUBMIT, args=[str(job_id)], queue=QUEUE_SUBMISSION)

    def publish_submit_many(self, job_ids: Sequence[uuid.UUID]) -> None:
        """Send the wake-ups of ``job_ids`` to the ``submission`` queue: a message of one job is
        ``einvoice.submit_invoice(id)``, of several ``einvoice.submit_invoices([id, ...])``
        (:func:`wakeup_chunks`)."""
        if self._max_jobs is None:
            from einvoice.settings import get_settings  # noqa: PLC0415 - read on first use

            self._max_jobs = get_settings().einvoice_wakeup_max_jobs
        for chunk in wakeup_chunks(job_ids, self._max_jobs):
            if len(chunk) == 1:
                self.publish_submit(chunk[0])
            else:
                self.app.send_task(TASK_SUBMIT_MANY, args=[[str(i) for i in chunk]],
                                   queue=QUEUE_SUBMISSION)

    def publish_followup(self, followup_id: uuid.UUID) -> None:
        """Send ``einvoice.run_followup(str(followup_id))`` to the ``reference`` queue (follow-ups
        of accepted jobs must never delay a submission, like the reference syncs)."""
        self.app.send_task(TASK_FOLLOWUP, args=[str(followup_id)], queue=QUEUE_REFERENCE)

    def publish_webhook(self, followup_id: uuid.UUID) -> None:
        """Send ``einvoice.deliver_webhook(str(followup_id))`` to the ``webhooks`` queue."""
        self.app.send_task(TASK_DELIVER_WEBHOOK, args=[str(followup_id)], queue=QUEUE_WEBHOOKS)


_default: CeleryPublisher | None = None
_default_lock = threading.Lock()


def default_publisher() -> CeleryPublisher:
    """The process-wide publisher (created on first use, never at import time)."""
    global _default  # noqa: PLW0603 - one publisher per process, created lazily
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = CeleryPublisher()
    return _default


def set_default_publisher(publisher: CeleryPublisher) -> None:
    """Make ``publisher`` the process-wide one (the worker passes its own app)."""
    global _default  # noqa: PLW0603 - one publisher per process
    _default = publisher
