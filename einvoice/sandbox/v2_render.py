"""JSON shapes of the simulator's v2 answers (Factus v2 docs), built from stored state.

v2 flattens a document under ``data`` (``facturas/crear-y-validar`` "Respuesta"): ``number``,
``reference_code``, ``is_validated`` (bool), ``validated_at`` (``DD-MM-YYYY hh:mm:ss AM|PM``, Bogotá,
as observed on the real sandbox in Oct 2026), ``errors`` as an object keyed by rule, ``cufe``
(``cude`` for credit notes), ``links{qr, public_url}``, ``totals``, ``taxes`` per tribute and rate,
``payment_details``, ``related_notes``. Flags are JSON booleans. A document created through v1 is
rendered from its v1 request (one tax per line, one payment), so both versions read every document.
Pure functions: no state is changed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from einvoice.sandbox import artifacts, catalogs
from einvoice.sandbox.amounts import ZERO, ItemAmounts, TaxAmount, money
from einvoice.sandbox.render import allowance_block, company_identity
from einvoice.sandbox.state import Account, NumberingRange, SandboxDocument
from einvoice.sandbox.v2_validation import V2BillRequest, V2CreditNoteRequest, V2Extras
from einvoice.sandbox.validation import BillRequest, CreditNoteRequest

CREDIT_NOTE_DOCUMENT = {"code": "91", "name": "Nota Crédito"}


def _code_name(entry: catalogs.CatalogEntry) -> dict[str, str]:
    return {"code": entry.code, "name": entry.name}


def _date(day: date | None) -> str | None:
    return artifacts.factus_date(day) if day else None


def errors_object(errors: Iterable[str]) -> dict[str, str]:
    """DIAN rule texts keyed by rule code (``{"FAJ43b": "Regla: FAJ43b, Notificación: ..."}``)."""
    return {e.split(",")[0].removeprefix("Regla: ").strip(): e for e in errors}


def rejection_body(errors: list[str]) -> dict[str, Any]:
    """The 422 body of a DIAN rejection on v2: ``data.errors`` as an array of rule texts, the shape
    recorded from v2 production responses (FACTUS_API.md §5.4, ERRUTIL)."""
    message = "El documento contiene errores de validación"
    return {
        "status": "Validation error",
        "message": message,
        "data": {"message": message, "errors": list(errors)},
    }


def forbidden(version: str) -> dict[str, Any]:
    """403 body for a route of an API version the account does not have (inferred wording)."""
    return {
        "status": "Forbidden",
        "message": f"Esta cuenta no tiene habilitado el acceso a la API {version}",
    }


def _municipality(municipality_id: int | None) -> dict[str, Any] | None:
    if municipality_id is None:
        return None
    m = catalogs.municipalities()[municipality_id]
    return {
        "code": m.code,
        "name": m.name,
        "department": {"code": m.department_code, "name": m.department_name},
    }


# ---------------------------------------------------------------------------------------------
# The v2 view of a stored document (created through v1 or v2)


@dataclass(frozen=True)
class _Line:
    code_reference: str
    name: str
    note: str | None
    quantity: Decimal
    price: Decimal
    discount_rate: Decimal
    unit: catalogs.CatalogEntry
    standard: catalogs.CatalogEntry
    amounts: ItemAmounts
    taxes: tuple[TaxAmount, ...]


def _extras(document: SandboxDocument) -> V2Extras | None:
    v2 = document.v2
    return v2.extras if isinstance(v2, (V2BillRequest, V2CreditNoteRequest)) else None


def _lines(document: SandboxDocument) -> list[_Line]:
    extras = _extras(document)
    amounts = document.amounts.items
    if extras is not None:
        return [
            _Line(
                i.code_reference,
                i.name,
                i.note,
                i.quantity,
                i.price,
                i.discount_rate,
                i.unit_measure,
                i.standard_code,
                a,
                a.taxes,
            )
            for i, a in zip(extras.items, amounts, strict=True)
        ]
    lines = []
    for item, a in zip(document.request.items, amounts, strict=True):
        tribute = catalogs.product_tribute(item.tribute_id)
        tax = TaxAmount(
            item.tribute_id,
            tribute.code,
            item.tax_rate,
            a.taxable_amount,
            a.tax_amount,
            bool(item.is_excluded),
        )
        net_price = a.taxable_amount / Decimal(item.quantity) if item.quantity else ZERO
        lines.append(
            _Line(
                item.code_reference,
                item.name,
                item.note,
                Decimal(item.quantity),
                net_price,
                item.discount_rate,
                catalogs.unit_measure(item.unit_measure_id),
                catalogs.STANDARD_CODES[item.standard_code_id],
                a,
                (tax,),
            )
        )
    return lines


def _tax_block(taxes: Iterable[TaxAmount]) -> list[dict[str, Any]]:
    return [
        {
            "tribute": {"code": t.code, "name": catalogs.product_tribute(t.tribute_id).name},
            "is_excluded": t.is_excluded,
            "rates": [
                {
                    "taxable_amount": money(t.taxable_amount),
                    "tax_amount": money(t.tax_amount),
                    "rate": money(t.rate),
                }
            ],
        }
        for t in taxes
    ]


def _tax_summary(lines: list[_Line]) -> list[dict[str, Any]]:
    """``data.taxes``: totals per tribute and rate, in order of first appearance."""
    grouped: dict[tuple[str, Decimal, bool], list[TaxAmount]] = {}
    for line in lines:
        for t in line.taxes:
            grouped.setdefault((t.code, t.rate, t.is_excluded), []).append(t)
    return [
        {
            "tribute": {"code": code, "name": catalogs.product_tribute(group[0].tribute_id).name},
            "is_excluded": excluded,
            "rates": [
                {
                    "taxable_amount": money(sum((t.taxable_amount for t in group), ZERO)),
                    "tax_amount": money(sum((t.tax_amount for t in group), ZERO)),
                    "rate": money(rate),
                }
            ],
        }
        for (code, rate, excluded), group in grouped.items()
    ]


def _withholdings(values: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        {
            "tribute": {"code": w.code, "name": catalogs.WITHHOLDING_TAXES[w.code].name},
            "value": money(w.value),
            "rates": [{"rate": money(w.rate)}],
        }
        for w in values
    ]


def _item(line: _Line) -> dict[str, Any]:
    a = line.amounts
    return {
        "code_reference": line.code_reference,
        "name": line.name,
        "quantity": money(line.quantity),
        "unit_measure": _code_name(line.unit),
        "standard_code": _code_name(line.standard),
        "discount_rate": money(line.discount_rate),
        "discount": money(a.discount),
        "gross_value": money(a.gross_value),
        "price": money(line.price),
        # "Valor total del ítem (precio × cantidad - descuento)" (v2 response table).
        "total": money(a.taxable_amount),
        "note": line.note,
        "scheme_id": None,
        "collection_concept": None,
        "mandate": None,
        "additional_properties": [],
        "taxes": _tax_block(line.taxes),
        "withholding_taxes": _withholdings(a.withholdings),
    }


def _payments(document: SandboxDocument) -> list[dict[str, Any]]:
    extras = _extras(document)
    if extras is not None:
        return [
            {
                "payment_form": _code_name(catalogs.PAYMENT_FORMS[p.payment_form]),
                "payment_method": _code_name(catalogs.PAYMENT_METHODS[p.payment_method_code]),
                "reference_code": p.reference_code,
                "amount": money(p.amount),
                "due_date": _date(p.due_date),
            }
            for p in extras.payment_details
        ]
    request = document.request
    form = getattr(request, "payment_form", "1")
    return [
        {
            "payment_form": _code_name(catalogs.PAYMENT_FORMS[form]),
            "payment_method": _code_name(catalogs.PAYMENT_METHODS[request.payment_method_code]),
            "reference_code": None,
            "amount": money(document.amounts.total),
            "due_date": _date(getattr(request, "payment_due_date", None)),
        }
    ]


def _customer(document: SandboxDocument) -> dict[str, Any]:
    customer = document.customer
    extras = _extras(document)
    v2 = extras.customer if extras is not None else None
    doc = catalogs.identification_document(customer.identification_document_id)
    org = catalogs.LEGAL_ORGANIZATIONS[customer.legal_organization_id]
    tribute = catalogs.CUSTOMER_TRIBUTES[customer.tribute_id]
    country = v2.country_code if v2 is not None else catalogs.COLOMBIA
    graphic = (
        customer.company
        if customer.legal_organization_id == 1 and customer.company
        else customer.names
    )
    return {
        "identification_document": _code_name(doc),
        "identification": customer.identification,
        "dv": document.customer_dv,
        "graphic_representation_name": graphic,
        "trade_name": customer.trade_name or None,
        "company": customer.company or None,
        "names": customer.names or graphic,
        # Factus fills an absent address with "No informado" (FACTUS_API.md §10.1).
        "address": customer.address or "No informado",
        "email": customer.email or None,
        "phone": customer.phone or None,
        "legal_organization": _code_name(org),
        "tribute": _code_name(tribute),
        "responsibilities": [
            {"code": code, "name": catalogs.RESPONSIBILITIES[code]}
            for code in (v2.responsibilities if v2 else (catalogs.DEFAULT_RESPONSIBILITY,))
        ],
        "country": {"code": country, "name": catalogs.COUNTRIES.get(country, country)},
        "municipality": _municipality(customer.municipality_id),
    }


def _company(document: SandboxDocument, account: Account) -> dict[str, Any]:
    company = account.company
    establishment = document.request.establishment
    if establishment is not None:
        place = {
            "name": establishment.name,
            "address": establishment.address,
            "phone_number": establishment.phone_number,
            "email": establishment.email,
            "municipality": _municipality(establishment.municipality_id),
        }
    else:
        place = {
            "name": company.name,
            "address": company.address,
            "phone_number": company.phone,
            "email": company.email,
            "municipality": _municipality(company.municipality_id),
        }
    return {
        **company_identity(company),
        "address": company.address,
        "municipality": _municipality(company.municipality_id),
        "establishment": place,
    }


def _range(chosen: NumberingRange) -> dict[str, Any]:
    return {
        "prefix": chosen.prefix,
        "from": chosen.start,
        "to": chosen.end,
        "resolution_number": chosen.resolution_number,
        "start_date": artifacts.factus_date(chosen.start_date),
        "end_date": artifacts.factus_date(chosen.end_date),
        "months": chosen.months,
    }


def _billing_period(period: dict[str, Any] | None) -> dict[str, Any] | None:
    if not period:
        return None
    return {
        "start_date": _date(period.get("start_date")),
        "start_time": period.get("start_time"),
        "end_date": _date(period.get("end_date")),
        "end_time": period.get("end_time"),
    }


def _totals(document: SandboxDocument) -> dict[str, str]:
    amounts = document.amounts
    extras = _extras(document)
    return {
        "prepayment_amount": money(extras.prepayment_amount if extras else ZERO),
        "gross_amount": money(amounts.gross_value),
        "taxable_amount": money(amounts.taxable_amount),
        "tax_amount": money(amounts.tax_amount),
        "discount_amount": money(amounts.discount_amount),
        "surcharge_amount": money(amounts.surcharge_amount),
        "cash_rounding_amount": money(extras.cash_rounding_amount if extras else ZERO),
        "total": money(amounts.total),
    }


def _links(document: SandboxDocument) -> dict[str, str]:
    return {"qr": artifacts.qr_url(document.cufe), "public_url": document.public_url}


def _common(document: SandboxDocument, account: Account) -> dict[str, Any]:
    lines = _lines(document)
    request = document.request
    return {
        "reference_code": document.reference_code,
        "number": document.number,
        "send_email": bool(request.send_email),
        "is_validated": document.status == 1,
        "validated_at": (
            artifacts.factus_datetime(document.validated_at) if document.validated_at else None
        ),
        "errors": errors_object(document.errors),
        "observation": request.observation,
        "created_at": artifacts.factus_datetime(document.created_at),
        "billing_period": _billing_period(request.billing_period),
        "payment_details": _payments(document),
        "numbering_range": _range(document.range),
        "company": _company(document, account),
        "customer": _customer(document),
        "items": [_item(line) for line in lines],
        "allowance_charges": allowance_block(document),
        "taxes": _tax_summary(lines),
        "withholding_taxes": _withholdings(document.amounts.withholdings),
        "totals": _totals(document),
        "links": _links(document),
    }


def bill_data(document: SandboxDocument, account: Account) -> dict[str, Any]:
    """``data`` of ``POST /v2/bills/validate`` and ``GET /v2/bills/{number}``.

    Raises:
        TypeError: ``document`` is a credit note.
    """
    request = document.request
    if not isinstance(request, BillRequest):
        raise TypeError(f"document {document.number} is not a bill")
    order = request.order_reference if hasattr(request, "order_reference") else None
    extras = _extras(document)
    data = {
        **_common(document, account),
        "order_reference": str(order.get("reference_code")) if order else None,
        "has_claim": False,
        "is_negotiable_instrument": False,
        "cufe": document.cufe,
        "document_type": _code_name(catalogs.BILL_DOCUMENTS[request.document]),
        "operation_type": _code_name(catalogs.OPERATION_TYPES[request.operation_type]),
        "health": None,
        "beneficiary": None,
        "prepayment_details": [
            {
                "reference_code": p["reference_code"],
                "received_date": p["received_date"].isoformat(),
                "amount": money(p["amount"]),
                "note": p["note"],
            }
            for p in (extras.prepayments if extras else ())
        ],
        "related_documents": [
            {
                "code": str(doc.get("code")),
                "issue_date": doc.get("issue_date"),
                "number": str(doc.get("number")),
            }
            for doc in request.related_documents
        ],
        "related_notes": {
            "credit_notes": [
                {"number": cn.number, "reference_code": cn.reference_code}
                for cn in document.credit_notes
                if cn.status == 1
            ],
            "debit_notes": [],
        },
    }
    if extras is not None and extras.currency is not None:
        data["currency"] = {
            "type": extras.currency["type"],
            "exchange_rate": money(extras.currency["exchange_rate"]),
        }
    return data


def credit_note_data(document: SandboxDocument, account: Account) -> dict[str, Any]:
    """``data`` of ``POST /v2/credit-notes/validate`` and ``GET /v2/credit-notes/{number}``:
    ``cude`` instead of ``cufe`` (observed on the real sandbox, Oct 2026).

    Raises:
        TypeError: ``document`` is a bill.
    """
    request = document.request
    if not isinstance(request, CreditNoteRequest):
        raise TypeError(f"document {document.number} is not a credit note")
    return {
        **_common(document, account),
        "cude": document.cufe,
        "document_type": CREDIT_NOTE_DOCUMENT,
        "correction_concept": _code_name(
            catalogs.CORRECTION_CONCEPTS[request.correction_concept_code]
        ),
        "customization": _code_name(catalogs.CREDIT_NOTE_CUSTOMIZATIONS[request.customization_id]),
        "bill_number": document.bill.number if document.bill else None,
        "bill_cufe": document.bill.cufe if document.bill else None,
    }


def list_item(document: SandboxDocument) -> dict[str, Any]:
    """One row of ``GET /v2/bills`` or ``GET /v2/credit-notes``: number, reference, ``is_validated``,
    errors and total, no CUFE and no links (as observed on the real sandbox, Oct 2026)."""
    customer = document.customer
    row: dict[str, Any] = {
        "id": document.id,
        "number": document.number,
        "api_client_name": document.api_client_name,
        "reference_code": document.reference_code,
        "identification": customer.identification,
        "names": customer.names or customer.company,
        "graphic_representation_name": (
            customer.company
            if customer.legal_organization_id == 1 and customer.company
            else customer.names
        ),
        "company": customer.company or None,
        "trade_name": customer.trade_name or None,
        "email": customer.email or None,
        "total": money(document.amounts.total),
        "errors": errors_object(document.errors),
        "send_email": bool(document.request.send_email),
        "has_claim": False,
        "is_negotiable_instrument": False,
        "is_validated": document.status == 1,
        "validated_at": (
            artifacts.factus_datetime(document.validated_at) if document.validated_at else None
        ),
        "created_at": artifacts.factus_datetime(document.created_at),
    }
    if document.kind == "credit_note":
        row["bill_number"] = document.bill.number if document.bill else None
    return row


def range_item(chosen: NumberingRange, today: date) -> dict[str, Any]:
    """A numbering range of ``GET /v2/numbering-ranges`` and ``POST /v2/numbering-ranges``
    (v2 ``crear-rango`` response: ``document`` code and ``document_name``; 0/1 flags)."""
    return {
        "id": chosen.id,
        "document": chosen.document,
        "document_name": catalogs.RANGE_DOCUMENTS[chosen.document].name,
        "prefix": chosen.prefix,
        "from": chosen.start,
        "to": chosen.end,
        "current": chosen.current,
        "resolution_number": chosen.resolution_number,
        "start_date": chosen.start_date.isoformat(),
        "end_date": chosen.end_date.isoformat(),
        "technical_key": chosen.technical_key,
        "is_expired": int(chosen.is_expired(today)),
        "is_active": int(chosen.is_active),
        "created_at": artifacts.iso_utc(chosen.created_at),
        "updated_at": artifacts.iso_utc(chosen.updated_at),
    }


def dian_range_item(chosen: NumberingRange) -> dict[str, Any]:
    """A row of ``GET /v2/numbering-ranges/dian`` (v2 ``rangos-asociados-al-software`` table)."""
    return {
        "prefix": chosen.prefix,
        "from": chosen.start,
        "to": chosen.end,
        "resolution_number": chosen.resolution_number,
        "start_date": chosen.start_date.isoformat(),
        "end_date": chosen.end_date.isoformat(),
        "technical_key": chosen.technical_key,
    }
