"""Turn an ERP invoice into a Factus v1 validate payload, or refuse it with a precise reason.

Entry points:

* :func:`build_bill_payload` → body of ``POST /v1/bills/validate`` (FACTUS_API.md §3).
* :func:`build_credit_note_payload` → body of ``POST /v1/credit-notes/validate`` (§7.1).
* :func:`factus_line_amounts` / :func:`factus_payload_total` → what Factus will compute from a
  payload (§4.2), used for the total and credit-note checks.

Both builders check the invoice rule by rule in a fixed order and raise the first
:class:`~einvoice.domain.errors.PayloadError`; the order is: document type, reference code,
numbering range, header codes (currency, payment, operation type; for a credit note: correction
concept, related bill), observation, customer, establishment, items (their count, then one by
one, each field in turn), allowance charges, billing period, totals, and for a credit note the
credit cap.

Pre-flight rules for values Factus or DIAN would refuse, or accept wrongly (codes in brackets;
the limits and their sources are in :mod:`einvoice.domain.dian`, "Pre-flight limits"):

* **Numbers.** NaN and ±Infinity, legal in PostgreSQL ``numeric``, are refused wherever they
  appear (``non_finite_number``); a NULL quantity, price or tax rate is refused, not read as 0
  (``missing_quantity``, ``missing_price``, ``missing_tax_rate``). A quantity, unit price, line,
  surcharge or document total of more than 13 integer digits is refused (``amount_too_large``).
* **Tax rates.** An IVA or INC rate DIAN does not define is refused (``unknown_tax_rate``).
* **Texts.** Every text sent is checked for C0/C1 control and bidirectional characters
  (``forbidden_character``; TAB, LF and CR are allowed in the observation, addresses and item
  notes) and for its length (``text_too_long``: 255 characters, 254 for an e-mail); e-mails must
  be one well-formed address (``invalid_email``); identification numbers must fit their document
  type (``invalid_identification``, ``invalid_nit``).
* **Lines.** At most 500 items (``too_many_items``).

Decisions (each is also documented where it is applied):

* **Price.** v1 ``price`` is the unit price with tax included (Decision 7). A net ERP price is
  converted by choosing, among the 2-decimal prices around the ideal one, the one whose §4.2 line
  total is closest to the ERP's own gross line total, then whose taxable amount is closest to the
  ERP's net line (see :func:`_wire_price`). A tax-included price with at most 2 decimals is sent
  unchanged. The basis is the item's ``tax_included``, else the invoice's; when both are NULL
  the item is refused (``missing_tax_included``): a guess would be off by the whole tax.
* **Totals.** When ``invoice_sales.total`` is set, the total Factus will compute (§4.2) must be
  within :func:`total_tolerance` of it (1 COP, plus a cent per unit and per line), else
  ``total_mismatch``: a sale whose items do not add up to the ERP's total is refused rather than
  sent with a different legal total. A credit note's Factus total plus what earlier notes
  credited may not exceed the related bill's Factus total (``credit_exceeds_invoice``).
* **Quantity.** Must be a whole number; ``2.5`` kg is refused (``non_integer_quantity``), never
  rounded, because rounding would change what is billed.
* **Observation.** ``invoice_sales.notes`` longer than 250 characters (DOC1's limit) is
  truncated to 249 characters plus "…" rather than refused: it is free text, and refusing a sale
  for a long note would block invoicing for no fiscal reason. Hidden characters in it are refused
  all the same.
* **Establishment.** Sent only when the invoice has a branch; each field comes from the branch
  and falls back to the organization. Without a branch Factus uses the account's registered
  company data (DOC1: use ``establishment`` "cuando manejes más de un establecimiento").
* **Defaults left to Factus.** ``document`` ("01") and ``operation_type`` "10" are Factus's
  defaults and are omitted, as in the §3.6 example; every other header field is sent.
* **Wire format.** Money and rates that Factus types as float (``price``, ``discount_rate``,
  ``withholding_tax_rate``) are JSON numbers with at most 2 decimals: an ``int`` when whole
  (``23800``, as the examples send), else a ``float`` whose shortest repr is the 2-decimal value
  (exact up to 13 integer digits). ``tax_rate`` is the string ``"19.00"``; allowance
  ``base_amount``/``amount`` are strings ``"90000.00"``, as in DOC1's example.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from einvoice.domain import dian
from einvoice.domain.errors import PayloadError
from einvoice.domain.invoices import (
    AllowanceChargeData,
    BillingPeriodData,
    BranchData,
    CustomerData,
    InvoiceData,
    ItemData,
    NumberingRangeData,
)
from einvoice.domain.jobs import REFERENCE_CODE_MAX_CHARS, DocumentType

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
_ZERO = Decimal(0)
# Colombia has kept UTC-5 without daylight saving since 1993; a fixed offset avoids depending on
# the tz database for the one conversion done here.
BOGOTA = timezone(timedelta(hours=-5), "America/Bogota")
_REFERENCE_CODE_RE = re.compile(r"[A-Za-z0-9._-]+")
_END_OF_DAY = "23:59:59"
# C0 and C1 controls, DEL, the bidirectional marks, embeddings, overrides and isolates (U+061C,
# U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the line/paragraph separators: invisible on the
# PDF and in DIAN's XML, they make a printed name or reference read differently from what is stored
# (the "Trojan Source" reordering, CVE-2021-42574). Free text (observation, addresses, item notes)
# keeps TAB, LF and CR, which a multi-line ERP field legitimately holds.
_BIDI_AND_SEPARATORS = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_FORBIDDEN_IN_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
_FORBIDDEN_IN_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
# One address in RFC 5322 dot-atom form (no leading, trailing or doubled dot in the local part) at
# a domain of letter-digit-hyphen labels (RFC 1035) with an alphabetic top-level label: what a mail
# server delivers to. Lists ("a@x.co; b@y.co"), blanks and a missing domain are refused.
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
# What ERPs write inside identification numbers ("1.020.304.050", "900 825 759").
_ID_SEPARATORS_RE = re.compile(r"[\s.,]")
_DIGITS_ID_RE = re.compile(f"[0-9]{{1,{dian.IDENTIFICATION_DIGITS_MAX}}}")
_PASSPORT_RE = re.compile(f"[A-Za-z0-9]{{1,{dian.IDENTIFICATION_OTHER_MAX}}}")
_OTHER_ID_RE = re.compile(f"[A-Za-z0-9][A-Za-z0-9-]{{0,{dian.IDENTIFICATION_OTHER_MAX - 1}}}")
_PREVIEW_CHARS = 40
# A float estimate of the document total at or above this may reach dian.AMOUNT_LIMIT once
# computed exactly (float rounding is far below a tenth of it).
_AMOUNT_ESTIMATE_BOUND = float(dian.AMOUNT_LIMIT) * 0.9

JsonDict = dict[str, Any]


def round2(value: Decimal) -> Decimal:
    """Round a COP amount or a percentage to 2 decimals, half up (FACTUS_API.md Decision 7)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --- What Factus computes (FACTUS_API.md §4.2) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class FactusLineAmounts:
    """Amounts Factus derives for one item (FACTUS_API.md §4.2), all in COP.

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
    """The document ``total`` Factus will compute for a payload built by this module.

    Input: a bill or credit-note payload (``items`` and optional ``allowance_charges``).
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


# --- Public builders -------------------------------------------------------------------------


def build_bill_payload(
    invoice: InvoiceData,
    *,
    reference_code: str,
    today: date,
    known_municipality_ids: Container[int],
    known_unit_measure_ids: Container[int] = dian.UNIT_MEASURES,
) -> JsonDict:
    """Build the JSON body of ``POST /v1/bills/validate`` for an ERP sales invoice.

    Inputs:
        invoice: the ERP rows (``document_type`` must be ``"invoice"``).
        reference_code: the job's stable Factus ``reference_code`` (≤ 20 characters of
            ``A–Z a–z 0–9 . _ -``; FACTUS_API.md §9, Decision 3).
        today: the current calendar date in Bogotá, to check the numbering range's dates.
        known_municipality_ids: the Factus municipality ids (the ``dian_municipalities`` table,
            loaded by the caller).
        known_unit_measure_ids: accepted ``unit_measure_id`` values; default the five Factus
            documents (:data:`einvoice.domain.dian.UNIT_MEASURES`).
    Output: a dict ready for ``json.dumps`` in the shape of FACTUS_API.md §3 (see the module
    docstring for the wire format).
    Raises: :class:`PayloadError` for the first rule the invoice breaks (see the module docstring
    for the order and the codes in each helper).
    """
    _check_document_type(invoice, DocumentType.INVOICE)
    _check_reference_code(reference_code)
    range_id = _numbering_range_id(invoice.numbering_range, DocumentType.INVOICE, today)
    _check_currency(invoice)
    payment_form, due_date = _payment_form(invoice)
    payment_method = _payment_method(invoice)
    operation_type = _operation_type(invoice)
    observation = _observation(invoice.notes)
    if invoice.customer is None:
        raise PayloadError(
            "missing_customer",
            field="invoice_sales.customer_id",
            value=None,
            detail="the invoice has no customer row; Factus requires a customer (§3.3)",
        )
    customer = _customer_payload(invoice.customer, known_municipality_ids)
    establishment = _establishment_payload(invoice, known_municipality_ids)
    items = _items_payload(invoice, known_unit_measure_ids)
    allowance_charges = _allowance_charges_payload(invoice.allowance_charges)
    billing_period = _billing_period_payload(invoice.billing_period)

    payload: JsonDict = {
        "numbering_range_id": range_id,
        "reference_code": reference_code,
        "observation": observation,
        "payment_form": payment_form,
    }
    if due_date is not None:
        payload["payment_due_date"] = due_date.isoformat()
    payload["payment_method_code"] = payment_method
    if operation_type != dian.DEFAULT_OPERATION_TYPE:
        payload["operation_type"] = operation_type
    payload["send_email"] = bool(invoice.send_email)
    if billing_period is not None:
        payload["billing_period"] = billing_period
    if establishment is not None:
        payload["establishment"] = establishment
    payload["customer"] = customer
    payload["items"] = items
    if allowance_charges:
        payload["allowance_charges"] = allowance_charges

    _check_total(invoice, payload)
    return payload


def build_credit_note_payload(
    invoice: InvoiceData,
    *,
    reference_code: str,
    today: date,
    known_municipality_ids: Container[int],
    known_unit_measure_ids: Container[int] = dian.UNIT_MEASURES,
) -> JsonDict:
    """Build the JSON body of ``POST /v1/credit-notes/validate`` for an ERP credit note.

    Inputs: as :func:`build_bill_payload`; ``invoice.document_type`` must be ``"credit_note"``,
    its numbering range a credit-note range, and it must carry ``correction_concept_code``
    (1–6), ``related_bill_id`` (the Factus ``data.bill.id`` of the corrected invoice, not its
    number) and ``related_invoice_total`` (that bill's Factus ``total``), plus
    ``related_invoice_credited_total`` (COP credited by earlier notes).
    Output: a dict in the §7.1 shape with ``customization_id`` 20 (note referencing an
    e-invoice). The customer is included when the row is present; otherwise Factus takes the
    bill's customer (§7.1).
    Raises: :class:`PayloadError`; besides the bill rules: ``missing_correction_concept``,
    ``unknown_correction_concept``, ``missing_related_bill``, ``missing_related_invoice_total``,
    and ``credit_exceeds_invoice`` when the note's Factus total plus what was already credited
    would exceed the related invoice's total.
    """
    _check_document_type(invoice, DocumentType.CREDIT_NOTE)
    _check_reference_code(reference_code)
    range_id = _numbering_range_id(invoice.numbering_range, DocumentType.CREDIT_NOTE, today)
    concept = _correction_concept(invoice)
    if invoice.related_bill_id is None:
        raise PayloadError(
            "missing_related_bill",
            field="related_invoice.bill_id",
            value=invoice.related_invoice_id,
            detail=(
                "the corrected invoice has no Factus bill id (data.bill.id of its accepted "
                "job); a credit note with customization_id 20 needs bill_id (§7.1)"
            ),
        )
    if invoice.related_invoice_total is None:
        raise PayloadError(
            "missing_related_invoice_total",
            field="related_invoice.total",
            value=None,
            detail="the corrected invoice's total is needed to cap the credit note",
        )
    _check_currency(invoice)
    payment_method = _payment_method(invoice)
    observation = _observation(invoice.notes)
    customer = (
        _customer_payload(invoice.customer, known_municipality_ids)
        if invoice.customer is not None
        else None
    )
    establishment = _establishment_payload(invoice, known_municipality_ids)
    items = _items_payload(invoice, known_unit_measure_ids)
    allowance_charges = _allowance_charges_payload(invoice.allowance_charges)
    billing_period = _billing_period_payload(invoice.billing_period)

    payload: JsonDict = {
        "numbering_range_id": range_id,
        "correction_concept_code": concept,
        "customization_id": dian.CREDIT_NOTE_WITH_REFERENCE,
        "bill_id": invoice.related_bill_id,
        "reference_code": reference_code,
        "observation": observation,
        "payment_method_code": payment_method,
        "send_email": bool(invoice.send_email),
    }
    if billing_period is not None:
        payload["billing_period"] = billing_period
    if establishment is not None:
        payload["establishment"] = establishment
    if customer is not None:
        payload["customer"] = customer
    payload["items"] = items
    if allowance_charges:
        payload["allowance_charges"] = allowance_charges

    note_total = _check_total(invoice, payload)
    _check_credit_cap(invoice, _document_total(payload) if note_total is None else note_total)
    return payload


# --- Header rules ----------------------------------------------------------------------------


def _check_document_type(invoice: InvoiceData, expected: DocumentType) -> None:
    if invoice.document_type != expected.value:
        raise PayloadError(
            "wrong_document_type",
            field="invoice_sales.document_type",
            value=invoice.document_type,
            detail=f"this builder makes {expected.value!r} documents only",
        )


def _check_reference_code(reference_code: str) -> None:
    if (
        not reference_code
        or len(reference_code) > REFERENCE_CODE_MAX_CHARS
        or _REFERENCE_CODE_RE.fullmatch(reference_code) is None
    ):
        raise PayloadError(
            "invalid_reference_code",
            field="electronic_invoicing_jobs.reference_code",
            value=reference_code,
            detail=(
                f"a reference code is 1–{REFERENCE_CODE_MAX_CHARS} characters of A–Z a–z 0–9 . _ - "
                "(it goes into URL paths; FACTUS_API.md §9 advises ≤ 20)"
            ),
        )


def _range_matches(range_document_type: str, expected: DocumentType) -> bool:
    text = range_document_type.strip().casefold()
    return text in {expected.value, expected.numbering_range_document_code}


def _numbering_range_id(
    numbering_range: NumberingRangeData | None, expected: DocumentType, today: date
) -> int:
    """Check the ERP numbering range and return its Factus id (FACTUS_API.md §8.1).

    Order: a range exists, its dates (not yet valid, expired), active, document type, synced
    with Factus, not used up."""
    if numbering_range is None:
        raise PayloadError(
            "no_active_numbering_range",
            field="invoice_sequences",
            value=None,
            detail=f"the organization has no active numbering range for {expected.value}",
        )
    # The resolution's dates come before the active flag: a range that ended is also marked
    # inactive once ``einvoice sync ranges`` has run, and "expired" is the cause the ERP can act
    # on (the same invoice must not change its rule code with the sync's timing).
    if numbering_range.valid_from is not None and today < numbering_range.valid_from:
        raise PayloadError(
            "numbering_range_not_yet_valid",
            field="invoice_sequences.valid_from",
            value=numbering_range.valid_from.isoformat(),
            detail=f"the range only starts on that date; today is {today.isoformat()}",
        )
    if numbering_range.valid_until is not None and today > numbering_range.valid_until:
        raise PayloadError(
            "numbering_range_expired",
            field="invoice_sequences.valid_until",
            value=numbering_range.valid_until.isoformat(),
            detail=f"the range's resolution ended; today is {today.isoformat()}",
        )
    if not numbering_range.is_active:
        raise PayloadError(
            "no_active_numbering_range",
            field="invoice_sequences.is_active",
            value=False,
            detail=f"numbering range {numbering_range.id} is not active",
        )
    if not _range_matches(numbering_range.document_type, expected):
        raise PayloadError(
            "wrong_numbering_range",
            field="invoice_sequences.document_type",
            value=numbering_range.document_type,
            detail=(
                f"a document of type {expected.value!r} needs a range of that type (Factus "
                f"document code {expected.numbering_range_document_code})"
            ),
        )
    if numbering_range.factus_numbering_range_id is None:
        raise PayloadError(
            "numbering_range_not_synced",
            field="invoice_sequences.factus_numbering_range_id",
            value=None,
            detail=(
                f"numbering range {numbering_range.id} has no Factus id; sync the ranges from "
                "GET /v1/numbering-ranges"
            ),
        )
    if (
        numbering_range.current_number is not None
        and numbering_range.range_end is not None
        and numbering_range.current_number > numbering_range.range_end
    ):
        raise PayloadError(
            "numbering_range_exhausted",
            field="invoice_sequences.current_number",
            value=numbering_range.current_number,
            detail=f"past the range's last number, range_end {numbering_range.range_end}",
        )
    return numbering_range.factus_numbering_range_id


def _check_currency(invoice: InvoiceData) -> None:
    if invoice.currency is not None and invoice.currency.strip().upper() != "COP":
        raise PayloadError(
            "unsupported_currency",
            field="invoice_sales.currency",
            value=invoice.currency,
            detail="Factus v1 bills are in COP; the v1 payload has no currency field (§3.1)",
        )


def _bogota_date(value: date) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.date()
        return value.astimezone(BOGOTA).date()
    return value


def _payment_form(invoice: InvoiceData) -> tuple[str, date | None]:
    """Return (payment_form, payment_due_date or None) per FACTUS_API.md §3.1."""
    raw = invoice.payment_form
    form = dian.PAYMENT_FORM_CASH if raw is None or not raw.strip() else raw.strip()
    if form not in dian.PAYMENT_FORMS:
        raise PayloadError(
            "unknown_payment_form",
            field="invoice_sales.payment_form",
            value=raw,
            detail="expected '1' (contado) or '2' (crédito)",
        )
    if form != dian.PAYMENT_FORM_CREDIT:
        return form, None
    if invoice.due_date is None:
        raise PayloadError(
            "missing_payment_due_date",
            field="invoice_sales.due_date",
            value=None,
            detail="a credit sale (payment_form '2') needs a payment due date (§3.1)",
        )
    due_date = _bogota_date(invoice.due_date)
    if invoice.issue_date is not None and due_date < _bogota_date(invoice.issue_date):
        raise PayloadError(
            "invalid_payment_due_date",
            field="invoice_sales.due_date",
            value=due_date.isoformat(),
            detail=(f"the due date is before the issue date {_bogota_date(invoice.issue_date)}"),
        )
    return form, due_date


def _payment_method(invoice: InvoiceData) -> str:
    raw = invoice.payment_method_code
    code = (
        dian.DEFAULT_PAYMENT_METHOD_CODE if raw is None or not raw.strip() else raw.strip().upper()
    )
    if code not in dian.PAYMENT_METHODS:
        raise PayloadError(
            "unknown_payment_method",
            field="invoice_sales.payment_method_code",
            value=raw,
            detail=f"expected one of {', '.join(dian.PAYMENT_METHODS)} (DOC1 tablas)",
        )
    return code


def _operation_type(invoice: InvoiceData) -> str:
    raw = invoice.operation_type
    code = dian.DEFAULT_OPERATION_TYPE if raw is None or not raw.strip() else raw.strip()
    if code not in dian.OPERATION_TYPES:
        raise PayloadError(
            "unknown_operation_type",
            field="invoice_sales.operation_type",
            value=raw,
            detail=f"expected one of {', '.join(dian.OPERATION_TYPES)} (DOC1 tablas)",
        )
    if code == dian.MANDATE_OPERATION_TYPE:
        raise PayloadError(
            "unsupported_operation_type",
            field="invoice_sales.operation_type",
            value=raw,
            detail=(
                "operation type 11 (mandatos) needs items[].scheme_id and mandate, which the "
                "ERP items do not carry (§3.4)"
            ),
        )
    return code


def _correction_concept(invoice: InvoiceData) -> int:
    code = invoice.correction_concept_code
    if code is None:
        raise PayloadError(
            "missing_correction_concept",
            field="invoice_sales.correction_concept_code",
            value=None,
            detail="a credit note needs a correction concept 1–6 (§7.1)",
        )
    if code not in dian.CORRECTION_CONCEPTS:
        raise PayloadError(
            "unknown_correction_concept",
            field="invoice_sales.correction_concept_code",
            value=code,
            detail="expected 1–6 (DOC1 tablas 'Códigos de corrección')",
        )
    return code


def _observation(notes: str | None) -> str:
    # Decision (module docstring): truncate a long note, do not refuse it; hidden characters are
    # refused all the same, as in every text.
    text = _text(notes or "", "invoice_sales.notes", max_chars=len(notes or ""), multiline=True)
    if len(text) <= dian.OBSERVATION_MAX_CHARS:
        return text
    return text[: dian.OBSERVATION_MAX_CHARS - 1] + "…"


# --- Customer --------------------------------------------------------------------------------


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _preview(text: str) -> str:
    """A long text shortened for an error message (its length is in the detail)."""
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


def _text(
    value: str, field: str, *, max_chars: int = dian.TEXT_MAX_CHARS, multiline: bool = False
) -> str:
    """Check one ERP text for control/bidirectional characters and length; return it stripped.

    Inputs: the column's text, its ``field`` path for the error, the most characters allowed
    (default :data:`einvoice.domain.dian.TEXT_MAX_CHARS`, the limit chosen where Factus documents
    none), and whether TAB/LF/CR are allowed (free text). Output: the text without outer blanks.
    Raises: :class:`PayloadError` ``forbidden_character`` (naming the code point and its position)
    or ``text_too_long``.
    """
    text = value.strip()
    # str.isprintable() is false for every forbidden character (categories Cc, Cf, Zl, Zp): a
    # C-speed pass that spares the regex on the usual, plain text.
    found = (
        None
        if text.isprintable()
        else (_FORBIDDEN_IN_TEXT if multiline else _FORBIDDEN_IN_LINE).search(text)
    )
    if found is not None:
        char = found.group()
        name = unicodedata.name(char, "control character")
        raise PayloadError(
            "forbidden_character",
            field=field,
            value=_preview(text),
            detail=(
                f"U+{ord(char):04X} ({name}) at character {found.start() + 1}: control and "
                "bidirectional characters are invisible on the document and can make it read "
                "differently from what is stored; remove it from the ERP row"
            ),
        )
    if len(text) > max_chars:
        raise PayloadError(
            "text_too_long",
            field=field,
            value=_preview(text),
            detail=f"{len(text)} characters, more than the {max_chars} allowed for this field",
        )
    return text


def _email(value: str, field: str) -> str:
    """Check one e-mail address (see ``_EMAIL_RE``; RFC 5321 lengths); return it stripped.

    Raises: :class:`PayloadError` ``forbidden_character``, ``text_too_long`` (over 254
    characters) or ``invalid_email``.
    """
    text = _text(value, field, max_chars=dian.EMAIL_MAX_CHARS)
    if (
        _EMAIL_RE.fullmatch(text) is None
        or text.index("@") > dian.EMAIL_LOCAL_MAX_CHARS
    ):
        raise PayloadError(
            "invalid_email",
            field=field,
            value=text,
            detail=(
                "expected one address such as nombre@empresa.com.co: no blanks, one '@', no "
                "list of addresses, a domain with a dot (RFC 5322 dot-atom, RFC 5321 lengths)"
            ),
        )
    return text


def _identification(document_id: int, raw: str) -> str:
    """Check a non-NIT identification number against its document type; return it cleaned.

    Input: the Factus ``identification_document_id`` and ``customers.identification_number``.
    Output: the number without the dots, commas and blanks ERPs write. Rule
    (:data:`einvoice.domain.dian.DIGITS_ONLY_DOCUMENTS`): TI, CC and NUIP are 1–15 digits; a
    passport 1–20 letters and digits; the other documents 1–20 letters, digits and hyphens.
    Raises: :class:`PayloadError` ``forbidden_character`` or ``invalid_identification``.
    """
    field = "customers.identification_number"
    number = _ID_SEPARATORS_RE.sub("", _text(raw, field))
    if document_id in dian.DIGITS_ONLY_DOCUMENTS:
        pattern, rule = _DIGITS_ID_RE, f"digits only, at most {dian.IDENTIFICATION_DIGITS_MAX}"
    elif document_id == dian.PASSPORT_DOCUMENT_ID:
        pattern = _PASSPORT_RE
        rule = f"letters and digits only, at most {dian.IDENTIFICATION_OTHER_MAX}"
    else:
        pattern = _OTHER_ID_RE
        rule = f"letters, digits and hyphens, at most {dian.IDENTIFICATION_OTHER_MAX}"
    if pattern.fullmatch(number) is None:
        raise PayloadError(
            "invalid_identification",
            field=field,
            value=raw,
            detail=(
                f"a {dian.IDENTIFICATION_DOCUMENTS[document_id][1]} number is {rule} "
                "(dots and blanks are removed first)"
            ),
        )
    return number


def _nit_and_dv(customer: CustomerData, raw: str) -> tuple[str, int]:
    """Clean a NIT, compute its DV with python-stdnum, and check any DV the ERP stored."""
    text = _ID_SEPARATORS_RE.sub("", _text(raw, "customers.identification_number"))
    number, hyphen, embedded = text.partition("-")
    if (
        _DIGITS_ID_RE.fullmatch(number) is None
        or int(number) == 0
        or (hyphen and re.fullmatch(r"[0-9]", embedded) is None)
    ):
        raise PayloadError(
            "invalid_nit",
            field="customers.identification_number",
            value=raw,
            detail=(
                f"a NIT is 1–{dian.IDENTIFICATION_DIGITS_MAX} digits, optionally followed by '-' "
                "and its check digit"
            ),
        )
    computed = dian.nit_check_digit(number)
    if hyphen and int(embedded) != computed:
        raise PayloadError(
            "invalid_dv",
            field="customers.identification_number",
            value=raw,
            detail=(
                f"the check digit after the hyphen is {embedded}, but NIT {number} has check "
                f"digit {computed} (python-stdnum); DIAN would reject it (FAK24)"
            ),
        )
    if customer.dv is not None and customer.dv != computed:
        raise PayloadError(
            "invalid_dv",
            field="customers.dv",
            value=customer.dv,
            detail=(
                f"NIT {number} has check digit {computed} (python-stdnum), not {customer.dv}; "
                "DIAN would reject it (FAK24)"
            ),
        )
    return number, computed


def _customer_payload(customer: CustomerData, known_municipality_ids: Container[int]) -> JsonDict:
    """Map ``customers`` to Factus ``customer`` (FACTUS_API.md §3.3; seed 002 "Mapeo de Datos")."""
    document_id = dian.identification_document_id(customer.identification_type)
    if document_id is None:
        raise PayloadError(
            "unknown_identification_type",
            field="customers.identification_type",
            value=customer.identification_type,
            detail=(
                "expected CC, NIT, CE, TI, PP, RC, TE, DIE, PEP, NIT_EXT, NUIP or a DIAN code "
                "(13, 31, ...)"
            ),
        )
    raw_number = customer.identification_number
    if raw_number is None or _blank(raw_number):
        raise PayloadError(
            "missing_identification",
            field="customers.identification_number",
            value=raw_number,
            detail="Factus requires the customer's identification number (§3.3)",
        )
    payload: JsonDict = {"identification_document_id": document_id}
    if document_id == dian.NIT_DOCUMENT_ID:
        number, dv = _nit_and_dv(customer, raw_number)
        payload["identification"] = number
        # Factus types dv as int but its examples send "3"; a missing DV is filled, not left
        # for Factus to compute, so the stored payload shows what was sent.
        payload["dv"] = str(dv)
    else:
        payload["identification"] = _identification(document_id, raw_number)

    legal_organization = (
        customer.legal_organization_id
        if customer.legal_organization_id is not None
        else dian.default_legal_organization_id(customer.company_name)
    )
    if legal_organization not in dian.LEGAL_ORGANIZATIONS:
        raise PayloadError(
            "unknown_legal_organization",
            field="customers.legal_organization_id",
            value=customer.legal_organization_id,
            detail="expected 1 (persona jurídica) or 2 (persona natural)",
        )
    if legal_organization == dian.LEGAL_PERSON:
        if customer.company_name is None or _blank(customer.company_name):
            raise PayloadError(
                "missing_company_name",
                field="customers.company_name",
                value=customer.company_name,
                detail="a legal person (legal_organization_id 1) needs a razón social (§3.3)",
            )
        payload["company"] = _text(customer.company_name, "customers.company_name")
    else:
        parts = (
            _text(value, f"customers.{column}")
            for column, value in (
                ("first_name", customer.first_name),
                ("last_name", customer.last_name),
            )
            if value is not None
        )
        names = " ".join(part for part in parts if part)
        if len(names) > dian.TEXT_MAX_CHARS:
            raise PayloadError(
                "text_too_long",
                field="customers.first_name",
                value=_preview(names),
                detail=(
                    f"first and last name together are {len(names)} characters, more than "
                    f"the {dian.TEXT_MAX_CHARS} allowed for Factus customer.names"
                ),
            )
        if not names:
            raise PayloadError(
                "missing_customer_name",
                field="customers.first_name",
                value=customer.first_name,
                detail="a natural person (legal_organization_id 2) needs first or last name",
            )
        payload["names"] = names
    for column in ("trade_name", "address", "email", "phone"):
        value = getattr(customer, column)
        if not _blank(value):
            field = f"customers.{column}"
            payload[column] = (
                _email(value, field)
                if column == "email"
                else _text(value, field, multiline=column == "address")
            )

    tribute_id = (
        customer.tribute_id if customer.tribute_id is not None else dian.DEFAULT_CUSTOMER_TRIBUTE_ID
    )
    if tribute_id not in dian.CUSTOMER_TRIBUTES:
        raise PayloadError(
            "unknown_customer_tribute",
            field="customers.tribute_id",
            value=customer.tribute_id,
            detail="expected 18 (IVA) or 21 (No aplica) (DOC1 tablas 'IDs de tributos clientes')",
        )
    payload["legal_organization_id"] = legal_organization
    payload["tribute_id"] = tribute_id
    if customer.municipality_id is not None:
        _check_municipality(
            customer.municipality_id, "customers.municipality_id", known_municipality_ids
        )
        payload["municipality_id"] = customer.municipality_id
    return payload


def _check_municipality(
    municipality_id: int, field: str, known_municipality_ids: Container[int]
) -> None:
    if municipality_id not in known_municipality_ids:
        raise PayloadError(
            "unknown_municipality",
            field=field,
            value=municipality_id,
            detail="not a Factus municipality id (GET /v1/municipalities; dian_municipalities)",
        )


# --- Establishment ---------------------------------------------------------------------------


def _establishment_payload(
    invoice: InvoiceData, known_municipality_ids: Container[int]
) -> JsonDict | None:
    """Map ``branches`` (falling back to ``organizations`` per field) to ``establishment`` (§3.2)."""
    branch: BranchData | None = invoice.branch
    if branch is None:
        return None
    organization = invoice.organization
    payload: JsonDict = {}
    for column, key in (
        ("name", "name"),
        ("address", "address"),
        ("phone", "phone_number"),
        ("email", "email"),
    ):
        value = getattr(branch, column)
        field = f"branches.{column}"
        if _blank(value):
            value = getattr(organization, column)
            field = f"organizations.{column}"
        if _blank(value):
            raise PayloadError(
                "incomplete_establishment",
                field=f"branches.{column}",
                value=getattr(branch, column),
                detail=f"neither the branch nor organization {organization.id} has {column} set",
            )
        payload[key] = (
            _email(value, field)
            if column == "email"
            else _text(value, field, multiline=column == "address")
        )
    municipality_id = branch.municipality_id
    field = "branches.municipality_id"
    if municipality_id is None:
        municipality_id = organization.municipality_id
        field = "organizations.municipality_id"
    if municipality_id is None:
        raise PayloadError(
            "incomplete_establishment",
            field="branches.municipality_id",
            value=None,
            detail=(
                f"neither the branch nor organization {organization.id} has municipality_id set"
            ),
        )
    _check_municipality(municipality_id, field, known_municipality_ids)
    payload["municipality_id"] = municipality_id
    return payload


# --- Items -----------------------------------------------------------------------------------


def _as_decimal(value: object, field: str) -> Decimal:
    """A NUMERIC column's value as a finite Decimal.

    Raises: :class:`PayloadError` ``non_finite_number`` for NaN or ±Infinity, which PostgreSQL's
    ``numeric`` stores but no amount, quantity or rate can be; ``TypeError`` for a float or
    ``None`` (the repositories hand NUMERIC over as Decimal, and callers check NULL first with
    their own rule code: a float would leak binary fractions into money).
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"{field} must be a Decimal, got {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise PayloadError(
            "non_finite_number",
            field=field,
            value=str(number),
            detail=(
                "NaN and Infinity are legal in a PostgreSQL numeric column but are not an "
                "amount, quantity or rate; write the real number in the ERP row"
            ),
        )
    return number


def _check_amount_limit(value: Decimal, field: str, what: str) -> None:
    """Refuse an amount or quantity of more than 13 integer digits (:data:`dian.AMOUNT_LIMIT`)."""
    if abs(value) >= dian.AMOUNT_LIMIT:
        raise PayloadError(
            "amount_too_large",
            field=field,
            value=value,
            detail=(
                f"{what} has more than 13 integer digits; Factus carries amounts as JSON numbers "
                "with 2 decimals, exact only below 10,000,000,000,000"
            ),
        )


def _has_more_than_2_decimals(value: Decimal) -> bool:
    return value != value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class _ErpLine:
    """The ERP's own line amounts (COP): net of tax, tax, and gross (net + tax)."""

    net: Decimal
    tax: Decimal
    gross: Decimal


def _erp_line(base_line: Decimal, tax_rate: Decimal, *, tax_included: bool) -> _ErpLine:
    """The line as a conventional ERP computes it: round the line, then the tax, per line.

    ``base_line`` is ``unit_price × qty`` minus the discount, on the basis of ``unit_price``.
    """
    factor = 1 + tax_rate / HUNDRED
    if tax_included:
        gross = round2(base_line)
        net = round2(gross / factor)
        return _ErpLine(net=net, tax=gross - net, gross=gross)
    net = round2(base_line)
    tax = round2(net * tax_rate / HUNDRED)
    return _ErpLine(net=net, tax=tax, gross=net + tax)


def _wire_price(
    *,
    unit_price: Decimal,
    tax_included: bool,
    quantity: int,
    discount_rate: Decimal,
    tax_rate: Decimal,
    erp: _ErpLine,
) -> Decimal:
    """Choose the 2-decimal tax-included unit price to send (Decision 7, FACTUS_API.md §4.2).

    A tax-included ERP price with at most 2 decimals is sent as is. Otherwise the candidates are
    the 2-decimal prices around ``erp.gross / (quantity × (1 − discount_rate/100))``; the winner
    is the one whose §4.2 ``line`` is closest to the ERP's gross line, then whose ``taxable`` is
    closest to the ERP's net line, then closest to the exact gross unit price. Because ``line``
    grows linearly with the price, the nearest candidate to that quotient is optimal for the
    line, and the line error is at most half a cent per unit of quantity.
    """
    if tax_included and not _has_more_than_2_decimals(unit_price):
        return unit_price.quantize(CENT)
    exact_gross_unit = unit_price if tax_included else unit_price * (1 + tax_rate / HUNDRED)
    factor = quantity * (1 - discount_rate / HUNDRED)
    if factor == 0:
        # A 100 % discount makes every price give a zero line; send the converted unit price.
        return round2(exact_gross_unit)
    centre = (erp.gross / factor).quantize(CENT, rounding=ROUND_FLOOR)
    candidates = [centre + step * CENT for step in (-1, 0, 1, 2)]

    def score(price: Decimal) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        amounts = factus_line_amounts(
            price=price, quantity=quantity, discount_rate=discount_rate, tax_rate=tax_rate
        )
        return (
            abs(amounts.line - erp.gross),
            abs(amounts.taxable - erp.net),
            abs(price - exact_gross_unit),
            price,
        )

    return min((price for price in candidates if price >= 0), key=score)


def _wire_number(value: Decimal) -> int | float:
    """A 2-decimal amount as a JSON number: int when whole (``23800``), else float (``0.5``)."""
    rounded = round2(value)
    if rounded == rounded.to_integral_value():
        return int(rounded)
    return float(rounded)


def _rate_text(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _items_payload(invoice: InvoiceData, known_unit_measure_ids: Container[int]) -> list[JsonDict]:
    if not invoice.items:
        raise PayloadError(
            "no_items",
            field="invoice_items",
            value=0,
            detail="the invoice has no items; Factus requires at least one (§3.4)",
        )
    if len(invoice.items) > dian.MAX_ITEMS:
        raise PayloadError(
            "too_many_items",
            field="invoice_items",
            value=len(invoice.items),
            detail=(
                f"at most {dian.MAX_ITEMS} lines per document (a limit einvoice sets: Factus "
                "documents none, and the call waits for DIAN); split the sale into several "
                "invoices"
            ),
        )
    return [
        _item_payload(index, item, invoice, known_unit_measure_ids)
        for index, item in enumerate(invoice.items)
    ]


def _item_payload(
    index: int, item: ItemData, invoice: InvoiceData, known_unit_measure_ids: Container[int]
) -> JsonDict:
    """Map one ``invoice_items`` row to a Factus item (FACTUS_API.md §3.4)."""
    where = f"invoice_items[{index}]"
    label = f"item {index + 1} ({item.description!r})"

    def fail(code: str, column: str, value: object, detail: str) -> PayloadError:
        return PayloadError(
            code, field=f"{where}.{column}", value=value, detail=f"{label}: {detail}"
        )

    if item.description is None or _blank(item.description):
        raise fail("missing_item_name", "description", item.description, "Factus needs a name")
    name = _text(item.description, f"{where}.description")
    # code_reference falls back to the product's sku, then to its id.
    if item.code_reference is not None and item.code_reference.strip():
        code_reference = _text(item.code_reference, f"{where}.code_reference")
    elif item.product_sku is not None and item.product_sku.strip():
        code_reference = _text(item.product_sku, "products.sku")
    elif item.product_id is not None:
        code_reference = str(item.product_id)
    else:
        raise fail(
            "missing_code_reference",
            "code_reference",
            None,
            "no code_reference, product sku or product_id to send as code_reference",
        )
    note = (
        _text(item.note, f"{where}.note", multiline=True)
        if item.note is not None and not _blank(item.note)
        else None
    )

    for column, value, what in (
        ("qty", item.qty, "a quantity"),
        ("unit_price", item.unit_price, "a price"),
        ("tax_rate", item.tax_rate, "a tax rate"),
    ):
        if value is None:
            # NULL is not zero: a free item or an untaxed one is written as 0 in the ERP.
            raise fail(
                f"missing_{'quantity' if column == 'qty' else column.removeprefix('unit_')}",
                column,
                None,
                f"the line has no {column}; {what} is required and NULL is not read as 0",
            )
    qty = _as_decimal(item.qty, f"{where}.qty")
    if qty != qty.to_integral_value():
        raise fail(
            "non_integer_quantity",
            "qty",
            qty,
            "Factus v1 accepts whole quantities only (§3.4); a fractional quantity is refused, "
            "not rounded, because rounding would change the amount billed",
        )
    if qty <= 0:
        raise fail("non_positive_quantity", "qty", qty, "the quantity must be at least 1")
    _check_amount_limit(qty, f"{where}.qty", f"{label}: the quantity")
    quantity = int(qty)

    unit_price = _as_decimal(item.unit_price, f"{where}.unit_price")
    if unit_price < 0:
        raise fail("negative_amount", "unit_price", unit_price, "a price cannot be negative")
    _check_amount_limit(unit_price, f"{where}.unit_price", f"{label}: the unit price")

    tax_rate = _as_decimal(item.tax_rate, f"{where}.tax_rate")
    if tax_rate < 0 or tax_rate >= HUNDRED or _has_more_than_2_decimals(tax_rate):
        raise fail(
            "invalid_tax_rate",
            "tax_rate",
            tax_rate,
            "a tax rate is a percentage from 0 to under 100 with at most 2 decimals",
        )
    if item.is_excluded and tax_rate != 0:
        raise fail(
            "invalid_tax_rate",
            "tax_rate",
            tax_rate,
            "the item is excluded from IVA (is_excluded), so its tax rate must be 0",
        )

    tax_included = item.tax_included if item.tax_included is not None else invoice.tax_included
    if tax_included is None:
        raise fail(
            "missing_tax_included",
            "tax_included",
            None,
            "neither the item nor invoice_sales.tax_included says whether unit_price includes "
            "tax; Factus v1 needs the tax-included price, so guessing could bill 19 % too much "
            "or too little",
        )

    discount_rate, base_line = _discount(item, unit_price, quantity, where, fail)

    unit_measure_id = (
        item.unit_measure_id if item.unit_measure_id is not None else dian.DEFAULT_UNIT_MEASURE_ID
    )
    if unit_measure_id not in known_unit_measure_ids:
        raise fail(
            "unknown_unit_measure",
            "unit_measure_id",
            item.unit_measure_id,
            "not a known Factus measurement unit id (GET /v1/measurement-units: 70 unidad, "
            "414 kilogramo, 449 libra, 512 metro, 874 galón)",
        )
    standard_code_id = (
        item.standard_code_id
        if item.standard_code_id is not None
        else dian.DEFAULT_STANDARD_CODE_ID
    )
    if standard_code_id not in dian.STANDARD_CODES:
        raise fail(
            "unknown_standard_code",
            "standard_code_id",
            item.standard_code_id,
            "expected 1 (estándar del contribuyente), 2 (UNSPSC), 3 (partida) or 4 (GTIN)",
        )
    tribute_id = item.tribute_id if item.tribute_id is not None else dian.DEFAULT_PRODUCT_TRIBUTE_ID
    if tribute_id not in dian.PRODUCT_TRIBUTES:
        raise fail(
            "unknown_product_tribute",
            "tribute_id",
            item.tribute_id,
            "not a Factus product tribute id (GET /v1/tributes/products: 1–17)",
        )
    allowed_rates = dian.TAX_RATES_BY_TRIBUTE.get(tribute_id)
    if allowed_rates is not None and tax_rate not in allowed_rates:
        tribute_name = dian.PRODUCT_TRIBUTES[tribute_id][1]
        raise fail(
            "unknown_tax_rate",
            "tax_rate",
            tax_rate,
            f"DIAN defines {tribute_name} at "
            f"{', '.join(str(rate) for rate in sorted(allowed_rates))} % only (Anexo Técnico "
            f"1.9, tarifas por impuesto); check the rate, or the item's tribute_id {tribute_id}",
        )
    withholding_taxes = _withholding_payload(item, where, label)

    erp = _erp_line(base_line, tax_rate, tax_included=tax_included)
    price = _wire_price(
        unit_price=unit_price,
        tax_included=tax_included,
        quantity=quantity,
        discount_rate=discount_rate,
        tax_rate=tax_rate,
        erp=erp,
    )
    _check_amount_limit(price * quantity, f"{where}.unit_price", f"{label}: price × quantity")
    payload: JsonDict = {
        "code_reference": code_reference,
        "name": name,
        "quantity": quantity,
        "discount_rate": _wire_number(discount_rate),
        "price": _wire_number(price),
        "tax_rate": _rate_text(tax_rate),
        "unit_measure_id": unit_measure_id,
        "standard_code_id": standard_code_id,
        "is_excluded": 1 if item.is_excluded else 0,
        "tribute_id": tribute_id,
        "withholding_taxes": withholding_taxes,
    }
    if note is not None:
        payload["note"] = note
    return payload


def _discount(
    item: ItemData,
    unit_price: Decimal,
    quantity: int,
    where: str,
    fail: Callable[[str, str, object, str], PayloadError],
) -> tuple[Decimal, Decimal]:
    """Return (discount_rate to send, the ERP's discounted line on unit_price's basis).

    ``invoice_items.discount_rate`` wins when set and non-zero; otherwise the rate is derived
    from ``discount_amount`` as ``amount / (unit_price × qty) × 100`` rounded to 2 decimals (Factus
    allows 2, §3.4), while the ERP line keeps the exact amount so the price conversion aims at
    what the ERP charged.
    """
    undiscounted = unit_price * quantity
    if item.discount_rate is not None and item.discount_rate != 0:
        rate = _as_decimal(item.discount_rate, f"{where}.discount_rate")
        if rate < 0 or rate > HUNDRED or _has_more_than_2_decimals(rate):
            raise fail(
                "invalid_discount_rate",
                "discount_rate",
                rate,
                "a discount rate is a percentage from 0 to 100 with at most 2 decimals",
            )
        return rate, undiscounted * (1 - rate / HUNDRED)
    if item.discount_amount is not None and item.discount_amount != 0:
        amount = _as_decimal(item.discount_amount, f"{where}.discount_amount")
        if amount < 0:
            raise fail("negative_amount", "discount_amount", amount, "a discount is not negative")
        if amount > undiscounted:
            raise fail(
                "invalid_discount_amount",
                "discount_amount",
                amount,
                f"the discount exceeds the line's value {undiscounted} (unit_price × qty)",
            )
        return round2(amount / undiscounted * HUNDRED), undiscounted - amount
    return _ZERO, undiscounted


def _withholding_payload(item: ItemData, where: str, label: str) -> list[JsonDict]:
    """Map ``invoice_items.withholding_taxes`` to Factus ``withholding_taxes`` (§3.4)."""
    entries: list[JsonDict] = []
    seen: set[str] = set()
    for position, withholding in enumerate(item.withholding_taxes):
        field = f"{where}.withholding_taxes[{position}]"
        code = dian.withholding_tax_code(withholding.code)
        if code is None:
            raise PayloadError(
                "unknown_withholding_tax",
                field=f"{field}.code",
                value=withholding.code,
                detail=f"{label}: expected 05 ReteIVA, 06 ReteRenta (ReteFuente) or 07 ReteICA",
            )
        if code in seen:
            raise PayloadError(
                "duplicate_withholding_tax",
                field=f"{field}.code",
                value=withholding.code,
                detail=f"{label}: withholding {code} appears twice on the same item",
            )
        seen.add(code)
        rate = _as_decimal(withholding.rate, f"{field}.withholding_tax_rate")
        if rate <= 0 or rate > HUNDRED or _has_more_than_2_decimals(rate):
            raise PayloadError(
                "invalid_withholding_rate",
                field=f"{field}.withholding_tax_rate",
                value=rate,
                detail=(
                    f"{label}: a withholding rate is a percentage above 0 and up to 100 with at "
                    "most 2 decimals (§3.4)"
                ),
            )
        entries.append({"code": code, "withholding_tax_rate": _wire_number(rate)})
    return entries


# --- Allowance charges and billing period ------------------------------------------------------


def _allowance_charges_payload(charges: Sequence[AllowanceChargeData]) -> list[JsonDict]:
    """Map ``invoice_sales.allowance_charges`` to Factus ``allowance_charges`` (§3.5)."""
    entries: list[JsonDict] = []
    for position, charge in enumerate(charges):
        where = f"invoice_sales.allowance_charges[{position}]"
        concept = charge.concept_type.strip()
        if concept not in dian.ALLOWANCE_CONCEPTS:
            raise PayloadError(
                "unsupported_allowance_concept",
                field=f"{where}.concept_type",
                value=charge.concept_type,
                detail="Factus v1 accepts only concept 03 (recargo condicionado); 00–02 are "
                "'disponible próximamente' (DOC1 tablas)",
            )
        if not charge.is_surcharge:
            raise PayloadError(
                "unsupported_allowance_charge",
                field=f"{where}.is_surcharge",
                value=False,
                detail="concept 03 is a surcharge; Factus v1 has no invoice-level discount "
                "(put discounts on the items' discount_rate)",
            )
        if _blank(charge.reason):
            raise PayloadError(
                "missing_allowance_reason",
                field=f"{where}.reason",
                value=charge.reason,
                detail="Factus requires the reason of a surcharge (§3.5)",
            )
        reason = _text(charge.reason, f"{where}.reason")
        base_amount = _as_decimal(charge.base_amount, f"{where}.base_amount")
        amount = _as_decimal(charge.amount, f"{where}.amount")
        for column, value in (("base_amount", base_amount), ("amount", amount)):
            if value < 0:
                raise PayloadError(
                    "negative_amount",
                    field=f"{where}.{column}",
                    value=value,
                    detail="a surcharge amount cannot be negative",
                )
            _check_amount_limit(value, f"{where}.{column}", f"the surcharge's {column}")
        entries.append(
            {
                "concept_type": concept,
                "is_surcharge": True,
                "reason": reason,
                "base_amount": str(round2(base_amount)),
                "amount": str(round2(amount)),
            }
        )
    return entries


def _billing_period_payload(period: BillingPeriodData | None) -> JsonDict | None:
    """Map ``invoice_sales.billing_period`` to Factus ``billing_period`` (§3.1).

    ``end_time`` is required by the bill docs; a period stored with dates only covers whole
    days, so a missing end time is sent as 23:59:59 and a missing start time is left out.
    """
    if period is None:
        return None
    starts = datetime.combine(period.start_date, period.start_time or time.min)
    ends = datetime.combine(period.end_date, period.end_time or time.max)
    if starts > ends:
        raise PayloadError(
            "invalid_billing_period",
            field="invoice_sales.billing_period.end_date",
            value=period.end_date.isoformat(),
            detail=f"the period ends before it starts ({starts.isoformat(sep=' ')})",
        )
    payload: JsonDict = {"start_date": period.start_date.isoformat()}
    if period.start_time is not None:
        payload["start_time"] = period.start_time.strftime("%H:%M:%S")
    payload["end_date"] = period.end_date.isoformat()
    payload["end_time"] = (
        period.end_time.strftime("%H:%M:%S") if period.end_time is not None else _END_OF_DAY
    )
    return payload


# --- Totals ----------------------------------------------------------------------------------


def total_tolerance(payload: Mapping[str, Any]) -> Decimal:
    """How far the ERP total may sit from Factus's total and still be the same sale (COP).

    One peso, plus a cent per unit of quantity and per line: the price conversion moves a line
    by at most half a cent per unit (see :func:`_wire_price`), per-line tax rounding by a cent
    per line, and ERPs that round the document total to whole pesos move it by half a peso.
    """
    units = sum(int(item["quantity"]) for item in payload["items"])
    return Decimal("1.00") + CENT * (units + len(payload["items"]))


def _document_total(payload: Mapping[str, Any]) -> Decimal:
    """The payload's Factus total (§4.2), refused when beyond the digits Factus carries."""
    factus_total = factus_payload_total(payload)
    _check_amount_limit(factus_total, "invoice_sales.total", "the document total Factus computes")
    return factus_total


def _check_total(invoice: InvoiceData, payload: Mapping[str, Any]) -> Decimal | None:
    """Check the ERP's totals against the payload; return the Factus total when computed.

    Without an ERP total, the exact Factus total (a Decimal pass over every line) is computed only
    when a float upper bound of it (Σ price × quantity + surcharges, before discounts) comes near
    :data:`dian.AMOUNT_LIMIT`: the common sale pays for one sum of floats, not for §4.2 twice.
    """
    # The ERP's other totals are not sent, but a NaN there is a corrupt row all the same.
    for column in ("subtotal", "tax_total"):
        value = getattr(invoice, column)
        if value is not None:
            _as_decimal(value, f"invoice_sales.{column}")
    if invoice.total is None:
        estimate = sum(item["price"] * item["quantity"] for item in payload["items"]) + sum(
            float(charge["amount"]) for charge in payload.get("allowance_charges", ())
        )
        if estimate >= _AMOUNT_ESTIMATE_BOUND:
            return _document_total(payload)
        return None
    factus_total = _document_total(payload)
    erp_total = _as_decimal(invoice.total, "invoice_sales.total")
    if erp_total < 0:
        raise PayloadError(
            "negative_amount",
            field="invoice_sales.total",
            value=erp_total,
            detail="a document total cannot be negative",
        )
    tolerance = total_tolerance(payload)
    if abs(factus_total - erp_total) > tolerance:
        raise PayloadError(
            "total_mismatch",
            field="invoice_sales.total",
            value=erp_total,
            detail=(
                f"the items and surcharges add up to {factus_total} as Factus computes them "
                f"(§4.2), {factus_total - erp_total:+} from this total, beyond the rounding "
                f"tolerance {tolerance}"
            ),
        )
    return factus_total


def _check_credit_cap(invoice: InvoiceData, note_total: Decimal) -> None:
    related_total = _as_decimal(invoice.related_invoice_total, "related_invoice.total")
    credited = _as_decimal(invoice.related_invoice_credited_total, "related_invoice.credited_total")
    available = related_total - credited
    if note_total > available:
        raise PayloadError(
            "credit_exceeds_invoice",
            field="invoice_sales.total",
            value=note_total,
            detail=(
                f"the credit note's Factus total exceeds what is left to credit on invoice "
                f"{invoice.related_invoice_id}: total {related_total} minus {credited} already "
                f"credited leaves {available}"
            ),
        )
