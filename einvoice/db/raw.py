"""Hot-path statements run on the session's own psycopg connection (benchmark B1).

SQLAlchemy spends about 0.2-0.25 ms of CPU per ``Session.execute`` on this machine before and
after psycopg's own work (a cache key and parameter processing for the compiled statement, the
execution context, the result's column metadata): 0.44 ms in all for the invoice read against
0.20 ms through psycopg alone. A job runs six statements, so the worker's few fixed statements
are compiled to psycopg's SQL once, at import, and run here, inside the session's transaction on
the same connection. Everything else keeps using the ORM and Core as usual.

What SQLAlchemy would do on an error is kept: a psycopg error is raised as the matching
``sqlalchemy.exc.DBAPIError`` subclass (so the callers' retries on ``OperationalError`` and
``DBAPIError`` still apply), and a lost connection invalidates that connection and replaces the
engine's pool, as SQLAlchemy's own disconnect handling does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

# SQLAlchemy's dialect constructors carry no annotations.
_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class RawStatement:
    """A statement in psycopg's form: ``sql`` with ``%(name)s`` placeholders, and the values
    of the constants SQLAlchemy bound while compiling it (``defaults``)."""

    sql: str
    defaults: Mapping[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement) -> RawStatement:
        """Compile a Core statement or ``text()`` for psycopg (the engine's own dialect).

        Raises:
            sqlalchemy.exc.CompileError: a construct that needs per-call compilation (an
                expanding ``IN``); use ``= ANY(:array)`` instead.
        """
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        if compiled.positiontup:  # pragma: no cover - the psycopg dialect is named-style
            raise ValueError("expected named parameters")
        constants = {name: value for name, value in compiled.params.items()
                     if not compiled.binds[name].required}
        return cls(str(compiled), constants)


def execute(session: Session, statement: RawStatement,
            params: Mapping[str, Any]) -> psycopg.Cursor[Any]:
    """Run ``statement`` with ``params`` in the session's transaction; rows are named tuples
    (attribute access by column label, and slicing).

    Args:
        session: begins its transaction if none is open, as ``Session.execute`` would.
        params: the statement's parameters (constants compiled into it are added).
    Returns:
        The psycopg cursor, executed (``fetchone``, ``fetchall``, iteration).
    Raises:
        sqlalchemy.exc.DBAPIError: the matching subclass (``OperationalError``,
            ``IntegrityError``, ...) wrapping psycopg's error.
    """
    connection = session.connection()
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    values = {**statement.defaults, **params} if statement.defaults else params
    try:
        cursor = driver.cursor(row_factory=namedtuple_row)
        # Prepared at the first call, not psycopg's fifth: these few statements run for every
        # job, and each unprepared run is planned again (the invoice read costs ~1 ms to plan).
        return cursor.execute(statement.sql, values, prepare=True)
    except psycopg.Error as exc:
        # SQLAlchemy types these as its DB-API protocols, which psycopg's classes do not name.
        disconnect = connection.dialect.is_disconnect(cast(Any, exc), cast(Any, driver), None)
        if disconnect:
            connection.invalidate(exc)
            connection.engine.dispose(close=False)  # the others are as dead: a new pool
        raise DBAPIError.instance(statement.sql, values, exc, psycopg.Error,
                                  connection_invalidated=disconnect,
                                  dialect=connection.dialect) from exc
