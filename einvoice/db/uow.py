"""Unit of work: one transaction, committed at the edge, with after-commit callbacks.

Pattern from cosmicpython (a unit of work that rolls back unless you commit) and pypi/warehouse
(follow-up tasks are sent only after the transaction commits, never from inside it)::

    with UnitOfWork(session_factory) as uow:
        job = enqueue_invoice(uow.session, invoice_id)   # services never commit
        uow.after_commit(lambda: publish(job.id))         # runs only if the commit succeeds
        uow.commit()

Leaving the block without ``commit()`` (or by an exception) rolls back and drops the callbacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

log = logging.getLogger(__name__)

_CALLBACKS_KEY = "einvoice_after_commit"


def add_after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback()`` once after ``session``'s current transaction commits.

    A rollback discards it. Used by producers to publish Celery messages only for committed rows,
    whoever owns the transaction (our :class:`UnitOfWork` or an ERP's own session).
    Callback errors are logged, never raised: the data is already committed, and the dispatcher
    re-publishes any job whose message was lost.
    """
    session.info.setdefault(_CALLBACKS_KEY, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_callbacks(session: Session) -> None:
    for callback in session.info.pop(_CALLBACKS_KEY, []):
        try:
            callback()
        except Exception:  # committed already; the dispatcher repairs
            log.exception("after-commit callback failed; the dispatcher will re-publish")


@event.listens_for(Session, "after_transaction_end")
def _drop_callbacks(session: Session, transaction: SessionTransaction) -> None:
    # Fires after after_commit for a committed transaction (callbacks already popped), and
    # alone for a rolled-back one: only the outermost transaction's end discards them.
    if transaction.parent is None:
        session.info.pop(_CALLBACKS_KEY, None)


class UnitOfWork:
    """A session in one transaction; rolls back unless :meth:`commit` is called.

    Args:
        session_factory: a ``sessionmaker`` from :func:`einvoice.db.engine.make_session_factory`.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.close()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` after this unit of work commits (see :func:`add_after_commit`)."""
        add_after_commit(self.session, callback)

    def commit(self) -> None:
        """Commit the transaction, then run the after-commit callbacks."""
        self.session.commit()
