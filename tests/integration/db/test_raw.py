"""The hot path's psycopg statements (einvoice.db.raw) behave as SQLAlchemy's would on errors."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from einvoice.db import raw
from einvoice.db.engine import make_engine, make_session_factory

_INSERT_EVENT = raw.RawStatement.of(text(
    "INSERT INTO electronic_invoicing_events (job_id, event_type) VALUES (:job_id, 'x') "
    "RETURNING id"))
_BACKEND = raw.RawStatement.of(text("SELECT pg_backend_pid() AS pid, :word AS word"))


def test_rows_have_named_columns_and_run_in_the_sessions_transaction(db_url: str) -> None:
    engine = make_engine(db_url, pre_ping=False)
    try:
        with make_session_factory(engine)() as session:
            row = raw.execute(session, _BACKEND, {"word": "hola"}).fetchone()
            orm_pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            assert (row.word, row.pid) == ("hola", orm_pid)
    finally:
        engine.dispose()


def test_a_constraint_violation_is_sqlalchemys_integrity_error(db_url: str) -> None:
    engine = make_engine(db_url, pre_ping=False)
    try:
        with make_session_factory(engine)() as session:
            with pytest.raises(IntegrityError, match="electronic_invoicing_events_job_id_fkey"):
                raw.execute(session, _INSERT_EVENT, {"job_id": uuid.uuid4()})
            session.rollback()
            assert session.execute(text("SELECT 1")).scalar_one() == 1  # still usable
    finally:
        engine.dispose()


def test_a_lost_connection_is_an_operational_error_and_the_next_session_reconnects(
        db_url: str) -> None:
    # Without pre-ping (the workers' engine), a PostgreSQL restart must cost one error, not a
    # pool of dead connections handed out one after another.
    engine = make_engine(db_url, pool_size=3, pre_ping=False)
    factory = make_session_factory(engine)
    try:
        sessions = [factory() for _ in range(3)]
        pids = [raw.execute(s, _BACKEND, {"word": "a"}).fetchone().pid for s in sessions]
        for s in sessions:
            s.commit()
            s.close()  # three idle connections in the pool
        admin = make_engine(db_url)
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[]))"
                              " AS pid"), {"pids": pids})
        admin.dispose()
        invalidated: list[bool] = []
        for _ in range(3):
            with factory() as session:
                try:
                    raw.execute(session, _BACKEND, {"word": "b"}).fetchone()
                except OperationalError as exc:
                    invalidated.append(exc.connection_invalidated)
        # At most one error, and that one dropped the dead connection from the pool.
        assert len(invalidated) <= 1
        assert all(invalidated)
        with factory() as session:
            assert raw.execute(session, _BACKEND, {"word": "c"}).fetchone().word == "c"
    finally:
        engine.dispose()
