"""Reference-data repository: upserts for the DIAN tables and ``invoice_sequences``.

Every write is an idempotent upsert keyed by the Factus id, so a sync can run any number of
times (issue 4, "Beat schedule").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from einvoice.db.models import (
    DianMunicipality,
    DianTribute,
    DianUnitMeasure,
    InvoiceSequence,
    Organization,
)


def upsert_rows(session: Session, model: Any, rows: Iterable[dict[str, Any]], key: str = "id") -> int:
    """Insert or update ``rows`` of ``model`` on ``key``; return how many rows were sent."""
    batch = list(rows)
    if not batch:
        return 0
    stmt = insert(model).values(batch)
    columns = {c: stmt.excluded[c] for c in batch[0] if c != key}
    session.execute(stmt.on_conflict_do_update(index_elements=[key], set_=columns))
    return len(batch)


def upsert_municipalities(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Upsert ``dian_municipalities`` rows (id = Factus id)."""
    return upsert_rows(session, DianMunicipality, rows)


def upsert_unit_measures(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Upsert ``dian_unit_measures`` rows (id = Factus id)."""
    return upsert_rows(session, DianUnitMeasure, rows)


def upsert_tributes(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Upsert ``dian_tributes`` rows (id = Factus id)."""
    return upsert_rows(session, DianTribute, rows)


def organization_ids(session: Session) -> list[int]:
    """Every organization id."""
    return list(session.scalars(select(Organization.id).order_by(Organization.id)))


def upsert_sequence(session: Session, organization_id: int, values: dict[str, Any]) -> InvoiceSequence:
    """Create or update the organization's ``invoice_sequences`` row for a Factus range.

    Keyed by (organization_id, factus_numbering_range_id); ``alert_threshold`` and ``branch_id``
    set by the ERP are kept.
    """
    row = session.scalars(
        select(InvoiceSequence).where(
            InvoiceSequence.organization_id == organization_id,
            InvoiceSequence.factus_numbering_range_id == values["factus_numbering_range_id"],
        )
    ).first()
    if row is None:
        row = InvoiceSequence(organization_id=organization_id)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    session.flush()
    return row
