"""Payload validation of ``POST /v2/bills/validate`` and ``POST /v2/credit-notes/validate``.

The v2 FormRequest differs from v1's (Factus v2 docs ``buenas-practicas/cambios-v2-v1``,
``facturas/crear-y-validar``, ``notas-credito/crear-y-validar``, ``tablas-de-referencia/tablas``):

- codes instead of ids: ``customer.identification_document_code``, ``legal_organization_code``,
  ``tribute_code`` (default ``ZZ``), ``municipality_code`` (the DANE code), ``country_code``,
  ``responsibilities[]`` (default ``R-99-PN``), ``items[].unit_measure_code``, ``standard_code``;
- ``items[].price`` is **net** of tax with at most two decimals, ``quantity`` has up to two decimals,
  each line carries ``taxes[{code, rate, is_excluded}]`` and ``withholding_taxes[{code, rate}]``,
  and a discount as ``discount_rate`` or ``discount_amount``;
- ``payment_details[]`` (several payment means, ``due_date`` for credit) replace v1's single payment
  method; ``cash_rounding_amount`` is at most ±500.00; ``prepayment_details[]`` and ``currency``;
- ``observation`` up to 500 characters; credit notes name the bill by ``bill_number``.

Like :mod:`einvoice.sandbox.validation` this module is pure: it returns a Laravel error bag or a
normalized request. A normalized request carries a v1-shaped view of itself (``v1``) so that the
state stores one kind of document and v1 reads of a v2 document work; v2-only data stays in the
request for the v2 rendering. Laravel messages follow the v1 module (inferred).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from einvoice.sandbox import catalogs
from einvoice.sandbox.amounts import (
    HUNDRED,
    ZERO,
    DocumentAmounts,
    NetItemInput,
    TaxInput,
    WithholdingInput,
    document_amounts,
    round2,
)
from einvoice.sandbox.validation import (
    _NIT,
    BillRequest,
    CreditNoteRequest,
    CustomerData,
    ErrorBag,
    EstablishmentData,
    ItemData,
    _allowances,
    _begin,
    _billing_period,
    _Checker,
    _missing,
    _order_and_related,
    _reference_code,
    _text,
    _withholdings,
)

OBSERVATION_MAX = 500  # v2 ``observation``: "No debe tener más de 500 caracteres"
PREPAYMENT_NOTE_MAX = 5000
CASH_ROUNDING_LIMIT = Decimal("500.00")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,4}$")


@dataclass(frozen=True)
class PaymentDetail:
    """One ``payment_details[]`` entry: form and method codes, amount in COP, due date if credit."""

    payment_form: str
    payment_method_code: str
    reference_code: str | None
    amount: Decimal
    due_date: date | None


@dataclass(frozen=True)
class V2Item:
    """A validated v2 item: descriptive fields, the catalog rows of its codes and its money input."""

    code_reference: str
    name: str
    note: str | None
    quantity: Decimal
    price: Decimal
    discount_rate: Decimal
    discount_amount: Decimal | None
    unit_measure: catalogs.CatalogEntry
    standard_code: catalogs.CatalogEntry
    taxes: tuple[TaxInput, ...]
    withholdings: tuple[WithholdingInput, ...]

    @property
    def money(self) -> NetItemInput:
        """The item as :class:`einvoice.sandbox.amounts.NetItemInput`."""
        return NetItemInput(
            price=self.price,
            quantity=self.quantity,
            discount_rate=self.discount_rate,
            discount_amount=self.discount_amount,
            taxes=self.taxes,
            withholdings=self.withholdings,
        )


@dataclass(frozen=True)
class V2Customer:
    """The v2-only customer fields (codes and responsibilities) besides the v1 :class:`CustomerData`."""

    identification_document: catalogs.CatalogEntry
    legal_organization: catalogs.CatalogEntry
    tribute: catalogs.CatalogEntry
    country_code: str
    municipality_code: str | None
    responsibilities: tuple[str, ...]


@dataclass(frozen=True)
class V2Extras:
    """What v2 adds to a document: payments, rounding, prepayments, currency, items and codes."""

    payment_details: tuple[PaymentDetail, ...]
    cash_rounding_amount: Decimal
    prepayments: tuple[dict[str, Any], ...]
    currency: dict[str, Any] | None
    items: tuple[V2Item, ...]
    customer: V2Customer | None
    amounts: DocumentAmounts
    establishment_municipality_code: str | None = None
    order_reference: dict[str, Any] | None = None
    billing_period: dict[str, Any] | None = None

    @property
    def prepayment_amount(self) -> Decimal:
        """Sum of the prepayments, COP."""
        return sum((Decimal(str(p["amount"])) for p in self.prepayments), ZERO)


@dataclass(frozen=True)
class V2BillRequest:
    """A validated ``POST /v2/bills/validate`` body: its v1 view and the v2 extras."""

    v1: BillRequest
    extras: V2Extras


@dataclass(frozen=True)
class V2CreditNoteRequest:
    """A validated ``POST /v2/credit-notes/validate`` body; ``v1.bill_id`` is None until the caller
    resolves ``bill_number`` against the account's bills."""

    v1: CreditNoteRequest
    bill_number: str | None
    extras: V2Extras


@dataclass
class _Sections:
    """The sections shared by bills and credit notes, as validated."""

    payments: list[PaymentDetail] = field(default_factory=list)
    rounding: Decimal = ZERO
    customer: CustomerData | None = None
    v2_customer: V2Customer | None = None
    establishment: EstablishmentData | None = None
    establishment_code: str | None = None
    items: tuple[V2Item, ...] = ()
    currency: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------
# Sections


def _code(c: _Checker, path: str, value: Any, table: dict[str, Any], *, default: str | None) -> Any:
    return c.code_in(path, _text(value), table, default=default)


def _customer(c: _Checker, raw: dict[str, Any]) -> tuple[CustomerData | None, V2Customer | None]:
    p = "customer."
    doc_code = _code(
        c,
        p + "identification_document_code",
        raw.get("identification_document_code"),
        catalogs.V2_IDENTIFICATION_DOCUMENTS,
        default=None,
    )
    identification = c.string(p + "identification", _text(raw.get("identification")), required=True)
    if doc_code == catalogs.NIT_DOCUMENT_CODE and identification and not _NIT.match(identification):
        # A NIT goes without DV or hyphen (v2 customer.identification).
        c.fail(p + "identification", "El formato del campo {a} es inválido.")
    dv: str | None = None
    if not _missing(raw.get("dv")):
        dv_text = str(raw.get("dv")).strip()
        if not re.fullmatch(r"\d", dv_text):
            c.fail(p + "dv", "El campo {a} debe ser un número entero de un dígito.")
        else:
            dv = dv_text
    org_code = _code(
        c,
        p + "legal_organization_code",
        raw.get("legal_organization_code"),
        catalogs.V2_LEGAL_ORGANIZATIONS,
        default=None,
    )
    tribute_code = _code(
        c, p + "tribute_code", raw.get("tribute_code"), catalogs.V2_CUSTOMER_TRIBUTES, default="ZZ"
    )
    company = c.string(p + "company", raw.get("company"), required=False)
    names = c.string(p + "names", raw.get("names"), required=False)
    if org_code == "1" and not company:
        c.fail(
            p + "company",
            "El campo {a} es obligatorio cuando customer.legal organization code es 1.",
        )
    if org_code == "2" and not names:
        c.fail(
            p + "names", "El campo {a} es obligatorio cuando customer.legal organization code es 2."
        )
    country = (
        c.string(p + "country_code", raw.get("country_code"), required=False) or catalogs.COLOMBIA
    )
    if not _COUNTRY.match(country):
        c.fail(p + "country_code", "El campo {a} es inválido.")
    municipality_code: str | None = None
    municipality_id: int | None = None
    if not _missing(raw.get("municipality_code")) and country == catalogs.COLOMBIA:
        municipality_code = str(_text(raw.get("municipality_code"))).strip()
        found = catalogs.municipalities_by_code().get(municipality_code)
        if found is None:
            c.fail(p + "municipality_code", "El campo {a} es inválido.")
        else:
            municipality_id = found.id
    responsibilities_raw = c.array(
        p + "responsibilities", raw.get("responsibilities"), required=False
    )
    responsibilities: list[str] = []
    for index, code in enumerate(responsibilities_raw or []):
        if not isinstance(code, str) or code not in catalogs.RESPONSIBILITIES:
            c.fail(f"{p}responsibilities.{index}", "El campo {a} es inválido.")
        else:
            responsibilities.append(code)
    trade_name = c.string(p + "trade_name", raw.get("trade_name"), required=False)
    address = c.string(p + "address", raw.get("address"), required=False)
    email = c.email(p + "email", raw.get("email"), required=False)
    phone = c.string(p + "phone", _text(raw.get("phone")), required=False)
    if doc_code is None or org_code is None or tribute_code is None:
        return None, None
    doc = catalogs.V2_IDENTIFICATION_DOCUMENTS[doc_code]
    org = catalogs.V2_LEGAL_ORGANIZATIONS[org_code]
    tribute = catalogs.V2_CUSTOMER_TRIBUTES[tribute_code]
    return (
        CustomerData(
            identification_document_id=doc.id,
            identification=identification,
            dv=dv,
            company=company,
            trade_name=trade_name,
            names=names,
            address=address,
            email=email,
            phone=phone,
            legal_organization_id=org.id,
            tribute_id=tribute.id,
            municipality_id=municipality_id,
        ),
        V2Customer(
            identification_document=doc,
            legal_organization=org,
            tribute=tribute,
            country_code=country,
            municipality_code=municipality_code,
            responsibilities=tuple(responsibilities) or (catalogs.DEFAULT_RESPONSIBILITY,),
        ),
    )


def _establishment(c: _Checker, raw: dict[str, Any]) -> tuple[EstablishmentData | None, str | None]:
    p = "establishment."
    name = c.string(p + "name", raw.get("name"), required=True)
    address = c.string(p + "address", raw.get("address"), required=True)
    phone = c.string(p + "phone_number", _text(raw.get("phone_number")), required=True)
    email = c.email(p + "email", raw.get("email"), required=True)
    code = c.string(p + "municipality_code", _text(raw.get("municipality_code")), required=True)
    found = catalogs.municipalities_by_code().get(code.strip()) if code else None
    if code and found is None:
        c.fail(p + "municipality_code", "El campo {a} es inválido.")
    if found is None:
        return None, None
    return EstablishmentData(name, address, phone, email, found.id), found.code


def _payments(c: _Checker, raw: Any) -> list[PaymentDetail]:
    rows = c.array("payment_details", raw, required=True)
    result: list[PaymentDetail] = []
    for p, row in c.objects("payment_details", rows):
        form = _code(
            c, p + "payment_form", row.get("payment_form"), catalogs.PAYMENT_FORMS, default=None
        )
        method = _code(
            c,
            p + "payment_method_code",
            row.get("payment_method_code"),
            catalogs.PAYMENT_METHODS,
            default=None,
        )
        reference = c.string(p + "reference_code", _text(row.get("reference_code")), required=False)
        amount = c.number(
            p + "amount", row.get("amount"), required=True, minimum=ZERO, max_decimals=2
        )
        due = c.ymd(
            p + "due_date", row.get("due_date"), required=form == catalogs.CREDIT_PAYMENT_FORM
        )
        if form is not None and method is not None and amount is not None:
            result.append(PaymentDetail(form, method, reference or None, amount, due))
    return result


def _prepayments(c: _Checker, raw: Any) -> list[dict[str, Any]]:
    rows = c.array("prepayment_details", raw, required=False)
    result: list[dict[str, Any]] = []
    for p, row in c.objects("prepayment_details", rows):
        reference = c.string(p + "reference_code", _text(row.get("reference_code")), required=True)
        received = c.ymd(p + "received_date", row.get("received_date"), required=True)
        amount = c.number(
            p + "amount", row.get("amount"), required=True, minimum=ZERO, max_decimals=2
        )
        note = c.string(p + "note", row.get("note"), required=False, max_len=PREPAYMENT_NOTE_MAX)
        if received is not None and amount is not None:
            result.append(
                {
                    "reference_code": reference,
                    "received_date": received,
                    "amount": amount,
                    "note": note or None,
                }
            )
    return result


def _currency(c: _Checker, raw: Any) -> dict[str, Any] | None:
    currency = c.obj("currency", raw, required=False)
    if currency is None:
        return None
    kind = c.string("currency.type", currency.get("type"), required=True)
    if kind and (not _CURRENCY.match(kind) or kind == "COP"):
        # "Debe ser una moneda distinta a la moneda local de emisión" (v2 currency.type).
        c.fail("currency.type", "El campo {a} es inválido.")
    rate = c.number(
        "currency.exchange_rate",
        currency.get("exchange_rate"),
        required=True,
        minimum=Decimal("0.01"),
    )
    return {"type": kind, "exchange_rate": rate}


def _taxes(c: _Checker, prefix: str, raw: Any) -> tuple[TaxInput, ...]:
    rows = c.array(prefix + "taxes", raw, required=True)
    result: list[TaxInput] = []
    for p, row in c.objects(prefix + "taxes", rows):
        code = _code(c, p + "code", row.get("code"), catalogs.V2_TAXES, default=None)
        rate = c.percent(p + "rate", row.get("rate"), required=True, zero=ZERO)
        excluded = c.boolean(p + "is_excluded", row.get("is_excluded"), default=False)
        if code is not None and rate is not None:
            result.append(TaxInput(catalogs.V2_TAXES[code].id, code, rate, excluded))
    return tuple(result)


def _items(c: _Checker, raw: Any) -> tuple[V2Item, ...]:
    rows = c.array("items", raw, required=True)
    result: list[V2Item] = []
    ok = all(isinstance(item, dict) for item in rows or [])
    for p, item in c.objects("items", rows):
        before = len(c.bag.errors)
        code_reference = c.string(
            p + "code_reference", _text(item.get("code_reference")), required=True
        )
        name = c.string(p + "name", item.get("name"), required=True)
        note = c.string(p + "note", item.get("note"), required=False) or None
        quantity = c.number(
            p + "quantity",
            item.get("quantity"),
            required=True,
            minimum=Decimal("0.01"),
            max_decimals=2,
        )
        discount_rate = c.percent(
            p + "discount_rate", item.get("discount_rate"), required=False, zero=ZERO
        )
        discount_amount = c.number(
            p + "discount_amount",
            item.get("discount_amount"),
            required=False,
            minimum=ZERO,
            max_decimals=2,
        )
        price = c.number(
            p + "price", item.get("price"), required=True, minimum=ZERO, max_decimals=2
        )
        unit = _code(
            c,
            p + "unit_measure_code",
            item.get("unit_measure_code"),
            catalogs.v2_unit_measures(),
            default=None,
        )
        standard = _code(
            c,
            p + "standard_code",
            item.get("standard_code"),
            {e.code: e for e in catalogs.STANDARD_CODES.values()},
            default=None,
        )
        taxes = _taxes(c, p, item.get("taxes"))
        withholdings = _withholdings(
            c,
            p,
            item.get("withholding_taxes"),
            table=catalogs.V2_WITHHOLDING_TAXES,
            rate_field="rate",
            zero=ZERO,
        )
        if (
            quantity is not None
            and price is not None
            and discount_amount is not None
            and discount_amount > price * quantity
        ):
            c.fail(p + "discount_amount", "El campo {a} no puede ser mayor que el valor del ítem.")
        if len(c.bag.errors) != before or None in (quantity, price, unit, standard) or not taxes:
            ok = False
            continue
        assert quantity is not None
        assert price is not None
        assert unit is not None
        assert standard is not None
        result.append(
            V2Item(
                code_reference=code_reference,
                name=name,
                note=note,
                quantity=quantity,
                price=price,
                discount_rate=discount_rate or ZERO,
                discount_amount=discount_amount if discount_amount else None,
                unit_measure=catalogs.v2_unit_measures()[unit],
                standard_code=next(
                    e for e in catalogs.STANDARD_CODES.values() if e.code == standard
                ),
                taxes=taxes,
                withholdings=withholdings,
            )
        )
    return tuple(result) if ok else ()


def _sections(c: _Checker, raw: dict[str, Any], *, customer_required: bool) -> _Sections:
    s = _Sections()
    s.payments = _payments(c, raw.get("payment_details"))
    rounding = c.number(
        "cash_rounding_amount",
        raw.get("cash_rounding_amount"),
        required=False,
        minimum=-CASH_ROUNDING_LIMIT,
        maximum=CASH_ROUNDING_LIMIT,
        max_decimals=2,
    )
    s.rounding = rounding if rounding is not None else ZERO
    s.currency = _currency(c, raw.get("currency"))
    establishment_raw = c.obj("establishment", raw.get("establishment"), required=False)
    if establishment_raw is not None:
        s.establishment, s.establishment_code = _establishment(c, establishment_raw)
    customer_raw = c.obj("customer", raw.get("customer"), required=customer_required)
    if customer_raw is not None:
        s.customer, s.v2_customer = _customer(c, customer_raw)
    s.items = _items(c, raw.get("items"))
    return s


def _v1_items(items: tuple[V2Item, ...], amounts: DocumentAmounts) -> tuple[ItemData, ...]:
    """The v1 view of v2 items: tax-included unit price, first tax as ``tax_rate``/``tribute_id``."""
    result = []
    for item, computed in zip(items, amounts.items, strict=True):
        first = next((t for t in item.taxes if not t.is_excluded), item.taxes[0])
        gross = item.price * item.quantity
        rate = (
            round2(computed.discount / gross * HUNDRED)
            if gross and computed.discount
            else item.discount_rate
        )
        quantity: Any = (
            int(item.quantity) if item.quantity == item.quantity.to_integral() else item.quantity
        )
        result.append(
            ItemData(
                code_reference=item.code_reference,
                name=item.name,
                quantity=quantity,
                discount_rate=rate,
                price=round2(
                    (computed.line + computed.discount * (1 + first.rate / HUNDRED)) / item.quantity
                ),
                tax_rate=ZERO if first.is_excluded else first.rate,
                unit_measure_id=item.unit_measure.id,
                standard_code_id=item.standard_code.id,
                is_excluded=int(all(t.is_excluded for t in item.taxes)),
                tribute_id=first.tribute_id,
                withholdings=item.withholdings,
                note=item.note,
            )
        )
    return tuple(result)


def _check_payments(c: _Checker, s: _Sections, amounts: DocumentAmounts, prepaid: Decimal) -> None:
    """Σ payment_details.amount must equal total − prepayments + cash_rounding_amount.

    The v2 "redondeo en medios de pago" example pays 260550 for a total of 260564.81 with a rounding
    of −14.81; that prepayments reduce what is paid is inferred.
    """
    paid = sum((p.amount for p in s.payments), ZERO)
    expected = amounts.total - prepaid + s.rounding
    if s.payments and paid != expected:
        c.fail(
            "payment_details",
            f"La suma de los montos de payment_details ({paid:.2f}) no coincide con el total a pagar "
            f"({expected:.2f}).",
        )


# ---------------------------------------------------------------------------------------------
# Public entry points


def validate_bill_v2(body: Any) -> tuple[V2BillRequest | None, ErrorBag]:
    """Validate a ``POST /v2/bills/validate`` body (Factus v2 ``facturas/crear-y-validar``).

    Args:
        body: the decoded JSON body (a non-object counts as an empty object).

    Returns:
        ``(request, bag)`` with the normalized request when ``bag`` is empty, else ``(None, bag)``
        with every payload error found. Amounts are computed from net prices; the payments must add
        up to the total (see :func:`_check_payments`). Range checks are the state's.
    """
    raw, c = _begin(body)
    bag = c.bag
    range_id = c.integer("numbering_range_id", raw.get("numbering_range_id"), required=False)
    document = c.code_in(
        "document", _text(raw.get("document")), catalogs.BILL_DOCUMENTS, default="01"
    )
    reference_code = _reference_code(c, raw.get("reference_code"))
    # Only the standard operation is simulated in v2 (mandates, transport and health are not).
    operation = c.code_in(
        "operation_type",
        _text(raw.get("operation_type")),
        {"10": catalogs.OPERATION_TYPES["10"]},
        default="10",
    )
    c.hms("created_time", raw.get("created_time"), required=False)
    observation = c.string(
        "observation", raw.get("observation"), required=False, max_len=OBSERVATION_MAX
    )
    send_email = c.boolean("send_email", raw.get("send_email"), default=True)
    prepayments = _prepayments(c, raw.get("prepayment_details"))
    order_reference, related = _order_and_related(c, raw, document)
    billing_period = _billing_period(
        c, raw.get("billing_period"), required=False, end_time_required=False
    )
    s = _sections(c, raw, customer_required=True)
    allowances = _allowances(c, raw.get("allowance_charges"))
    if (
        bag
        or s.customer is None
        or not s.items
        or not s.payments
        or document is None
        or operation is None
    ):
        return None, bag
    amounts = document_amounts([i.money for i in s.items], [a.money for a in allowances])
    prepaid = sum((p["amount"] for p in prepayments), ZERO)
    _check_payments(c, s, amounts, prepaid)
    if bag:
        return None, bag
    first = s.payments[0]
    v1 = BillRequest(
        numbering_range_id=range_id,
        document=document,
        reference_code=reference_code,
        observation=observation or None,
        payment_form=first.payment_form,
        payment_due_date=first.due_date,
        payment_method_code=first.payment_method_code,
        operation_type=operation,
        send_email=send_email,
        order_reference=order_reference,
        related_documents=related,
        billing_period=billing_period,
        establishment=s.establishment,
        customer=s.customer,
        items=_v1_items(s.items, amounts),
        allowances=allowances,
    )
    extras = V2Extras(
        payment_details=tuple(s.payments),
        cash_rounding_amount=s.rounding,
        prepayments=tuple(prepayments),
        currency=s.currency,
        items=s.items,
        customer=s.v2_customer,
        amounts=amounts,
        establishment_municipality_code=s.establishment_code,
        order_reference=order_reference,
        billing_period=billing_period,
    )
    return V2BillRequest(v1, extras), bag


def validate_credit_note_v2(body: Any) -> tuple[V2CreditNoteRequest | None, ErrorBag]:
    """Validate a ``POST /v2/credit-notes/validate`` body (Factus v2 ``notas-credito/crear-y-validar``).

    ``customization_id`` defaults to 20 (references a bill: ``bill_number`` required); 22 needs
    ``billing_period`` and ``customer``. Whether the bill exists and is validated is checked by the
    caller against the account.

    Returns:
        ``(request, bag)`` as :func:`validate_bill_v2`.
    """
    raw, c = _begin(body)
    bag = c.bag
    range_id = c.integer("numbering_range_id", raw.get("numbering_range_id"), required=False)
    concept = c.in_table(
        "correction_concept_code",
        raw.get("correction_concept_code"),
        catalogs.CORRECTION_CONCEPTS,
        required=True,
    )
    customization_raw = raw.get("customization_id")
    customization = (
        catalogs.CUSTOMIZATION_WITH_BILL
        if _missing(customization_raw)
        else c.in_table(
            "customization_id",
            customization_raw,
            catalogs.CREDIT_NOTE_CUSTOMIZATIONS,
            required=True,
        )
    )
    bill_number: str | None = None
    if customization == catalogs.CUSTOMIZATION_WITH_BILL:
        bill_number = c.string("bill_number", _text(raw.get("bill_number")), required=False) or None
        if bill_number is None:
            c.fail("bill_number", "El campo {a} es obligatorio cuando Tipo de nota crédito es 20.")
    reference_code = _reference_code(c, raw.get("reference_code"))
    send_email = c.boolean("send_email", raw.get("send_email"), default=True)
    observation = c.string(
        "observation", raw.get("observation"), required=False, max_len=OBSERVATION_MAX
    )
    billing_period = _billing_period(
        c,
        raw.get("billing_period"),
        required=customization == catalogs.CUSTOMIZATION_WITHOUT_BILL,
        end_time_required=False,
    )
    s = _sections(c, raw, customer_required=customization == catalogs.CUSTOMIZATION_WITHOUT_BILL)
    allowances = _allowances(c, raw.get("allowance_charges"))
    if bag or concept is None or customization is None or not s.items or not s.payments:
        return None, bag
    amounts = document_amounts([i.money for i in s.items], [a.money for a in allowances])
    _check_payments(c, s, amounts, ZERO)
    if bag:
        return None, bag
    v1 = CreditNoteRequest(
        numbering_range_id=range_id,
        correction_concept_code=concept,
        customization_id=customization,
        bill_id=None,
        reference_code=reference_code,
        payment_method_code=s.payments[0].payment_method_code,
        send_email=send_email,
        observation=observation or None,
        billing_period=billing_period,
        establishment=s.establishment,
        customer=s.customer,
        items=_v1_items(s.items, amounts),
        allowances=allowances,
    )
    extras = V2Extras(
        payment_details=tuple(s.payments),
        cash_rounding_amount=s.rounding,
        prepayments=(),
        currency=s.currency,
        items=s.items,
        customer=s.v2_customer,
        amounts=amounts,
        establishment_municipality_code=s.establishment_code,
        billing_period=billing_period,
    )
    return V2CreditNoteRequest(v1, bill_number, extras), bag


def validate_range_v2(body: Any) -> tuple[dict[str, Any] | None, ErrorBag]:
    """Validate a ``POST /v2/numbering-ranges`` body (v2 ``rangos-de-numeracion/crear-rango``).

    Returns:
        ``({"document", "prefix", "current", "resolution_number"}, bag)``, or ``(None, bag)``:
        ``document`` from the v2 range table, ``prefix`` 1-4 alphanumerics, ``current`` an integer
        ≥ 0, ``resolution_number`` required for documents 21, 24 and 30.
    """
    raw, c = _begin(body)
    bag = c.bag
    document = c.code_in(
        "document", _text(raw.get("document")), catalogs.V2_RANGE_DOCUMENTS, default=None
    )
    prefix = c.string("prefix", _text(raw.get("prefix")), required=True)
    if prefix and not _PREFIX.match(prefix):
        c.fail("prefix", "El campo {a} debe tener entre 1 y 4 caracteres alfanuméricos.")
    current = c.integer("current", raw.get("current"), required=True, minimum=0)
    resolution = c.string(
        "resolution_number",
        _text(raw.get("resolution_number")),
        required=document in catalogs.RESOLUTION_RANGE_DOCUMENTS,
    )
    if bag or document is None or current is None:
        return None, bag
    return {
        "document": document,
        "prefix": prefix,
        "current": current,
        "resolution_number": resolution or None,
    }, bag
