"""The HTTP API's writes of whole invoices and credit notes into the ERP tables.

An invoice submitted as JSON becomes rows of ``customers``, ``products`` (one per new SKU),
``invoice_sales``, ``invoice_items`` and ``invoice_payments``, exactly as an ERP would have
written them (docs/erp-contract.md), so the worker reads it with
:func:`einvoice.db.invoices.load_invoice` like any other. Called by
:mod:`einvoice.services.api_invoices`; nothing here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from einvoice.db.models import (
    Branch,
    Customer,
    InvoiceItem,
    InvoicePayment,
    InvoiceSale,
)

# A product of the organization by SKU, inserted when missing (products has no unique key on
# SKU, so the oldest match wins, as an ERP's own lookup would).
_PRODUCT_FOR_SKU = text("""
WITH found AS (
    SELECT id FROM products WHERE organization_id = :organization_id AND sku = :sku
     ORDER BY id LIMIT 1
), added AS (
    INSERT INTO products (organization_id, sku, name)
    SELECT :organization_id, :sku, :name WHERE NOT EXISTS (SELECT 1 FROM found)
    RETURNING id
)
SELECT id FROM found UNION ALL SELECT id FROM added
""")


def customer_exists(session: Session, organization_id: int, customer_id: uuid.UUID) -> bool:
    """Whether ``customers`` row ``customer_id`` exists and belongs to ``organization_id``."""
    return session.scalar(select(Customer.id).where(
        Customer.id == customer_id, Customer.organization_id == organization_id)) is not None


def branch_exists(session: Session, organization_id: int, branch_id: int) -> bool:
    """Whether ``branches`` row ``branch_id`` exists and belongs to ``organization_id``."""
    return session.scalar(select(Branch.id).where(
        Branch.id == branch_id, Branch.organization_id == organization_id)) is not None


def insert_customer(session: Session, values: Mapping[str, Any]) -> uuid.UUID:
    """Insert a ``customers`` row from column values; returns its id."""
    return session.execute(insert(Customer).values(**values).returning(Customer.id)).scalar_one()


def product_for_sku(session: Session, organization_id: int, sku: str, name: str) -> int:
    """The id of the organization's product ``sku``, inserted (with ``name``) when missing."""
    return int(session.execute(_PRODUCT_FOR_SKU, {"organization_id": organization_id, "sku": sku,
                                                  "name": name}).scalar_one())


def insert_invoice(session: Session, values: Mapping[str, Any]) -> uuid.UUID:
    """Insert an ``invoice_sales`` row from column values; returns its id."""
    return session.execute(
        insert(InvoiceSale).values(**values).returning(InvoiceSale.id)).scalar_one()


def insert_items(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``invoice_items`` rows (column values each, ``invoice_id`` included)."""
    if rows:
        session.execute(insert(InvoiceItem), [dict(row) for row in rows])


def insert_payments(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``invoice_payments`` rows (column values each, ``invoice_id`` included)."""
    if rows:
        session.execute(insert(InvoicePayment), [dict(row) for row in rows])


def invoice_of_organization(session: Session, organization_id: int,
                            invoice_id: uuid.UUID) -> InvoiceSale | None:
    """``invoice_sales`` row ``invoice_id`` if it belongs to ``organization_id``, else None."""
    return session.scalars(select(InvoiceSale).where(
        InvoiceSale.id == invoice_id, InvoiceSale.organization_id == organization_id)
    ).one_or_none()


def items_of_invoice(session: Session, invoice_id: uuid.UUID) -> list[InvoiceItem]:
    """The invoice's lines in the order the worker sends them (by id)."""
    return list(session.scalars(select(InvoiceItem).where(InvoiceItem.invoice_id == invoice_id)
                                .order_by(InvoiceItem.id)))


#: ``invoice_items`` columns a credit note line copies from the invoice's line.
ITEM_COPY_COLUMNS = tuple(
    column.key for column in InvoiceItem.__table__.columns
    if column.key not in ("id", "invoice_id", "qty", "unit_price", "total_line",
                          "discount_amount"))

