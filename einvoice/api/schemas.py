"""Request and response models of the HTTP API (pydantic, at the boundary only).

Money is a decimal number of COP (sent as a JSON number or a string, returned as a string so
that no binary float touches it); datetimes are ISO 8601 in UTC; rates are percentages (19 is
19 %). Field names are the ERP tables' column names (docs/erp-contract.md).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from einvoice.db.models import ElectronicInvoicingEvent, ElectronicInvoicingJob, InvoiceSequence
from einvoice.domain.catalogue import Explanation

_LIMIT = 10**13  # 13 integer digits: what Factus's 2-decimal JSON numbers carry exactly


def _json_number(value: Any) -> Any:
    """Amounts, rates and quantities are JSON numbers (a float's shortest form is what the ERP
    wrote, exact to 15 significant digits): strings and booleans are refused."""
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON number")
    return value


def _whole(value: Decimal) -> Decimal:
    if value != value.to_integral_value():
        raise ValueError("must be a whole number")
    return value


Money = Annotated[Decimal, BeforeValidator(_json_number),
                  Field(ge=0, le=_LIMIT, allow_inf_nan=False),
                  WithJsonSchema({"type": "number", "minimum": 0, "maximum": _LIMIT,
                                  "description": "COP."})]
PositiveMoney = Annotated[Decimal, BeforeValidator(_json_number),
                          Field(gt=0, le=_LIMIT, allow_inf_nan=False),
                          WithJsonSchema({"type": "number", "exclusiveMinimum": 0,
                                          "maximum": _LIMIT, "description": "COP."})]
Quantity = Annotated[Decimal, BeforeValidator(_json_number),
                     Field(gt=0, le=_LIMIT, allow_inf_nan=False), AfterValidator(_whole),
                     WithJsonSchema({"type": "integer", "minimum": 1, "maximum": _LIMIT})]
Rate = Annotated[Decimal, BeforeValidator(_json_number),
                 Field(ge=0, lt=100, allow_inf_nan=False),
                 WithJsonSchema({"type": "number", "minimum": 0, "exclusiveMaximum": 100,
                                 "description": "Percent (19 is 19 %)."})]
#: Text PostgreSQL can store: no NUL character (the worker refuses other control characters
#: with ``forbidden_character``).
_NO_NUL = r"^[^\x00]*$"
ShortText = Annotated[str, Field(min_length=1, max_length=255, pattern=_NO_NUL)]
Code = Annotated[str, Field(min_length=1, max_length=10, pattern=r"^[A-Za-z0-9_-]+$")]
LongText = Annotated[str, Field(max_length=2000, pattern=_NO_NUL)]


class Strict(BaseModel):
    """A request model: unknown fields are refused (a typo is an error, not a silent no-op)."""

    model_config = ConfigDict(extra="forbid")


class DocumentType(StrEnum):
    """The documents a job can issue today."""

    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


def _bool_only(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _text_only(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


# JSON types as the OpenAPI document states them: pydantic's lax mode would also take "5" for 5,
# 1 for true or a Unix time for a date, which the document does not promise. Integers are
# ``Annotated[int, Field(...), BeforeValidator(_json_number)]``: the bounds first, so that they
# stay in the document.
Bool = Annotated[bool, BeforeValidator(_bool_only)]
Date = Annotated[date, BeforeValidator(_text_only)]
DateTime = Annotated[datetime, BeforeValidator(_text_only)]
Uuid = Annotated[uuid.UUID, BeforeValidator(_text_only)]

# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


class EnqueueRequest(Strict):
    """Body of ``POST /api/invoices/{invoice_id}/jobs`` (optional)."""

    document_type: DocumentType = DocumentType.INVOICE


class CustomerIn(Strict):
    """The buyer, stored as a new ``customers`` row (docs/erp-contract.md "customers")."""

    identification_type: Annotated[Code, Field(examples=["CC", "NIT"])]
    identification_number: Annotated[str, Field(min_length=1, max_length=20,
                                                pattern=r"^[A-Za-z0-9.\- ]+$")]
    dv: Annotated[int, Field(ge=0, le=9), BeforeValidator(_json_number)] | None = None
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    company_name: ShortText | None = None
    trade_name: ShortText | None = None
    legal_organization_id: Annotated[int, Field(ge=1, le=2), BeforeValidator(_json_number)] | None = None
    tribute_id: Annotated[int, Field(ge=1, le=99), BeforeValidator(_json_number)] | None = None
    municipality_id: Annotated[int, Field(ge=1, le=2_000_000), BeforeValidator(_json_number)] | None = None
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    phone: ShortText | None = None
    address: ShortText | None = None
    city: ShortText | None = None


class WithholdingIn(Strict):
    """A withholding of a line: code 05 ReteIVA, 06 ReteRenta, 07 ReteICA."""

    code: Literal["05", "06", "07"]
    withholding_tax_rate: Rate


class LineIn(Strict):
    """One invoice line (``invoice_items``); ``code_reference`` or ``sku`` is required."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["code_reference"], "properties": {"code_reference": {"type": "string"}}},
        {"required": ["sku"], "properties": {"sku": {"type": "string"}}}]})

    description: ShortText
    qty: Quantity
    unit_price: Money
    tax_rate: Rate
    sku: ShortText | None = Field(
        default=None, description="The product's SKU: links (or creates) the organization's "
        "product and is the default code_reference.")
    code_reference: ShortText | None = None
    tax_included: Bool | None = Field(
        default=None, description="Overrides the invoice's tax_included for this line.")
    discount_rate: Rate | None = None
    unit_measure_id: Annotated[int, Field(ge=1, le=100_000), BeforeValidator(_json_number)] | None = None
    standard_code_id: Annotated[int, Field(ge=1, le=4), BeforeValidator(_json_number)] | None = None
    is_excluded: Bool = False
    tribute_id: Annotated[int, Field(ge=1, le=99), BeforeValidator(_json_number)] | None = None
    withholding_taxes: list[WithholdingIn] = Field(default_factory=list, max_length=3)
    note: ShortText | None = None

    @model_validator(mode="after")
    def _code_or_sku(self) -> LineIn:
        if not (self.code_reference or self.sku):
            raise ValueError("a line needs code_reference or sku")
        return self


class PaymentIn(Strict):
    """One means of payment (``invoice_payments``)."""

    payment_form: Literal["1", "2"] = "1"
    payment_method_code: Code = "10"
    amount: Money
    due_date: Date | None = None
    reference: ShortText | None = None


class InvoiceIn(Strict):
    """Body of ``POST /api/invoices``: a whole invoice for an ERP whose tables are not ours.

    Give ``customer`` (a new customer row), or ``customer_id`` (an existing customer of the
    organization), or neither (the final consumer, 222222222222).
    """

    customer: CustomerIn | None = None
    customer_id: Uuid | None = None
    branch_id: Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(_json_number)] | None = None
    lines: list[LineIn] = Field(min_length=1, max_length=500)
    payments: list[PaymentIn] = Field(default_factory=list, max_length=20)
    issue_date: DateTime | None = Field(default=None, description="Default: now (UTC).")
    due_date: Date | None = Field(default=None, description="Required when payment_form is 2.")
    currency: Literal["COP"] = "COP"
    tax_included: Bool = Field(default=True, description="Whether unit_price includes tax.")
    payment_form: Literal["1", "2"] = Field(default="1", description="1 contado, 2 crédito.")
    payment_method_code: Code = "10"
    operation_type: Literal["10", "12"] = "10"
    send_email: Bool = False
    notes: LongText | None = None
    total: Money | None = Field(
        default=None, description="When given, checked against the lines by the worker.")
    reference_code: ShortText | None = Field(
        default=None, description="The ERP's own reference (its document number, say).")
    order_reference: ShortText | None = None
    order_issue_date: Date | None = None

    @model_validator(mode="after")
    def _checks(self) -> InvoiceIn:
        if self.customer is not None and self.customer_id is not None:
            raise ValueError("give customer or customer_id, not both")
        if self.payment_form == "2" and self.due_date is None:
            raise ValueError("due_date is required for a credit sale (payment_form 2)")
        return self


class CreditLineIn(Strict):
    """A line of a partial credit note: the invoice line ``item_id`` and either ``quantity``
    (whole, at most the line's) or ``amount`` (COP, on the basis of the line's price)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["quantity"], "properties": {"quantity": {"not": {"type": "null"}}}},
        {"required": ["amount"], "properties": {"amount": {"not": {"type": "null"}}}}]})

    item_id: Uuid
    quantity: Quantity | None = None
    amount: PositiveMoney | None = None

    @model_validator(mode="after")
    def _one_of(self) -> CreditLineIn:
        if (self.quantity is None) == (self.amount is None):
            raise ValueError("give either quantity or amount")
        return self


class CreditNoteIn(Strict):
    """Body of ``POST /api/jobs/{job_id}/credit-note``.

    ``concept_code`` is the DIAN correction concept (FACTUS_API.md §7.1): 1 devolución parcial,
    2 anulación, 3 rebaja o descuento, 4 ajuste de precio, 5 descuento comercial por pronto
    pago, 6 descuento comercial por volumen de ventas. Without ``lines`` the whole invoice is
    credited.
    """

    concept_code: Annotated[int, Field(ge=1, le=6), BeforeValidator(_json_number)]
    lines: list[CreditLineIn] | None = Field(default=None, min_length=1, max_length=500)
    notes: LongText | None = None


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------


class JobOut(BaseModel):
    """A job as the ERP sees it (``electronic_invoicing_jobs``)."""

    id: uuid.UUID
    organization_id: int
    invoice_id: uuid.UUID
    document_type: str
    status: str
    attempt_count: int
    max_attempts: int
    reference_code: str
    document_number: str | None = Field(description="The DIAN number, e.g. SETP990000001.")
    cufe: str | None = Field(description="The CUFE (invoice) or CUDE (credit note).")
    qr_code: str | None
    error_code: str | None
    error_message: str | None
    next_retry_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    processed_at: datetime | None

    @classmethod
    def of(cls, job: ElectronicInvoicingJob) -> JobOut:
        """The response model of a job row."""
        return cls(
            id=job.id, organization_id=job.organization_id, invoice_id=job.invoice_id,
            document_type=job.document_type, status=job.status,
            attempt_count=job.attempt_count, max_attempts=job.max_attempts,
            reference_code=job.reference_code, document_number=job.document_number,
            cufe=job.cufe, qr_code=job.qr_code, error_code=job.error_code,
            error_message=job.error_message, next_retry_at=job.next_retry_at,
            created_at=job.created_at, updated_at=job.updated_at,
            processed_at=job.processed_at)


class EnqueueOut(BaseModel):
    """Answer of the enqueue routes: the job, and whether it is new."""

    job: JobOut
    created: bool = Field(description="True when this request created the job.")
    already_accepted: bool = Field(
        description="The invoice already has an accepted document: job is that accepted job "
        "and nothing was enqueued.")


class InvoiceCreatedOut(EnqueueOut):
    """Answer of ``POST /api/invoices``."""

    invoice_id: uuid.UUID


class CreditNoteOut(EnqueueOut):
    """Answer of ``POST /api/jobs/{job_id}/credit-note``."""

    credit_note_id: uuid.UUID = Field(description="The credit note's invoice_sales.id.")


class EventOut(BaseModel):
    """One step of a job's life (``electronic_invoicing_events``)."""

    at: datetime | None
    type: str
    code: str | None
    message: str | None
    metadata: dict[str, Any] | None

    @classmethod
    def of(cls, event: ElectronicInvoicingEvent) -> EventOut:
        """The response model of an event row."""
        return cls(at=event.created_at, type=event.event_type, code=event.event_code,
                   message=event.event_message, metadata=event.metadata_)


class ExplanationOut(BaseModel):
    """An error code explained for the person who fixes it (the catalogue of
    docs/dian-errors.md), in the language of ``Accept-Language`` (Spanish unless English is
    preferred)."""

    code: str = Field(description="The catalogue's code: ours (invalid_dv, dian_rejected, "
                      "factus_4xx) or a DIAN rule (FAK24, FAJ43b, 90).")
    kind: Literal["einvoice", "dian"]
    message: str = Field(description="What happened.")
    fix: str = Field(description="What to do about it.")
    erp_field: str | None = Field(description="The ERP column to fix (customers.dv), if any.")
    retryable: Literal["yes", "no", "after_fix"] = Field(
        description="yes: einvoice retries, or a plain retry may succeed; after_fix: retry once "
        "the data is fixed; no: a retry does not help.")
    source: str = Field(description="Where the rule is defined (a module, a document, DIAN's "
                        "Anexo técnico).")

    @classmethod
    def of(cls, explanation: Explanation) -> ExplanationOut:
        """The response model of a catalogue explanation."""
        return cls.model_validate(explanation.as_dict())


class JobDetailOut(JobOut):
    """A job with its event timeline, oldest first, and the explanation of its error."""

    events: list[EventOut]
    explanation: list[ExplanationOut] = Field(
        default_factory=list, description="The job's error_code explained, then each DIAN rule "
        "its code or message names; empty when the job has no error.")


class JobPage(BaseModel):
    """A page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next page
    (None: this was the last)."""

    items: list[JobOut]
    next_cursor: str | None


class ActionOut(BaseModel):
    """Answer of the retry and cancel routes."""

    job: JobOut
    message: str


class NumberingRangeOut(BaseModel):
    """A DIAN numbering range of the organization (``invoice_sequences``)."""

    id: int
    document_type: str | None
    prefix: str | None
    range_start: int | None
    range_end: int | None
    current_number: int | None
    remaining: int | None
    valid_from: date | None
    valid_until: date | None
    is_active: bool | None
    resolution_number: str | None
    factus_numbering_range_id: int | None

    @classmethod
    def of(cls, row: InvoiceSequence) -> NumberingRangeOut:
        """The response model of a range row."""
        remaining = (row.range_end - row.current_number + 1
                     if row.range_end is not None and row.current_number is not None else None)
        return cls(id=row.id, document_type=row.document_type, prefix=row.prefix,
                   range_start=row.range_start, range_end=row.range_end,
                   current_number=row.current_number, remaining=remaining,
                   valid_from=row.valid_from, valid_until=row.valid_until,
                   is_active=row.is_active, resolution_number=row.resolution_number,
                   factus_numbering_range_id=row.factus_numbering_range_id)


class NumberingRangesOut(BaseModel):
    """The organization's numbering ranges."""

    items: list[NumberingRangeOut]


class StatsOut(BaseModel):
    """Job counts of the organization (like ``einvoice jobs status``)."""

    by_status: dict[str, int] = Field(description="Every status, 0 when none.")
    total: int
    oldest_unfinished_age_s: float | None = Field(
        description="Seconds since the oldest pending, processing or sent job was created.")


class HealthOut(BaseModel):
    """Answer of ``/healthz`` and ``/readyz``."""

    status: Literal["ok"]
    checks: dict[str, str] = Field(default_factory=dict)


class Problem(BaseModel):
    """An RFC 9457 problem (``application/problem+json``). ``code`` is the same reason code a
    job would carry (``invoice_not_found``, ``already_accepted``, ``validation_error``...)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="validation_error: one entry per bad field, with its "
        "location (loc) and message (msg).")
    explanation: ExplanationOut | None = Field(
        default=None, description="The code explained (what to fix, where, whether to retry), "
        "when the error catalogue has it.")
