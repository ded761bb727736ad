"""Reference-data repository: the DIAN tables, their shipped data files, and ``invoice_sequences``.

Two ways rows get into the ``dian_*`` tables:

* **Factus's published tables**, shipped as CSV files under ``einvoice/data/`` (source page and
  date in ``einvoice/data/README.md``): loaded by migration 0009 and reloaded by
  :func:`load_reference_files` (``einvoice sync tables``). A row is inserted only when neither
  its id nor (where unique) its code is taken, so an ERP's own rows are kept; rows a file wrote
  carry the file name in ``source`` and are the only ones a reload updates.
* **Factus v1 lookup endpoints** (``einvoice sync municipalities|units|tributes``): idempotent
  upserts keyed by the Factus id (:func:`upsert_rows`).

The ``known_*`` readers give the domain the code sets it checks a document against before any
call (every unit of Factus's table, not only the five v1 documents).
"""

from __future__ import annotations

import csv
import importlib.resources
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Result, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from einvoice.db.models import (
    DianIdentificationType,
    DianLegalOrganization,
    DianMunicipality,
    DianPaymentMethod,
    DianStandardCode,
    DianTribute,
    DianUnitMeasure,
    InvoiceSequence,
    Organization,
)

# --------------------------------------------------------------------------------------------
# Shipped data files (Factus "Tablas de referencia")
# --------------------------------------------------------------------------------------------


def _municipality_extra(row: dict[str, str]) -> dict[str, Any]:
    # The table keys departments by the DANE department code as an integer too.
    return {"department_id": int(row["department_code"])}


@dataclass(frozen=True)
class ReferenceFile:
    """One shipped CSV file and the ``dian_*`` table it fills.

    Attributes:
        table: the table name.
        file: the file name under ``einvoice/data/`` (also the value written to ``source``).
        id_header: the file's column that holds the table's ``id`` (``factus_id`` or ``id``).
            Rows with an empty id (codes Factus publishes for v2 without a v1 id) are not loaded.
        columns: the file's columns copied as they are into same-named table columns.
        unique_code: whether ``code`` is unique in the table; then the first row of a code wins
            and a row whose code another id holds is skipped.
        extra: computes further table columns from a file row.
    """

    table: str
    file: str
    id_header: str
    columns: tuple[str, ...]
    unique_code: bool = True
    extra: Callable[[dict[str, str]], dict[str, Any]] | None = field(default=None, compare=False)


#: Every shipped file, in load order. Migration 0009 loads these; ``einvoice sync tables``
#: reloads them.
REFERENCE_FILES: tuple[ReferenceFile, ...] = (
    ReferenceFile("dian_municipalities", "municipalities.csv", "factus_id",
                  ("code", "name", "department_code", "department_name"),
                  extra=_municipality_extra),
    ReferenceFile("dian_unit_measures", "unit_measures.csv", "factus_id", ("code", "name")),
    ReferenceFile("dian_tributes", "tributes.csv", "factus_id",
                  ("code", "name", "description", "type"), unique_code=False),
    ReferenceFile("dian_identification_types", "identification_types.csv", "factus_id",
                  ("code", "name")),
    ReferenceFile("dian_legal_organizations", "legal_organizations.csv", "factus_id",
                  ("code", "name")),
    ReferenceFile("dian_payment_methods", "payment_methods.csv", "id", ("code", "name")),
    ReferenceFile("dian_standard_codes", "standard_codes.csv", "factus_id", ("code", "name")),
)


@dataclass
class LoadCount:
    """What loading one file did: rows read from it, inserted, updated, and skipped because the
    id or code belongs to a row the file did not write (the ERP's own, or an earlier load's)."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    kept: int = 0


def read_reference_file(ref: ReferenceFile) -> list[dict[str, Any]]:
    """The rows of a shipped file as table rows (``id`` plus ``ref.columns`` and extras).

    Rows without an id are left out; with ``ref.unique_code`` a repeated code keeps its first
    row (Factus's unit table lists MGM, ONZ, PD and SO twice; the first is DIAN's meaning).
    Empty optional fields (``description``) become NULL.

    Raises:
        FileNotFoundError: the file is not shipped.
    """
    source = importlib.resources.files("einvoice") / "data" / ref.file
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    with source.open("rb") as binary, io.TextIOWrapper(binary, encoding="utf-8",
                                                       newline="") as handle:
        for raw in csv.DictReader(handle):
            if not raw[ref.id_header]:
                continue
            if ref.unique_code and raw["code"] in seen:
                continue
            seen.add(raw["code"])
            row: dict[str, Any] = {"id": int(raw[ref.id_header])}
            row.update({c: (raw[c] if raw[c] != "" or c in ("code", "name") else None)
                        for c in ref.columns})
            if ref.extra is not None:
                row.update(ref.extra(raw))  # noqa: S610 - the file's column function, not Django's
            rows.append(row)
    return rows


def load_reference_file(conn: Connection | Session, ref: ReferenceFile) -> LoadCount:
    """Load one shipped file into its table; safe to run any number of times.

    A file row is inserted when its id is free (and, for ``unique_code`` tables, its code too);
    a row that this file wrote before (``source`` = the file name) is updated to the file's
    values; any other row with that id or code is kept as it is (the ERP's own).

    Args:
        conn: a SQLAlchemy connection (a migration's ``op.get_bind()``) or session; the caller
            commits.

    Returns:
        the counts, for the sync report and the tests.
    """
    rows = read_reference_file(ref)
    count = LoadCount(read=len(rows))
    existing = {r[0]: (r[1], r[2]) for r in conn.execute(
        text(f"SELECT id, code, source FROM {ref.table}"))}  # noqa: S608 - fixed table names
    taken_codes = {code: row_id for row_id, (code, _) in existing.items()}
    names = [*ref.columns, *(k for k in rows[0] if k not in ref.columns and k != "id")] if rows \
        else list(ref.columns)
    insert_sql = text(
        f"INSERT INTO {ref.table} (id, {', '.join(names)}, source) "  # noqa: S608
        f"VALUES (:id, {', '.join(':' + n for n in names)}, :source) ON CONFLICT DO NOTHING")
    update_sql = text(
        f"UPDATE {ref.table} SET {', '.join(f'{n} = :{n}' for n in names)} "  # noqa: S608
        f"WHERE id = :id AND source = :source AND ({', '.join(names)}) IS DISTINCT FROM "
        f"({', '.join(':' + n for n in names)})")
    to_insert: list[dict[str, Any]] = []
    for row in rows:
        params = {**row, "source": ref.file}
        current = existing.get(row["id"])
        code_owner = taken_codes.get(row["code"]) if ref.unique_code else None
        if current is None and code_owner is None:
            to_insert.append(params)
        elif current is not None and current[1] == ref.file and code_owner in (None, row["id"]):
            count.updated += _rowcount(conn.execute(update_sql, params))
        else:
            count.kept += 1
    if to_insert:
        conn.execute(insert_sql, to_insert)
        # ON CONFLICT DO NOTHING may still skip a row (a unique column other than id and code).
        count.inserted = int(conn.execute(text(
            f"SELECT count(*) FROM {ref.table} WHERE source = :f"),  # noqa: S608
            {"f": ref.file}).scalar_one()) - sum(1 for _, s in existing.values() if s == ref.file)
        count.kept += len(to_insert) - count.inserted
    return count


def load_reference_files(conn: Connection | Session,
                         files: Iterable[ReferenceFile] = REFERENCE_FILES) -> dict[str, LoadCount]:
    """Load every shipped file (:data:`REFERENCE_FILES`); returns the counts by table name."""
    return {ref.table: load_reference_file(conn, ref) for ref in files}


def delete_loaded_rows(conn: Connection | Session, table: str) -> int:
    """Delete the rows a shipped file wrote into ``table`` (``source`` set); the ERP's are kept.

    Used by migration 0009's downgrade on tables it did not create. Returns the rows deleted.
    """
    return _rowcount(conn.execute(text(f"DELETE FROM {table} WHERE source IS NOT NULL")))  # noqa: S608


def _rowcount(result: Result[Any]) -> int:
    """Rows a DML statement changed (``Result`` is a ``CursorResult`` for them)."""
    return cast(CursorResult[Any], result).rowcount


# --------------------------------------------------------------------------------------------
# What the domain checks a document against
# --------------------------------------------------------------------------------------------


def _code_map(session: Session, model: Any) -> dict[int, str]:
    # Not dict(result): a Result has keys(), so dict() would read it as a mapping.
    rows = session.execute(select(model.id, model.code))
    return {row_id: code for row_id, code in rows}  # noqa: C416


def known_unit_measures(session: Session) -> Mapping[int, str]:
    """Every unit of measure in ``dian_unit_measures``: Factus id → DIAN unit code.

    With the shipped table that is all 1,089 distinct units Factus publishes (``70`` → ``"94"``
    unidad, ``414`` → ``"KGM"``, ``449`` → ``"LBR"``, ``512`` → ``"MTR"``, ``874`` → ``"GLL"``,
    ``LTR`` litro, ``BX`` caja, ...), plus any unit the ERP or a v1 sync added. A Mapping is a
    ``Container[int]``, so it serves as ``known_unit_measure_ids`` for the v1 pre-flight check,
    and gives v2's ``unit_measure_code`` for an ``invoice_items.unit_measure_id``.
    Source: Factus "Tablas de referencia / Unidades de medida".
    """
    return _code_map(session, DianUnitMeasure)


def known_unit_codes(session: Session) -> frozenset[str]:
    """Every DIAN unit code in ``dian_unit_measures`` (``"94"``, ``"KGM"``, ``"LTR"``...)."""
    return frozenset(known_unit_measures(session).values())


def known_tributes(session: Session, type_: str | None = None) -> Mapping[int, str]:
    """``dian_tributes``: Factus id → code, optionally only one ``type`` (``product``,
    ``customer``, ``withholding``). Codes repeat across ids (13 and 14 are both ``24``)."""
    stmt = select(DianTribute.id, DianTribute.code)
    if type_ is not None:
        stmt = stmt.where(DianTribute.type == type_)
    return {row_id: code for row_id, code in session.execute(stmt)}  # noqa: C416 - see _code_map


def known_identification_types(session: Session) -> Mapping[int, str]:
    """``dian_identification_types``: Factus v1 ``identification_document_id`` → v2
    ``identification_document_code`` (``3`` → ``"13"`` cédula, ``6`` → ``"31"`` NIT)."""
    return _code_map(session, DianIdentificationType)


def known_legal_organizations(session: Session) -> Mapping[int, str]:
    """``dian_legal_organizations``: v1 ``legal_organization_id`` → v2 ``legal_organization_code``."""
    return _code_map(session, DianLegalOrganization)


def known_standard_codes(session: Session) -> Mapping[int, str]:
    """``dian_standard_codes``: v1 ``standard_code_id`` → v2 ``standard_code`` (``1`` → ``"999"``)."""
    return _code_map(session, DianStandardCode)


def known_payment_method_codes(session: Session) -> frozenset[str]:
    """Every ``payment_method_code`` in ``dian_payment_methods`` (``"10"``, ``"ZZZ"``...)."""
    return frozenset(session.scalars(select(DianPaymentMethod.code)))


def known_municipality_codes(session: Session) -> Mapping[int, str]:
    """``dian_municipalities``: Factus v1 ``municipality_id`` → DANE code (v2's
    ``municipality_code``), e.g. ``980`` → ``"68679"`` San Gil."""
    return _code_map(session, DianMunicipality)


# --------------------------------------------------------------------------------------------
# Factus v1 lookup endpoints and numbering ranges
# --------------------------------------------------------------------------------------------


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


def sequences(session: Session) -> list[InvoiceSequence]:
    """Every ``invoice_sequences`` row (numbering range), by organization then id."""
    return list(session.scalars(select(InvoiceSequence).order_by(InvoiceSequence.organization_id,
                                                                 InvoiceSequence.id)))


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
