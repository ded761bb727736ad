"""The version-neutral sales document: what an ERP invoice or credit note says, checked.

:func:`einvoice.domain.payload.build_document` turns the ERP rows
(:class:`~einvoice.domain.invoices.InvoiceData`) into a :class:`SalesDocument` and applies the
business rules; the wire mappers ``einvoice.factus.v1_body`` and ``einvoice.factus.v2_body`` turn
it into the JSON body of their API version. Nothing here knows a wire format.

Conventions: money in COP as ``Decimal`` (exact, as the ERP stored it, unless a field says it is
rounded), rates in percent (``Decimal("19")``), quantities as ``Decimal``, calendar dates in
Bogotá. Identifiers are Factus v1 ids (``identification_document_id``, ``tribute_id``,
``unit_measure_id``, ``standard_code_id``, ``municipality_id``), with the DIAN code beside them
where v2 needs it (``municipality_code`` is the DANE code, ``unit_measure_code`` the UN/ECE code).

Rules that differ by API version are not decided here: the builder calls the mapper's
:class:`WireRules` at fixed points (so the order of the checks stays one order), and the mapper
refuses what its version cannot express.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal

from einvoice.domain.errors import PayloadError

#: ``fail(code, column, value, detail)`` builds the PayloadError of one item's column.
Fail = Callable[[str, str, object, str], PayloadError]


@dataclass(frozen=True, slots=True)
class ErpLine:
    """The ERP's own line amounts (COP): net of tax, tax, and gross (net + tax)."""

    net: Decimal
    tax: Decimal
    gross: Decimal


@dataclass(frozen=True, slots=True)
class LineTax:
    """One tax of a line.

    ``code`` is the DIAN tax code ("01" IVA, "04" INC, "35" ICUI); ``tribute_id`` the Factus v1
    product tribute id of that tax (``None`` for a tax v1 does not list, such as "35"); ``rate``
    in percent (0 when ``is_excluded``, the line being excluded from that tax).
    """

    code: str
    tribute_id: int | None
    rate: Decimal
    is_excluded: bool = False


@dataclass(frozen=True, slots=True)
class Withholding:
    """A self-withholding of a line: DIAN code "05" ReteIVA, "06" ReteRenta, "07" ReteICA."""

    code: str
    rate: Decimal


# Not frozen: it is built once per item on the worker's hot path, and a frozen dataclass's
# __init__ pays an object.__setattr__ per field; only WireRules.finish_line sets wire_price.
@dataclass(slots=True)
class Line:
    """One checked item.

    Attributes:
        code_reference, name, note: the texts to send (checked, stripped).
        quantity: the ERP quantity (> 0; its decimals are the mapper's rule).
        unit_price: the ERP unit price, on the basis ``tax_included`` says.
        tax_included: whether ``unit_price`` includes the line's taxes.
        discount_rate: percent (the ERP's rate, or its amount as a 2-decimal rate).
        discount_amount: the ERP's discount in COP on ``unit_price``'s basis, when the ERP gave
            an amount rather than a rate (``None`` otherwise).
        erp: the line as the ERP books it (see :func:`einvoice.domain.payload.erp_line`).
        taxes: at least one; several only when the ERP lists them (``invoice_items.taxes``).
        withholdings: the line's self-withholdings.
        unit_measure_id / unit_measure_code: Factus v1 id and its code from the unit table
            (``None`` when the table given to the builder has no code for it).
        standard_code_id, tribute_id: Factus v1 ids (``tribute_id`` the first tax's).
        is_excluded: the line is excluded from IVA.
        wire_price: the 2-decimal unit price the mapper chose (v1: tax included; v2: net),
            set by :meth:`WireRules.finish_line`.
    """

    code_reference: str
    name: str
    note: str | None
    quantity: Decimal
    unit_price: Decimal
    tax_included: bool
    discount_rate: Decimal
    erp: ErpLine
    taxes: tuple[LineTax, ...]
    withholdings: tuple[Withholding, ...]
    unit_measure_id: int
    unit_measure_code: str | None
    standard_code_id: int
    tribute_id: int
    is_excluded: bool
    discount_amount: Decimal | None = None
    wire_price: Decimal | None = None

    @property
    def tax_rate(self) -> Decimal:
        """The first tax's rate in percent (v1 carries one tax per line)."""
        return self.taxes[0].rate


@dataclass(frozen=True, slots=True)
class Party:
    """The buyer, checked.

    ``identification`` is cleaned (no dots, blanks or DV); ``dv`` only for a NIT; ``company``
    for a legal person, ``names`` for a natural one; ``municipality_id`` (Factus v1) and
    ``municipality_code`` (DANE); ``is_final_consumer`` when the document goes to "Consumidor
    Final" (no customer row, or the ERP's final-consumer row).
    """

    identification_document_id: int
    identification: str
    legal_organization_id: int
    tribute_id: int
    dv: int | None = None
    company: str | None = None
    names: str | None = None
    trade_name: str | None = None
    address: str | None = None
    email: str | None = None
    phone: str | None = None
    municipality_id: int | None = None
    municipality_code: str | None = None
    is_final_consumer: bool = False


@dataclass(frozen=True, slots=True)
class Establishment:
    """The branch that made the sale, each field falling back to the organization's."""

    name: str
    address: str
    phone_number: str
    email: str
    municipality_id: int
    municipality_code: str | None


@dataclass(frozen=True, slots=True)
class Payment:
    """One means of payment.

    ``payment_form`` "1" cash / "2" credit, ``payment_method_code`` (DIAN table), ``due_date``
    for credit, ``amount`` in COP (``None``: the whole amount due, computed by the mapper),
    ``reference`` the ERP's payment reference, ``field`` the ERP column the payment came from
    (for errors).
    """

    payment_form: str
    payment_method_code: str
    due_date: date | None = None
    amount: Decimal | None = None
    reference: str | None = None
    field: str = "invoice_sales.payment_method_code"


@dataclass(frozen=True, slots=True)
class Prepayment:
    """An advance received before the invoice (``prepayment_details``), COP."""

    reference_code: str
    received_date: date
    amount: Decimal
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Charge:
    """A document-level allowance charge (surcharge, concept "03"), amounts in COP."""

    concept_type: str
    is_surcharge: bool
    reason: str
    base_amount: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Period:
    """The billing period (calendar dates and optional times, Bogotá)."""

    start_date: date
    end_date: date
    start_time: time | None = None
    end_time: time | None = None


@dataclass(frozen=True, slots=True)
class DisplayCurrency:
    """A foreign currency the totals are also shown in (ISO 4217 code, COP per unit)."""

    code: str
    exchange_rate: Decimal


@dataclass(frozen=True, slots=True)
class OrderReference:
    """The buyer's order the sale answers (its number and issue date)."""

    reference_code: str
    issue_date: date | None = None


@dataclass(frozen=True, slots=True)
class SalesDocument:
    """A checked invoice or credit note, ready for a wire mapper.

    Attributes:
        document_type: ``"invoice"`` or ``"credit_note"``.
        reference_code: the job's stable Factus reference code.
        numbering_range_id: the Factus numbering range id.
        observation: the checked ERP notes, whole (each version cuts to its own limit).
        payment_form, payment_due_date, payment_method_code: the invoice's own payment columns.
        payments: the means of payment (the ERP's payments table when it has rows, else one
            built from the columns above).
        operation_type: DIAN operation type ("10" standard, "12" transport).
        send_email: whether Factus e-mails the buyer.
        billing_period, establishment, customer: optional parts (``customer`` is ``None`` only
            for a credit note that takes the bill's customer).
        lines: the items, in the ERP's order.
        allowance_charges: document-level surcharges.
        cash_rounding_amount: COP added to (or taken from) what is paid, |x| ≤ 500; 0 when none.
        prepayments, currency, order_reference: what v2 adds (refused by v1's mapper).
        erp_total: ``invoice_sales.total`` (``None`` when the ERP left it empty).
        correction_concept_code, related_bill_id, related_bill_number, related_invoice_id,
        related_invoice_total, related_invoice_credited_total: a credit note's reference.
    """

    document_type: str
    reference_code: str
    numbering_range_id: int
    observation: str
    payment_form: str | None
    payment_due_date: date | None
    payment_method_code: str
    payments: tuple[Payment, ...]
    operation_type: str
    send_email: bool
    billing_period: Period | None
    establishment: Establishment | None
    customer: Party | None
    lines: tuple[Line, ...]
    allowance_charges: tuple[Charge, ...]
    cash_rounding_amount: Decimal = Decimal(0)
    prepayments: tuple[Prepayment, ...] = ()
    currency: DisplayCurrency | None = None
    order_reference: OrderReference | None = None
    erp_total: Decimal | None = None
    correction_concept_code: int | None = None
    related_bill_id: int | None = None
    related_bill_number: str | None = None
    related_invoice_id: str | None = None
    related_invoice_total: Decimal | None = None
    related_invoice_credited_total: Decimal = Decimal(0)

    @property
    def prepaid(self) -> Decimal:
        """Σ prepayments, COP."""
        return sum((p.amount for p in self.prepayments), Decimal(0))


class WireRules:
    """The checks of one API version, called by the document builder at fixed points.

    The base class is permissive; each wire mapper subclasses it. A hook raises
    :class:`PayloadError` to refuse; it must not do I/O.
    """

    #: Withholding codes the version accepts ("05", "06", "07" in v1; v2 drops "07").
    withholding_codes: frozenset[str] = frozenset({"05", "06", "07"})
    #: The detail of ``unknown_withholding_tax``.
    withholding_detail: str = "expected 05 ReteIVA, 06 ReteRenta (ReteFuente) or 07 ReteICA"

    def check_currency(self, currency: str | None) -> None:
        """Refuse ``invoice_sales.currency`` when the version cannot bill in it."""

    def check_quantity(self, quantity: Decimal, fail: Fail) -> None:
        """Refuse a quantity the version cannot carry (called before the positivity check)."""

    def finish_line(self, line: Line, where: str, label: str) -> Line:
        """Called once per line after its checks: return the line with ``wire_price`` set."""
        return line

    def check_taxes(self, taxes: tuple[LineTax, ...], where: str, label: str) -> None:
        """Refuse a line's taxes the version cannot express (several, or a code it lacks)."""

    def check_extras(self, document: SalesDocument) -> None:
        """Refuse document fields the version cannot express (called last, before totals)."""
