"""Alembic migrations of einvoice, shipped as a package so that an installed einvoice (not only a
checkout) can run ``einvoice db upgrade``."""
