"""Invoice repository: reads the ERP's rows and writes the validation outcome back.

:func:`load_invoice` turns ``invoice_sales`` + ``customers`` + ``invoice_items``/``products`` +
``branches`` + ``organizations`` + ``invoice_sequences`` into the domain's plain
:class:`~einvoice.domain.invoices.InvoiceData` (seed 002 "Mapeo de Datos"), so that payload
building stays pure.

Tenancy: every row a document draws on (the invoice's customer, branch, numbering range and
products, and a credit note's corrected invoice) must belong to the invoice's organization, and
so must the job that asked for it. A row of another organization ends the job ``rejected`` with
``organization_mismatch`` naming the row, before any call to Factus: an ERP that points an
invoice at another company's customer would otherwise issue a legal document with that
company's data. A customer, product or branch row with a NULL ``organization_id`` is accepted: it
is no other company's row (a single-company ERP leaves the column empty), and refusing it would
stop such an ERP at its first invoice. The organization ids are read in the statements that read
the rows, so the checks cost no query.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import FromClause, Text, bindparam, case, cast, func, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from einvoice.db import raw
from einvoice.db.models import (
    Branch,
    Customer,
    DianMunicipality,
    ElectronicInvoicingJob,
    InvoiceItem,
    InvoicePayment,
    InvoiceSale,
    InvoiceSequence,
    Organization,
    Product,
)
from einvoice.domain.errors import PayloadError
from einvoice.domain.invoices import (
    BranchData,
    CustomerData,
    InvoiceData,
    ItemData,
    NumberingRangeData,
    OrganizationData,
    allowance_charges_from_json,
    billing_period_from_json,
    payments_from_json,
    prepayments_from_json,
    taxes_from_json,
    withholding_taxes_from_json,
)

#: ``invoice_sales.status`` after DIAN validated the document.
VALIDATED = "validated"


def _date(value: datetime | None) -> object:
    return value.date() if value is not None else None


# The hot path's reads are Core statements over the tables, built once at import: no ORM
# instances to construct, no statement or cache key built per job (benchmark B1: the ORM loads
# were about a sixth of a worker's CPU). Rows are read by column name like the ORM objects.
_SALES, _ORGS, _CUSTOMERS, _BRANCHES, _ITEMS, _PRODUCTS, _SEQUENCES = (
    model.__table__ for model in (InvoiceSale, Organization, Customer, Branch, InvoiceItem, Product,
                                  InvoiceSequence))


def _labelled(table: Any, prefix: str) -> list[Any]:
    return [column.label(prefix + column.name) for column in table.c]


# The best candidate numbering range of the invoice's organization, read in the same statement
# as the invoice (a LATERAL join; benchmark B1: one round trip less per job): same branch first
# (an invoice without a branch prefers ranges without one), active first, latest validity first.
_NUMBERING_RANGE = (
    select(*_labelled(_SEQUENCES, "r_"))
    .where(
        _SEQUENCES.c.organization_id == _SALES.c.organization_id,
        _SEQUENCES.c.document_type == bindparam("document_type"),
        _SEQUENCES.c.factus_numbering_range_id.is_not(None),
    )
    .order_by(
        case((_SEQUENCES.c.branch_id.is_not_distinct_from(_SALES.c.branch_id), 0), else_=1),
        _SEQUENCES.c.is_active.desc().nulls_last(),
        _SEQUENCES.c.valid_until.desc().nulls_last(),
        _SEQUENCES.c.id,
    )
    .limit(1)
    .lateral("numbering_range")
)

#: (table, label prefix) of each part of :data:`_INVOICE_ROW`, in column order.
_INVOICE_PARTS: tuple[tuple[FromClause, str], ...] = (
    (_SALES, "s_"), (_ORGS, "o_"), (_CUSTOMERS, "c_"), (_BRANCHES, "b_"), (_SEQUENCES, "r_"))

# The DANE code of each Factus municipality id the document names (Factus v2 sends
# municipality_code), read by primary key in the same statement: no extra round trip. Scalar
# subqueries, not joins: PostgreSQL plans each on its own, while three more outer joins made it
# search join orders over eight tables, 3 ms of planning per custom plan (benchmark B1).
_MUNICIPALITIES = DianMunicipality.__table__


def _municipality_code(municipality_id: Any) -> Any:
    return (select(_MUNICIPALITIES.c.code).where(_MUNICIPALITIES.c.id == municipality_id)
            .scalar_subquery())


# The invoice's means of payment (migration 0008's invoice_payments) as one JSON array, in the
# same statement; amounts as text so that no binary float touches the money.
_PAYMENTS_TABLE = InvoicePayment.__table__
_PAYMENTS = (
    select(func.json_agg(aggregate_order_by(
        func.json_build_object(
            "payment_form", _PAYMENTS_TABLE.c.payment_form,
            "payment_method_code", _PAYMENTS_TABLE.c.payment_method_code,
            "amount", cast(_PAYMENTS_TABLE.c.amount, Text),
            "due_date", _PAYMENTS_TABLE.c.due_date,
            "reference", _PAYMENTS_TABLE.c.reference),
        _PAYMENTS_TABLE.c.due_date.asc().nulls_first(), _PAYMENTS_TABLE.c.id)))
    .where(_PAYMENTS_TABLE.c.invoice_id == _SALES.c.id)
    .scalar_subquery()
)

_INVOICE_ROW = (
    select(*(column for table, prefix in _INVOICE_PARTS[:-1]
             for column in _labelled(table, prefix)),
           *_NUMBERING_RANGE.c,
           _municipality_code(_CUSTOMERS.c.municipality_id)
           .label("x_customer_municipality_code"),
           _municipality_code(_BRANCHES.c.municipality_id).label("x_branch_municipality_code"),
           _municipality_code(_ORGS.c.municipality_id).label("x_organization_municipality_code"),
           _PAYMENTS.label("x_payments"))
    .select_from(
        _SALES.outerjoin(_ORGS, _ORGS.c.id == _SALES.c.organization_id)
        .outerjoin(_CUSTOMERS, _CUSTOMERS.c.id == _SALES.c.customer_id)
        .outerjoin(_BRANCHES, _BRANCHES.c.id == _SALES.c.branch_id)
        .outerjoin(_NUMBERING_RANGE, true()))
    .where(_SALES.c.id == bindparam("invoice_id"))
)

_ITEM_ROWS = (
    select(*_ITEMS.c, _PRODUCTS.c.sku.label("product_sku"),
           _PRODUCTS.c.organization_id.label("product_organization_id"))
    .select_from(_ITEMS.outerjoin(_PRODUCTS, _PRODUCTS.c.id == _ITEMS.c.product_id))
    .where(_ITEMS.c.invoice_id == bindparam("invoice_id"))
    .order_by(_ITEMS.c.id)
)

_INVOICE_ROW_RAW = raw.RawStatement.of(_INVOICE_ROW)
_ITEM_ROWS_RAW = raw.RawStatement.of(_ITEM_ROWS)

_INVOICE_PART_NAMES = tuple(tuple(column.name for column in table.c)
                            for table, _prefix in _INVOICE_PARTS)


def _split_invoice_row(row: Sequence[Any]) -> list[SimpleNamespace | None]:
    """The joined row as one namespace per table (None for an outer join that found nothing)."""
    parts: list[SimpleNamespace | None] = []
    start = 0
    for names in _INVOICE_PART_NAMES:
        values = dict(zip(names, row[start:start + len(names)], strict=True))
        start += len(names)
        parts.append(None if values["id"] is None else SimpleNamespace(**values))
    return parts


def _numbering_range(row: Any, document_type: str) -> NumberingRangeData | None:
    """The numbering range part of the invoice row (see ``_NUMBERING_RANGE``), if any."""
    if row is None:
        return None
    return NumberingRangeData(
        id=row.id, factus_numbering_range_id=row.factus_numbering_range_id,
        document_type=row.document_type or document_type, is_active=bool(row.is_active),
        prefix=row.prefix, range_start=row.range_start, range_end=row.range_end,
        current_number=row.current_number, valid_from=row.valid_from,
        valid_until=row.valid_until, resolution_number=row.resolution_number,
    )


def _check_owner(table: str, row_id: object, row_organization: int | None,
                 invoice: Any) -> None:
    """Refuse a row of another organization than the invoice's (see the module docstring).

    Raises: PayloadError ``organization_mismatch`` with field ``<table>.organization_id`` and the
    row's organization as value; NULL passes.
    """
    if row_organization is not None and row_organization != invoice.organization_id:
        raise PayloadError(
            "organization_mismatch", field=f"{table}.organization_id", value=row_organization,
            detail=(f"{table} row {row_id} belongs to organization {row_organization}, but invoice "
                    f"{invoice.id} belongs to organization {invoice.organization_id}; a document "
                    "may only use its own organization's rows"))


def _items(session: Session, invoice: Any) -> tuple[ItemData, ...]:
    rows = raw.execute(session, _ITEM_ROWS_RAW, {"invoice_id": invoice.id}).fetchall()
    items = []
    for index, item in enumerate(rows):
        if item.product_id is not None:
            _check_owner("products", item.product_id, item.product_organization_id, invoice)
        items.append(
            ItemData(
                id=str(item.id), description=item.description,
                qty=item.qty, unit_price=item.unit_price, tax_rate=item.tax_rate,
                tax_included=item.tax_included, discount_rate=item.discount_rate,
                discount_amount=item.discount_amount, code_reference=item.code_reference,
                product_sku=item.product_sku, product_id=item.product_id,
                unit_measure_id=item.unit_measure_id, standard_code_id=item.standard_code_id,
                is_excluded=bool(item.is_excluded), tribute_id=item.tribute_id,
                withholding_taxes=withholding_taxes_from_json(
                    item.withholding_taxes, item_index=index
                ),
                note=item.note,
                taxes=taxes_from_json(item.taxes, item_index=index),
            )
        )
    return tuple(items)


def _related(session: Session, invoice: Any) -> dict[str, object]:
    """For a credit note: the original's Factus bill id, total, and what was already credited.

    Raises: PayloadError ``organization_mismatch`` when the corrected invoice belongs to another
    organization.
    """
    if invoice.related_invoice_id is None:
        return {}
    original = session.get(InvoiceSale, invoice.related_invoice_id)
    # Unlike a customer, an invoice always has an organization: NULL is no company's
    # document, so it cannot be credited by this one.
    if original is not None and original.organization_id != invoice.organization_id:
        raise PayloadError(
            "organization_mismatch", field="related_invoice.organization_id",
            value=original.organization_id,
            detail=(f"invoice_sales row {original.id} (the corrected invoice) belongs to "
                    f"organization {original.organization_id}, but credit note {invoice.id} "
                    f"belongs to organization {invoice.organization_id}"))
    # The bill's Factus id (v1 bill_id) and number (v2 bill_number) in one read.
    bill = session.execute(
        select(ElectronicInvoicingJob.factus_document_id,
               ElectronicInvoicingJob.document_number).where(
            ElectronicInvoicingJob.invoice_id == invoice.related_invoice_id,
            ElectronicInvoicingJob.organization_id == invoice.organization_id,
            ElectronicInvoicingJob.document_type == "invoice",
            ElectronicInvoicingJob.status == "accepted",
        )
    ).first()
    credited = session.scalar(
        select(func.coalesce(func.sum(InvoiceSale.total), 0))
        .join(ElectronicInvoicingJob, ElectronicInvoicingJob.invoice_id == InvoiceSale.id)
        .where(
            InvoiceSale.related_invoice_id == invoice.related_invoice_id,
            InvoiceSale.organization_id == invoice.organization_id,
            InvoiceSale.id != invoice.id,
            ElectronicInvoicingJob.document_type == "credit_note",
            ElectronicInvoicingJob.status.in_(("accepted", "pending", "processing", "sent")),
        )
    )
    return {
        "related_bill_id": bill.factus_document_id if bill is not None else None,
        "related_bill_number": bill.document_number if bill is not None else None,
        "related_invoice_total": original.total if original is not None else None,
        "related_invoice_credited_total": Decimal(credited or 0),
    }


def load_invoice(session: Session, invoice_id: uuid.UUID, document_type: str,
                 organization_id: int | None = None) -> InvoiceData:
    """Read one ERP invoice and everything its payload needs.

    Args:
        organization_id: the organization of the job that asks for the document
            (``electronic_invoicing_jobs.organization_id``); when given, the invoice must belong
            to it (an ERP's plain INSERT may set another one, and the job's organization chooses
            the Factus account).
    Returns:
        :class:`InvoiceData` (money as ``Decimal`` COP, rates in percent, dates as ``date``).
    Raises:
        PayloadError: ``invoice_not_found``, ``missing_organization``, ``organization_mismatch``
            (the job, customer, branch, numbering range, a product or a credit note's corrected
            invoice of another organization; see the module docstring), or ``malformed_json``
            for a JSON column (withholding taxes, allowance charges, billing period) that does
            not parse.
    """
    # The invoice with its issuer, customer, branch and numbering range in one statement (five
    # round trips otherwise; benchmark B1: the ORM loads were half of the payload build's time).
    row = raw.execute(session, _INVOICE_ROW_RAW, {"invoice_id": invoice_id,
                                                  "document_type": document_type}).fetchone()
    if row is None:
        raise PayloadError("invoice_not_found", field="invoice_sales.id", value=str(invoice_id),
                           detail="the invoice row does not exist")
    invoice, org, customer, branch, numbering_range = _split_invoice_row(row)
    assert invoice is not None
    if org is None:
        raise PayloadError("missing_organization", field="invoice_sales.organization_id",
                           value=invoice.organization_id, detail="no such organization")
    if organization_id is not None and organization_id != invoice.organization_id:
        raise PayloadError(
            "organization_mismatch", field="electronic_invoicing_jobs.organization_id",
            value=organization_id,
            detail=(f"the job is for organization {organization_id}, but invoice_sales row "
                    f"{invoice.id} belongs to organization {invoice.organization_id}; the job "
                    "would be sent with the other organization's Factus account"))
    for table, part in (("customers", customer), ("branches", branch),
                        ("invoice_sequences", numbering_range)):
        if part is not None:
            _check_owner(table, part.id, part.organization_id, invoice)
    return InvoiceData(
        id=str(invoice.id),
        organization=OrganizationData(
            id=org.id, name=org.name or org.legal_name or "", legal_name=org.legal_name,
            nit=org.nit, dv=org.dv, email=org.email, phone=org.phone, address=org.address,
            city=org.city, municipality_id=org.municipality_id,
            municipality_code=row.x_organization_municipality_code,
        ),
        customer=None if customer is None else CustomerData(
            id=str(customer.id), identification_type=customer.identification_type,
            identification_number=customer.identification_number, dv=customer.dv,
            first_name=customer.first_name, last_name=customer.last_name,
            company_name=customer.company_name, trade_name=customer.trade_name,
            legal_organization_id=customer.legal_organization_id,
            tribute_id=customer.tribute_id, municipality_id=customer.municipality_id,
            email=customer.email, phone=customer.phone, address=customer.address,
            city=customer.city, municipality_code=row.x_customer_municipality_code,
        ),
        items=_items(session, invoice),
        numbering_range=_numbering_range(numbering_range, document_type),
        branch=None if branch is None else BranchData(
            id=branch.id, name=branch.name, address=branch.address, city=branch.city,
            phone=branch.phone, email=branch.email, municipality_id=branch.municipality_id,
            municipality_code=row.x_branch_municipality_code,
        ),
        document_type=document_type,
        number=invoice.number,
        issue_date=_date(invoice.issue_date),  # type: ignore[arg-type]
        due_date=_date(invoice.due_date),  # type: ignore[arg-type]
        currency=invoice.currency,
        notes=invoice.notes,
        payment_form=invoice.payment_form,
        payment_method_code=invoice.payment_method_code,
        send_email=invoice.send_email,
        tax_included=invoice.tax_included,
        operation_type=invoice.operation_type,
        allowance_charges=allowance_charges_from_json(invoice.allowance_charges),
        billing_period=billing_period_from_json(invoice.billing_period),
        subtotal=invoice.subtotal, tax_total=invoice.tax_total, total=invoice.total,
        related_invoice_id=str(invoice.related_invoice_id) if invoice.related_invoice_id else None,
        correction_concept_code=invoice.correction_concept_code,
        payments=payments_from_json(row.x_payments),
        cash_rounding_amount=invoice.cash_rounding_amount,
        prepayments=prepayments_from_json(invoice.prepayments),
        display_currency=invoice.display_currency,
        exchange_rate=invoice.exchange_rate,
        order_reference=invoice.order_reference,
        order_issue_date=invoice.order_issue_date,
        **_related(session, invoice),  # type: ignore[arg-type]
    )


def known_municipality_ids(session: Session) -> frozenset[int]:
    """Every Factus municipality id in ``dian_municipalities`` (about 1,122 ints)."""
    return frozenset(session.scalars(select(DianMunicipality.id)))




def invoices_without_job(session: Session, organization_id: int,
                         document_type: str = "invoice") -> list[uuid.UUID]:
    """Ids of the organization's ``invoice_sales`` rows of ``document_type`` that have no job of
    that type at all, by issue date (undated last) then id.

    ``invoice_sales.document_type`` NULL counts as ``invoice`` (the ERP's default).
    """
    has_job = select(ElectronicInvoicingJob.id).where(
        ElectronicInvoicingJob.invoice_id == InvoiceSale.id,
        ElectronicInvoicingJob.document_type == document_type,
    )
    doc_filter = (
        (InvoiceSale.document_type == document_type) | InvoiceSale.document_type.is_(None)
        if document_type == "invoice"
        else InvoiceSale.document_type == document_type
    )
    return list(
        session.scalars(
            select(InvoiceSale.id)
            .where(InvoiceSale.organization_id == organization_id, doc_filter, ~has_job.exists())
            .order_by(InvoiceSale.issue_date.nulls_last(), InvoiceSale.id)
        )
    )
