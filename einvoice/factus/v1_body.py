"""Factus API v1 wire bodies: a checked sales document → ``POST /v1/bills/validate`` and
``POST /v1/credit-notes/validate`` (FACTUS_API.md §3, §7.1), and what Factus v1 computes from them.

Entry points, the same names as :mod:`einvoice.factus.v2_body`'s where they do the same:

* :func:`bill_body` / :func:`credit_note_body` → the JSON body for a
  :class:`~einvoice.domain.document.SalesDocument` built with :data:`V1_RULES`;
* :func:`payload_total` (= :func:`factus_payload_total`) → the document total a v1 body implies;
* :func:`build_bill_payload` / :func:`build_credit_note_payload` → the two steps in one, from the
  ERP rows (for tests, the sample dataset and scripts that hold no document).

What is v1's own (the rules the document builder calls through :class:`V1Rules`):

* **Price.** ``price`` is the unit price with tax included (Decision 7). A net ERP price is
  converted by choosing, among the 2-decimal prices around the ideal one, the one whose §4.2 line
  total is closest to the ERP's own gross line total, then whose taxable amount is closest to the
  ERP's net line (:func:`_wire_price`, :func:`einvoice.domain.payload.nearest_wire_price`). A tax-included price with at most 2 decimals is sent
  unchanged.
* **Quantity.** Must be a whole number; ``2.5`` kg is refused (``non_integer_quantity``), never
  rounded, because rounding would change what is billed.
* **Currency.** COP only (``unsupported_currency``); v1 has no currency field.
* **One tax per line**, withholdings 05/06/07.
* **What only v2 carries** is refused with ``requires_factus_v2`` naming the ERP column: several
  ``invoice_payments`` rows, ``cash_rounding_amount``, ``prepayments``, ``display_currency``,
  several ``invoice_items.taxes`` or a tax v1 does not list (code 35).
* **Observation** longer than 250 characters (DOC1's limit) is truncated to 249 plus "…".
* **Defaults left to Factus.** ``document`` ("01") and ``operation_type`` "10" are omitted, as in
  the §3.6 example; every other header field is sent.
* **Wire format.** Money and rates that Factus types as float (``price``, ``discount_rate``,
  ``withholding_tax_rate``) are JSON numbers with at most 2 decimals: an ``int`` when whole
  (``23800``), else a ``float`` whose shortest repr is the 2-decimal value (exact up to 13
  integer digits). ``tax_rate`` is the string ``"19.00"``; allowance ``base_amount``/``amount``
  are strings ``"90000.00"``, as in DOC1's example.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from einvoice.domain import dian
from einvoice.domain.document import (
    ErpLine,
    Fail,
    Line,
    LineTax,
    Party,
    SalesDocument,
    WireRules,
)
from einvoice.domain.errors import PayloadError
from einvoice.domain.invoices import InvoiceData
from einvoice.domain.jobs import DocumentType
from einvoice.domain.payload import (
    CENT,
    HUNDRED,
    build_document,
    check_credit_cap,
    check_totals,
    nearest_wire_price,
    requires_v2,
    round2,
)
from einvoice.domain.payload import (
    total_tolerance as domain_total_tolerance,
)
from einvoice.factus import wire
from einvoice.factus.wire import JsonDict

_ZERO = Decimal(0)


# --- What Factus computes (FACTUS_API.md §4.2) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class FactusLineAmounts:
    """Amounts Factus derives for one v1 item (FACTUS_API.md §4.2), all in COP.

    ``line`` is ``items[].total`` (tax included, after discount); ``taxable`` is both
    ``gross_value`` and ``taxable_amount``; ``tax`` is ``tax_amount``; ``discount`` the net
    discount.
    """

    line: Decimal
    taxable: Decimal
    tax: Decimal
    discount: Decimal


def factus_line_amounts(
    *, price: Decimal, quantity: int, discount_rate: Decimal, tax_rate: Decimal
) -> FactusLineAmounts:
    """Apply Factus's v1 item formulas to one payload item.

    Inputs: ``price`` (tax-included unit price, COP), ``quantity`` (int), ``discount_rate`` and
    ``tax_rate`` in percent. Output: :class:`FactusLineAmounts`.
    Source: FACTUS_API.md §4.2 (checked there to the cent against DOC1's example and TUT's real
    response): ``line = price × quantity × (1 − discount_rate/100)``,
    ``taxable = round2(line / (1 + tax_rate/100))``, ``tax = line − taxable``,
    ``discount = round2(price × quantity × discount_rate/100 / (1 + tax_rate/100))``. Inferred:
    ``line`` itself is rounded to 2 decimals (every documented example has an exact line).
    """
    gross = price * quantity
    divisor = 1 + tax_rate / HUNDRED
    line = round2(gross * (1 - discount_rate / HUNDRED))
    taxable = round2(line / divisor)
    return FactusLineAmounts(
        line=line,
        taxable=taxable,
        tax=line - taxable,
        discount=round2(gross * discount_rate / HUNDRED / divisor),
    )


def _wire_decimal(value: object) -> Decimal:
    # str() of a float is its shortest repr, which is the 2-decimal value this module wrote.
    return Decimal(str(value))


def factus_payload_total(payload: Mapping[str, Any]) -> Decimal:
    """The document ``total`` Factus v1 will compute for a body built by this module.

    Input: a bill or credit-note body (``items`` and optional ``allowance_charges``).
    Output: COP ``Σ items' line + Σ surcharges`` (FACTUS_API.md §4.2: withholdings do not reduce
    the total; v1 accepts surcharges only, §3.5).
    """
    total = _ZERO
    for item in payload["items"]:
        total += factus_line_amounts(
            price=_wire_decimal(item["price"]),
            quantity=int(item["quantity"]),
            discount_rate=_wire_decimal(item["discount_rate"]),
            tax_rate=_wire_decimal(item["tax_rate"]),
        ).line
    for charge in payload.get("allowance_charges", ()):
        if charge["is_surcharge"]:
            total += _wire_decimal(charge["amount"])
    return total


#: The name the reconcile comparison calls on either mapper (:func:`v2_body.payload_total`).
payload_total = factus_payload_total


def total_tolerance(payload: Mapping[str, Any]) -> Decimal:
    """How far the ERP total may sit from Factus's v1 total and still be the same sale (COP).

    Input: a body built by this module. Output:
    :func:`einvoice.domain.payload.total_tolerance` of its items' quantities.
    """
    return domain_total_tolerance(int(item["quantity"]) for item in payload["items"])


# --- The rules v1 adds to the document builder -------------------------------------------------


def _wire_price(
    *,
    unit_price: Decimal,
    tax_included: bool,
    quantity: int,
    discount_rate: Decimal,
    tax_rate: Decimal,
    erp: ErpLine,
) -> Decimal:
    """Choose the 2-decimal tax-included unit price to send (Decision 7, FACTUS_API.md §4.2).

    A tax-included ERP price with at most 2 decimals is sent as is. Otherwise the 2-decimal
    price around ``erp.gross / (quantity × (1 − discount_rate/100))`` whose §4.2 amounts best
    match the ERP's line (:func:`einvoice.domain.payload.nearest_wire_price`).
    """
    if tax_included and unit_price == round2(unit_price):
        return unit_price.quantize(CENT)
    exact_gross_unit = unit_price if tax_included else unit_price * (1 + tax_rate / HUNDRED)
    factor = quantity * (1 - discount_rate / HUNDRED)
    if factor == 0:
        # A 100 % discount makes every price give a zero line; send the converted unit price.
        return round2(exact_gross_unit)

    def amounts(price: Decimal) -> tuple[Decimal, Decimal]:
        line = factus_line_amounts(
            price=price, quantity=quantity, discount_rate=discount_rate, tax_rate=tax_rate
        )
        return line.line, line.taxable

    return nearest_wire_price(erp=erp, factor=factor, exact_unit=exact_gross_unit,
                              amounts=amounts)


class V1Rules(WireRules):
    """Factus v1's checks (see the module docstring)."""

    def check_currency(self, currency: str | None) -> None:
        """``unsupported_currency`` unless COP (§3.1: the v1 payload has no currency field)."""
        if currency is not None and currency.strip().upper() != "COP":
            raise PayloadError(
                "unsupported_currency",
                field="invoice_sales.currency",
                value=currency,
                detail="Factus v1 bills are in COP; the v1 payload has no currency field (§3.1)",
            )

    def check_quantity(self, quantity: Decimal, fail: Fail) -> None:
        """``non_integer_quantity``: v1 accepts whole quantities only (§3.4)."""
        if quantity != quantity.to_integral_value():
            raise fail(
                "non_integer_quantity",
                "qty",
                quantity,
                "Factus v1 accepts whole quantities only (§3.4); a fractional quantity is "
                "refused, not rounded, because rounding would change the amount billed",
            )

    def check_taxes(self, taxes: tuple[LineTax, ...], where: str, label: str) -> None:
        """One tax per line, and only taxes v1 lists (``requires_factus_v2``)."""
        if len(taxes) > 1:
            raise requires_v2(f"{where}.taxes", len(taxes), f"{label}: several taxes on a line")
        if taxes[0].tribute_id is None:
            raise requires_v2(f"{where}.taxes", taxes[0].code, f"{label}: tax {taxes[0].code}")

    def finish_line(self, line: Line, where: str, label: str) -> Line:
        """Choose the tax-included wire price; refuse a price × quantity beyond 13 digits."""
        quantity = int(line.quantity)
        price = _wire_price(
            unit_price=line.unit_price,
            tax_included=line.tax_included,
            quantity=quantity,
            discount_rate=line.discount_rate,
            tax_rate=line.tax_rate,
            erp=line.erp,
        )
        if abs(price * quantity) >= dian.AMOUNT_LIMIT:
            raise PayloadError(
                "amount_too_large",
                field=f"{where}.unit_price",
                value=price * quantity,
                detail=(
                    f"{label}: price × quantity has more than 13 integer digits; Factus carries "
                    "amounts as JSON numbers with 2 decimals, exact only below "
                    "10,000,000,000,000"
                ),
            )
        line.wire_price = price
        return line

    def check_extras(self, document: SalesDocument) -> None:
        """Refuse what only v2 carries (``requires_factus_v2``), and a credit note's bill id."""
        if len(document.payments) > 1:
            raise requires_v2("invoice_payments", len(document.payments),
                              "several means of payment")
        if document.cash_rounding_amount != 0:
            raise requires_v2("invoice_sales.cash_rounding_amount",
                              document.cash_rounding_amount, "cash rounding")
        if document.prepayments:
            raise requires_v2("invoice_sales.prepayments", len(document.prepayments),
                              "prepayments")
        if document.currency is not None:
            raise requires_v2("invoice_sales.display_currency", document.currency.code,
                              "showing the totals in a foreign currency")
        if (document.document_type == DocumentType.CREDIT_NOTE.value
                and document.related_bill_id is None):
            raise PayloadError(
                "missing_related_bill",
                field="related_invoice.bill_id",
                value=document.related_invoice_id,
                detail=(
                    "the corrected invoice has no Factus bill id (data.bill.id of its accepted "
                    "job); a credit note with customization_id 20 needs bill_id (§7.1)"
                ),
            )


#: The rules to build a v1 document with.
V1_RULES = V1Rules()


# --- Mapping the document to the v1 body --------------------------------------------------------


def _wire_number(value: Decimal) -> int | float:
    """A 2-decimal amount as a JSON number: int when whole (``23800``), else float (``0.5``)."""
    rounded = round2(value)
    if rounded == rounded.to_integral_value():
        return int(rounded)
    return float(rounded)


def _rate_text(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _observation(text: str) -> str:
    return wire.truncated(text, dian.OBSERVATION_MAX_CHARS)


def _customer(party: Party) -> JsonDict:
    """``customer`` of FACTUS_API.md §3.3 (the final consumer as DIAN writes it)."""
    body: JsonDict = {
        "identification_document_id": party.identification_document_id,
        "identification": party.identification,
    }
    wire.party_names(party, body)
    body["legal_organization_id"] = party.legal_organization_id
    body["tribute_id"] = party.tribute_id
    if party.municipality_id is not None:
        body["municipality_id"] = party.municipality_id
    return body


def _item(line: Line) -> JsonDict:
    assert line.wire_price is not None, "build the document with V1_RULES"
    body: JsonDict = {
        "code_reference": line.code_reference,
        "name": line.name,
        "quantity": int(line.quantity),
        "discount_rate": _wire_number(line.discount_rate),
        "price": _wire_number(line.wire_price),
        "tax_rate": _rate_text(line.tax_rate),
        "unit_measure_id": line.unit_measure_id,
        "standard_code_id": line.standard_code_id,
        "is_excluded": 1 if line.is_excluded else 0,
        "tribute_id": line.tribute_id,
        "withholding_taxes": [
            {"code": w.code, "withholding_tax_rate": _wire_number(w.rate)}
            for w in line.withholdings
        ],
    }
    if line.note is not None:
        body["note"] = line.note
    return body


def _common(document: SalesDocument, body: JsonDict) -> JsonDict:
    """The parts bills and credit notes share, in the §3.6 / §7.1 order."""
    if document.billing_period is not None:
        body["billing_period"] = wire.billing_period(document.billing_period)
    if document.order_reference is not None:
        body["order_reference"] = wire.order_reference(document.order_reference)
    place = document.establishment
    if place is not None:
        body["establishment"] = {**wire.establishment_contact(place),
                                 "municipality_id": place.municipality_id}
    if document.customer is not None:
        body["customer"] = _customer(document.customer)
    body["items"] = [_item(line) for line in document.lines]
    if document.allowance_charges:
        body["allowance_charges"] = [
            {
                "concept_type": charge.concept_type,
                "is_surcharge": True,
                "reason": charge.reason,
                "base_amount": str(round2(charge.base_amount)),
                "amount": str(round2(charge.amount)),
            }
            for charge in document.allowance_charges
        ]
    return body


def _payment_header(document: SalesDocument) -> tuple[str | None, date | None, str]:
    """(payment_form, due date, method): one ``invoice_payments`` row replaces the columns."""
    if len(document.payments) == 1 and document.payments[0].amount is not None:
        payment = document.payments[0]
        return payment.payment_form, payment.due_date, payment.payment_method_code
    return document.payment_form, document.payment_due_date, document.payment_method_code


def _check_total(document: SalesDocument, body: JsonDict) -> Decimal | None:
    def estimate() -> float:
        return float(sum(item["price"] * item["quantity"] for item in body["items"]) + sum(
            float(charge["amount"]) for charge in body.get("allowance_charges", ())))

    return check_totals(document, factus_total=lambda: factus_payload_total(body),
                        estimate=estimate, tolerance=lambda: total_tolerance(body))


def bill_body(document: SalesDocument) -> JsonDict:
    """The JSON body of ``POST /v1/bills/validate`` (FACTUS_API.md §3) for an invoice document.

    Input: a document built with :data:`V1_RULES`. Output: a dict ready for ``json.dumps``.
    Raises: :class:`PayloadError` ``amount_too_large``, ``total_mismatch`` (the ERP total against
    Factus's, see :func:`einvoice.domain.payload.check_totals`).
    """
    payment_form, due_date, method = _payment_header(document)
    body: JsonDict = {
        "numbering_range_id": document.numbering_range_id,
        "reference_code": document.reference_code,
        "observation": _observation(document.observation),
        "payment_form": payment_form,
    }
    if due_date is not None and payment_form == dian.PAYMENT_FORM_CREDIT:
        body["payment_due_date"] = due_date.isoformat()
    body["payment_method_code"] = method
    if document.operation_type != dian.DEFAULT_OPERATION_TYPE:
        body["operation_type"] = document.operation_type
    body["send_email"] = document.send_email
    _common(document, body)
    _check_total(document, body)
    return body


def credit_note_body(document: SalesDocument) -> JsonDict:
    """The JSON body of ``POST /v1/credit-notes/validate`` (§7.1, ``customization_id`` 20).

    Input: a credit-note document built with :data:`V1_RULES`. Output: a dict; the customer is
    included when the document has one (else Factus takes the bill's). Raises:
    :class:`PayloadError` as :func:`bill_body`, plus ``credit_exceeds_invoice``.
    """
    _, _, method = _payment_header(document)
    body: JsonDict = {
        "numbering_range_id": document.numbering_range_id,
        "correction_concept_code": document.correction_concept_code,
        "customization_id": dian.CREDIT_NOTE_WITH_REFERENCE,
        "bill_id": document.related_bill_id,
        "reference_code": document.reference_code,
        "observation": _observation(document.observation),
        "payment_method_code": method,
        "send_email": document.send_email,
    }
    _common(document, body)
    note_total = _check_total(document, body)
    check_credit_cap(document, factus_payload_total(body) if note_total is None else note_total)
    return body


# --- The two steps in one ------------------------------------------------------------------------


def build_bill_payload(
    invoice: InvoiceData,
    *,
    reference_code: str,
    today: date,
    known_municipality_ids: Container[int],
    known_unit_measure_ids: Container[int] | Mapping[int, str] | None = None,
    known_units: Mapping[int, str] | None = None,
) -> JsonDict:
    """Build the body of ``POST /v1/bills/validate`` from the ERP rows.

    Inputs: as :func:`einvoice.domain.payload.build_document`; ``known_units`` (id → code) or
    ``known_unit_measure_ids`` (ids alone; default the five units Factus v1 documents).
    Output: as :func:`bill_body`. Raises: :class:`PayloadError` for the first rule broken.
    """
    document = build_document(
        invoice, reference_code=reference_code, today=today,
        known_municipality_ids=known_municipality_ids, rules=V1_RULES,
        known_units=_units(known_units, known_unit_measure_ids),
        document_type=DocumentType.INVOICE,
    )
    return bill_body(document)


def build_credit_note_payload(
    invoice: InvoiceData,
    *,
    reference_code: str,
    today: date,
    known_municipality_ids: Container[int],
    known_unit_measure_ids: Container[int] | Mapping[int, str] | None = None,
    known_units: Mapping[int, str] | None = None,
) -> JsonDict:
    """Build the body of ``POST /v1/credit-notes/validate`` from the ERP rows.

    Inputs: as :func:`build_bill_payload`; ``invoice.document_type`` must be
    ``"credit_note"``, its numbering range a credit-note range, and it must carry
    ``correction_concept_code`` (1–6), ``related_bill_id`` (the Factus ``data.bill.id``) and
    ``related_invoice_total``, plus ``related_invoice_credited_total``.
    Output: as :func:`credit_note_body`. Raises: :class:`PayloadError`; besides the bill rules:
    ``missing_correction_concept``, ``unknown_correction_concept``, ``missing_related_bill``,
    ``missing_related_invoice_total`` and ``credit_exceeds_invoice``.
    """
    document = build_document(
        invoice, reference_code=reference_code, today=today,
        known_municipality_ids=known_municipality_ids, rules=V1_RULES,
        known_units=_units(known_units, known_unit_measure_ids),
        document_type=DocumentType.CREDIT_NOTE,
    )
    return credit_note_body(document)


class _IdsAsUnits(Mapping[int, str]):
    """A set of unit ids seen as the id → code mapping the builder takes (codes unknown)."""

    def __init__(self, ids: Container[int]) -> None:
        self._ids = ids

    def __getitem__(self, key: int) -> str:
        if key not in self._ids:
            raise KeyError(key)
        return dian.UNIT_MEASURES[key][0] if key in dian.UNIT_MEASURES else ""

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __iter__(self) -> Any:
        return iter(self._ids)  # type: ignore[call-overload]

    def __len__(self) -> int:
        return len(self._ids)  # type: ignore[arg-type]


def _units(
    known_units: Mapping[int, str] | None, ids: Container[int] | Mapping[int, str] | None
) -> Mapping[int, str] | None:
    if known_units is not None:
        return known_units
    if ids is None or isinstance(ids, Mapping):
        return ids
    return _IdsAsUnits(ids)
