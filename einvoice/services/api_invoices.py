"""What the HTTP API does with invoices and jobs, scoped to the caller's organization.

* :func:`enqueue_for_organization`: :func:`einvoice.services.enqueue.enqueue_invoices_reporting`
  for an invoice of the organization (another organization's invoice is "not found").
* :func:`create_invoice`: a whole invoice submitted as JSON, stored in the ERP tables
  (``customers``, ``products``, ``invoice_sales``, ``invoice_items``, ``invoice_payments``) with
  its job, in the caller's transaction.
* :func:`create_credit_note`: the credit note of an accepted invoice job, full (every line) or
  partial (chosen lines by quantity or amount), stored and enqueued the same way.
* :func:`retry_for_organization` / :func:`fetch_document`: the operator's retry and the
  documents archive, scoped.

Functions that take a session never commit (the API's unit of work does); the data rules that
need the reference tables are the worker's (a bad row ends its job ``rejected`` with a reason,
docs/erp-contract.md), so only the shape and the tenancy are checked here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from einvoice.db import api_invoices as invoice_repo
from einvoice.db import api_jobs as api_repo
from einvoice.db import operator_jobs as operator_repo
from einvoice.db.followups import DatabaseDocumentStore
from einvoice.db.models import (
    STORED_DOCUMENT_KINDS,
    ElectronicInvoicingEvent,
    ElectronicInvoicingJob,
    InvoiceItem,
    InvoiceSale,
)
from einvoice.db.uow import UnitOfWork
from einvoice.domain.document import LineTax
from einvoice.domain.jobs import JobStatus
from einvoice.domain.payload import erp_line, round2
from einvoice.errors import EinvoiceError, JobError
from einvoice.services.enqueue import enqueue_invoices_reporting
from einvoice.services.operator import retry_job
from einvoice.settings import Settings

Job = ElectronicInvoicingJob
_HUNDRED = Decimal(100)

#: Columns a submitted invoice may set on its ``invoice_sales`` row (never the ones einvoice
#: writes back: number, CUFE, QR, validation date, outcome).
INVOICE_COLUMNS = frozenset({
    "branch_id", "issue_date", "due_date", "currency", "subtotal", "tax_total", "total",
    "notes", "payment_method", "tax_included", "payment_terms", "reference_code",
    "operation_type", "payment_form", "payment_method_code", "send_email", "allowance_charges",
    "billing_period", "cash_rounding_amount", "prepayments", "display_currency",
    "exchange_rate", "order_reference", "order_issue_date", "sale_id"})
#: Columns a submitted customer may set.
CUSTOMER_COLUMNS = frozenset({
    "email", "phone", "first_name", "last_name", "identification_type",
    "identification_number", "address", "city", "dv", "company_name", "trade_name",
    "legal_organization_id", "tribute_id", "municipality_id", "fiscal_responsibilities"})
#: Columns a submitted line may set.
ITEM_COLUMNS = frozenset({
    "description", "qty", "unit_price", "tax_code", "tax_rate", "discount_amount",
    "tax_included", "code_reference", "discount_rate", "unit_measure_id", "standard_code_id",
    "is_excluded", "tribute_id", "withholding_taxes", "note", "taxes", "total_line"})
#: Columns a submitted means of payment may set.
PAYMENT_COLUMNS = frozenset({"payment_form", "payment_method_code", "amount", "due_date",
                             "reference"})


class ApiInputError(EinvoiceError):
    """A request the API refuses before storing anything; ``field`` names the offending input
    (a JSON path such as ``lines[2].item_id``)."""

    reason = "validation_error"

    def __init__(self, message: str, *, reason: str, field: str) -> None:
        super().__init__(message, reason=reason)
        self.field = field


@dataclass(frozen=True)
class EnqueueResult:
    """A job the API enqueued or found.

    Attributes:
        job: the job row.
        created: this call inserted it (False: the invoice's existing non-final or accepted job).
        already_accepted: the invoice already has an accepted document of this type; ``job`` is
            that accepted job and nothing was enqueued.
    """

    job: Job
    created: bool
    already_accepted: bool


@dataclass(frozen=True)
class NewLine:
    """One submitted line: ``columns`` of ``invoice_items`` (:data:`ITEM_COLUMNS`) and an optional
    ``sku``, which links (or creates) the organization's ``products`` row and is the default
    ``code_reference``."""

    columns: Mapping[str, Any]
    sku: str | None = None


@dataclass(frozen=True)
class NewInvoice:
    """A submitted invoice.

    Attributes:
        invoice: ``invoice_sales`` columns (:data:`INVOICE_COLUMNS`); money as ``Decimal`` COP.
        lines: at least one line.
        customer: columns of a new ``customers`` row (:data:`CUSTOMER_COLUMNS`), or None.
        customer_id: an existing customer of the organization instead (None with ``customer``
            None: the final consumer).
        payments: ``invoice_payments`` rows (:data:`PAYMENT_COLUMNS`), optional.
    """

    invoice: Mapping[str, Any]
    lines: Sequence[NewLine]
    customer: Mapping[str, Any] | None = None
    customer_id: uuid.UUID | None = None
    payments: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


@dataclass(frozen=True)
class CreditLine:
    """One line of a partial credit note: the invoice's line ``item_id`` and either a whole
    ``quantity`` (at most the line's) or an ``amount`` in COP on the basis of the line's price
    (tax included when its price includes tax; at most the line's value after discount)."""

    item_id: uuid.UUID
    quantity: Decimal | None = None
    amount: Decimal | None = None


def enqueue_for_organization(session: Session, organization_id: int, invoice_id: uuid.UUID,
                             document_type: str = "invoice") -> EnqueueResult:
    """Enqueue ``invoice_id`` as :func:`einvoice.services.enqueue.enqueue_invoice` does (same
    rules: the accepted job is returned for an invoice already accepted, the non-final one for
    one in flight), if the invoice belongs to ``organization_id``.

    The tenancy check costs no query: a job takes its invoice's organization, so the job found
    or inserted says whose invoice it is, and another organization's is refused with the error,
    which makes the caller's unit of work roll the insert back (nothing is committed, nobody is
    woken: the ``NOTIFY`` is sent only at commit).

    Raises:
        JobError: ``invoice_not_found`` (no such invoice, or another organization's; the caller
            must roll back), ``unknown_document_type``.
    """
    try:
        [(job, created)] = enqueue_invoices_reporting(session, [invoice_id], document_type)
    except JobError as exc:
        if exc.reason == "invoice_not_found":
            raise JobError(f"no invoice {invoice_id}", reason="invoice_not_found") from None
        raise
    if job.organization_id != organization_id:
        raise JobError(f"no invoice {invoice_id}", reason="invoice_not_found")
    return EnqueueResult(job=job, created=created,
                         already_accepted=job.status == JobStatus.ACCEPTED)


def _only(columns: Mapping[str, Any], allowed: frozenset[str], what: str) -> dict[str, Any]:
    unknown = sorted(set(columns) - allowed)
    if unknown:
        raise ApiInputError(f"{what} has no column {unknown[0]!r}", reason="validation_error",
                            field=f"{what}.{unknown[0]}")
    return dict(columns)


def create_invoice(session: Session, organization_id: int,
                   new: NewInvoice) -> tuple[uuid.UUID, EnqueueResult]:
    """Store a submitted invoice in the ERP tables and enqueue its job, in one transaction.

    Without a ``total``, the invoice's total is computed as an ERP would (lines after discount,
    tax added to net prices; withholdings do not reduce it): its credit notes are capped by it.

    Returns:
        ``(invoice_sales.id, the job)``.
    Raises:
        ApiInputError: no lines (``no_items``), an unknown ``customer_id``
            (``customer_not_found``) or ``branch_id`` (``branch_not_found``) of the
            organization, or a column the API does not let a caller set.
    """
    if not new.lines:
        raise ApiInputError("an invoice needs at least one line", reason="no_items",
                            field="lines")
    invoice = _only(new.invoice, INVOICE_COLUMNS, "invoice")
    branch_id = invoice.get("branch_id")
    if branch_id is not None and not invoice_repo.branch_exists(session, organization_id,
                                                                branch_id):
        raise ApiInputError(f"organization {organization_id} has no branch {branch_id}",
                            reason="branch_not_found", field="branch_id")
    customer_id = new.customer_id
    if customer_id is not None:
        if not invoice_repo.customer_exists(session, organization_id, customer_id):
            raise ApiInputError(f"organization {organization_id} has no customer {customer_id}",
                                reason="customer_not_found", field="customer_id")
    elif new.customer is not None:
        customer = _only(new.customer, CUSTOMER_COLUMNS, "customer")
        customer_id = invoice_repo.insert_customer(
            session, {**customer, "organization_id": organization_id})
    rows = []
    for index, line in enumerate(new.lines):
        columns = _only(line.columns, ITEM_COLUMNS, f"lines[{index}]")
        if line.sku:
            columns["product_id"] = invoice_repo.product_for_sku(
                session, organization_id, line.sku, str(columns.get("description") or line.sku))
            columns.setdefault("code_reference", line.sku)
        rows.append(columns)
    values = {"issue_date": datetime.now(UTC), "tax_included": True, **invoice}
    if values.get("total") is None:
        # A credit note of this invoice is capped by its total, so one is always stored.
        values["total"] = _total(rows, values["tax_included"])
    invoice_id = invoice_repo.insert_invoice(session, {
        **values, "organization_id": organization_id, "customer_id": customer_id,
        "document_type": "invoice"})
    invoice_repo.insert_items(session, [{**row, "invoice_id": invoice_id} for row in rows])
    invoice_repo.insert_payments(session, [
        {**_only(payment, PAYMENT_COLUMNS, f"payments[{index}]"), "invoice_id": invoice_id}
        for index, payment in enumerate(new.payments)])
    return invoice_id, enqueue_for_organization(session, organization_id, invoice_id)


def _tax_included(item: InvoiceItem, invoice: InvoiceSale) -> bool:
    return bool(item.tax_included if item.tax_included is not None else invoice.tax_included)


def _base_line(qty: Decimal, price: Decimal, discount_rate: Decimal | None,
               discount_amount: Decimal | None) -> Decimal:
    """``qty × price`` minus the line's discount (rate first, else amount), COP."""
    gross = qty * price
    if discount_rate:
        return gross * (1 - discount_rate / _HUNDRED)
    return gross - (discount_amount or 0)


def _credit_rows(items: Sequence[InvoiceItem], lines: Sequence[CreditLine] | None
                 ) -> list[dict[str, Any]]:
    """The credit note's ``invoice_items`` values (without ``invoice_id``)."""
    def copy(item: InvoiceItem, qty: Decimal, price: Decimal,
             discount_amount: Decimal | None) -> dict[str, Any]:
        row = {name: getattr(item, name) for name in invoice_repo.ITEM_COPY_COLUMNS}
        return {**row, "qty": qty, "unit_price": price, "discount_amount": discount_amount}

    if lines is None:
        return [copy(item, item.qty or Decimal(0), item.unit_price or Decimal(0),
                     item.discount_amount) for item in items]
    by_id = {item.id: item for item in items}
    rows, seen = [], set()
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        item = by_id.get(line.item_id)
        if item is None:
            raise ApiInputError(f"the invoice has no line {line.item_id}",
                                reason="unknown_line", field=f"{where}.item_id")
        if item.id in seen:
            raise ApiInputError(f"line {item.id} is credited twice", reason="duplicate_line",
                                field=f"{where}.item_id")
        seen.add(item.id)
        if (line.quantity is None) == (line.amount is None):
            raise ApiInputError("give either quantity or amount", reason="validation_error",
                                field=where)
        qty, price = item.qty or Decimal(0), item.unit_price or Decimal(0)
        if line.quantity is not None:
            if line.quantity != line.quantity.to_integral_value() or not 0 < line.quantity <= qty:
                raise ApiInputError(f"quantity must be a whole number from 1 to {qty}",
                                    reason="invalid_quantity", field=f"{where}.quantity")
            share = (item.discount_amount * line.quantity / qty
                     if item.discount_amount and qty else item.discount_amount)
            rows.append(copy(item, line.quantity, price, share))
        else:
            assert line.amount is not None
            most = round2(_base_line(qty, price, item.discount_rate, item.discount_amount))
            if not 0 < line.amount <= most:
                raise ApiInputError(f"amount must be above 0 and at most {most}",
                                    reason="invalid_amount", field=f"{where}.amount")
            row = copy(item, Decimal(1), line.amount, None)
            rows.append({**row, "discount_rate": Decimal(0)})
    return rows


def _total(rows: Sequence[Mapping[str, Any]], tax_included: bool | None) -> Decimal:
    """The document's total as an ERP computes it (:func:`einvoice.domain.payload.erp_line`
    per line, one tax at the line's rate; withholdings do not reduce it, FACTUS_API.md §4.2),
    COP. ``tax_included`` is the document's default for lines that do not say."""
    total = Decimal(0)
    for row in rows:
        included = row.get("tax_included")
        base = _base_line(Decimal(row["qty"]), Decimal(row["unit_price"]),
                          row.get("discount_rate"), row.get("discount_amount"))
        rate = Decimal(0) if row.get("is_excluded") else Decimal(row.get("tax_rate") or 0)
        total += erp_line(base, [LineTax(code="01", tribute_id=1, rate=rate)],
                          tax_included=bool(tax_included if included is None else included)).gross
    return total


def create_credit_note(session: Session, organization_id: int, job_id: uuid.UUID, *,
                       concept_code: int, lines: Sequence[CreditLine] | None = None,
                       notes: str | None = None) -> tuple[uuid.UUID, EnqueueResult]:
    """Create the credit note of an accepted invoice job and enqueue it (one transaction).

    The note is a new ``invoice_sales`` row (``document_type`` ``credit_note``,
    ``related_invoice_id`` the invoice, ``correction_concept_code`` the DIAN concept, FACTUS_API.md
    §7.1) with the invoice's customer, branch and payment, and lines copied from the invoice's:
    all of them (``lines`` None: a full credit), or the chosen ones. Whether the notes of an
    invoice exceed its total is the worker's check (``credit_exceeds_invoice``).

    Args:
        concept_code: DIAN correction concept 1..6 (2 = anulación, the full reversal).
        lines: the partial credit's lines; None for the full credit.
    Returns:
        ``(the credit note's invoice_sales.id, its job)``.
    Raises:
        JobError: ``job_not_found`` (unknown, or another organization's), ``not_accepted``
            (the job is not an accepted invoice).
        ApiInputError: a concept outside 1..6, an unknown or repeated line, a quantity or
            amount out of bounds, an empty partial credit.
    """
    job = api_repo.job_of_organization(session, organization_id, job_id)
    if job is None:
        raise JobError(f"no job {job_id}", reason="job_not_found")
    if job.document_type != "invoice" or job.status != JobStatus.ACCEPTED:
        raise JobError(f"job {job.id} is a {job.status} {job.document_type}; a credit note "
                       "corrects an accepted invoice", reason="not_accepted")
    if not 1 <= concept_code <= 6:
        raise ApiInputError("correction concept must be 1..6", reason="unknown_correction_concept",
                            field="concept_code")
    if lines is not None and not lines:
        raise ApiInputError("a partial credit note needs at least one line",
                            reason="no_items", field="lines")
    invoice = invoice_repo.invoice_of_organization(session, organization_id, job.invoice_id)
    if invoice is None:
        raise JobError(f"no invoice {job.invoice_id}", reason="invoice_not_found")
    rows = _credit_rows(invoice_repo.items_of_invoice(session, invoice.id), lines)
    note_id = invoice_repo.insert_invoice(session, {
        "organization_id": organization_id, "branch_id": invoice.branch_id,
        "customer_id": invoice.customer_id, "issue_date": datetime.now(UTC),
        "currency": invoice.currency, "tax_included": invoice.tax_included,
        "payment_form": invoice.payment_form, "payment_method_code": invoice.payment_method_code,
        "document_type": "credit_note", "related_invoice_id": invoice.id,
        "correction_concept_code": concept_code, "notes": notes,
        "total": _total(rows, invoice.tax_included)})
    invoice_repo.insert_items(session, [{**row, "invoice_id": note_id} for row in rows])
    return note_id, enqueue_for_organization(session, organization_id, note_id, "credit_note")


def require_job(session: Session, organization_id: int, job_id: uuid.UUID, *,
                for_update: bool = False) -> Job:
    """The organization's job ``job_id``.

    Raises:
        JobError: ``job_not_found`` (unknown, or another organization's).
    """
    job = api_repo.job_of_organization(session, organization_id, job_id, for_update=for_update)
    if job is None:
        raise JobError(f"no job {job_id}", reason="job_not_found")
    return job


def job_events(session: Session, job: Job) -> list[ElectronicInvoicingEvent]:
    """The job's event timeline, oldest first."""
    return operator_repo.events_for(session, job.id)


def retry_for_organization(session: Session, organization_id: int, job_id: uuid.UUID, *,
                           actor: str) -> Job:
    """:func:`einvoice.services.operator.retry_job` on the organization's job, and a
    ``NOTIFY einvoice_jobs`` so that the workers' listener wakes it when the caller commits.

    Raises:
        JobError: ``job_not_found``, and the retry's own (``not_retryable``,
            ``active_job_exists``, ``already_accepted``).
    """
    require_job(session, organization_id, job_id, for_update=True)
    job = retry_job(session, job_id, actor=actor)
    api_repo.notify_job(session, job.id)
    return job


class AccountClients(Protocol):
    """What :func:`fetch_document` needs of :class:`einvoice.factus.client.FactusClients`."""

    def for_account(self, account: Any) -> Any:
        """The Factus client of ``account``."""


#: Factus download method per (document type, kind) (FACTUS_API.md §6.4, §7.1).
_DOWNLOADS = {
    ("invoice", "pdf"): "download_bill_pdf", ("invoice", "xml"): "download_bill_xml",
    ("credit_note", "pdf"): "download_credit_note_pdf",
    ("credit_note", "xml"): "download_credit_note_xml",
}


def fetch_document(session_factory: sessionmaker[Session], clients: Callable[[], AccountClients],
                   settings: Settings, organization_id: int, job_id: uuid.UUID,
                   kind: str) -> tuple[str, bytes]:
    """The accepted job's stored ``kind`` file; when the archive has none yet, downloaded once
    from Factus and stored (``electronic_invoicing_documents``, the archive's
    :class:`einvoice.db.followups.DatabaseDocumentStore`), then returned.

    No transaction is open during the Factus call (STYLE.md habit 4).

    Args:
        clients: returns the process's Factus clients (built on first need).
        kind: ``pdf`` or ``xml``.
    Returns:
        ``(file name, bytes)``.
    Raises:
        JobError: ``job_not_found``, ``not_accepted``, ``bad_document_kind``,
            ``document_corrupt``.
        ConfigError: the organization has no usable Factus account.
        einvoice.factus.errors.FactusError: the download failed.
    """
    from einvoice.crypto import SecretBox  # noqa: PLC0415 - only for a download
    from einvoice.services.accounts import account_for_organization  # noqa: PLC0415

    if kind not in STORED_DOCUMENT_KINDS:
        raise JobError(f"unknown document kind {kind!r} (pdf or xml)", reason="bad_document_kind")
    with UnitOfWork(session_factory) as uow:  # a read: rolled back at the end of the block
        job = require_job(uow.session, organization_id, job_id)
        if job.status != JobStatus.ACCEPTED or not job.document_number:
            raise JobError(f"job {job.id} is {job.status}; only an accepted job has documents",
                           reason="not_accepted")
        stored = DatabaseDocumentStore(uow.session).get(job.id, kind)
        if stored is not None and stored.content is not None:
            return stored.file_name, stored.content
        method = _DOWNLOADS.get((job.document_type, kind))
        if method is None:
            raise JobError(f"no {kind} download for a {job.document_type}",
                           reason="bad_document_kind")
        box = SecretBox.from_settings(settings) if settings.einvoice_secret_key else None
        account = account_for_organization(uow.session, organization_id, settings, box)
        number, key = job.document_number, job.id
    downloaded = getattr(clients().for_account(account), method)(number)
    name = f"{downloaded.file_name or number}.{kind}"
    with UnitOfWork(session_factory) as uow:
        DatabaseDocumentStore(uow.session).put(key, kind, name, downloaded.content)
        uow.commit()
    return name, bytes(downloaded.content)
