"""Migration 0008 (the ERP columns of Factus v2) and what the invoice repository reads from them."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from einvoice.db import migrate
from einvoice.db.invoices import load_invoice
from einvoice.settings import libpq_url

ADDED = {
    ("invoice_sales", "cash_rounding_amount"), ("invoice_sales", "prepayments"),
    ("invoice_sales", "display_currency"), ("invoice_sales", "exchange_rate"),
    ("invoice_sales", "order_reference"), ("invoice_sales", "order_issue_date"),
    ("invoice_items", "taxes"),
}
PAYMENT_COLUMNS = {"id", "invoice_id", "payment_form", "payment_method_code", "amount",
                   "due_date", "reference"}


def _columns(url: str, table: str) -> set[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        return {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = %s", (table,))}


def test_upgrade_on_an_empty_database_adds_the_v2_columns_and_the_payments_table(
        empty_db_url: str) -> None:
    # Given an empty database, when it is upgraded
    migrate.upgrade(empty_db_url)
    # Then the v2 columns and the payments table are there, indexed by invoice
    for table, column in ADDED:
        assert column in _columns(empty_db_url, table)
    assert _columns(empty_db_url, "invoice_payments") == PAYMENT_COLUMNS
    with psycopg.connect(libpq_url(empty_db_url)) as conn:
        assert conn.execute("SELECT to_regclass('ix_invoice_payments_invoice') IS NOT NULL"
                            ).fetchone() == (True,)
    # And going back to 0007 removes exactly them, and 0008 applies again
    migrate.downgrade(empty_db_url, "0007")
    assert "cash_rounding_amount" not in _columns(empty_db_url, "invoice_sales")
    assert "taxes" not in _columns(empty_db_url, "invoice_items")
    assert _columns(empty_db_url, "invoice_payments") == set()
    migrate.upgrade(empty_db_url)
    assert _columns(empty_db_url, "invoice_payments") == PAYMENT_COLUMNS


def test_an_erps_own_payments_table_and_columns_are_completed_and_kept(empty_db_url: str) -> None:
    # Given an ERP at 0007 that already has an invoice_payments table of its own (with a row)
    # and its own order_reference column
    migrate.upgrade(empty_db_url, "0007")
    invoice_id = uuid.uuid4()
    with psycopg.connect(libpq_url(empty_db_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE invoice_payments (id UUID PRIMARY KEY, invoice_id UUID, "
                     "amount NUMERIC, cashier TEXT)")
        conn.execute("INSERT INTO invoice_payments VALUES (gen_random_uuid(), %s, 5000, 'ana')",
                     (invoice_id,))
        conn.execute("ALTER TABLE invoice_sales ADD COLUMN order_reference TEXT")
    # When 0008 runs, only the missing columns are added
    migrate.upgrade(empty_db_url)
    assert _columns(empty_db_url, "invoice_payments") == PAYMENT_COLUMNS | {"cashier"}
    # And the downgrade removes them but keeps the ERP's table, column and row
    migrate.downgrade(empty_db_url, "0007")
    assert _columns(empty_db_url, "invoice_payments") == {"id", "invoice_id", "amount",
                                                          "cashier"}
    assert "order_reference" in _columns(empty_db_url, "invoice_sales")
    assert "cash_rounding_amount" not in _columns(empty_db_url, "invoice_sales")
    with psycopg.connect(libpq_url(empty_db_url)) as conn:
        assert conn.execute("SELECT amount, cashier FROM invoice_payments").fetchall() == [
            (Decimal(5000), "ana")]


def test_the_repository_reads_payments_taxes_and_dane_codes_with_the_invoice(
        session: Session) -> None:
    # Given an invoice with two payment rows, a line with two taxes and a San Gil customer
    invoice_id, customer_id = uuid.uuid4(), uuid.uuid4()
    statements = (
        "INSERT INTO organizations (id, name, municipality_id) VALUES (7, 'Tienda', 169);"
        "INSERT INTO customers (id, organization_id, identification_type, identification_number,"
        " first_name, municipality_id) VALUES (:c, 7, 'CC', '1020304050', 'Ana', 980);"
        "INSERT INTO invoice_sales (id, organization_id, customer_id, total, cash_rounding_amount,"
        " prepayments, display_currency, exchange_rate, order_reference, order_issue_date)"
        " VALUES (:i, 7, :c, 2780, -0.30, '[{\"reference_code\": \"A1\","
        " \"received_date\": \"2026-03-01\", \"amount\": 1000}]', 'USD', 3565.07, 'OC-9',"
        " '2026-03-02');"
        "INSERT INTO invoice_items (invoice_id, description, qty, unit_price, taxes) VALUES"
        " (:i, 'Gaseosa', 2, 1000, '[{\"code\": \"01\", \"rate\": 19},"
        " {\"code\": \"35\", \"rate\": 20}]');"
        "INSERT INTO invoice_payments (invoice_id, payment_form, payment_method_code, amount,"
        " due_date, reference) VALUES (:i, '1', '10', 779.70, NULL, 'caja'),"
        " (:i, '2', '47', 1000.00, '2026-04-30', NULL);"
    )
    for statement in statements.split(";")[:-1]:
        session.execute(text(statement), {"i": invoice_id, "c": customer_id})
    # When it is loaded
    invoice = load_invoice(session, invoice_id, "invoice")
    # Then everything v2 needs came with it, money exact
    assert invoice.customer is not None
    assert invoice.customer.municipality_code == "68679"
    assert invoice.organization.municipality_code == "11001"
    assert [(p.payment_method_code, p.amount, p.due_date, p.reference)
            for p in invoice.payments] == [("10", Decimal("779.70"), None, "caja"),
                                           ("47", Decimal("1000.00"), date(2026, 4, 30), None)]
    assert [(t.code, t.rate) for t in invoice.items[0].taxes] == [("01", Decimal(19)),
                                                                   ("35", Decimal(20))]
    assert invoice.cash_rounding_amount == Decimal("-0.30")
    assert invoice.prepayments[0].amount == Decimal(1000)
    assert (invoice.display_currency, invoice.exchange_rate) == ("USD", Decimal("3565.07"))
    assert (invoice.order_reference, invoice.order_issue_date) == ("OC-9", date(2026, 3, 2))
