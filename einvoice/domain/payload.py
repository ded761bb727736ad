"""Turn an ERP invoice into a checked, version-neutral sales document, or refuse it precisely.

Entry point: :func:`build_document` → :class:`~einvoice.domain.document.SalesDocument`. The wire
mappers ``einvoice.factus.v1_body`` (FACTUS_API.md §3, §7.1) and ``einvoice.factus.v2_body``
(Factus v2 ``facturas/crear-y-validar``) map the document to their JSON, choose their wire prices
with :func:`nearest_wire_price` and check the totals with :func:`check_totals` (within
:func:`total_tolerance`) and :func:`check_credit_cap`, each with its version's formulas.

The rules run in a fixed order and the first one broken raises
:class:`~einvoice.domain.errors.PayloadError`, whose ``code`` becomes the job's ``error_code``:
document type, reference code, numbering range, header codes (currency, payment, operation type;
for a credit note: correction concept, related bill), observation, customer, establishment, items
(their count, then one by one, each field in turn), allowance charges, billing period, the v2
additions (payments table, cash rounding, prepayments, display currency, order reference), the
version's refusals (:class:`~einvoice.domain.document.WireRules`, called at fixed points), then
the mapper's totals and, for a credit note, the credit cap. The limits and their sources are in
:mod:`einvoice.domain.dian` ("Pre-flight limits"); each decision is documented where it is
applied.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from einvoice.domain import dian
from einvoice.domain.document import (
    Charge,
    DisplayCurrency,
    ErpLine,
    Establishment,
    Fail,
    Line,
    LineTax,
    OrderReference,
    Party,
    Payment,
    Period,
    Prepayment,
    SalesDocument,
    WireRules,
    Withholding,
)
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
_CURRENCY_RE = re.compile(r"[A-Z]{3}")

JsonDict = dict[str, Any]

#: The units accepted when the caller passes no table: Factus v1's five, id → code.
DEFAULT_UNITS: Mapping[int, str] = {
    unit_id: code for unit_id, (code, _name) in dian.UNIT_MEASURES.items()
}

def round2(value: Decimal) -> Decimal:
    """Round a COP amount or a percentage to 2 decimals, half up (FACTUS_API.md Decision 7)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --- The builder -----------------------------------------------------------------------------


def build_document(
    invoice: InvoiceData,
    *,
    reference_code: str,
    today: date,
    known_municipality_ids: Container[int],
    rules: WireRules,
    known_units: Mapping[int, str] | None = None,
    document_type: DocumentType | None = None,
) -> SalesDocument:
    """Check an ERP invoice or credit note and return its version-neutral document.

    Inputs:
        invoice: the ERP rows; ``document_type`` ``"invoice"`` or ``"credit_note"``.
        reference_code: the job's stable Factus ``reference_code`` (≤ 20 characters of
            ``A–Z a–z 0–9 . _ -``; FACTUS_API.md §9, Decision 3).
        today: the current calendar date in Bogotá, to check the numbering range's dates.
        known_municipality_ids: the Factus municipality ids (``dian_municipalities``).
        rules: the API version's checks (``einvoice.factus.v1_body.V1_RULES`` or
            ``einvoice.factus.v2_body.V2_RULES``).
        known_units: accepted units, Factus ``unit_measure_id`` → unit code (the whole Factus
            table when the caller has it); default :data:`DEFAULT_UNITS` (v1's five).
        document_type: the kind the caller builds; default the invoice's own
            ``document_type`` (an invoice unless it says ``"credit_note"``).
    Output: a :class:`SalesDocument` (totals not yet checked: that is the mapper's, once it
    knows what its version will compute).
    Raises: :class:`PayloadError` for the first rule broken, in the module docstring's order.
    """
    units = DEFAULT_UNITS if known_units is None else known_units
    if document_type is None:
        document_type = (DocumentType.CREDIT_NOTE
                         if invoice.document_type == DocumentType.CREDIT_NOTE.value
                         else DocumentType.INVOICE)
    expected = document_type
    credit_note = expected is DocumentType.CREDIT_NOTE
    _check_document_type(invoice, expected)
    _check_reference_code(reference_code)
    range_id = _numbering_range_id(invoice.numbering_range, expected, today)
    concept: int | None = None
    payment_form: str | None = None
    due_date: date | None = None
    if credit_note:
        concept = _correction_concept(invoice)
        if invoice.related_bill_id is None and invoice.related_bill_number is None:
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
        rules.check_currency(invoice.currency)
    else:
        rules.check_currency(invoice.currency)
        payment_form, due_date = _payment_form(invoice)
    payment_method = _payment_method(invoice)
    operation_type = dian.DEFAULT_OPERATION_TYPE if credit_note else _operation_type(invoice)
    observation = _observation(invoice.notes)
    customer: Party | None
    if invoice.customer is not None and _is_final_consumer(invoice.customer):
        customer = _final_consumer(invoice.customer)
    elif invoice.customer is not None:
        customer = _customer(invoice.customer, known_municipality_ids)
    elif credit_note:
        # Factus takes the bill's customer when a credit note has none (§7.1).
        customer = None
    else:
        customer = _final_consumer(None)
    establishment = _establishment(invoice, known_municipality_ids)
    lines = _lines(invoice, units, rules)
    charges = _allowance_charges(invoice.allowance_charges)
    period = _billing_period(invoice.billing_period)
    payments = _payments(invoice, payment_form, due_date, payment_method)
    document = SalesDocument(
        document_type=expected.value,
        reference_code=reference_code,
        numbering_range_id=range_id,
        observation=observation,
        payment_form=payment_form,
        payment_due_date=due_date,
        payment_method_code=payment_method,
        payments=payments,
        operation_type=operation_type,
        send_email=bool(invoice.send_email),
        billing_period=period,
        establishment=establishment,
        customer=customer,
        lines=lines,
        allowance_charges=charges,
        cash_rounding_amount=_cash_rounding(invoice.cash_rounding_amount),
        prepayments=_prepayments(invoice),
        currency=_display_currency(invoice),
        order_reference=_order_reference(invoice),
        erp_total=invoice.total,
        correction_concept_code=concept,
        related_bill_id=invoice.related_bill_id,
        related_bill_number=invoice.related_bill_number,
        related_invoice_id=invoice.related_invoice_id,
        related_invoice_total=invoice.related_invoice_total,
        related_invoice_credited_total=invoice.related_invoice_credited_total,
    )
    rules.check_extras(document)
    # The ERP's other totals are not sent, but a NaN there is a corrupt row all the same.
    for column in ("subtotal", "tax_total"):
        value = getattr(invoice, column)
        if value is not None:
            _as_decimal(value, f"invoice_sales.{column}")
    return document


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
    # A long note is not refused here: each mapper truncates it to its version's limit (v1 250,
    # v2 500). Hidden characters are refused all the same, as in every text.
    return _text(notes or "", "invoice_sales.notes", max_chars=len(notes or ""), multiline=True)



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



def _is_final_consumer(customer: CustomerData) -> bool:
    """Whether the ERP's customer row is its final-consumer placeholder (222222222222)."""
    number = customer.identification_number
    return number is not None and _ID_SEPARATORS_RE.sub("", number) == dian.FINAL_CONSUMER_ID


def _final_consumer(customer: CustomerData | None) -> Party:
    """The "Consumidor Final" buyer, for an invoice without a customer row or whose customer
    carries DIAN's final-consumer identification 222222222222.

    Source: Resolución DIAN 000042 de 2020, art. 11 num. 3 lit. c (kept by Resolución 000165 de
    2023); Factus v2 ``facturas/ejemplos/estandar-consumidor-final``.

    Input: the ERP's final-consumer row, or ``None`` when the invoice has no customer. Output: a
    :class:`Party` with DIAN's identification 222222222222 as a cédula, a natural person of
    tribute ZZ, named after the row when it has a name (the law allows "consumidor final" or the
    buyer's names), with the row's e-mail, phone and address when present (checked as any
    customer's). Raises :class:`PayloadError` ``forbidden_character``, ``text_too_long`` or
    ``invalid_email`` for those texts.
    """
    names = dian.FINAL_CONSUMER_NAME
    extras: dict[str, str] = {}
    if customer is not None:
        parts = [
            _text(value, f"customers.{column}")
            for column, value in (("first_name", customer.first_name),
                                  ("last_name", customer.last_name))
            if value is not None and not _blank(value)
        ]
        if parts and len(" ".join(parts)) <= dian.TEXT_MAX_CHARS:
            names = " ".join(parts)
        for column in ("address", "email", "phone"):
            value = getattr(customer, column)
            if not _blank(value):
                field = f"customers.{column}"
                extras[column] = (
                    _email(value, field)
                    if column == "email"
                    else _text(value, field, multiline=column == "address")
                )
    return Party(
        identification_document_id=dian.FINAL_CONSUMER_DOCUMENT_ID,
        identification=dian.FINAL_CONSUMER_ID,
        legal_organization_id=dian.NATURAL_PERSON,
        tribute_id=dian.DEFAULT_CUSTOMER_TRIBUTE_ID,
        names=names,
        is_final_consumer=True,
        address=extras.get("address"),
        email=extras.get("email"),
        phone=extras.get("phone"),
    )


def _customer(customer: CustomerData, known_municipality_ids: Container[int]) -> Party:
    """Check ``customers`` as Factus ``customer`` (FACTUS_API.md §3.3; seed 002 "Mapeo de Datos")."""
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
    dv: int | None = None
    if document_id == dian.NIT_DOCUMENT_ID:
        identification, dv = _nit_and_dv(customer, raw_number)
    else:
        identification = _identification(document_id, raw_number)

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
    company: str | None = None
    names: str | None = None
    if legal_organization == dian.LEGAL_PERSON:
        if customer.company_name is None or _blank(customer.company_name):
            raise PayloadError(
                "missing_company_name",
                field="customers.company_name",
                value=customer.company_name,
                detail="a legal person (legal_organization_id 1) needs a razón social (§3.3)",
            )
        company = _text(customer.company_name, "customers.company_name")
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
    contact: dict[str, str] = {}
    for column in ("trade_name", "address", "email", "phone"):
        value = getattr(customer, column)
        if not _blank(value):
            field = f"customers.{column}"
            contact[column] = (
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
    if customer.municipality_id is not None:
        _check_municipality(
            customer.municipality_id, "customers.municipality_id", known_municipality_ids
        )
    return Party(
        identification_document_id=document_id,
        identification=identification,
        legal_organization_id=legal_organization,
        tribute_id=tribute_id,
        dv=dv,
        company=company,
        names=names,
        municipality_id=customer.municipality_id,
        municipality_code=customer.municipality_code,
        trade_name=contact.get("trade_name"),
        address=contact.get("address"),
        email=contact.get("email"),
        phone=contact.get("phone"),
    )


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


def _establishment(
    invoice: InvoiceData, known_municipality_ids: Container[int]
) -> Establishment | None:
    """Check ``branches`` (falling back to ``organizations`` per field) as ``establishment``."""
    branch: BranchData | None = invoice.branch
    if branch is None:
        return None
    organization = invoice.organization
    texts: dict[str, str] = {}
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
        texts[key] = (
            _email(value, field)
            if column == "email"
            else _text(value, field, multiline=column == "address")
        )
    municipality_id = branch.municipality_id
    municipality_code = branch.municipality_code
    field = "branches.municipality_id"
    if municipality_id is None:
        municipality_id = organization.municipality_id
        municipality_code = organization.municipality_code
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
    return Establishment(
        municipality_id=municipality_id, municipality_code=municipality_code, **texts
    )


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



def erp_line(base_line: Decimal, taxes: Sequence[LineTax], *, tax_included: bool) -> ErpLine:
    """The line as a conventional ERP computes it: round the line, then each tax, per line.

    Inputs: ``base_line`` is ``unit_price × qty`` minus the discount, on the basis of
    ``unit_price`` (COP); ``taxes`` the line's taxes (rates in percent); ``tax_included`` the
    basis. Output: :class:`ErpLine` (net, tax, gross in COP, 2 decimals). A tax-included line is
    split with the sum of its rates.
    """
    # One tax is the common line: skip the generator sums on the worker's hot path.
    if tax_included:
        rates = taxes[0].rate if len(taxes) == 1 else sum((t.rate for t in taxes), _ZERO)
        gross = round2(base_line)
        net = round2(gross / (1 + rates / HUNDRED))
        return ErpLine(net=net, tax=gross - net, gross=gross)
    net = round2(base_line)
    tax = (round2(net * taxes[0].rate / HUNDRED) if len(taxes) == 1
           else sum((round2(net * t.rate / HUNDRED) for t in taxes), _ZERO))
    return ErpLine(net=net, tax=tax, gross=net + tax)


def _lines(
    invoice: InvoiceData, known_units: Mapping[int, str], rules: WireRules
) -> tuple[Line, ...]:
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
    return tuple(
        _line(index, item, invoice, known_units, rules)
        for index, item in enumerate(invoice.items)
    )


def _line(
    index: int,
    item: ItemData,
    invoice: InvoiceData,
    known_units: Mapping[int, str],
    rules: WireRules,
) -> Line:
    """Check one ``invoice_items`` row as a document line (FACTUS_API.md §3.4)."""
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

    required = [("qty", item.qty, "a quantity"), ("unit_price", item.unit_price, "a price")]
    if not item.taxes:
        required.append(("tax_rate", item.tax_rate, "a tax rate"))
    for column, value, what in required:
        if value is None:
            # NULL is not zero: a free item or an untaxed one is written as 0 in the ERP.
            raise fail(
                f"missing_{'quantity' if column == 'qty' else column.removeprefix('unit_')}",
                column,
                None,
                f"the line has no {column}; {what} is required and NULL is not read as 0",
            )
    qty = _as_decimal(item.qty, f"{where}.qty")
    rules.check_quantity(qty, fail)
    if qty <= 0:
        raise fail("non_positive_quantity", "qty", qty, "the quantity must be at least 1")
    _check_amount_limit(qty, f"{where}.qty", f"{label}: the quantity")
    quantity = qty.quantize(Decimal(1)) if qty == qty.to_integral_value() else qty

    unit_price = _as_decimal(item.unit_price, f"{where}.unit_price")
    if unit_price < 0:
        raise fail("negative_amount", "unit_price", unit_price, "a price cannot be negative")
    _check_amount_limit(unit_price, f"{where}.unit_price", f"{label}: the unit price")

    single_rate = _single_tax_rate(item, where, fail) if not item.taxes else None

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
    if unit_measure_id not in known_units:
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
    if single_rate is not None:
        tribute_id = (
            item.tribute_id if item.tribute_id is not None else dian.DEFAULT_PRODUCT_TRIBUTE_ID
        )
        _check_tribute(tribute_id, single_rate, fail, column="tribute_id",
                       shown=item.tribute_id)
        taxes: tuple[LineTax, ...] = (
            LineTax(dian.PRODUCT_TRIBUTES[tribute_id][0], tribute_id, single_rate,
                    bool(item.is_excluded)),
        )
    else:
        taxes = _listed_taxes(item, fail)
    rules.check_taxes(taxes, where, label)
    withholdings = _withholdings(item, where, label, rules)

    line = Line(
        discount_amount=(item.discount_amount if item.discount_rate in (None, 0)
                         and item.discount_amount not in (None, 0) else None),
        code_reference=code_reference,
        name=name,
        note=note,
        quantity=quantity,
        unit_price=unit_price,
        tax_included=tax_included,
        discount_rate=discount_rate,
        erp=erp_line(base_line, taxes, tax_included=tax_included),
        taxes=taxes,
        withholdings=withholdings,
        unit_measure_id=unit_measure_id,
        unit_measure_code=known_units.get(unit_measure_id),
        standard_code_id=standard_code_id,
        tribute_id=taxes[0].tribute_id or dian.DEFAULT_PRODUCT_TRIBUTE_ID,
        is_excluded=bool(item.is_excluded) or (
            taxes[0].is_excluded if len(taxes) == 1 else all(t.is_excluded for t in taxes)),
    )
    return rules.finish_line(line, where, label)


def _check_rate(rate: Decimal, excluded: bool, column: str, fail: Fail) -> None:
    if rate < 0 or rate >= HUNDRED or _has_more_than_2_decimals(rate):
        raise fail(
            "invalid_tax_rate",
            column,
            rate,
            "a tax rate is a percentage from 0 to under 100 with at most 2 decimals",
        )
    if excluded and rate != 0:
        raise fail(
            "invalid_tax_rate",
            column,
            rate,
            "the item is excluded from IVA (is_excluded), so its tax rate must be 0",
        )


def _single_tax_rate(item: ItemData, where: str, fail: Fail) -> Decimal:
    """The rate of a line's one tax (``invoice_items.tax_rate``), checked."""
    tax_rate = _as_decimal(item.tax_rate, f"{where}.tax_rate")
    _check_rate(tax_rate, bool(item.is_excluded), "tax_rate", fail)
    return tax_rate


def _check_tribute(tribute_id: int, rate: Decimal, fail: Fail, *, column: str,
                   shown: object) -> None:
    if tribute_id not in dian.PRODUCT_TRIBUTES:
        raise fail(
            "unknown_product_tribute",
            column,
            shown,
            "not a Factus product tribute id (GET /v1/tributes/products: 1–17)",
        )
    allowed_rates = dian.TAX_RATES_BY_TRIBUTE.get(tribute_id)
    if allowed_rates is not None and rate not in allowed_rates:
        tribute_name = dian.PRODUCT_TRIBUTES[tribute_id][1]
        raise fail(
            "unknown_tax_rate",
            "tax_rate" if column == "tribute_id" else column.replace("tribute_id", "rate"),
            rate,
            f"DIAN defines {tribute_name} at "
            f"{', '.join(str(rate) for rate in sorted(allowed_rates))} % only (Anexo Técnico "
            f"1.9, tarifas por impuesto); check the rate, or the item's tribute_id {tribute_id}",
        )


def _listed_taxes(item: ItemData, fail: Fail) -> tuple[LineTax, ...]:
    """Check ``invoice_items.taxes`` (several taxes on one line) and return them.

    Each entry names its tax by DIAN ``code`` or Factus ``tribute_id``; a code without a v1 id
    (such as "35", ICUI) is kept with ``tribute_id`` ``None`` for the v2 mapper. The rates follow
    the same rules as ``tax_rate``; a tax listed twice is refused (``duplicate_tax``).
    """
    taxes: list[LineTax] = []
    for position, entry in enumerate(item.taxes):
        column = f"taxes[{position}]"
        excluded = entry.is_excluded or bool(item.is_excluded)
        if entry.rate is None and not excluded:
            raise fail("missing_tax_rate", f"{column}.rate", None,
                       "the tax has no rate; NULL is not read as 0")
        rate = _ZERO if entry.rate is None else _as_decimal(entry.rate, f"{column}.rate")
        _check_rate(rate, excluded, f"{column}.rate", fail)
        if entry.tribute_id is not None:
            tribute_id: int | None = entry.tribute_id
            if entry.tribute_id not in dian.PRODUCT_TRIBUTES:
                raise fail("unknown_product_tribute", f"{column}.tribute_id", entry.tribute_id,
                           "not a Factus product tribute id (GET /v1/tributes/products: 1–17)")
            code = dian.PRODUCT_TRIBUTES[entry.tribute_id][0]
        else:
            code = str(entry.code)
            tribute_id = dian.product_tribute_id(code)
            if tribute_id is None and code not in dian.V2_TAX_CODES:
                raise fail("unknown_product_tribute", f"{column}.code", entry.code,
                           "not a DIAN tax code (01 IVA, 04 INC, 35 ICUI, or a v1 tribute code)")
        if tribute_id is not None:
            _check_tribute(tribute_id, rate, fail, column=f"{column}.tribute_id",
                           shown=entry.tribute_id if entry.tribute_id is not None else code)
        if any(tax.code == code for tax in taxes):
            raise fail("duplicate_tax", f"{column}.code", code,
                       f"tax {code} appears twice on the same item")
        taxes.append(LineTax(code, tribute_id, rate, excluded))
    return tuple(taxes)


def _discount(
    item: ItemData,
    unit_price: Decimal,
    quantity: Decimal,
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



def _withholdings(
    item: ItemData, where: str, label: str, rules: WireRules
) -> tuple[Withholding, ...]:
    """Check ``invoice_items.withholding_taxes`` (§3.4; the codes the version accepts)."""
    entries: list[Withholding] = []
    seen: set[str] = set()
    for position, withholding in enumerate(item.withholding_taxes):
        field = f"{where}.withholding_taxes[{position}]"
        code = dian.withholding_tax_code(withholding.code)
        if code is None or code not in rules.withholding_codes:
            raise PayloadError(
                "unknown_withholding_tax",
                field=f"{field}.code",
                value=withholding.code,
                detail=f"{label}: {rules.withholding_detail}",
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
        entries.append(Withholding(code, rate))
    return tuple(entries)


# --- Allowance charges and billing period ------------------------------------------------------


def _allowance_charges(charges: Sequence[AllowanceChargeData]) -> tuple[Charge, ...]:
    """Check ``invoice_sales.allowance_charges`` (§3.5; v2 ``tablas``: only concept 03 too)."""
    entries: list[Charge] = []
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
        entries.append(Charge(concept, True, reason, base_amount, amount))
    return tuple(entries)


def _billing_period(period: BillingPeriodData | None) -> Period | None:
    """Check ``invoice_sales.billing_period`` (§3.1): it may not end before it starts."""
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
    return Period(period.start_date, period.end_date, period.start_time, period.end_time)


# --- What v2 adds: payments, rounding, prepayments, currency, order -----------------------------


def _payments(
    invoice: InvoiceData, payment_form: str | None, due_date: date | None, method: str
) -> tuple[Payment, ...]:
    """The means of payment: the ``invoice_payments`` rows, else the invoice's own columns.

    Each row is checked as the invoice's columns are (``unknown_payment_form``,
    ``unknown_payment_method``, ``missing_payment_due_date``, ``invalid_payment_due_date``) and
    needs an amount (``missing_payment_amount``, ``negative_amount``, ``amount_too_large``).
    Source: Factus v2 ``facturas/crear-y-validar`` (``payment_details[]``).
    """
    if not invoice.payments:
        form = payment_form or dian.PAYMENT_FORM_CASH
        return (Payment(form, method, due_date),)
    payments: list[Payment] = []
    for position, row in enumerate(invoice.payments):
        where = f"invoice_payments[{position}]"
        raw_form = row.payment_form
        form = dian.PAYMENT_FORM_CASH if raw_form is None or not raw_form.strip() else raw_form.strip()
        if form not in dian.PAYMENT_FORMS:
            raise PayloadError("unknown_payment_form", field=f"{where}.payment_form",
                               value=raw_form, detail="expected '1' (contado) or '2' (crédito)")
        raw_method = row.payment_method_code
        code = (dian.DEFAULT_PAYMENT_METHOD_CODE if raw_method is None or not raw_method.strip()
                else raw_method.strip().upper())
        if code not in dian.PAYMENT_METHODS:
            raise PayloadError(
                "unknown_payment_method", field=f"{where}.payment_method_code", value=raw_method,
                detail=f"expected one of {', '.join(dian.PAYMENT_METHODS)} (DIAN tablas)")
        if row.amount is None:
            raise PayloadError("missing_payment_amount", field=f"{where}.amount", value=None,
                               detail="every payment row needs the amount paid that way")
        amount = _as_decimal(row.amount, f"{where}.amount")
        if amount < 0 or _has_more_than_2_decimals(amount):
            raise PayloadError("negative_amount" if amount < 0 else "invalid_payment_amount",
                               field=f"{where}.amount", value=amount,
                               detail="a payment is a non-negative amount with at most 2 decimals")
        _check_amount_limit(amount, f"{where}.amount", "the payment")
        due: date | None = None
        if form == dian.PAYMENT_FORM_CREDIT:
            if row.due_date is None:
                raise PayloadError(
                    "missing_payment_due_date", field=f"{where}.due_date", value=None,
                    detail="a credit payment (payment_form '2') needs a due date (v2)")
            due = _bogota_date(row.due_date)
            if invoice.issue_date is not None and due < _bogota_date(invoice.issue_date):
                raise PayloadError(
                    "invalid_payment_due_date", field=f"{where}.due_date",
                    value=due.isoformat(),
                    detail=f"the due date is before the issue date "
                    f"{_bogota_date(invoice.issue_date)}")
        reference = (None if row.reference is None or _blank(row.reference)
                     else _text(row.reference, f"{where}.reference"))
        payments.append(Payment(form, code, due, amount, reference, field=where))
    return tuple(payments)


def _cash_rounding(value: Decimal | None) -> Decimal:
    """``invoice_sales.cash_rounding_amount``: at most ±500.00 COP with 2 decimals (v2 docs)."""
    if value is None:
        return _ZERO
    amount = _as_decimal(value, "invoice_sales.cash_rounding_amount")
    if abs(amount) > dian.CASH_ROUNDING_LIMIT or _has_more_than_2_decimals(amount):
        raise PayloadError(
            "invalid_cash_rounding", field="invoice_sales.cash_rounding_amount", value=amount,
            detail=(f"cash rounding is at most ±{dian.CASH_ROUNDING_LIMIT} COP with 2 decimals "
                    "(Factus v2 cash_rounding_amount)"))
    return amount


def _prepayments(invoice: InvoiceData) -> tuple[Prepayment, ...]:
    """Check ``invoice_sales.prepayments``: a reference, a date and a positive amount each."""
    result: list[Prepayment] = []
    for position, entry in enumerate(invoice.prepayments):
        where = f"invoice_sales.prepayments[{position}]"
        reference = _text(entry.reference_code, f"{where}.reference_code")
        if not reference:
            raise PayloadError("missing_prepayment_reference", field=f"{where}.reference_code",
                               value=entry.reference_code, detail="a prepayment needs a reference")
        amount = _as_decimal(entry.amount, f"{where}.amount")
        if amount <= 0 or _has_more_than_2_decimals(amount):
            raise PayloadError("invalid_prepayment_amount", field=f"{where}.amount", value=amount,
                               detail="a prepayment is a positive amount with at most 2 decimals")
        _check_amount_limit(amount, f"{where}.amount", "the prepayment")
        note = (None if entry.note is None or _blank(entry.note)
                else _text(entry.note, f"{where}.note", max_chars=dian.PREPAYMENT_NOTE_MAX_CHARS,
                           multiline=True))
        result.append(Prepayment(reference, entry.received_date, amount, note))
    return tuple(result)


def _display_currency(invoice: InvoiceData) -> DisplayCurrency | None:
    """``display_currency`` + ``exchange_rate``: a foreign ISO 4217 code and COP per unit > 0."""
    raw = invoice.display_currency
    if raw is None or _blank(raw):
        return None
    code = raw.strip().upper()
    if _CURRENCY_RE.fullmatch(code) is None or code == "COP":
        raise PayloadError(
            "invalid_display_currency", field="invoice_sales.display_currency", value=raw,
            detail="a three-letter ISO 4217 code other than COP (Factus v2 currency.type)")
    if invoice.exchange_rate is None:
        raise PayloadError(
            "missing_exchange_rate", field="invoice_sales.exchange_rate", value=None,
            detail=f"showing the totals in {code} needs the COP exchange rate")
    rate = _as_decimal(invoice.exchange_rate, "invoice_sales.exchange_rate")
    if rate <= 0 or _has_more_than_2_decimals(rate):
        raise PayloadError(
            "invalid_exchange_rate", field="invoice_sales.exchange_rate", value=rate,
            detail="COP per unit of the currency: positive, at most 2 decimals")
    return DisplayCurrency(code, rate)


def _order_reference(invoice: InvoiceData) -> OrderReference | None:
    raw = invoice.order_reference
    if raw is None or _blank(raw):
        return None
    return OrderReference(_text(raw, "invoice_sales.order_reference"), invoice.order_issue_date)


def requires_v2(field: str, value: object, what: str) -> PayloadError:
    """The error a v1 mapper raises for a field only Factus v2 can carry.

    Output: :class:`PayloadError` ``requires_factus_v2`` naming the ERP column; the fix is to
    move the account to API v2 (``factus_credentials.api_version``) or leave the field empty.
    """
    return PayloadError(
        "requires_factus_v2", field=field, value=value,
        detail=(f"{what} needs Factus API v2; this account speaks v1. Set the account's "
                "api_version to v2 (or auto) or leave the field empty"))


# --- Wire prices and totals -------------------------------------------------------------------


def nearest_wire_price(
    *,
    erp: ErpLine,
    factor: Decimal,
    exact_unit: Decimal,
    amounts: Callable[[Decimal], tuple[Decimal, Decimal]],
) -> Decimal:
    """Choose the 2-decimal unit price whose Factus line best matches the ERP's (Decision 7).

    Inputs: ``erp``, the line as the ERP computed it (COP); ``factor``, non-zero, what turns a
    wire unit price into the line's gross (``quantity × (1 − discount_rate/100)``, times
    ``1 + Σ rates/100`` for a net price); ``exact_unit``, the unrounded unit price on the wire's
    basis; ``amounts``, the version's formula: a wire price → (line total, taxable amount) as
    Factus computes them (FACTUS_API.md §4.2 for v1, the v2 mapper's for v2).
    Output: among the 2-decimal prices around ``erp.gross / factor`` (negative ones left out),
    the one whose line is closest to ``erp.gross``, then whose taxable amount is closest to
    ``erp.net``, then closest to ``exact_unit``, then the lowest. The line grows linearly with
    the price, so the line error is at most half a cent per unit of quantity.
    """
    centre = (erp.gross / factor).quantize(CENT, rounding=ROUND_FLOOR)

    def score(price: Decimal) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        line, taxable = amounts(price)
        return abs(line - erp.gross), abs(taxable - erp.net), abs(price - exact_unit), price

    candidates = [centre + step * CENT for step in (-1, 0, 1, 2)]
    return min((price for price in candidates if price >= 0), key=score)


def total_tolerance(quantities: Iterable[Decimal | int]) -> Decimal:
    """How far the ERP total may sit from Factus's and still be the same sale (COP).

    Input: the quantity of each line sent. Output: one peso, plus a cent per unit (a line's
    quantity rounded up) and per line: the wire price moves a line by at most half a cent per
    unit (:func:`nearest_wire_price`), per-line tax rounding by a cent per line, and ERPs that
    round the document total to whole pesos move it by half a peso.
    """
    units, lines = Decimal(0), 0
    for quantity in quantities:
        units += Decimal(quantity).to_integral_value(ROUND_CEILING)
        lines += 1
    return Decimal("1.00") + CENT * (units + lines)


def check_totals(
    document: SalesDocument,
    *,
    factus_total: Callable[[], Decimal],
    estimate: Callable[[], float],
    tolerance: Callable[[], Decimal],
) -> Decimal | None:
    """Check the ERP's total against what Factus will compute; return that total when computed.

    Inputs (from the mapper, which knows its version's formulas): ``factus_total`` computes the
    document total Factus will show (COP); ``estimate`` a cheap float upper bound of it;
    ``tolerance`` how far the ERP total may sit from it (COP). Without an ERP total the exact
    total is computed only when the estimate comes near :data:`dian.AMOUNT_LIMIT`.
    Raises: :class:`PayloadError` ``amount_too_large``, ``non_finite_number``,
    ``negative_amount`` or ``total_mismatch``.
    """
    if document.erp_total is None:
        if estimate() >= float(dian.AMOUNT_LIMIT) * 0.9:
            return _document_total(factus_total)
        return None
    computed = _document_total(factus_total)
    erp_total = _as_decimal(document.erp_total, "invoice_sales.total")
    if erp_total < 0:
        raise PayloadError(
            "negative_amount",
            field="invoice_sales.total",
            value=erp_total,
            detail="a document total cannot be negative",
        )
    allowed = tolerance()
    if abs(computed - erp_total) > allowed:
        raise PayloadError(
            "total_mismatch",
            field="invoice_sales.total",
            value=erp_total,
            detail=(
                f"the items and surcharges add up to {computed} as Factus computes them "
                f"(§4.2), {computed - erp_total:+} from this total, beyond the rounding "
                f"tolerance {allowed}"
            ),
        )
    return computed


def _document_total(factus_total: Callable[[], Decimal]) -> Decimal:
    """The document's Factus total, refused when beyond the digits Factus carries."""
    total = factus_total()
    _check_amount_limit(total, "invoice_sales.total", "the document total Factus computes")
    return total


def check_credit_cap(document: SalesDocument, note_total: Decimal) -> None:
    """Refuse a credit note worth more than what is left to credit on its invoice.

    Inputs: the credit note's document and its Factus total (COP). Raises
    :class:`PayloadError` ``credit_exceeds_invoice`` (or ``non_finite_number``).
    """
    related_total = _as_decimal(document.related_invoice_total, "related_invoice.total")
    credited = _as_decimal(document.related_invoice_credited_total,
                           "related_invoice.credited_total")
    available = related_total - credited
    if note_total > available:
        raise PayloadError(
            "credit_exceeds_invoice",
            field="invoice_sales.total",
            value=note_total,
            detail=(
                f"the credit note's Factus total exceeds what is left to credit on invoice "
                f"{document.related_invoice_id}: total {related_total} minus {credited} already "
                f"credited leaves {available}"
            ),
        )
