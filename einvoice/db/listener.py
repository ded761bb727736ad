"""The job listener's connection: ``LISTEN einvoice_jobs`` under an advisory lock.

The migration's trigger sends ``NOTIFY einvoice_jobs`` (payload: the job id) for every insert of
a pending factus job; :func:`einvoice.services.dispatch.listen_for_new_jobs` turns those
notifications into wake-ups. Every worker process runs a listener, and only the one that holds
the session-level advisory lock :data:`LISTENER_LOCK_KEY` listens (several listeners would each
run the same dispatch ``UPDATE`` for every insert; only one would win it).

The connection is a plain psycopg one in autocommit mode, not a SQLAlchemy session: a LISTEN
lives as long as its connection, and notifications are read from it with ``notifies()``.
"""

from __future__ import annotations

import psycopg

#: The advisory lock that makes one listener of all workers the active one (any constant works;
#: this is ``hashtext('einvoice_jobs_listener')``, written out so it never changes).
LISTENER_LOCK_KEY = 1_624_093_187

#: The channel the jobs table's insert trigger notifies (migration 0004).
CHANNEL = "einvoice_jobs"
#: The channel the outcome trigger notifies when a final transition created webhook deliveries
#: (migration 0010); the payload is the job id.
WEBHOOKS_CHANNEL = "einvoice_webhooks"

#: Raised by psycopg when PostgreSQL cannot be reached or drops the listener's connection.
ConnectionLost = psycopg.OperationalError


def connect(dsn: str) -> psycopg.Connection:
    """A new autocommit connection for listening (use it as a context manager).

    Args:
        dsn: a libpq URL (``postgresql://...``, :func:`einvoice.settings.libpq_url`).
    Raises:
        ConnectionLost: PostgreSQL unreachable (5 s connect timeout).
    """
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


def try_become_listener(conn: psycopg.Connection) -> bool:
    """Take the listener's advisory lock on ``conn`` if nobody holds it; True when taken.

    The lock is held until ``conn`` closes, so when the active worker dies a standby's next try
    takes over.
    """
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LISTENER_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def listen(conn: psycopg.Connection, *, webhooks: bool = False) -> None:
    """Subscribe ``conn`` to :data:`CHANNEL` (and :data:`WEBHOOKS_CHANNEL` with ``webhooks``);
    read the notifications with ``conn.notifies()``."""
    conn.execute("LISTEN einvoice_jobs")
    if webhooks:
        conn.execute("LISTEN einvoice_webhooks")
