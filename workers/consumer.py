"""The worker's consumer: Celery's own, made to survive a broker restart (as the chaos run does).

Celery 5.7 with kombu 5.7 and the Redis transport kills the whole worker when Redis goes away
while tasks are in flight (acks_late, so their messages are unacknowledged):

1. the consumer catches the connection error and calls
   ``Consumer.on_connection_error_after_connected``;
2. that calls ``connection.collect()``, which detaches the Redis transport from the connection
   (``transport.client = None``), and then ``connection.close()``;
3. closing the default channel restores its unacknowledged messages, which needs a Redis client,
   whose parameters are read from ``transport.client``: ``AttributeError: 'NoneType' object has
   no attribute 'hostname'``;
4. ``kombu.common.ignore_errors`` only ignores connection and channel errors, so the
   ``AttributeError`` escapes: "Unrecoverable error", and the worker process exits;
5. and were that step survived, each task still running acknowledges its message through the
   same detached transport when it ends, in the event loop: the same ``AttributeError``.

Measured in ``make chaos``: both workers died at the Redis restart, and nothing ran for 80 s
until the script happened to start a new worker; the quick chaos run in the test suite lost a
worker about one run in four. A supervisor would restart the worker, but a Redis restart must
not need one.

:class:`Consumer` closes the broken connection tolerating exactly that error, then gives the
detached transport its connection parameters back, so that late acknowledgements open a fresh
Redis client (or fail with a connection error, which kombu logs and survives). Nothing is lost
by skipping the restore: the unacknowledged messages stay in Redis's unacked hash and kombu
restores them after the visibility timeout (``celeryconfig``), and the job rows in PostgreSQL
are the source of truth anyway (the dispatcher re-publishes due jobs, the lease sweeper frees
claimed ones). Wired in by ``worker_consumer`` in ``celeryconfig``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

log = logging.getLogger("einvoice.worker")


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer, whose reconnect survives a connection already collected.

    Same inputs and behaviour as :class:`celery.worker.consumer.Consumer`; only
    :meth:`on_connection_error_after_connected` differs (see the module docstring).
    """

    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        """Celery's handling of a lost broker connection, with a close that cannot kill us.

        Args:
            exc: the connection error that ended the event loop.
        """
        connection = self.connection
        transport = getattr(connection, "_transport", None)
        if connection is not None:
            connection.close = _tolerant_close(connection)
        super().on_connection_error_after_connected(exc)
        if transport is not None and getattr(transport, "client", None) is None:
            # The tasks still running acknowledge (or reject) their messages through this
            # transport's channels when they end; give it back its connection parameters so
            # that each such call opens a fresh Redis client instead of raising the same
            # AttributeError in the event loop (which is just as unrecoverable).
            transport.client = connection


def _tolerant_close(connection: Any) -> Any:
    """``connection.close`` that logs and ignores the ``AttributeError`` of a collected transport."""
    close = type(connection).close

    def tolerant_close() -> None:
        try:
            close(connection)
        except AttributeError as error:
            log.warning("closing the lost broker connection failed (%s: the transport was "
                        "already collected); its unacknowledged messages come back after the "
                        "visibility timeout", error)

    return tolerant_close
