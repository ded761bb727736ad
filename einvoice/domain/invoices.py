"""The ERP rows a Factus payload is built from, as plain frozen dataclasses.

Field names are the ERP column names of seed 002 ("Análisis de Tablas Existentes" and "Campos
FALTANTES"), so that an error can name the column at fault (``customers.dv``). The repositories in
``einvoice.db`` load the rows and fill these; nothing here touches a database.

Conventions: money is ``Decimal`` in COP; rates (tax, discount, withholding) are ``Decimal``
percentages (``Decimal("19")`` is 19 %); ``None`` is SQL NULL. The JSONB columns
(``invoice_sales.allowance_charges``, ``invoice_sales.billing_period``,
``invoice_items.withholding_taxes``) are parsed with the ``*_from_json`` functions below, which
raise :class:`~einvoice.domain.errors.PayloadError` (code ``malformed_json``) naming the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation

from einvoice.domain.errors import PayloadError


@dataclass(frozen=True, slots=True, kw_only=True)
class OrganizationData:
    """``organizations``: the issuer (seed 002 §6 and "Agregar a organizations").

    Factus v1 takes the issuer from the account, not from the payload; these fields fill in an
    establishment whose branch lacks them.
    """

    id: int
    name: str
    legal_name: str | None = None
    nit: str | None = None
    dv: int | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    city: str | None = None
    municipality_id: int | None = None
    #: DANE code of ``municipality_id`` (``dian_municipalities.code``), read in the same join.
    municipality_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BranchData:
    """``branches``: the establishment that made the sale (seed 002 §7, plus municipality_id)."""

    id: int
    name: str | None = None
    address: str | None = None
    city: str | None = None
    phone: str | None = None
    email: str | None = None
    municipality_id: int | None = None
    municipality_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerData:
    """``customers``: the buyer (seed 002 §5 and "Agregar a customers").

    ``identification_type`` is the ERP's text ("CC", "NIT", "13", ...); ``dv`` the stored check
    digit of a NIT, if any; ``legal_organization_id`` 1 jurídica / 2 natural; ``tribute_id`` the
    Factus customer tribute (18 or 21); ``municipality_id`` a Factus municipality id and
    ``municipality_code`` its DANE code (``None`` when ``dian_municipalities`` has no such id).
    """

    id: str
    identification_type: str | None
    identification_number: str | None
    dv: int | None = None
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    trade_name: str | None = None
    legal_organization_id: int | None = None
    tribute_id: int | None = None
    municipality_id: int | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    city: str | None = None
    municipality_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WithholdingTaxData:
    """One entry of ``invoice_items.withholding_taxes`` (JSONB): a self-withholding.

    ``code`` as the ERP wrote it ("06", "ReteFuente", ...); ``rate`` in percent
    (``withholding_tax_rate`` in the seed's TypeScript interface).
    """

    code: str
    rate: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxData:
    """One entry of ``invoice_items.taxes`` (JSONB): one of several taxes on a line.

    ``code`` is the DIAN tax code ("01" IVA, "04" INC, "35" ICUI) or ``tribute_id`` the Factus
    product tribute id (one of them is set); ``rate`` in percent; ``is_excluded`` marks the line
    as excluded from that tax.
    """

    code: str | None
    tribute_id: int | None
    rate: Decimal | None
    is_excluded: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentData:
    """One ``invoice_payments`` row: a means of payment of the invoice.

    ``payment_form`` "1"/"2", ``payment_method_code`` (DIAN table), ``amount`` in COP,
    ``due_date`` (credit), ``reference`` the ERP's payment reference.
    """

    payment_form: str | None
    payment_method_code: str | None
    amount: Decimal | None
    due_date: date | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PrepaymentData:
    """One entry of ``invoice_sales.prepayments`` (JSONB): an advance, COP."""

    reference_code: str
    received_date: date
    amount: Decimal
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemData:
    """One ``invoice_items`` row joined with its ``products`` row.

    Attributes:
        description: ``invoice_items.description``, sent as the item name.
        qty: ``invoice_items.qty``; Factus v1 needs an integer. ``None`` (SQL NULL) is refused
            by the payload builder (``missing_quantity``), never read as 0.
        unit_price: ``invoice_items.unit_price`` in COP, net or tax-included per ``tax_included``;
            ``None`` is refused (``missing_price``).
        tax_rate: ``invoice_items.tax_rate`` in percent (19, 5, 0); ``None`` is refused
            (``missing_tax_rate``).
        tax_included: ``invoice_items.tax_included``; ``None`` defers to the invoice's flag.
        discount_rate: ``invoice_items.discount_rate`` in percent.
        discount_amount: ``invoice_items.discount_amount`` in COP, on the same basis as
            ``unit_price``; used when no discount rate is set.
        code_reference: ``invoice_items.code_reference``; falls back to ``product_sku``, then
            ``product_id``.
        product_sku / product_id: ``products.sku`` / ``invoice_items.product_id``.
        unit_measure_id, standard_code_id, tribute_id: Factus ids; ``None`` takes the seed's
            column default (70, 1, 1).
        is_excluded: ``invoice_items.is_excluded`` (excluded from IVA).
        withholding_taxes: parsed ``invoice_items.withholding_taxes``.
        note: ``invoice_items.note``.
        taxes: parsed ``invoice_items.taxes``; when not empty it replaces ``tax_rate`` and
            ``tribute_id`` (several taxes on one line, v2).
        id: ``invoice_items.id``, for messages only.
    """

    description: str | None
    qty: Decimal | None
    unit_price: Decimal | None
    tax_rate: Decimal | None
    tax_included: bool | None = None
    discount_rate: Decimal | None = None
    discount_amount: Decimal | None = None
    code_reference: str | None = None
    product_sku: str | None = None
    product_id: int | None = None
    unit_measure_id: int | None = None
    standard_code_id: int | None = None
    is_excluded: bool = False
    tribute_id: int | None = None
    withholding_taxes: tuple[WithholdingTaxData, ...] = ()
    note: str | None = None
    taxes: tuple[TaxData, ...] = ()
    id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberingRangeData:
    """``invoice_sequences``: the DIAN numbering range the document is numbered from.

    ``factus_numbering_range_id`` is the range's id at Factus (seed 002 "Agregar a
    invoice_sequences"); ``document_type`` the ERP's text (``"invoice"``, ``"credit_note"``) or a
    Factus range document code (``"21"``, ``"22"``); ``valid_from``/``valid_until`` are inclusive
    calendar dates (``None``: unbounded, as credit-note ranges have no resolution dates);
    ``current_number`` the range's current consecutive.
    """

    id: int
    factus_numbering_range_id: int | None
    document_type: str
    is_active: bool
    prefix: str | None = None
    range_start: int | None = None
    range_end: int | None = None
    current_number: int | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    resolution_number: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowanceChargeData:
    """One entry of ``invoice_sales.allowance_charges`` (JSONB), in Factus's shape (§3.5).

    ``concept_type`` "03" is the only one v1 accepts; ``is_surcharge`` true for a surcharge;
    ``base_amount`` and ``amount`` in COP.
    """

    concept_type: str
    is_surcharge: bool
    reason: str
    base_amount: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingPeriodData:
    """``invoice_sales.billing_period`` (JSONB): the period a service invoice covers (§3.1)."""

    start_date: date
    end_date: date
    start_time: time | None = None
    end_time: time | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceData:
    """One ``invoice_sales`` row with everything its Factus payload needs.

    Attributes:
        id: ``invoice_sales.id`` (UUID text).
        organization, branch, customer: the joined rows (``customer`` ``None`` when the
            ``customer_id`` matches no row).
        items: the ``invoice_items`` rows in display order.
        numbering_range: the active ``invoice_sequences`` row for this document type, if any.
        document_type: ``"invoice"`` or ``"credit_note"`` (``DocumentType`` values).
        issue_date / due_date: calendar dates in Bogotá (the repository converts the
            TIMESTAMPTZ columns).
        currency: ``invoice_sales.currency``; Factus v1 bills in COP only.
        notes: sent as ``observation``.
        payment_form, payment_method_code, operation_type: Factus codes as text; ``None`` takes
            the seed's column defaults ("1", "10", "10").
        send_email: ``None`` means the seed's default, false.
        tax_included: whether the items' unit prices include tax, for items whose own flag is
            NULL.
        subtotal / tax_total / total: the ERP's totals in COP; ``total`` is compared with the
            total Factus will compute.
        related_invoice_id: for a credit note, the ``invoice_sales.id`` it corrects.
        correction_concept_code: for a credit note, 1–6 (FACTUS_API.md §7.1).
        related_bill_id: the Factus internal id (``data.bill.id``) of the corrected invoice.
        related_invoice_total: the corrected invoice's total in COP.
        related_invoice_credited_total: COP already credited by earlier credit notes on it.
        related_bill_number: the corrected invoice's Factus number (v2 ``bill_number``).
        payments: the ``invoice_payments`` rows (empty: the invoice's one payment method).
        cash_rounding_amount: ``invoice_sales.cash_rounding_amount`` in COP (v2).
        prepayments: parsed ``invoice_sales.prepayments`` (v2).
        display_currency / exchange_rate: ``invoice_sales.display_currency`` (ISO 4217) and COP
            per unit of it, to show the totals in that currency (v2).
        order_reference / order_issue_date: the buyer's order number and date.
    """

    id: str
    organization: OrganizationData
    customer: CustomerData | None
    items: tuple[ItemData, ...]
    numbering_range: NumberingRangeData | None
    branch: BranchData | None = None
    document_type: str = "invoice"
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    currency: str | None = "COP"
    notes: str | None = None
    payment_form: str | None = None
    payment_method_code: str | None = None
    send_email: bool | None = None
    tax_included: bool | None = None
    operation_type: str | None = None
    allowance_charges: tuple[AllowanceChargeData, ...] = ()
    billing_period: BillingPeriodData | None = None
    subtotal: Decimal | None = None
    tax_total: Decimal | None = None
    total: Decimal | None = None
    related_invoice_id: str | None = None
    correction_concept_code: int | None = None
    related_bill_id: int | None = None
    related_invoice_total: Decimal | None = None
    related_invoice_credited_total: Decimal = Decimal(0)
    related_bill_number: str | None = None
    payments: tuple[PaymentData, ...] = ()
    cash_rounding_amount: Decimal | None = None
    prepayments: tuple[PrepaymentData, ...] = ()
    display_currency: str | None = None
    exchange_rate: Decimal | None = None
    order_reference: str | None = None
    order_issue_date: date | None = None


# --- JSONB columns ------------------------------------------------------------------------


def _malformed(field: str, value: object, detail: str) -> PayloadError:
    return PayloadError("malformed_json", field=field, value=value, detail=detail)


def _json_decimal(raw: object, field: str) -> Decimal:
    # JSON numbers arrive as int or float (psycopg's json loader); go through str() so a float
    # such as 7.38 becomes Decimal("7.38"), not its binary expansion.
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise _malformed(field, raw, "expected a number")
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise _malformed(field, raw, "expected a number") from None
    if not value.is_finite():
        raise _malformed(field, raw, "expected a finite number")
    return value


def _json_text(raw: object, field: str) -> str:
    if not isinstance(raw, (str, int)) or isinstance(raw, bool):
        raise _malformed(field, raw, "expected text")
    return str(raw)


def _json_object(raw: object, field: str) -> dict[str, object]:
    if not isinstance(raw, dict):
        raise _malformed(field, raw, "expected a JSON object")
    return raw


def _json_list(raw: object, field: str) -> list[object]:
    if not isinstance(raw, list):
        raise _malformed(field, raw, "expected a JSON array")
    return raw


def withholding_taxes_from_json(raw: object, *, item_index: int) -> tuple[WithholdingTaxData, ...]:
    """Parse ``invoice_items.withholding_taxes`` (JSONB; seed default ``'[]'``).

    Input: the decoded JSON (``None``, or a list of ``{"code": ..., "withholding_tax_rate": ...}``
    objects; ``"rate"`` is accepted as the rate's key too) and the item's 0-based position.
    Output: a tuple of :class:`WithholdingTaxData`. Raises ``PayloadError`` ``malformed_json``
    with a field like ``invoice_items[1].withholding_taxes[0].withholding_tax_rate``.
    """
    column = f"invoice_items[{item_index}].withholding_taxes"
    if raw is None:
        return ()
    entries = []
    for position, entry_raw in enumerate(_json_list(raw, column)):
        where = f"{column}[{position}]"
        entry = _json_object(entry_raw, where)
        if "code" not in entry:
            raise _malformed(f"{where}.code", None, "every withholding needs a code")
        rate_key = "withholding_tax_rate" if "withholding_tax_rate" in entry else "rate"
        if rate_key not in entry:
            raise _malformed(
                f"{where}.withholding_tax_rate", None, "every withholding needs a rate"
            )
        entries.append(
            WithholdingTaxData(
                code=_json_text(entry["code"], f"{where}.code"),
                rate=_json_decimal(entry[rate_key], f"{where}.{rate_key}"),
            )
        )
    return tuple(entries)


def allowance_charges_from_json(raw: object) -> tuple[AllowanceChargeData, ...]:
    """Parse ``invoice_sales.allowance_charges`` (JSONB; seed default ``'[]'``).

    Input: ``None`` or a list of objects in Factus's §3.5 shape (``concept_type``,
    ``is_surcharge``, ``reason``, ``base_amount``, ``amount``). Output: a tuple of
    :class:`AllowanceChargeData`. Raises ``PayloadError`` ``malformed_json`` naming the entry.
    """
    column = "invoice_sales.allowance_charges"
    if raw is None:
        return ()
    charges = []
    for position, entry_raw in enumerate(_json_list(raw, column)):
        where = f"{column}[{position}]"
        entry = _json_object(entry_raw, where)
        for key in ("concept_type", "is_surcharge", "reason", "base_amount", "amount"):
            if key not in entry:
                raise _malformed(f"{where}.{key}", None, f"the entry has no {key!r}")
        is_surcharge = entry["is_surcharge"]
        if not isinstance(is_surcharge, bool):
            raise _malformed(f"{where}.is_surcharge", is_surcharge, "expected true or false")
        charges.append(
            AllowanceChargeData(
                concept_type=_json_text(entry["concept_type"], f"{where}.concept_type"),
                is_surcharge=is_surcharge,
                reason=_json_text(entry["reason"], f"{where}.reason"),
                base_amount=_json_decimal(entry["base_amount"], f"{where}.base_amount"),
                amount=_json_decimal(entry["amount"], f"{where}.amount"),
            )
        )
    return tuple(charges)


def billing_period_from_json(raw: object) -> BillingPeriodData | None:
    """Parse ``invoice_sales.billing_period`` (JSONB).

    Input: ``None`` or ``{"start_date": "YYYY-MM-DD", "start_time"?: "HH:MM:SS",
    "end_date": "YYYY-MM-DD", "end_time"?: "HH:MM:SS"}`` (Factus §3.1 shape). Output: a
    :class:`BillingPeriodData` or ``None``. Raises ``PayloadError`` ``malformed_json``.
    """
    column = "invoice_sales.billing_period"
    if raw is None:
        return None
    entry = _json_object(raw, column)

    def parse_date(key: str) -> date:
        value = entry.get(key)
        try:
            return date.fromisoformat(_json_text(value, f"{column}.{key}"))
        except ValueError:
            raise _malformed(f"{column}.{key}", value, "expected a date YYYY-MM-DD") from None

    def parse_time(key: str) -> time | None:
        value = entry.get(key)
        if value is None or value == "":
            return None
        try:
            return time.fromisoformat(_json_text(value, f"{column}.{key}"))
        except ValueError:
            raise _malformed(f"{column}.{key}", value, "expected a time HH:MM:SS") from None

    return BillingPeriodData(
        start_date=parse_date("start_date"),
        end_date=parse_date("end_date"),
        start_time=parse_time("start_time"),
        end_time=parse_time("end_time"),
    )


def _json_date(raw: object, field: str) -> date:
    try:
        return date.fromisoformat(_json_text(raw, field)[:10])
    except ValueError:
        raise _malformed(field, raw, "expected a date YYYY-MM-DD") from None


def taxes_from_json(raw: object, *, item_index: int) -> tuple[TaxData, ...]:
    """Parse ``invoice_items.taxes`` (JSONB, added by migration 0008; NULL or ``[]``: one tax).

    Input: ``None`` or a list of ``{"code": "01" | "tribute_id": 1, "rate": 19,
    "is_excluded"?: false}``. Output: a tuple of :class:`TaxData`. Raises ``PayloadError``
    ``malformed_json`` naming the entry (``invoice_items[0].taxes[1].rate``).
    """
    column = f"invoice_items[{item_index}].taxes"
    if raw is None:
        return ()
    entries = []
    for position, entry_raw in enumerate(_json_list(raw, column)):
        where = f"{column}[{position}]"
        entry = _json_object(entry_raw, where)
        code = entry.get("code")
        tribute = entry.get("tribute_id")
        if code is None and tribute is None:
            raise _malformed(f"{where}.code", None, "every tax needs a code or a tribute_id")
        if tribute is not None and (isinstance(tribute, bool) or not isinstance(tribute, int)):
            raise _malformed(f"{where}.tribute_id", tribute, "expected an integer")
        excluded = entry.get("is_excluded", False)
        if not isinstance(excluded, bool):
            raise _malformed(f"{where}.is_excluded", excluded, "expected true or false")
        rate = entry.get("rate")
        entries.append(
            TaxData(
                code=None if code is None else _json_text(code, f"{where}.code").strip(),
                tribute_id=tribute,
                rate=None if rate is None else _json_decimal(rate, f"{where}.rate"),
                is_excluded=excluded,
            )
        )
    return tuple(entries)


def prepayments_from_json(raw: object) -> tuple[PrepaymentData, ...]:
    """Parse ``invoice_sales.prepayments`` (JSONB, added by migration 0008).

    Input: ``None`` or a list of ``{"reference_code", "received_date": "YYYY-MM-DD", "amount",
    "note"?}`` (Factus v2 ``prepayment_details``). Output: a tuple of :class:`PrepaymentData`.
    Raises ``PayloadError`` ``malformed_json`` naming the entry.
    """
    column = "invoice_sales.prepayments"
    if raw is None:
        return ()
    result = []
    for position, entry_raw in enumerate(_json_list(raw, column)):
        where = f"{column}[{position}]"
        entry = _json_object(entry_raw, where)
        for key in ("reference_code", "received_date", "amount"):
            if entry.get(key) is None:
                raise _malformed(f"{where}.{key}", None, f"the entry has no {key!r}")
        note = entry.get("note")
        result.append(
            PrepaymentData(
                reference_code=_json_text(entry["reference_code"], f"{where}.reference_code"),
                received_date=_json_date(entry["received_date"], f"{where}.received_date"),
                amount=_json_decimal(entry["amount"], f"{where}.amount"),
                note=None if note is None else _json_text(note, f"{where}.note"),
            )
        )
    return tuple(result)


def payments_from_json(raw: object) -> tuple[PaymentData, ...]:
    """Parse the ``invoice_payments`` rows the repository aggregates into one JSON array.

    Input: ``None`` or a list of ``{"payment_form", "payment_method_code", "amount" (text),
    "due_date" ("YYYY-MM-DD" or null), "reference"}`` in the table's order. Output: a tuple of
    :class:`PaymentData` (NULL columns stay ``None`` for the builder's rules). Raises
    ``PayloadError`` ``malformed_json`` for an amount that is not a number.
    """
    column = "invoice_payments"
    if raw is None:
        return ()
    result = []
    for position, entry_raw in enumerate(_json_list(raw, column)):
        where = f"{column}[{position}]"
        entry = _json_object(entry_raw, where)
        amount = entry.get("amount")
        due = entry.get("due_date")
        form, method, reference = (entry.get(k) for k in
                                   ("payment_form", "payment_method_code", "reference"))
        result.append(
            PaymentData(
                payment_form=None if form is None else _json_text(form, f"{where}.payment_form"),
                payment_method_code=(None if method is None else
                                     _json_text(method, f"{where}.payment_method_code")),
                amount=None if amount is None else _json_decimal(amount, f"{where}.amount"),
                due_date=None if due is None else _json_date(due, f"{where}.due_date"),
                reference=(None if reference is None else
                           _json_text(reference, f"{where}.reference")),
            )
        )
    return tuple(result)
