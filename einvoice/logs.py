"""Log lines as text or JSON (``EINVOICE_LOG_FORMAT``), with the job or request they belong to.

The context: :func:`log_context` opens a block (a job's run in the worker, an HTTP request in the
API) whose values every line logged inside it carries, whichever logger writes it (the Factus
client's, the services', Celery's); :func:`bind` adds values learnt inside the block (a job's
organization and reference code once it is claimed). Both use a ``contextvars.ContextVar``: each
worker thread and each request (including the thread-pool hop of a sync route) sees its own.

``EINVOICE_LOG_FORMAT=json`` (:class:`JsonFormatter`): one JSON object per line::

    {"time": "2025-01-31T14:02:03.120+00:00", "level": "INFO", "logger": "einvoice.factus",
     "message": "factus POST /v1/bills/validate -> 201 in 812 ms (account default)",
     "job_id": "4f1c...", "organization_id": 7, "reference_code": "EI-...",
     "request_id": null, "factus_status": 201, ...}

The four context keys are always present (``null`` when unknown); a record's ``extra`` values
follow (they win over the context for the same key); an exception comes as ``exception`` (the
formatted traceback). Text (the default) keeps each process's usual format. Where it is applied:
workers and beat (Celery's ``after_setup_logger`` / ``after_setup_task_logger`` signals, wired in
:mod:`workers.app`) and ``einvoice api serve`` (:func:`configure`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from einvoice.settings import Settings

#: The keys every JSON line carries, ``null`` when the line's context does not know them.
CONTEXT_KEYS = ("job_id", "organization_id", "reference_code", "request_id")

_context: ContextVar[dict[str, Any] | None] = ContextVar("einvoice_log_context", default=None)

#: Attributes every ``LogRecord`` has: the rest of a record's ``__dict__`` is its ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName"}


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Every line logged inside the block carries ``values`` (plus the enclosing block's).

    Args:
        values: e.g. ``job_id=str(job_id)`` or ``request_id=...``; JSON-serialisable values.
    """
    token = _context.set({**(_context.get() or {}), **values})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**values: Any) -> None:
    """Add ``values`` to the innermost :func:`log_context` block, until it ends.

    Outside any block it does nothing: a value bound there would outlive its job on a pooled
    thread.
    """
    current = _context.get()
    if current is not None:
        current.update(values)


def current_context() -> dict[str, Any]:
    """A copy of the values the current line would carry (empty outside any block)."""
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601, ms), ``level``, ``logger``,
    ``message``, the :data:`CONTEXT_KEYS`, the record's ``extra`` values and ``exception``.

    Values JSON cannot hold are written with ``str()``. Secrets never reach a record's message
    or extras in this code base (the Factus client and the access log log none), so none
    reaches a line.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (no newline inside: tracebacks are escaped)."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get() or {}
        for key in CONTEXT_KEYS:
            line[key] = context.get(key)
        for key, value in context.items():
            line.setdefault(key, value)
        line.update({key: value for key, value in record.__dict__.items()
                     if key not in _RECORD_ATTRIBUTES and not key.startswith("_")})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def use_format(logger: logging.Logger, log_format: str) -> None:
    """Give every handler of ``logger`` the formatter of ``log_format`` (``json``; ``text``
    leaves the handlers as their owner set them up)."""
    if log_format != "json":
        return
    formatter = JsonFormatter()
    for handler in logger.handlers:
        handler.setFormatter(formatter)


def configure(settings: Settings, level: int = logging.INFO) -> None:
    """Set up the root logger of a process we start ourselves (``einvoice api serve``): a
    stderr handler at ``level`` in ``EINVOICE_LOG_FORMAT``'s format (text: time, level, logger,
    message)."""
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    use_format(logging.getLogger(), settings.einvoice_log_format)
