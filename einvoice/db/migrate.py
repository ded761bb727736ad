"""Run the Alembic migrations programmatically (``einvoice db upgrade|downgrade|current``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from einvoice.settings import normalize_database_url

SCRIPT_LOCATION = Path(migrations.__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    """An Alembic ``Config`` for the ``migrations`` package aimed at ``database_url``.

    Works from a checkout and from an installed wheel alike (the migrations ship as the
    top-level ``migrations`` package; ``alembic.ini`` is only needed by the plain ``alembic`` CLI).

    Args:
        database_url: any accepted PostgreSQL URL form (normalised to psycopg 3).
    """
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Create or complete the schema up to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Undo migrations down to ``revision`` (default: everything einvoice added)."""
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> None:
    """Print the database's current revision."""
    command.current(alembic_config(database_url))
