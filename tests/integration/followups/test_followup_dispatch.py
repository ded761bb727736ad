"""The follow-up dispatcher on a real PostgreSQL (publisher faked: our own port): due rows are
published once, and rows whose worker died are recovered, each by the rule of its kind."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.services.documents import dispatch_due_followups, schedule_archive
from einvoice.settings import load_settings
from tests.integration.followups.conftest import (
    followups,
    insert_job_sql,
    seed_invoice,
    seed_organization,
)


class RecordingPublisher:
    """Keeps the follow-up ids it was asked to publish."""

    def __init__(self) -> None:
        self.sent: list[uuid.UUID] = []

    def publish_followup(self, followup_id: uuid.UUID) -> None:
        """Record ``followup_id``."""
        self.sent.append(followup_id)


def _accepted_job(session: Session) -> uuid.UUID:
    invoice_id = seed_invoice(session)
    session.commit()
    job_id = insert_job_sql(session, invoice_id)
    session.execute(text("UPDATE electronic_invoicing_jobs SET status = 'accepted', "
                         "document_number = 'SETP990000001' WHERE id = :j"), {"j": job_id})
    session.commit()
    return job_id


def _event_types(session: Session, job_id: uuid.UUID) -> list[str]:
    return list(session.execute(text(
        "SELECT event_type FROM electronic_invoicing_events WHERE job_id = :j "
        "ORDER BY created_at, id"), {"j": job_id}).scalars())


def test_scheduling_an_archive_twice_keeps_one_and_publishes_after_commit(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    # Given an accepted job
    seed_organization(session)
    job_id = _accepted_job(session)
    publisher = RecordingPublisher()

    # When its archive is scheduled twice, the first time in a transaction rolled back
    schedule_archive(session, job_id, publisher=publisher)
    session.rollback()
    first = schedule_archive(session, job_id, publisher=publisher)
    second = schedule_archive(session, job_id, publisher=publisher)
    published_before_commit = list(publisher.sent)
    session.commit()

    # Then one archive row exists, published once and only after the commit
    assert first is not None
    assert second is None
    assert published_before_commit == []
    assert publisher.sent == [first]
    assert [(f["kind"], f["status"]) for f in followups(session_factory, job_id)] == [
        ("archive", "pending")]


def test_dispatcher_publishes_due_followups_once_and_recovers_dead_workers_by_kind(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    # Given an archive whose message was lost long ago, and an archive and an e-mail whose
    # worker died mid-call (leases expired)
    seed_organization(session)
    lost, dead_archive, dead_email = (_accepted_job(session) for _ in range(3))
    session.execute(text(
        "INSERT INTO electronic_invoicing_followups (job_id, kind, status, dispatched_at) "
        "VALUES (:j, 'archive', 'pending', now() - interval '1 hour')"), {"j": lost})
    for job_id, kind in ((dead_archive, "archive"), (dead_email, "email")):
        session.execute(text(
            "INSERT INTO electronic_invoicing_followups (job_id, kind, status, attempt_count, "
            "leased_by, lease_expires_at) VALUES (:j, :k, 'processing', 1, 'w1:42:7', "
            "now() - interval '1 second')"), {"j": job_id, "k": kind})
    session.commit()
    settings = load_settings(einvoice_redispatch_seconds=60)
    publisher = RecordingPublisher()

    # When the dispatcher runs twice in a row
    first = dispatch_due_followups(session_factory, publisher, settings)
    second = dispatch_due_followups(session_factory, publisher, settings)

    # Then the lost archive and the dead worker's archive are published, once each
    assert (first, second) == (2, 0)
    [lost_row] = followups(session_factory, lost)
    [archive_row] = followups(session_factory, dead_archive)
    assert sorted(publisher.sent) == sorted([lost_row["id"], archive_row["id"]])
    assert archive_row["status"] == "pending"
    assert archive_row["error_code"] == "lease_expired"
    # and the e-mail, which may have left, is failed instead of being sent again
    [email_row] = followups(session_factory, dead_email)
    assert email_row["status"] == "failed"
    assert email_row["error_code"] == "email_outcome_unknown"
    assert _event_types(session, dead_archive) == ["archive_retry"]
    assert _event_types(session, dead_email) == ["email_failed"]
