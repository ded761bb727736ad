"""Engine and session factory. Created per process by the caller, never at import time.

``make_engine`` always drives PostgreSQL with psycopg 3 (``DATABASE_URL`` is normalised by
:mod:`einvoice.settings`). Pools are small and pre-pinged so that a restarted PostgreSQL costs a
reconnect, not a stuck worker.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from einvoice.settings import normalize_database_url


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10, echo: bool = False) -> Engine:
    """Create a SQLAlchemy engine for ``url`` (any accepted PostgreSQL URL form).

    Args:
        url: ``postgresql://``, ``postgres://`` or ``postgresql+psycopg://`` URL.
        pool_size / max_overflow: connection pool bounds per process (a threads worker with N
            threads wants about N connections).
    Returns:
        An ``Engine`` with ``pool_pre_ping`` on, UTC session time zone and a short connect timeout.
    """
    return create_engine(
        normalize_database_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        echo=echo,
        connect_args={"connect_timeout": 5, "options": "-c timezone=UTC"},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A ``sessionmaker`` bound to ``engine``; objects stay usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)
