"""SQLAlchemy 2 typed models of the ERP tables and of einvoice's own tables.

Source: seed 002 ("Análisis de Tablas Existentes", "Campos FALTANTES", "Tablas NUEVAS Requeridas").
Table and column names and types are the seed's. Where einvoice adds a column, its comment says
why; where the seed contradicts Factus, Factus wins and the comment says so.

The nine ERP tables (``organizations``, ``branches``, ``customers``, ``products``,
``invoice_sales``, ``invoice_items``, ``invoice_sequences``, ``electronic_invoicing_jobs``,
``electronic_invoicing_events``) may already exist in the ERP's database (the seed's Supabase case):
the migration ``0001`` creates them only when absent and otherwise adds the missing columns.
These models describe the schema after that migration; ``tests/integration/db`` checks that the
models and the migrated database agree.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from einvoice.domain.jobs import ACTIVE_STATUSES, FollowupStatus, JobStatus

TIMESTAMPTZ = TIMESTAMP(timezone=True)

#: Job statuses (seed 002 ``electronic_invoicing_jobs.status``), in the enum's order.
JOB_STATUSES: tuple[str, ...] = tuple(status.value for status in JobStatus)
#: Statuses a job can still leave; at most one such job per (invoice, document type).
NON_FINAL_JOB_STATUSES: tuple[str, ...] = tuple(
    status.value for status in JobStatus if status in ACTIVE_STATUSES)
#: Providers allowed by the seed's ``electronic_invoicing_jobs_provider_check`` (step 7).
PROVIDERS = ("carvajal", "facturatech", "siigo", "alegra", "world_office", "factus", "other")
#: Document types (seed 002 ``electronic_invoicing_jobs.document_type``).
DOCUMENT_TYPES = ("invoice", "credit_note", "debit_note", "support_document")
#: Factus API versions a request can go through (migration 0007).
FACTUS_API_VERSIONS = ("v1", "v2")
#: What ``factus_credentials.api_version`` may say: a version, or ``auto`` (detected and stored).
ACCOUNT_API_VERSIONS = ("v1", "v2", "auto")

#: SQL default of ``electronic_invoicing_jobs.reference_code``: "EI" + 18 upper-case hex chars
#: (20 characters: FACTUS_API.md §9 advises staying within about 20). Random, not sequential,
#: because the Factus sandbox is shared by every user (§1) and a counter would collide there.
REFERENCE_CODE_DEFAULT = "('EI' || upper(substr(replace(gen_random_uuid()::text, '-', ''), 1, 18)))"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base of every einvoice model."""

    # SQLAlchemy reads this once, when the registry is built; nothing mutates it.
    type_annotation_map = {datetime: TIMESTAMPTZ, dict[str, Any]: JSONB}  # noqa: RUF012


# --------------------------------------------------------------------------------------------
# ERP tables (exist in the ERP; created here only on an empty database)
# --------------------------------------------------------------------------------------------


class Organization(Base):
    """``organizations``: the issuing company (one Factus account each, or the default one)."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str | None] = mapped_column(String)
    legal_name: Mapped[str | None] = mapped_column(Text)
    nit: Mapped[str | None] = mapped_column(Text)
    tax_id: Mapped[str | None] = mapped_column(String)
    email: Mapped[str | None] = mapped_column(String)
    phone: Mapped[str | None] = mapped_column(String)
    address: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    country_code: Mapped[str | None] = mapped_column(String)
    logo_url: Mapped[str | None] = mapped_column(Text)
    # Campos FALTANTES §2
    dv: Mapped[int | None] = mapped_column(Integer)
    registration_code: Mapped[str | None] = mapped_column(Text)
    economic_activity: Mapped[str | None] = mapped_column(Text)
    municipality_id: Mapped[int | None] = mapped_column(Integer)
    graphic_representation_name: Mapped[str | None] = mapped_column(Text)
    fiscal_responsibilities: Mapped[list[str] | None] = mapped_column(ARRAY(Text))


class Branch(Base):
    """``branches``: an establishment of an organization (Factus ``establishment``)."""

    __tablename__ = "branches"
    # Migration 0006: the key an invoice's (branch_id, organization_id) refers to.
    __table_args__ = (Index("ux_branches_id_organization", "id", "organization_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String)
    address: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(String)
    phone: Mapped[str | None] = mapped_column(String)
    email: Mapped[str | None] = mapped_column(String)
    # Campos FALTANTES §3
    municipality_id: Mapped[int | None] = mapped_column(Integer)


class Customer(Base):
    """``customers``: the buyer (Factus ``customer``)."""

    __tablename__ = "customers"
    # Migration 0006: the key an invoice's (customer_id, organization_id) refers to.
    __table_args__ = (Index("ux_customers_id_organization", "id", "organization_id", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    organization_id: Mapped[int | None] = mapped_column(Integer)
    email: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    identification_type: Mapped[str | None] = mapped_column(Text)
    identification_number: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    # Campos FALTANTES §1 (defaults from "Implementación Paso a Paso", step 2)
    dv: Mapped[int | None] = mapped_column(Integer)
    company_name: Mapped[str | None] = mapped_column(Text)
    trade_name: Mapped[str | None] = mapped_column(Text)
    legal_organization_id: Mapped[int | None] = mapped_column(Integer, server_default=text("2"))
    tribute_id: Mapped[int | None] = mapped_column(Integer, server_default=text("21"))
    municipality_id: Mapped[int | None] = mapped_column(Integer)
    fiscal_responsibilities: Mapped[list[str] | None] = mapped_column(ARRAY(Text))


class Product(Base):
    """``products``: the catalogue item behind an invoice line."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(Integer)
    sku: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    # DIAN unit code ("94", "KGM"): text, not the seed's CHAR (one character).
    unit_code: Mapped[str | None] = mapped_column(Text)
    tax_id: Mapped[int | None] = mapped_column(Integer)
    barcode: Mapped[str | None] = mapped_column(Text)


class InvoiceSale(Base):
    """``invoice_sales``: an invoice (or a credit/debit note) of the ERP.

    Money columns are COP ``Decimal``. After acceptance einvoice writes ``xml_uuid`` (the CUFE or,
    for a credit note, the CUDE), ``number``, ``qr_image``, ``validated_at`` and status
    ``validated``.
    """

    __tablename__ = "invoice_sales"
    # Migration 0006: an invoice's customer, branch and referenced invoice belong to its own
    # organization (NOT VALID there: an ERP's existing rows are not re-checked; deferred: rows
    # may be inserted in any order within a transaction).
    __table_args__ = (
        Index("ux_invoice_sales_id_organization", "id", "organization_id", unique=True),
        ForeignKeyConstraint(["customer_id", "organization_id"],
                             ["customers.id", "customers.organization_id"],
                             name="fk_invoice_sales_customer_organization",
                             deferrable=True, initially="DEFERRED"),
        ForeignKeyConstraint(["branch_id", "organization_id"],
                             ["branches.id", "branches.organization_id"],
                             name="fk_invoice_sales_branch_organization",
                             deferrable=True, initially="DEFERRED"),
        ForeignKeyConstraint(["related_invoice_id", "organization_id"],
                             ["invoice_sales.id", "invoice_sales.organization_id"],
                             name="fk_invoice_sales_related_organization",
                             deferrable=True, initially="DEFERRED"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    organization_id: Mapped[int | None] = mapped_column(Integer)
    branch_id: Mapped[int | None] = mapped_column(Integer)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    sale_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    number: Mapped[str | None] = mapped_column(Text)
    issue_date: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    due_date: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    currency: Mapped[str | None] = mapped_column(CHAR(3))
    subtotal: Mapped[Decimal | None] = mapped_column(Numeric)
    tax_total: Mapped[Decimal | None] = mapped_column(Numeric)
    total: Mapped[Decimal | None] = mapped_column(Numeric)
    balance: Mapped[Decimal | None] = mapped_column(Numeric)
    status: Mapped[str | None] = mapped_column(Text)
    xml_uuid: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    payment_method: Mapped[str | None] = mapped_column(Text)
    tax_included: Mapped[bool | None] = mapped_column(Boolean)
    payment_terms: Mapped[int | None] = mapped_column(Integer)
    document_type: Mapped[str | None] = mapped_column(Text)
    related_invoice_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Campos FALTANTES §5
    reference_code: Mapped[str | None] = mapped_column(Text)
    operation_type: Mapped[str | None] = mapped_column(Text, server_default=text("'10'"))
    payment_form: Mapped[str | None] = mapped_column(Text, server_default=text("'1'"))
    payment_method_code: Mapped[str | None] = mapped_column(Text, server_default=text("'10'"))
    send_email: Mapped[bool | None] = mapped_column(Boolean, server_default=text("false"))
    validated_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    qr_image: Mapped[str | None] = mapped_column(Text)
    allowance_charges: Mapped[list[Any] | None] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    billing_period: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # einvoice: the DIAN correction concept of a credit note (FACTUS_API.md §7.1, 1..6; 2 =
    # anulación). NULL on invoices; a credit note without it is sent as 2 (full reversal).
    correction_concept_code: Mapped[int | None] = mapped_column(Integer)
    # Migration 0008: what Factus API v2 adds (cash rounding, prepayments, display currency,
    # the buyer's order); NULL when unused.
    cash_rounding_amount: Mapped[Decimal | None] = mapped_column(Numeric)
    prepayments: Mapped[list[Any] | None] = mapped_column(JSONB)
    display_currency: Mapped[str | None] = mapped_column(Text)
    exchange_rate: Mapped[Decimal | None] = mapped_column(Numeric)
    order_reference: Mapped[str | None] = mapped_column(Text)
    order_issue_date: Mapped[date | None] = mapped_column(Date)
    # Migration 0010: the last final outcome of the invoice's document, written by the
    # ``einvoice_job_outcome`` trigger on every final transition of one of its jobs.
    einvoice_job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    einvoice_error_code: Mapped[str | None] = mapped_column(Text)
    einvoice_error_message: Mapped[str | None] = mapped_column(Text)
    einvoice_outcome_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class InvoicePayment(Base):
    """``invoice_payments``: the means of payment of an invoice (migration 0008; optional).

    One row per means (Factus v2 ``payment_details``); an invoice without rows is paid by its
    ``invoice_sales.payment_method_code``. ``amount`` in COP; ``due_date`` for credit (form 2).
    """

    __tablename__ = "invoice_payments"
    __table_args__ = (Index("ix_invoice_payments_invoice", "invoice_id"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payment_form: Mapped[str | None] = mapped_column(Text)
    payment_method_code: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[Decimal | None] = mapped_column(Numeric)
    due_date: Mapped[date | None] = mapped_column(Date)
    reference: Mapped[str | None] = mapped_column(Text)


class InvoiceItem(Base):
    """``invoice_items``: one line of an invoice (Factus ``items[]``)."""

    __tablename__ = "invoice_items"
    # Migration 0005: each submission reads its invoice's lines by invoice_id.
    __table_args__ = (Index("ix_invoice_items_invoice", "invoice_id"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    product_id: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    qty: Mapped[Decimal | None] = mapped_column(Numeric)
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric)
    tax_code: Mapped[str | None] = mapped_column(Text)
    tax_rate: Mapped[Decimal | None] = mapped_column(Numeric)
    total_line: Mapped[Decimal | None] = mapped_column(Numeric)
    discount_amount: Mapped[Decimal | None] = mapped_column(Numeric)
    tax_included: Mapped[bool | None] = mapped_column(Boolean)
    # Campos FALTANTES §4 (defaults from "Implementación Paso a Paso", step 5)
    code_reference: Mapped[str | None] = mapped_column(Text)
    discount_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 2), server_default=text("0"))
    unit_measure_id: Mapped[int | None] = mapped_column(Integer, server_default=text("70"))
    standard_code_id: Mapped[int | None] = mapped_column(Integer, server_default=text("1"))
    is_excluded: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    tribute_id: Mapped[int | None] = mapped_column(Integer, server_default=text("1"))
    withholding_taxes: Mapped[list[Any] | None] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    note: Mapped[str | None] = mapped_column(Text)
    # Migration 0008: several taxes on one line, [{"code"|"tribute_id", "rate", "is_excluded"}].
    taxes: Mapped[list[Any] | None] = mapped_column(JSONB)


class InvoiceSequence(Base):
    """``invoice_sequences``: a DIAN numbering range (resolution) and its Factus id."""

    __tablename__ = "invoice_sequences"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(Integer)
    branch_id: Mapped[int | None] = mapped_column(Integer)
    document_type: Mapped[str | None] = mapped_column(Text)
    resolution_number: Mapped[str | None] = mapped_column(String)
    resolution_date: Mapped[date | None] = mapped_column(Date)
    prefix: Mapped[str | None] = mapped_column(String)
    range_start: Mapped[int | None] = mapped_column(Integer)
    range_end: Mapped[int | None] = mapped_column(Integer)
    current_number: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    technical_key: Mapped[str | None] = mapped_column(Text)
    test_set_id: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool | None] = mapped_column(Boolean)
    alert_threshold: Mapped[int | None] = mapped_column(Integer)
    # Campos FALTANTES §6
    factus_numbering_range_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        # einvoice: the range sync upserts on (organization, Factus range id).
        Index(
            "ix_invoice_sequences_org_factus_range",
            "organization_id",
            "factus_numbering_range_id",
            unique=True,
            postgresql_where=text("factus_numbering_range_id IS NOT NULL"),
        ),
    )


class ElectronicInvoicingJob(Base):
    """``electronic_invoicing_jobs``: one request to get one document validated; the source of truth.

    Status machine: ``pending`` (due at ``next_retry_at``) → ``processing`` (claimed,
    under a lease) → ``accepted`` | ``rejected`` | ``failed`` | back to ``pending`` (retry) |
    ``sent`` (DIAN slow, re-checked at ``next_retry_at``); ``cancelled`` by an operator.
    ``accepted``, ``rejected``, ``failed`` and ``cancelled`` are final.

    Columns after ``updated_at`` are einvoice's additions; each comment says why.
    """

    __tablename__ = "electronic_invoicing_jobs"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    organization_id: Mapped[int] = mapped_column(Integer, nullable=False)
    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    document_type: Mapped[str] = mapped_column(Text, server_default=text("'invoice'"))
    provider: Mapped[str] = mapped_column(Text, server_default=text("'factus'"))
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    attempt_count: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(SmallInteger, server_default=text("5"))
    # einvoice: NOT NULL with default now() so that a plain SQL insert is due at once and the
    # dispatcher's partial index covers every due row (no "IS NULL OR" in the hot query).
    next_retry_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    request_payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    response_payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    cufe: Mapped[str | None] = mapped_column(String(100))
    qr_code: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))

    # -- einvoice additions ------------------------------------------------------------------
    # The document's key at Factus (FACTUS_API.md Decision 3): fixed at insert, never changes
    # across attempts, so a re-send after an unknown outcome cannot create a second document.
    reference_code: Mapped[str] = mapped_column(
        Text, nullable=False, server_default=text(REFERENCE_CODE_DEFAULT)
    )
    # Claim lease: a worker owns a ``processing`` job until this instant; the sweeper recovers
    # jobs whose lease expired (worker killed) and reconciles them before any re-send.
    lease_expires_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    # Who holds the lease ("hostname:pid:thread"), for operators.
    leased_by: Mapped[str | None] = mapped_column(Text)
    # Set (and committed) just before the validate POST, cleared when its outcome is known: a job
    # found with it set may have reached Factus and is looked up by reference before a re-send.
    outcome_unknown: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # When a wake-up message was last published for this job; the dispatcher re-publishes only
    # when it is older than the redispatch interval (a Redis that lost its queue gets repaired).
    dispatched_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    # The Factus environment and account this job was (last) sent with (multi-tenant).
    factus_environment: Mapped[str | None] = mapped_column(Text)
    factus_account: Mapped[str | None] = mapped_column(Text)
    # The accepted document's number (e.g. SETP990000001) and Factus internal id (a credit
    # note's ``bill_id``, FACTUS_API.md §7.1).
    document_number: Mapped[str | None] = mapped_column(Text)
    factus_document_id: Mapped[int | None] = mapped_column(BigInteger)
    # The Factus API version (``v1``/``v2``) the job's last attempt used (migration 0007); a
    # re-check after an unknown outcome looks the reference up through it.
    factus_api_version: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="electronic_invoicing_jobs_status_check"),
        CheckConstraint(
            _in("provider", PROVIDERS), name="electronic_invoicing_jobs_provider_check"
        ),
        CheckConstraint(_in("factus_api_version", FACTUS_API_VERSIONS),
                        name="electronic_invoicing_jobs_factus_api_version_check"),
        # The dispatcher's query: due pending/sent jobs, oldest first.
        # (The table is shared with the ERP's other providers: einvoice only takes 'factus'.)
        Index(
            "ix_ei_jobs_due",
            "next_retry_at",
            postgresql_where=text("status IN ('pending', 'sent') AND provider = 'factus'"),
        ),
        # The sweeper's query: processing jobs whose lease expired.
        Index(
            "ix_ei_jobs_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'processing' AND provider = 'factus'"),
        ),
        # At most one non-final job per (invoice, document type): enqueueing twice is a no-op.
        Index(
            "ux_ei_jobs_one_active_per_invoice",
            "invoice_id",
            "document_type",
            unique=True,
            postgresql_where=text("status IN ('pending', 'processing', 'sent')"),
        ),
        # A reference code is unique among live jobs; a new job of an invoice whose last job
        # ended with its outcome unknown inherits that job's code (migration 0006), so the
        # failed job and its successor share it.
        Index("ux_ei_jobs_reference_code_live", "reference_code", unique=True,
              postgresql_where=text("status IN ('pending', 'processing', 'sent', 'accepted')")),
        Index("ix_ei_jobs_reference_code", "reference_code"),
        # One accepted document per (invoice, document type).
        Index("ux_ei_jobs_one_accepted_per_invoice", "invoice_id", "document_type", unique=True,
              postgresql_where=text("status = 'accepted'")),
        # "Does this Factus account have one of our documents pending at DIAN?" (checked on
        # every claim: Factus blocks creates while one is pending).
        Index(
            "ix_ei_jobs_sent_account",
            "factus_account",
            postgresql_where=text("status = 'sent'"),
        ),
        Index("ix_ei_jobs_org_status", "organization_id", "status"),
        Index("ix_ei_jobs_invoice", "invoice_id"),
        # The dispatcher's in-flight count (migration 0003): processing jobs per organization,
        # index-only where the pages are all-visible (else ix_ei_jobs_lease serves).
        Index(
            "ix_ei_jobs_processing_by_org",
            "organization_id",
            postgresql_where=text("status = 'processing' AND provider = 'factus'"),
        ),
    )


class ElectronicInvoicingEvent(Base):
    """``electronic_invoicing_events``: one row per step of a job's life.

    ``event_code`` is an HTTP status, a DIAN rule or einvoice's reason code; ``metadata`` holds
    attempt, latency_ms, from/to status, number, ... and never a secret or token.
    """

    __tablename__ = "electronic_invoicing_events"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("electronic_invoicing_jobs.id", ondelete="CASCADE"),
        nullable=False,
    )
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    event_code: Mapped[str | None] = mapped_column(String)
    event_message: Mapped[str | None] = mapped_column(Text)
    # "metadata" is reserved on declarative classes, hence the attribute name.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))

    __table_args__ = (Index("ix_ei_events_job_created", "job_id", "created_at"),)


# --------------------------------------------------------------------------------------------
# New tables (seed 002 "Tablas NUEVAS Requeridas")
# --------------------------------------------------------------------------------------------


class FactusCredential(Base):
    """``factus_credentials``: an organization's own Factus account.

    Every secret column holds Fernet ciphertext made with ``EINVOICE_SECRET_KEY``
    (:mod:`einvoice.crypto`), never plain text: ``client_secret``, ``password_encrypted``,
    ``access_token`` and ``refresh_token``.
    """

    __tablename__ = "factus_credentials"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    organization_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    environment: Mapped[str] = mapped_column(Text, nullable=False)
    client_id: Mapped[str] = mapped_column(Text, nullable=False)
    client_secret: Mapped[str] = mapped_column(Text, nullable=False)
    username: Mapped[str] = mapped_column(Text, nullable=False)
    password_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    # einvoice: overrides FACTUS_BASE_URL for this account (a proxy, or the simulator in tests).
    base_url: Mapped[str | None] = mapped_column(Text)
    # einvoice (migration 0007): the Factus API version this account speaks: ``v1``, ``v2``, or
    # ``auto`` (v1 until Factus refuses v1 for the account, then v2, remembered in
    # ``factus_account_versions``).
    api_version: Mapped[str] = mapped_column(Text, nullable=False,
                                             server_default=text("'auto'"))

    __table_args__ = (
        CheckConstraint(
            "environment IN ('sandbox', 'production')",
            name="factus_credentials_environment_check",
        ),
        CheckConstraint(_in("api_version", ACCOUNT_API_VERSIONS),
                        name="factus_credentials_api_version_check"),
        UniqueConstraint("organization_id", "environment"),
        Index("idx_factus_credentials_org", "organization_id"),
    )


class FactusAccountVersion(Base):
    """``factus_account_versions``: the API version ``auto`` found for one Factus account.

    Keyed by :attr:`einvoice.factus.tokens.FactusAccount.token_key` (``<row id or "default">:
    <hash of environment, base URL, client id, user>``), so the ``FACTUS_*`` account, which has no
    ``factus_credentials`` row, is remembered too, and a changed identity is detected afresh.
    ``organization_id`` is the organization whose job found it (None for a shared account seen
    from several). ``detected_by`` says how (e.g. ``factus_version_not_enabled: <message>``).
    """

    __tablename__ = "factus_account_versions"

    account_key: Mapped[str] = mapped_column(Text, primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(Integer)
    api_version: Mapped[str] = mapped_column(Text, nullable=False)
    detected_by: Mapped[str | None] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, nullable=False,
                                                  server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, nullable=False,
                                                 server_default=text("now()"))

    __table_args__ = (
        CheckConstraint(_in("api_version", FACTUS_API_VERSIONS),
                        name="factus_account_versions_api_version_check"),
    )


class FactusAccountEvent(Base):
    """``factus_account_events``: what happened to a Factus account outside any job.

    ``event_type``: ``api_version_detected`` (``auto`` found the account's version),
    ``numbering_range_created`` (an operator created a range through ``POST
    /v2/numbering-ranges``). ``account_key`` as in :class:`FactusAccountVersion`; ``metadata``
    never holds a secret.
    """

    __tablename__ = "factus_account_events"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    account_key: Mapped[str] = mapped_column(Text, nullable=False)
    organization_id: Mapped[int | None] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    event_code: Mapped[str | None] = mapped_column(Text)
    event_message: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, nullable=False,
                                                 server_default=text("now()"))

    __table_args__ = (
        Index("ix_factus_account_events_created", "created_at"),
        Index("ix_factus_account_events_org", "organization_id", "created_at"),
    )


class ShippedReferenceRow:
    """The two columns the shipped ``dian_*`` reference tables end with (migration 0009).

    Attributes:
        created_at: when the row was written (UTC).
        source: the shipped data file that wrote the row (e.g. ``unit_measures.csv``); NULL for
            the ERP's own rows and earlier loads, which ``einvoice sync tables`` never touches.
    """

    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    source: Mapped[str | None] = mapped_column(Text)


class DianMunicipality(ShippedReferenceRow, Base):
    """``dian_municipalities``: Colombian municipalities with their Factus ids.

    ``id`` is Factus's ``municipality_id`` (FACTUS_API.md §8.2; San Gil = 980, Bogotá 11001 = 169),
    ``code`` the 5-digit DANE code, ``department_id`` the DANE department code as an integer.
    Seeded from ``einvoice/data/municipalities.csv`` and refreshed by the municipalities sync.
    """

    __tablename__ = "dian_municipalities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(10), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    department_id: Mapped[int] = mapped_column(Integer, nullable=False)
    department_code: Mapped[str] = mapped_column(String(5), nullable=False)
    department_name: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("idx_dian_municipalities_department", "department_id"),)


class DianUnitMeasure(ShippedReferenceRow, Base):
    """``dian_unit_measures``: units of measure with Factus ids.

    The seed's ids 71–79 are not Factus ids; Factus has 70 unidad (code 94), 414 KGM, 449 LBR,
    512 MTR, 874 GLL (FACTUS_API.md §8.2). Migration 0009 loads Factus's whole published table
    (``einvoice/data/unit_measures.csv``, id = 1-based position, which equals those five ids).
    """

    __tablename__ = "dian_unit_measures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(10), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


class DianTribute(ShippedReferenceRow, Base):
    """``dian_tributes``: product, customer and withholding tributes with Factus ids.

    The seed declares ``code`` UNIQUE but then inserts code ``01`` twice (IVA as product tribute 1
    and as customer tribute 18), and Factus lists several product tributes under one code
    (FACTUS_API.md §8.2), so ``code`` is not unique here; ``id`` (the Factus id) is the key.
    """

    __tablename__ = "dian_tributes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(10), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "type IN ('product', 'customer', 'withholding')", name="dian_tributes_type_check"
        ),
        Index("ix_dian_tributes_code", "code"),
    )


class DianIdentificationType(ShippedReferenceRow, Base):
    """``dian_identification_types``: identity document types (Factus id, DIAN code, name)."""

    __tablename__ = "dian_identification_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(10), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


class DianPaymentMethod(ShippedReferenceRow, Base):
    """``dian_payment_methods``: DIAN payment means (``payment_method_code`` values)."""

    __tablename__ = "dian_payment_methods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(10), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)


class DianLegalOrganization(Base):
    """``dian_legal_organizations``: legal organization types (migration 0009).

    ``id`` is Factus v1's ``legal_organization_id`` (``customers.legal_organization_id``), ``code``
    v2's ``legal_organization_code``: 1 Persona Jurídica, 2 Persona Natural (Factus
    "Tablas de referencia", ``einvoice/data/legal_organizations.csv``).
    """

    __tablename__ = "dian_legal_organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(10), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    source: Mapped[str | None] = mapped_column(Text)


class DianStandardCode(Base):
    """``dian_standard_codes``: product identification standards (migration 0009).

    ``id`` is Factus v1's ``standard_code_id`` (``invoice_items.standard_code_id``), ``code`` v2's
    ``standard_code``: 1 = 999 (the taxpayer's own), 2 = 001 UNSPSC, 3 = 020 Partida Arancelaria,
    4 = 010 GTIN (Factus "Tablas de referencia", ``einvoice/data/standard_codes.csv``).
    """

    __tablename__ = "dian_standard_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(10), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    source: Mapped[str | None] = mapped_column(Text)


# --------------------------------------------------------------------------------------------
# Follow-ups of accepted jobs: documents archive and e-mail resend (migration 0002)
# --------------------------------------------------------------------------------------------

#: Follow-up kinds: download and keep the PDF and XML once; send the document by e-mail;
#: deliver one outcome event to one webhook endpoint (migration 0010).
FOLLOWUP_KINDS = ("archive", "email", "webhook")
#: Follow-up statuses: ``pending`` (due at ``next_retry_at``) → ``processing`` (leased) →
#: ``done`` | ``failed`` | back to ``pending`` (retry). ``done`` and ``failed`` are final.
FOLLOWUP_STATUSES: tuple[str, ...] = tuple(status.value for status in FollowupStatus)
#: Stored document files (FACTUS_API.md §6.4: ``download-pdf`` and ``download-xml``).
STORED_DOCUMENT_KINDS = ("pdf", "xml")


class ElectronicInvoicingFollowup(Base):
    """``electronic_invoicing_followups``: work that follows an accepted job.

    A follow-up has its own small state machine, attempts and lease, so that its failures never
    touch the parent job's ``accepted`` status; every step is also an event on the parent job.
    ``kind`` ``archive``: download the PDF and XML once (at most one archive row per job, partial
    unique index); ``email``: one ``send-email`` call to ``to_address`` (None = the customer's).
    """

    __tablename__ = "electronic_invoicing_followups"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("electronic_invoicing_jobs.id", ondelete="CASCADE"),
        nullable=False,
    )
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    attempt_count: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(SmallInteger, server_default=text("5"))
    # NOT NULL with default now(), as on jobs: due at once, and the partial index covers it.
    next_retry_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    lease_expires_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    # Who holds the lease ("host:pid:thread"); only the holder records the outcome.
    leased_by: Mapped[str | None] = mapped_column(Text)
    # When a wake-up was last published; the beat dispatcher re-publishes only stale ones.
    dispatched_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    to_address: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    # Kind ``webhook`` (migration 0010, inserted by the ``einvoice_job_outcome`` trigger): the
    # endpoint, the event type (``job.accepted``...), its id (the ``webhook-id`` header, unique)
    # and the payload frozen at the transition.
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_endpoints.id"))
    event_type: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        CheckConstraint(_in("kind", FOLLOWUP_KINDS), name="electronic_invoicing_followups_kind_check"),
        CheckConstraint(
            "kind <> 'webhook' OR (endpoint_id IS NOT NULL AND event_type IS NOT NULL "
            "AND event_id IS NOT NULL AND payload IS NOT NULL)",
            name="electronic_invoicing_followups_webhook_check"),
        Index("ux_ei_followups_event_id", "event_id", unique=True,
              postgresql_where=text("event_id IS NOT NULL")),
        Index("ix_ei_followups_endpoint", "endpoint_id", "created_at",
              postgresql_where=text("endpoint_id IS NOT NULL")),
        CheckConstraint(
            _in("status", FOLLOWUP_STATUSES), name="electronic_invoicing_followups_status_check"
        ),
        # The follow-up dispatcher's query: due pending rows, oldest first.
        Index("ix_ei_followups_due", "next_retry_at", postgresql_where=text("status = 'pending'")),
        # Its lease sweep: processing rows whose lease expired.
        Index(
            "ix_ei_followups_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'processing'"),
        ),
        # A job is archived once: scheduling the archive twice is a no-op.
        Index(
            "ux_ei_followups_one_archive_per_job",
            "job_id",
            unique=True,
            postgresql_where=text("kind = 'archive'"),
        ),
        Index("ix_ei_followups_job", "job_id", "created_at"),
    )


class ElectronicInvoicingDocument(Base):
    """``electronic_invoicing_documents``: the validated PDF and XML of a job, stored once.

    ``file_name`` is Factus's DIAN file name (FACTUS_API.md §6.4, e.g.
    ``fv09017242540002500013136``) with ``.pdf`` / ``.xml`` appended; ``sha256`` is the lower-case
    hex SHA-256 of ``content`` and ``size_bytes`` its length, both checked when read back.
    """

    __tablename__ = "electronic_invoicing_documents"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("electronic_invoicing_jobs.id", ondelete="CASCADE"),
        nullable=False,
    )
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    file_name: Mapped[str] = mapped_column(Text, nullable=False)
    # Deferred: listing what a job has stored must not pull megabytes of PDF.
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, deferred=True)
    sha256: Mapped[str] = mapped_column(CHAR(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))

    __table_args__ = (
        CheckConstraint(
            _in("kind", STORED_DOCUMENT_KINDS), name="electronic_invoicing_documents_kind_check"
        ),
        CheckConstraint(
            "size_bytes = octet_length(content)", name="electronic_invoicing_documents_size_check"
        ),
        UniqueConstraint("job_id", "kind", name="uq_ei_documents_job_kind"),
    )


# --------------------------------------------------------------------------------------------
# The ways in and back (migration 0010): webhooks, API keys, idempotency
# --------------------------------------------------------------------------------------------


class WebhookEndpoint(Base):
    """``webhook_endpoints``: where an organization wants its outcome events (Standard Webhooks).

    ``secret_encrypted`` is the endpoint's ``whsec_...`` secret encrypted with
    ``EINVOICE_SECRET_KEY`` (:class:`einvoice.crypto.SecretBox`); ``event_types`` empty means
    every type. A disabled endpoint (``disabled_at``) gets no new deliveries.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    organization_id: Mapped[int] = mapped_column(Integer, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    event_types: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'"))
    description: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMPTZ, nullable=False, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(
        TIMESTAMPTZ, nullable=False, server_default=text("now()"))

    __table_args__ = (
        CheckConstraint("url ~ '^https?://'", name="webhook_endpoints_url_check"),
        Index("ix_webhook_endpoints_organization", "organization_id",
              postgresql_where=text("disabled_at IS NULL")),
    )

    def __repr__(self) -> str:
        return (f"WebhookEndpoint(id={self.id!r}, organization_id={self.organization_id!r}, "
                f"url={self.url!r})")


class WebhookDeliveryAttempt(Base):
    """``webhook_delivery_attempts``: the delivery log, one row per attempt of a ``webhook``
    follow-up: the receiver's HTTP status (None when none came), the error, the duration (ms)."""

    __tablename__ = "webhook_delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    followup_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("electronic_invoicing_followups.id", ondelete="CASCADE"),
        nullable=False)
    attempt: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMPTZ, nullable=False, server_default=text("now()"))

    __table_args__ = (
        Index("ix_webhook_delivery_attempts_followup", "followup_id", "attempt"),
    )


class ApiKey(Base):
    """``api_keys``: an organization's HTTP API key. Only its public ``prefix`` (shown in lists
    and logs) and the SHA-256 of the whole key are stored; the key is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))
    organization_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    prefix: Mapped[str] = mapped_column(Text, nullable=False)
    key_sha256: Mapped[str] = mapped_column(CHAR(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMPTZ, nullable=False, server_default=text("now()"))
    last_used_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    revoked_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)

    __table_args__ = (
        UniqueConstraint("prefix", name="uq_api_keys_prefix"),
        UniqueConstraint("key_sha256", name="uq_api_keys_key_sha256"),
        Index("ix_api_keys_organization", "organization_id"),
    )


class ApiIdempotencyKey(Base):
    """``api_idempotency_keys``: the first answer to an ``Idempotency-Key`` of an organization.

    ``request_sha256`` identifies the method, path and body; ``response_status`` is None while
    the first request is still being answered.
    """

    __tablename__ = "api_idempotency_keys"

    organization_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(Text, primary_key=True)
    method: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    request_sha256: Mapped[str] = mapped_column(CHAR(64), nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMPTZ, nullable=False, server_default=text("now()"))
    completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


# --------------------------------------------------------------------------------------------
# The operator's web console (migration 0011): its accounts, sessions and the job table's indexes
# --------------------------------------------------------------------------------------------

#: Console roles, weakest first: ``viewer`` reads, ``operator`` also acts on jobs, ``admin`` also
#: configures accounts, ranges, webhooks and API keys.
OPERATOR_ROLES = ("viewer", "operator", "admin")


class OperatorUser(Base):
    """``operator_users``: a person who may sign in to the console.

    ``password_hash`` is an argon2id hash (argon2-cffi's encoded form), never the password.
    ``organization_id`` None: every organization; else the only one the operator sees.
    ``failed_attempts`` / ``locked_until``: the lock-out after repeated failures (UTC);
    ``disabled_at``: turned off (sessions revoked, sign-in refused). Usernames are lower case.
    """

    __tablename__ = "operator_users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(Text, nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    organization_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("organizations.id"))
    failed_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    locked_until: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    disabled_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, nullable=False,
                                                 server_default=text("now()"))

    __table_args__ = (
        UniqueConstraint("username", name="uq_operator_users_username"),
        CheckConstraint(_in("role", OPERATOR_ROLES), name="operator_users_role_check"),
        CheckConstraint("username = lower(username) AND length(username) BETWEEN 1 AND 64",
                        name="operator_users_username_check"),
    )

    def __repr__(self) -> str:
        # Never the hash: a repr ends up in logs and tracebacks.
        return (f"OperatorUser(id={self.id!r}, username={self.username!r}, role={self.role!r}, "
                f"organization_id={self.organization_id!r})")


class OperatorSession(Base):
    """``operator_sessions``: one signed-in browser.

    ``token_sha256`` is the SHA-256 (hex) of the session cookie's value (the cookie itself is
    never stored); ``csrf_token`` is what every state-changing request of the session must
    carry; ``revoked_at`` is set at sign-out or when the user is disabled. Times are UTC.
    """

    __tablename__ = "operator_sessions"

    token_sha256: Mapped[str] = mapped_column(CHAR(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("operator_users.id", ondelete="CASCADE"), nullable=False)
    csrf_token: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, nullable=False,
                                                 server_default=text("now()"))
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, nullable=False,
                                                   server_default=text("now()"))
    revoked_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)

    __table_args__ = (Index("ix_operator_sessions_user", "user_id"),)

    def __repr__(self) -> str:
        return f"OperatorSession(user_id={self.user_id!r}, expires_at={self.expires_at!r})"


# The console's job table (migration 0011 says why each exists and what it costs); declared here,
# beside the console, rather than in the job model's own list.
_JOB = ElectronicInvoicingJob
Index("ix_ei_jobs_created", _JOB.created_at, _JOB.id)
Index("ix_ei_jobs_status_created", _JOB.status, _JOB.created_at, _JOB.id)
Index("ix_ei_jobs_org_created", _JOB.organization_id, _JOB.created_at, _JOB.id)
Index("ix_ei_jobs_error_created", _JOB.error_code, _JOB.created_at, _JOB.id,
      postgresql_where=text("error_code IS NOT NULL"))
Index("ix_ei_jobs_document_number", _JOB.document_number,
      postgresql_where=text("document_number IS NOT NULL"))
Index("ix_ei_jobs_accepted_at", _JOB.processed_at, postgresql_where=text("status = 'accepted'"))
# On the ERP's tables, created only where no index starts with the column.
Index("ix_customers_identification", Customer.identification_number)
Index("ix_invoice_sales_customer", InvoiceSale.customer_id)
