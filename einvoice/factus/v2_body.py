"""Factus API v2 wire bodies: a checked sales document → ``POST /v2/bills/validate`` and
``POST /v2/credit-notes/validate``, and the total Factus v2 computes from them.

Sources: Factus v2 docs (``sbetav/factus-js``, ``factus-docs/v2/``): ``facturas/crear-y-validar``
and ``descripcion-de-campos`` (fields), ``facturas/ejemplos/*`` (shapes: strings with two decimals,
``payment_details``, ``cash_rounding_amount``, ``prepayment_details``, ``currency``,
``order_reference``, the final consumer), ``notas-credito/crear-y-validar`` (``bill_number``),
``tablas-de-referencia/tablas`` (codes).

Entry points, named as :mod:`einvoice.factus.v1_body`'s: :func:`bill_body`,
:func:`credit_note_body`, :func:`payload_total`; :data:`V2_RULES` to build the document with.

What is v2's own:

* **Price** is **net** of tax with at most two decimals: a net ERP price with two decimals is sent
  as is; otherwise (a tax-included price, or more decimals) the 2-decimal net price whose v2 line
  total is closest to the ERP's gross line is chosen (:func:`_net_wire_price`).
* **Quantity** up to two decimals (``quantity_too_precise`` beyond: never rounded).
* **Taxes** as ``taxes[{code, rate, is_excluded}]`` (01 IVA, 04 INC, 35 ICUI; several per line);
  an excluded line sends ``{"code": "01", "rate": "0.00", "is_excluded": true}``.
* **Withholdings** ``{code, rate}``, 05 and 06 only (v2 has no ReteICA).
* **Codes** instead of ids: ``identification_document_code``, ``legal_organization_code``,
  ``tribute_code``, ``municipality_code`` (the DANE code of the Factus municipality id),
  ``unit_measure_code``, ``standard_code``.
* **Payments**: ``payment_details[]`` add up to total − prepayments + cash rounding (the
  simulator's reading of ``redondeo-medios-pago``; ``payments_mismatch`` otherwise).
* ``observation`` up to 500 characters (longer is truncated, as v1's 250); ``send_email`` is
  always sent (v2 defaults to true).

Amounts Factus v2 computes (:func:`line_amounts`): ``gross = price × quantity``; ``discount =
discount_amount`` or ``round2(gross × rate/100)``; ``taxable = round2(gross − discount)``; each tax
``round2(taxable × rate/100)``; ``line = taxable + Σ taxes``; ``total = Σ line + surcharges``. This
checks to the cent against the ``redondeo-medios-pago`` example (total 260564.81).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from einvoice.domain import dian
from einvoice.domain.document import Fail, Line, LineTax, Party, SalesDocument, WireRules
from einvoice.domain.errors import PayloadError
from einvoice.domain.jobs import DocumentType
from einvoice.domain.payload import (
    CENT,
    HUNDRED,
    check_credit_cap,
    check_totals,
    nearest_wire_price,
    round2,
)
from einvoice.domain.payload import (
    total_tolerance as domain_total_tolerance,
)
from einvoice.factus import wire
from einvoice.factus.wire import JsonDict

_ZERO = Decimal(0)


def _money(value: Decimal) -> str:
    """A v2 amount, rate or quantity: a string with exactly two decimals (``"10000.00"``)."""
    return f"{round2(value):.2f}"


def line_amounts(
    *, price: Decimal, quantity: Decimal, discount_rate: Decimal,
    discount_amount: Decimal | None, rates: Sequence[Decimal],
) -> tuple[Decimal, Decimal]:
    """(line total, taxable amount) Factus v2 computes for one item, COP (module docstring).

    Inputs: the net ``price`` and ``quantity`` sent, the discount as a rate (percent) or an
    amount, and the rates of the line's taxes (0 for an excluded one).
    """
    gross = price * quantity
    discount = (round2(discount_amount) if discount_amount is not None
                else round2(gross * discount_rate / HUNDRED))
    taxable = round2(gross - discount)
    return taxable + sum((round2(taxable * rate / HUNDRED) for rate in rates), _ZERO), taxable


def payload_total(body: Mapping[str, Any]) -> Decimal:
    """The document total a v2 body implies (Σ lines + surcharges), COP.

    Input: a bill or credit-note body built by this module. Output: the total before
    prepayments and cash rounding (what ``payment_details`` pay is that total − prepayments +
    rounding). Used by the reconcile comparison.
    """
    total = _ZERO
    for item in body["items"]:
        amount = item.get("discount_amount")
        total += line_amounts(
            price=Decimal(str(item["price"])),
            quantity=Decimal(str(item["quantity"])),
            discount_rate=Decimal(str(item.get("discount_rate") or 0)),
            discount_amount=None if amount is None else Decimal(str(amount)),
            rates=[Decimal(str(tax.get("rate") or 0)) for tax in item["taxes"]
                   if not tax.get("is_excluded")],
        )[0]
    for charge in body.get("allowance_charges", ()):
        amount = Decimal(str(charge["amount"]))
        total += amount if charge["is_surcharge"] else -amount
    return total


def total_tolerance(body: Mapping[str, Any]) -> Decimal:
    """How far the ERP total may sit from Factus's v2 total and still be the same sale (COP).

    Input: a body built by this module. Output:
    :func:`einvoice.domain.payload.total_tolerance` of its items' quantities.
    """
    return domain_total_tolerance(Decimal(str(item["quantity"])) for item in body["items"])


def _rates(taxes: Sequence[LineTax]) -> list[Decimal]:
    return [_ZERO if tax.is_excluded else tax.rate for tax in taxes]


def _net_wire_price(line: Line) -> Decimal:
    """Choose the 2-decimal net unit price to send (see the module docstring).

    A net ERP price with at most 2 decimals is sent as is. Otherwise the 2-decimal price around
    ``erp.gross / (quantity × (1 − discount/100) × (1 + Σ rates/100))`` whose v2 amounts best
    match the ERP's line (:func:`einvoice.domain.payload.nearest_wire_price`).
    """
    rates = _rates(line.taxes)
    factor_tax = 1 + sum(rates, _ZERO) / HUNDRED
    if not line.tax_included and line.unit_price == round2(line.unit_price):
        return line.unit_price.quantize(CENT)
    exact_net = line.unit_price / factor_tax if line.tax_included else line.unit_price
    factor = line.quantity * (1 - line.discount_rate / HUNDRED) * factor_tax
    if factor == 0:
        return round2(exact_net)

    def amounts(price: Decimal) -> tuple[Decimal, Decimal]:
        return line_amounts(price=price, quantity=line.quantity, discount_rate=line.discount_rate,
                            discount_amount=None, rates=rates)

    return nearest_wire_price(erp=line.erp, factor=factor, exact_unit=exact_net, amounts=amounts)


class V2Rules(WireRules):
    """Factus v2's checks (see the module docstring)."""

    withholding_codes = dian.V2_WITHHOLDING_CODES
    withholding_detail = ("expected 05 ReteIVA or 06 ReteRenta (ReteFuente); Factus v2 has no "
                          "ReteICA (v2 tablas 'Códigos de retenciones')")

    def check_currency(self, currency: str | None) -> None:
        """``unsupported_currency`` unless COP: v2 amounts are COP too (``currency`` only shows
        the totals in another one; set ``invoice_sales.display_currency`` for that)."""
        if currency is not None and currency.strip().upper() != "COP":
            raise PayloadError(
                "unsupported_currency", field="invoice_sales.currency", value=currency,
                detail=("Factus bills in COP; to show the totals in another currency set "
                        "invoice_sales.display_currency and exchange_rate (v2 currency)"))

    def check_quantity(self, quantity: Decimal, fail: Fail) -> None:
        """``quantity_too_precise``: v2 quantities have at most two decimals."""
        if quantity != round2(quantity):
            raise fail("quantity_too_precise", "qty", quantity,
                       "Factus v2 accepts quantities with at most two decimals; the quantity is "
                       "refused, not rounded, because rounding would change the amount billed")

    def check_taxes(self, taxes: tuple[LineTax, ...], where: str, label: str) -> None:
        """Only the taxes of v2's table (01, 04, 35)."""
        for position, tax in enumerate(taxes):
            if tax.code not in dian.V2_TAX_CODES:
                raise PayloadError(
                    "unknown_product_tribute",
                    field=f"{where}.taxes[{position}]" if len(taxes) > 1 else f"{where}.tribute_id",
                    value=tax.code,
                    detail=(f"{label}: Factus v2 knows taxes 01 IVA, 04 INC and 35 ICUI only "
                            "(v2 tablas 'Códigos de impuestos')"))

    def finish_line(self, line: Line, where: str, label: str) -> Line:
        """Choose the net wire price; refuse a price × quantity beyond 13 digits."""
        price = _net_wire_price(line)
        if abs(price * line.quantity) >= dian.AMOUNT_LIMIT:
            raise PayloadError(
                "amount_too_large", field=f"{where}.unit_price", value=price * line.quantity,
                detail=(f"{label}: price × quantity has more than 13 integer digits; Factus "
                        "carries amounts with 2 decimals, exact only below 10,000,000,000,000"))
        line.wire_price = price
        return line

    def check_extras(self, document: SalesDocument) -> None:
        """A credit note names its bill by number in v2 (``bill_number``)."""
        if (document.document_type == DocumentType.CREDIT_NOTE.value
                and document.related_bill_number is None):
            raise PayloadError(
                "missing_related_bill", field="related_invoice.number",
                value=document.related_invoice_id,
                detail=("the corrected invoice has no Factus number (its accepted job's "
                        "document_number); a v2 credit note needs bill_number"))


#: The rules to build a v2 document with.
V2_RULES = V2Rules()


# --- Mapping the document to the v2 body --------------------------------------------------------


def _municipality_code(code: str | None, municipality_id: int, field: str) -> str:
    if code is None:
        raise PayloadError(
            "unknown_municipality", field=field, value=municipality_id,
            detail=("no DANE code for this Factus municipality id in dian_municipalities; "
                    "Factus v2 needs municipality_code"))
    return code


def _customer(party: Party) -> JsonDict:
    body: JsonDict = {
        "identification_document_code": dian.IDENTIFICATION_DOCUMENTS[
            party.identification_document_id][0],
        "identification": party.identification,
    }
    wire.party_names(party, body)
    body["legal_organization_code"] = str(party.legal_organization_id)
    body["tribute_code"] = dian.CUSTOMER_TRIBUTES[party.tribute_id][0]
    if party.municipality_id is not None:
        body["municipality_code"] = _municipality_code(
            party.municipality_code, party.municipality_id, "customers.municipality_id")
    return body


def _item(line: Line, position: int) -> JsonDict:
    assert line.wire_price is not None, "build the document with V2_RULES"
    body: JsonDict = {
        "code_reference": line.code_reference,
        "name": line.name,
        "quantity": _money(line.quantity),
    }
    amount = line.discount_amount
    if (amount is not None and not line.tax_included and line.wire_price == line.unit_price
            and amount == round2(amount)):
        # A net ERP price sent as is: its discount amount is exact, a derived rate is not.
        body["discount_amount"] = _money(amount)
    else:
        body["discount_rate"] = _money(line.discount_rate)
    if line.unit_measure_code is None:
        raise PayloadError(
            "unknown_unit_measure", field=f"invoice_items[{position}].unit_measure_id",
            value=line.unit_measure_id,
            detail="the unit table has no code for this unit id; Factus v2 needs unit_measure_code")
    body["price"] = _money(line.wire_price)
    body["unit_measure_code"] = line.unit_measure_code
    body["standard_code"] = dian.V2_STANDARD_CODES[line.standard_code_id]
    taxes = []
    for tax in line.taxes:
        entry: JsonDict = {"code": tax.code, "rate": _money(_ZERO if tax.is_excluded else tax.rate)}
        if tax.is_excluded:
            entry["is_excluded"] = True
        taxes.append(entry)
    body["taxes"] = taxes
    if line.withholdings:
        body["withholding_taxes"] = [{"code": w.code, "rate": _money(w.rate)}
                                     for w in line.withholdings]
    if line.note is not None:
        body["note"] = line.note
    return body


def _body(document: SalesDocument, head: JsonDict) -> JsonDict:
    body = dict(head)
    if document.currency is not None:
        body["currency"] = {"type": document.currency.code,
                            "exchange_rate": _money(document.currency.exchange_rate)}
    observation = wire.truncated(document.observation, dian.V2_OBSERVATION_MAX_CHARS)
    if observation:
        body["observation"] = observation
    body["send_email"] = document.send_email
    if document.prepayments:
        prepayments = []
        for prepayment in document.prepayments:
            entry: JsonDict = {"reference_code": prepayment.reference_code,
                               "received_date": prepayment.received_date.isoformat(),
                               "amount": _money(prepayment.amount)}
            if prepayment.note is not None:
                entry["note"] = prepayment.note
            prepayments.append(entry)
        body["prepayment_details"] = prepayments
    if document.billing_period is not None:
        body["billing_period"] = wire.billing_period(document.billing_period)
    if document.order_reference is not None:
        body["order_reference"] = wire.order_reference(document.order_reference)
    place = document.establishment
    if place is not None:
        field = ("branches.municipality_id" if place.municipality_id is not None
                 else "organizations.municipality_id")
        body["establishment"] = {
            **wire.establishment_contact(place),
            "municipality_code": _municipality_code(place.municipality_code,
                                                    place.municipality_id, field),
        }
    if document.customer is not None:
        body["customer"] = _customer(document.customer)
    body["items"] = [_item(line, index) for index, line in enumerate(document.lines)]
    if document.allowance_charges:
        body["allowance_charges"] = [
            {"concept_type": c.concept_type, "is_surcharge": c.is_surcharge, "reason": c.reason,
             "base_amount": _money(c.base_amount), "amount": _money(c.amount)}
            for c in document.allowance_charges
        ]
    total = check_totals(
        document, factus_total=lambda: payload_total(body),
        estimate=lambda: float(sum(Decimal(i["price"]) * Decimal(i["quantity"])
                                   for i in body["items"])),
        tolerance=lambda: total_tolerance(body))
    if total is None:
        total = payload_total(body)
    body["payment_details"] = _payment_details(document, total)
    body["cash_rounding_amount"] = _money(document.cash_rounding_amount)
    if document.document_type == DocumentType.CREDIT_NOTE.value:
        check_credit_cap(document, total)
    return body


def _payment_details(document: SalesDocument, total: Decimal) -> list[JsonDict]:
    """``payment_details[]``: they pay total − prepayments + cash rounding (``payments_mismatch``)."""
    due = total - document.prepaid + document.cash_rounding_amount
    if due < 0:
        raise PayloadError(
            "payments_mismatch", field="invoice_sales.prepayments", value=document.prepaid,
            detail=f"the prepayments exceed the total {total} (with cash rounding)")
    rows = [p for p in document.payments if p.amount is not None]
    if rows:
        paid = sum((p.amount for p in rows if p.amount is not None), _ZERO)
        if paid != due:
            raise PayloadError(
                "payments_mismatch", field="invoice_payments", value=paid,
                detail=(f"the payments add up to {paid}, but the invoice leaves {due} to pay "
                        f"(total {total} − prepayments {document.prepaid} + cash rounding "
                        f"{document.cash_rounding_amount})"))
    details = []
    for payment in document.payments:
        entry: JsonDict = {"payment_form": payment.payment_form,
                           "payment_method_code": payment.payment_method_code}
        if payment.reference is not None:
            entry["reference_code"] = payment.reference
        entry["amount"] = _money(due if payment.amount is None else payment.amount)
        if payment.payment_form == dian.PAYMENT_FORM_CREDIT and payment.due_date is not None:
            entry["due_date"] = payment.due_date.isoformat()
        details.append(entry)
    return details


def bill_body(document: SalesDocument) -> JsonDict:
    """The JSON body of ``POST /v2/bills/validate`` for an invoice document.

    Input: a document built with :data:`V2_RULES`. Output: a dict ready for ``json.dumps`` (amounts,
    rates and quantities as 2-decimal strings, as the v2 examples send them).
    Raises: :class:`PayloadError` ``total_mismatch``, ``amount_too_large``, ``payments_mismatch``,
    ``unknown_municipality`` (no DANE code), ``unknown_unit_measure`` (no unit code).
    """
    head: JsonDict = {
        "reference_code": document.reference_code,
        "numbering_range_id": document.numbering_range_id,
        "operation_type": document.operation_type,
    }
    return _body(document, head)


def credit_note_body(document: SalesDocument) -> JsonDict:
    """The JSON body of ``POST /v2/credit-notes/validate`` (``customization_id`` 20).

    Input: a credit-note document built with :data:`V2_RULES` (``related_bill_number`` set).
    Output: a dict; the customer is included when the document has one (else Factus takes the
    bill's). Raises: :class:`PayloadError` as :func:`bill_body`, plus ``credit_exceeds_invoice``.
    """
    head: JsonDict = {
        "reference_code": document.reference_code,
        "correction_concept_code": str(document.correction_concept_code),
        "customization_id": str(dian.CREDIT_NOTE_WITH_REFERENCE),
        "bill_number": document.related_bill_number,
        "numbering_range_id": document.numbering_range_id,
    }
    return _body(document, head)
