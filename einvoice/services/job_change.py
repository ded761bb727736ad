"""What one step of a submission does to its job: column values and events, written together.

Each step (the claim, the record of an outcome, an internal-error ending) collects its change
in a :class:`JobChange` and writes it in one statement
(:func:`einvoice.db.jobs.update_job`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from einvoice.db import jobs as job_repo
from einvoice.domain.jobs import Decision, JobStatus


class JobChange:
    """What one step does to a job: column values and events, written together by :meth:`apply`.

    One statement per step (:func:`job_repo.update_job`: the ``UPDATE``, the events' multi-row
    ``INSERT`` and, on acceptance, the invoice's ``UPDATE``), instead of an ORM flush per change
    and per event (the hot path's cost in benchmark B1).

    Args:
        attempt: the job's ``attempt_count`` as claimed (events carry it).
    """

    def __init__(self, attempt: int) -> None:
        self.attempt = attempt
        self.values: dict[str, Any] = {}
        self.events: list[job_repo.EventSpec] = []

    def event(self, event_type: str, code: str | None, message: str | None,
              metadata: dict[str, Any] | None) -> None:
        """Append one event (written in order)."""
        self.events.append((event_type, code, message, metadata))

    def decide(self, decision: Decision, *, message: str | None,
               metadata: dict[str, Any] | None = None) -> None:
        """Write what the domain decided (:func:`einvoice.domain.jobs.transition`): a final
        status with :meth:`finish`, or a wait with :meth:`reschedule` (its ``outcome_unknown``
        is left as it is; the record step sets it)."""
        if decision.final:
            self.finish(decision.status, code=decision.error_code, message=message,
                        metadata=metadata, outcome_unknown=decision.outcome_unknown)
        else:
            self.reschedule(delay=decision.delay or 0.0, code=decision.error_code or "retry",
                            message=message or "", count_attempt=decision.count_attempt,
                            event_type=decision.event_type, status=decision.status)

    def finish(self, status: JobStatus, *, code: str | None, message: str | None,
               metadata: dict[str, Any] | None = None, outcome_unknown: bool = False) -> None:
        """Move the claimed job to a final ``status`` with an event.

        ``outcome_unknown`` stays True on a job given up while an attempt may have reached
        Factus, so that an operator's retry looks the reference up before sending.
        """
        self.values.update(status=status, error_code=code, error_message=message,
                           processed_at=job_repo.NOW, lease_expires_at=None,
                           outcome_unknown=outcome_unknown, updated_at=job_repo.NOW)
        self.event(status, code, message, {"attempt": self.attempt,
                                           "from": JobStatus.PROCESSING, "to": status,
                                           **(metadata or {})})

    def reschedule(self, *, delay: float, code: str, message: str, count_attempt: bool,
                   event_type: str, status: JobStatus) -> None:
        """Put the job back (``pending``, or ``sent`` for a DIAN re-check) due in ``delay`` s.

        ``count_attempt=False`` gives the claimed attempt back (a wait is not an attempt).
        """
        if not count_attempt:
            self.attempt -= 1
            self.values["attempt_count"] = job_repo.ATTEMPT_GIVEN_BACK
        self.values.update(status=status, dispatched_at=None, lease_expires_at=None,
                           next_retry_at=job_repo.due_in(delay),
                           error_code=code, error_message=message, updated_at=job_repo.NOW)
        self.event(event_type, code, message, {"attempt": self.attempt,
                                               "from": JobStatus.PROCESSING, "to": status,
                                               "delay_s": round(delay, 3)})

    def apply(self, session: Session, job_id: uuid.UUID, *, lease: tuple[str, int] | None = None,
              validated: dict[str, Any] | None = None) -> uuid.UUID | None:
        """Write the change in one statement (:func:`job_repo.update_job`): the job's values,
        its events and, with ``validated``, the invoice's CUFE, number, QR and validation time.

        Args:
            lease: (worker, attempt): write only while that worker still holds that attempt's
                lease; otherwise write nothing.
            validated: the invoice's side of an acceptance (see :func:`job_repo.update_job`).
        Returns:
            The job's ``invoice_id`` when the job matched, None when the lease was lost.
        """
        return job_repo.update_job(session, job_id, self.values, lease=lease,
                                   events=self.events, validated=validated)
