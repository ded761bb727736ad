"""The message contract between producers and workers: task names, queues, and the publisher.

Messages carry a job id and nothing else (STYLE.md habit 3: the database is the source of truth,
the broker is a doorbell). Producers in ``einvoice`` publish by task *name*, so the library never
imports ``workers/``; the worker registers its tasks under the same names.
"""

from __future__ import annotations

import threading
import uuid
from typing import Protocol

from celery import Celery

# Task names (STYLE.md habit 6: ``einvoice.<verb>``).
TASK_SUBMIT = "einvoice.submit_invoice"
TASK_DISPATCH = "einvoice.dispatch_due_jobs"
TASK_RECOVER = "einvoice.recover_expired_leases"
TASK_REFRESH_TOKENS = "einvoice.refresh_tokens"
TASK_SYNC = "einvoice.sync_reference_data"
TASK_FOLLOWUP = "einvoice.run_followup"
TASK_DISPATCH_FOLLOWUPS = "einvoice.dispatch_due_followups"

# Queues: submissions must never wait behind a slow reference sync or a sweep.
QUEUE_SUBMISSION = "submission"
QUEUE_REFERENCE = "reference"
QUEUE_MAINTENANCE = "maintenance"


class Publisher(Protocol):
    """Sends the wake-up message of a job. Must be cheap and must not raise on success."""

    def publish_submit(self, job_id: uuid.UUID) -> None:
        """Ask a worker to run ``einvoice.submit_invoice(job_id)``."""


class CeleryPublisher:
    """Publishes by task name through a small Celery app configured from ``celeryconfig``.

    Args:
        app: an existing Celery app (the worker's own, inside a worker); else one is built from
            ``celeryconfig`` on first use, so importing this module opens no connection.
    """

    def __init__(self, app: Celery | None = None) -> None:
        self._app = app
        self._lock = threading.Lock()

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

    def publish_followup(self, followup_id: uuid.UUID) -> None:
        """Send ``einvoice.run_followup(str(followup_id))`` to the ``reference`` queue (follow-ups
        of accepted jobs must never delay a submission, like the reference syncs)."""
        self.app.send_task(TASK_FOLLOWUP, args=[str(followup_id)], queue=QUEUE_REFERENCE)


_default: CeleryPublisher | None = None
_default_lock = threading.Lock()


def default_publisher() -> CeleryPublisher:
    """The process-wide publisher (created on first use, never at import time)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = CeleryPublisher()
    return _default


def set_default_publisher(publisher: CeleryPublisher) -> None:
    """Make ``publisher`` the process-wide one (the worker passes its own app)."""
    global _default
    _default = publisher
