"""Alembic environment: online migrations against ``DATABASE_URL`` (psycopg 3).

The URL comes, in order, from the ``sqlalchemy.url`` option set by ``einvoice db upgrade``, or
from ``DATABASE_URL`` through :func:`einvoice.settings.load_settings` (clear error if unset).
The migrations are hand-written (they must complete an ERP's existing tables, which autogenerate
cannot do); ``tests/integration/db`` checks that they agree with :mod:`einvoice.db.models`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from einvoice.db.models import Base
from einvoice.settings import load_settings, normalize_database_url

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return normalize_database_url(url)
    return load_settings().require_database_url()


def run_migrations_online() -> None:
    """Run every pending migration in one transaction per migration."""
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, transaction_per_migration=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: they inspect the database")
run_migrations_online()
