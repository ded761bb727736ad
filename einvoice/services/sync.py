"""Reference-data syncs: Factus's published tables shipped with einvoice, and Factus's v1 lookup
endpoints (numbering ranges, municipalities, measurement units, product tributes). Each is
idempotent.

* tables: the CSV files under ``einvoice/data/`` (Factus "Tablas de referencia"; source and date
  in ``einvoice/data/README.md``) → the ``dian_*`` tables, as migration 0009 loads them; new
  rows are inserted, rows a file wrote before are updated, an ERP's own rows are kept;

* ranges: ``GET /v1/numbering-ranges`` (all pages) of every account in use → ``invoice_sequences``
  of the organizations that submit with that account (``factus_numbering_range_id``, prefix,
  range, current number, resolution, dates, technical key, active), with a warning when a range's
  remaining numbers fall under ``alert_threshold`` or it expires within 30 days;
* municipalities: ``GET /v1/municipalities`` → ``dian_municipalities``;
* units: ``GET /v1/measurement-units`` → ``dian_unit_measures``;
* tributes: ``GET /v1/tributes/products`` → ``dian_tributes`` (type ``product``, or
  ``withholding`` for codes 05/06/07 as the seed types them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.orm import Session, sessionmaker

from einvoice.crypto import SecretBox
from einvoice.db import accounts as account_repo
from einvoice.db import reference as ref_repo
from einvoice.db.reference import LoadCount
from einvoice.db.uow import UnitOfWork
from einvoice.errors import ConfigError
from einvoice.factus.client import FactusClient, FactusClients
from einvoice.factus.errors import ApiVersionNotEnabled
from einvoice.factus.schemas import NumberingRange
from einvoice.factus.tokens import FactusAccount
from einvoice.services.accounts import account_for_organization, usable_accounts
from einvoice.settings import Settings

log = logging.getLogger(__name__)

#: Factus document codes and names of numbering ranges (§8.1) → ``invoice_sequences.document_type``.
RANGE_DOCUMENT_TYPES = {
    "21": "invoice", "factura de venta": "invoice",
    "22": "credit_note", "nota crédito": "credit_note", "nota credito": "credit_note",
    "23": "debit_note", "nota débito": "debit_note", "nota debito": "debit_note",
    "24": "support_document", "documento soporte": "support_document",
}
WITHHOLDING_CODES = {"05", "06", "07"}
EXPIRY_WARNING_DAYS = 30


@dataclass
class SyncReport:
    """What a sync did: rows written per table, and warnings for people."""

    written: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: For a reload of the shipped tables: what each file did (read, inserted, updated, kept).
    loaded: dict[str, LoadCount] = field(default_factory=dict)


def sync_reference_tables(session_factory: sessionmaker[Session]) -> SyncReport:
    """Reload the shipped Factus reference tables into the ``dian_*`` tables, in one transaction.

    No Factus call: the rows come from ``einvoice/data/*.csv`` (Factus "Tablas de referencia",
    the reference data v2 documents instead of lookup endpoints), so this works for v1 and v2
    accounts alike and after an upgrade that ships newer files.

    Returns:
        ``written`` = rows inserted plus rows updated per table; ``loaded`` = the full counts.
        Rows kept (an ERP's own with the same id or code) are not written.
    """
    report = SyncReport()
    with UnitOfWork(session_factory) as uow:
        report.loaded = ref_repo.load_reference_files(uow.session)
        uow.commit()
    report.written = {t: c.inserted + c.updated for t, c in report.loaded.items()}
    return report


def _document_type(raw: str | None) -> str | None:
    return RANGE_DOCUMENT_TYPES.get((raw or "").strip().lower())


def range_warning(seq_prefix: str | None, remaining: int | None, threshold: int | None,
                  valid_until: date | None, today: date) -> str | None:
    """A warning for a range that is running out or expiring, else None."""
    if remaining is not None and threshold is not None and remaining < threshold:
        return f"range {seq_prefix}: only {remaining} numbers left (alert_threshold {threshold})"
    if valid_until is not None and (valid_until - today).days <= EXPIRY_WARNING_DAYS:
        return f"range {seq_prefix}: expires on {valid_until.isoformat()}"
    return None


def _range_values(item: NumberingRange, document_type: str) -> dict[str, object]:
    return {
        "factus_numbering_range_id": item.id, "document_type": document_type,
        "prefix": item.prefix, "range_start": item.from_, "range_end": item.to,
        "current_number": item.current, "resolution_number": item.resolution_number,
        "valid_from": item.start_date, "valid_until": item.end_date,
        "technical_key": item.technical_key,
        "is_active": bool(item.is_active) and not bool(item.is_expired),
    }


def sync_ranges(session_factory: sessionmaker[Session], clients: FactusClients,
                settings: Settings, today: date) -> SyncReport:
    """Upsert every organization's numbering ranges from its Factus account."""
    report = SyncReport(written={"invoice_sequences": 0})
    box = SecretBox.from_settings(settings) if settings.einvoice_secret_key else None
    with UnitOfWork(session_factory) as uow:
        accounts: dict[FactusAccount, list[int]] = {}
        for org_id, account in usable_accounts(uow.session, settings, box).items():
            accounts.setdefault(account, []).append(org_id)
    for account, org_ids in accounts.items():
        ranges = clients.for_account(account).list_numbering_ranges()
        with UnitOfWork(session_factory) as uow:
            for item in ranges:
                document_type = _document_type(item.document)
                if document_type is None:
                    continue
                for org_id in org_ids:
                    seq = ref_repo.upsert_sequence(uow.session, org_id, _range_values(item, document_type))
                    report.written["invoice_sequences"] += 1
                    remaining = (seq.range_end - seq.current_number + 1
                                 if seq.range_end is not None and seq.current_number is not None
                                 else None)
                    warning = range_warning(seq.prefix, remaining, seq.alert_threshold,
                                            seq.valid_until, today) if seq.is_active else None
                    if warning:
                        report.warnings.append(f"organization {org_id}: {warning}")
                        log.warning("organization %s: %s", org_id, warning)
            uow.commit()
    return report


def _default_client(session_factory: sessionmaker[Session], clients: FactusClients,
                    settings: Settings) -> FactusClient:
    """The client used for catalog syncs: the default account, else the first credential row.

    Raises:
        ConfigError: no default account and no active ``factus_credentials`` row.
    """
    if settings.has_default_factus_account():
        return clients.default()
    with session_factory() as session:
        org_id = account_repo.first_active_organization(session)
        if org_id is None:
            raise ConfigError("no Factus account to sync with: set the FACTUS_* variables or "
                              "store an organization's credentials (einvoice accounts)")
        box = SecretBox.from_settings(settings)
        return clients.for_account(account_for_organization(session, org_id, settings, box))


def sync_catalogs(session_factory: sessionmaker[Session], clients: FactusClients,
                  settings: Settings, kinds: tuple[str, ...] = ("municipalities", "units",
                                                                 "tributes")) -> SyncReport:
    """Upsert the DIAN catalogs named in ``kinds`` from Factus's v1 lookup endpoints.

    Factus v2 has no such endpoints (it publishes tables, shipped in ``einvoice/data/`` and
    loaded by :func:`sync_reference_tables`): for an account that Factus refuses v1, nothing is
    written and the report carries a warning instead of an error.

    Returns:
        The rows written per table, and warnings.
    Raises:
        FactusError: any other failure of the lookups.
    """
    client = _default_client(session_factory, clients, settings)
    report = SyncReport()
    try:
        _upsert_catalogs(session_factory, client, kinds, report)
    except ApiVersionNotEnabled as exc:
        report.written.clear()
        report.warnings.append(f"catalogs not synced from Factus: {exc} (a v2 account's "
                               "reference data comes from the shipped tables: "
                               "`einvoice sync tables`)")
    return report


def _upsert_catalogs(session_factory: sessionmaker[Session], client: FactusClient,
                     kinds: tuple[str, ...], report: SyncReport) -> None:
    with UnitOfWork(session_factory) as uow:
        if "municipalities" in kinds:
            rows = []
            for m in client.municipalities():
                code = (m.code or "").zfill(5)
                rows.append({"id": m.id, "code": code, "name": m.name,
                             "department_id": int(code[:2]), "department_code": code[:2],
                             "department_name": m.department or ""})
            report.written["dian_municipalities"] = ref_repo.upsert_municipalities(uow.session, rows)
        if "units" in kinds:
            report.written["dian_unit_measures"] = ref_repo.upsert_unit_measures(
                uow.session, [{"id": u.id, "code": u.code or str(u.id), "name": u.name}
                              for u in client.measurement_units()])
        if "tributes" in kinds:
            report.written["dian_tributes"] = ref_repo.upsert_tributes(
                uow.session,
                [{"id": t.id, "code": t.code or "", "name": t.name, "description": t.description,
                  "type": "withholding" if (t.code or "") in WITHHOLDING_CODES else "product"}
                 for t in client.product_tributes()])
        uow.commit()


def refresh_tokens(session_factory: sessionmaker[Session], clients: FactusClients,
                   settings: Settings) -> int:
    """Make sure every account in use holds a token that will not expire soon.

    The token manager renews (refresh grant, else password grant) under its cross-process lock
    when the stored token is within the margin of expiry. Returns how many accounts were checked.
    """
    box = SecretBox.from_settings(settings) if settings.einvoice_secret_key else None
    with session_factory() as session:
        accounts = set(usable_accounts(session, settings, box).values())
    for account in accounts:
        clients.for_account(account).tokens.access_token()
    return len(accounts)
