"""Engine and session factory. Created per process by the caller, never at import time.

``make_engine`` always drives PostgreSQL with psycopg 3 (``DATABASE_URL`` is normalised by
:mod:`einvoice.settings`). Pools are small; by default each connection is pinged as it leaves the
pool, so a restarted PostgreSQL costs a reconnect, not an error. The workers turn the ping off and
retry instead (see :func:`make_engine`).
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from einvoice.settings import normalize_database_url


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10, echo: bool = False,
                pre_ping: bool = True) -> Engine:
    """Create a SQLAlchemy engine for ``url`` (any accepted PostgreSQL URL form).

    Args:
        url: ``postgresql://``, ``postgres://`` or ``postgresql+psycopg://`` URL.
        pool_size / max_overflow: connection pool bounds per process (a threads worker with N
            threads wants about N connections).
        pre_ping: test each connection with a round trip when it leaves the pool, so a
            PostgreSQL restart costs no error. The workers turn it off (two round trips per
            job on the hot path): they retry every database step instead, and the
            first disconnect error after a restart makes SQLAlchemy replace the whole pool.
    Returns:
        An ``Engine`` with UTC session time zone, a short connect timeout and connections
        recycled after 30 minutes.
    """
    return create_engine(
        normalize_database_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        echo=echo,
        connect_args={"connect_timeout": 5, "options": "-c timezone=UTC"},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A ``sessionmaker`` bound to ``engine``; objects stay usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)
