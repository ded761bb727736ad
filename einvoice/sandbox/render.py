"""JSON shapes of the simulator's answers, built from stored state (FACTUS_API.md §4, §6, §7, §8).

Conventions kept from the contract (§1): money as 2-decimal strings except ``items[].total`` (a
JSON number); flags as 0/1 except ``is_surcharge`` and ``is_expired`` (bools); bill times as
``DD-MM-YYYY hh:mm:ss AM|PM`` in Bogotá; range dates ``YYYY-MM-DD`` in lists and ``DD-MM-YYYY`` in a
single range and inside a bill. Pure functions: no state is changed here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from einvoice.sandbox import artifacts, catalogs
from einvoice.sandbox.amounts import DocumentAmounts, ItemAmounts, money
from einvoice.sandbox.state import Account, Company, NumberingRange, SandboxDocument
from einvoice.sandbox.validation import (
    BillRequest,
    CreditNoteRequest,
    CustomerData,
    EstablishmentData,
    ItemData,
)

T = TypeVar("T")
PAGE_SIZE = 10  # FACTUS_API.md §6.1
MAX_PAGE_SIZE = 100


def ok(data: Any) -> dict[str, Any]:
    """The envelope of a successful read (§1): ``{"status": "OK", "message": "Solicitud exitosa", "data"}``."""
    return {"status": "OK", "message": "Solicitud exitosa", "data": data}


def range_not_found(range_id: str) -> dict[str, Any]:
    """The 404 body of ``GET /v1|v2/numbering-ranges/{id}`` for an id the account does not have."""
    return {"status": "Not Found", "message": f"No se encontró el rango de numeración {range_id}"}


def not_found(number: str) -> dict[str, Any]:
    """The 404 body of an unknown document number (§5.6)."""
    return {"status": "Not Found", "message": f"No se encontró el documento {number}"}


def _entry(entry: catalogs.CatalogEntry) -> dict[str, Any]:
    return {"id": entry.id, "code": entry.code, "name": entry.name}


def _code_name(entry: catalogs.CatalogEntry) -> dict[str, Any]:
    return {"code": entry.code, "name": entry.name}


def _number(value: Decimal) -> int | float:
    """``items[].total`` is a JSON number: an int when whole (``47600``), else a float."""
    rounded = value.quantize(Decimal("0.01"))
    return int(rounded) if rounded == rounded.to_integral_value() else float(rounded)


def company_identity(company: Company) -> dict[str, Any]:
    """The leading fields of a document's ``data.company``, the same in v1 (§4.1) and v2."""
    return {
        "url_logo": company.url_logo,
        "nit": company.nit,
        "dv": company.dv,
        "company": company.name,
        "name": company.name,
        "graphic_representation_name": company.name,
        "registration_code": company.registration_code,
        "economic_activity": company.economic_activity,
        "phone": company.phone,
        "email": company.email,
    }


def company_block(company: Company) -> dict[str, Any]:
    """``data.company`` of a document (§4.1)."""
    municipality = catalogs.municipalities()[company.municipality_id]
    return {
        **company_identity(company),
        "direction": company.address,
        "municipality": municipality.name,
    }


def company_profile(account: Account) -> dict[str, Any]:
    """``GET /v1/company`` data (§8.2)."""
    company = account.company
    municipality = catalogs.municipalities()[company.municipality_id]
    return {
        "url_logo": company.url_logo,
        "nit": company.nit,
        "dv": company.dv,
        "company": company.name,
        "trade_name": company.name,
        "names": "",
        "surnames": "",
        "graphic_representation_name": company.name,
        "registration_code": company.registration_code,
        "economic_activity": company.economic_activity,
        "phone": company.phone,
        "email": company.email,
        "address": company.address,
        "tribute": _code_name(catalogs.CUSTOMER_TRIBUTES[18]),
        "legal_organization": _code_name(catalogs.LEGAL_ORGANIZATIONS[1]),
        "municipality": {
            "code": municipality.code,
            "name": municipality.name,
            "department": {
                "code": municipality.department_code,
                "name": municipality.department_name,
            },
        },
        "responsibilities": [{"code": "O-13", "name": "Gran contribuyente"}],
        "created_at": "2023-06-01T08:00:38Z",
        "updated_at": "2023-06-01T08:00:38Z",
    }


def _graphic_name(customer: CustomerData) -> str:
    return (
        customer.company
        if customer.legal_organization_id == 1 and customer.company
        else customer.names
    )


def customer_block(document: SandboxDocument) -> dict[str, Any]:
    """``data.customer`` of a document (§4.1); ``dv`` only for NIT customers."""
    customer = document.customer
    municipality = None
    if customer.municipality_id is not None:
        m = catalogs.municipalities()[customer.municipality_id]
        municipality = {"id": m.id, "code": m.code, "name": m.name}
    return {
        "identification": customer.identification,
        "dv": document.customer_dv,
        "graphic_representation_name": _graphic_name(customer),
        "trade_name": customer.trade_name,
        "company": customer.company,
        "names": customer.names,
        "address": customer.address,
        "email": customer.email,
        "phone": customer.phone,
        "legal_organization": _entry(catalogs.LEGAL_ORGANIZATIONS[customer.legal_organization_id]),
        "tribute": _entry(catalogs.CUSTOMER_TRIBUTES[customer.tribute_id]),
        "municipality": municipality,
    }


def establishment_block(establishment: EstablishmentData) -> dict[str, Any]:
    """``data.establishment`` (§4.1): note ``municipality_id`` holds an object there."""
    m = catalogs.municipalities()[establishment.municipality_id]
    return {
        "name": establishment.name,
        "address": establishment.address,
        "phone_number": establishment.phone_number,
        "email": establishment.email,
        "municipality_id": {
            "id": m.id,
            "code": m.code,
            "name": m.name,
            "department": {
                "id": m.department_id,
                "code": m.department_code,
                "name": m.department_name,
            },
        },
    }


def range_in_document(chosen: NumberingRange) -> dict[str, Any]:
    """``data.numbering_range`` of a bill (§4.1)."""
    return {
        "prefix": chosen.prefix,
        "from": chosen.start,
        "to": chosen.end,
        "resolution_number": chosen.resolution_number,
        "start_date": artifacts.factus_date(chosen.start_date),
        "end_date": artifacts.factus_date(chosen.end_date),
        "months": chosen.months,
    }


def _billing_period(period: dict[str, Any] | None) -> dict[str, Any] | list[Any]:
    if period is None:
        return []
    return {
        "start_date": artifacts.factus_date(period["start_date"]),
        "start_time": period["start_time"],
        "end_date": artifacts.factus_date(period["end_date"]),
        "end_time": period["end_time"],
    }


def _item(item: ItemData, amounts: ItemAmounts, *, with_mandate: bool) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    if with_mandate:
        rendered["scheme_id"] = item.scheme_id
    rendered.update(
        {
            "note": item.note,
            "code_reference": item.code_reference,
            "name": item.name,
            "quantity": _number(Decimal(item.quantity)),
            "discount_rate": money(item.discount_rate),
            "discount": money(amounts.discount),
            "gross_value": money(amounts.gross_value),
            "tax_rate": money(item.tax_rate),
            "taxable_amount": money(amounts.taxable_amount),
            "tax_amount": money(amounts.tax_amount),
            "price": money(item.price),
            "is_excluded": item.is_excluded,
            "unit_measure": _entry(catalogs.unit_measure(item.unit_measure_id)),
            "standard_code": _entry(catalogs.STANDARD_CODES[item.standard_code_id]),
            "tribute": _entry(catalogs.product_tribute(item.tribute_id)),
            "total": _number(amounts.line),
            "withholding_taxes": [
                {
                    "tribute_code": w.code,
                    "name": catalogs.WITHHOLDING_TAXES[w.code].name,
                    "value": money(w.value),
                    "rates": [
                        {
                            "code": w.code,
                            "name": catalogs.WITHHOLDING_TAXES[w.code].name,
                            "rate": money(w.rate),
                        }
                    ],
                }
                for w in amounts.withholdings
            ],
        }
    )
    if with_mandate:
        rendered["mandate"] = item.mandate
    return rendered


def _items(
    items: Sequence[ItemData], amounts: DocumentAmounts, *, with_mandate: bool
) -> list[dict[str, Any]]:
    return [
        _item(i, a, with_mandate=with_mandate) for i, a in zip(items, amounts.items, strict=True)
    ]


def allowance_block(document: SandboxDocument) -> list[dict[str, Any]]:
    """``allowance_charges`` of a document's response, the same in v1 and v2."""
    return [
        {
            "concept_type": _code_name(catalogs.ALLOWANCE_CONCEPTS[a.concept_type]),
            "is_surcharge": a.is_surcharge,
            "reason": a.reason,
            "base_amount": money(c.base_amount),
            "percentage": money(c.percentage),
            "amount": money(c.amount),
        }
        for a, c in zip(document.request.allowances, document.amounts.allowances, strict=True)
    ]


def _withholding_totals(amounts: DocumentAmounts) -> list[dict[str, Any]]:
    return [
        {
            "tribute_code": w.code,
            "name": catalogs.WITHHOLDING_TAXES[w.code].name,
            "value": money(w.value),
        }
        for w in amounts.withholdings
    ]


def _amount_fields(amounts: DocumentAmounts) -> dict[str, str]:
    return {
        "gross_value": money(amounts.gross_value),
        "taxable_amount": money(amounts.taxable_amount),
        "tax_amount": money(amounts.tax_amount),
        "discount_amount": money(amounts.discount_amount),
        "surcharge_amount": money(amounts.surcharge_amount),
        "total": money(amounts.total),
    }


def _validated(document: SandboxDocument) -> str | None:
    return artifacts.factus_datetime(document.validated_at) if document.validated_at else None


def _notes(document: SandboxDocument) -> list[dict[str, Any]]:
    return [{"id": cn.id, "number": cn.number} for cn in document.credit_notes if cn.status == 1]


def bill_data(document: SandboxDocument, account: Account) -> dict[str, Any]:
    """``data`` of a bill's validate and show responses (§4.1)."""
    request = document.request
    assert isinstance(request, BillRequest)
    amounts = document.amounts
    data: dict[str, Any] = {"company": company_block(account.company)}
    if request.establishment is not None:
        data["establishment"] = establishment_block(request.establishment)
    order_reference = None
    if request.order_reference is not None:
        order_reference = {
            "reference_code": str(request.order_reference.get("reference_code")),
            "issue_date": request.order_reference.get("issue_date"),
        }
    data.update(
        {
            "customer": customer_block(document),
            "numbering_range": range_in_document(document.range),
            "billing_period": _billing_period(request.billing_period),
            "bill": {
                "id": document.id,
                "document": _code_name(catalogs.BILL_DOCUMENTS[request.document]),
                "operation_type": _code_name(catalogs.OPERATION_TYPES[request.operation_type]),
                "order_reference": order_reference,
                "number": document.number,
                "reference_code": document.reference_code,
                "status": document.status,
                "send_email": int(request.send_email),
                "qr": artifacts.qr_url(document.cufe),
                "public_url": document.public_url,
                "cufe": document.cufe,
                "validated": _validated(document),
                **_amount_fields(amounts),
                "observation": request.observation,
                "errors": list(document.errors),
                "created_at": artifacts.factus_datetime(document.created_at),
                "payment_due_date": request.payment_due_date.isoformat()
                if request.payment_due_date
                else None,
                "qr_image": document.qr_image(),
                "has_claim": 0,
                "is_negotiable_instrument": 0,
                "payment_form": _code_name(catalogs.PAYMENT_FORMS[request.payment_form]),
                "payment_method": _code_name(catalogs.PAYMENT_METHODS[request.payment_method_code]),
            },
            "related_documents": [
                {
                    "id": index,
                    "code": str(doc.get("code")),
                    "number": str(doc.get("number")),
                    "issue_date": doc.get("issue_date"),
                }
                for index, doc in enumerate(request.related_documents, start=1)
            ],
            "items": _items(request.items, amounts, with_mandate=True),
            "allowance_charges": allowance_block(document),
            "withholding_taxes": _withholding_totals(amounts),
            "credit_notes": _notes(document),
            "debit_notes": [],
        }
    )
    return data


def _list_row(document: SandboxDocument, send_email: bool) -> dict[str, Any]:
    """The fields a bill row and a credit-note row of a list share, from ``number`` on."""
    customer = document.customer
    return {
        "number": document.number,
        "api_client_name": document.api_client_name,
        "reference_code": document.reference_code,
        "identification": customer.identification,
        "graphic_representation_name": _graphic_name(customer),
        "company": customer.company,
        "trade_name": customer.trade_name,
        "names": customer.names,
        "email": customer.email,
        "total": money(document.amounts.total),
        "status": document.status,
        "errors": list(document.errors),
        "send_email": int(send_email),
    }


def bill_list_item(document: SandboxDocument) -> dict[str, Any]:
    """One row of ``GET /v1/bills`` (§6.1): no CUFE, no QR."""
    request = document.request
    assert isinstance(request, BillRequest)
    return {
        "id": document.id,
        "document": _code_name(catalogs.BILL_DOCUMENTS[request.document]),
        **_list_row(document, request.send_email),
        "has_claim": 0,
        "is_negotiable_instrument": 0,
        "payment_form": _code_name(catalogs.PAYMENT_FORMS[request.payment_form]),
        "created_at": artifacts.factus_datetime(document.created_at),
        "credit_notes": _notes(document),
        "debit_notes": [],
    }


def credit_note_data(document: SandboxDocument, account: Account) -> dict[str, Any]:
    """``data`` of a credit note's validate and show responses (§7.1)."""
    request = document.request
    assert isinstance(request, CreditNoteRequest)
    bill = document.bill
    data: dict[str, Any] = {"company": company_block(account.company)}
    if request.establishment is not None:
        data["establishment"] = establishment_block(request.establishment)
    data.update(
        {
            "customer": customer_block(document),
            "credit_note": {
                "id": document.id,
                "number": document.number,
                "reference_code": document.reference_code,
                "status": document.status,
                "send_email": int(request.send_email),
                "qr": artifacts.qr_url(document.cufe),
                "cude": document.cufe,
                "validated": _validated(document),
                **_amount_fields(document.amounts),
                "observation": request.observation,
                "errors": list(document.errors),
                "created_at": artifacts.factus_datetime(document.created_at),
                "qr_image": document.qr_image(),
                "bill_id": bill.id if bill else None,
                "cufe": bill.cufe if bill else None,
                "number_bill": bill.number if bill else None,
                "payment_method": {
                    "name": catalogs.PAYMENT_METHODS[request.payment_method_code].name,
                    "code": request.payment_method_code,
                },
                "customization_id": _code_name(
                    catalogs.CREDIT_NOTE_CUSTOMIZATIONS[request.customization_id]
                ),
                "correction_concept": _code_name(
                    catalogs.CORRECTION_CONCEPTS[request.correction_concept_code]
                ),
            },
            "items": _items(request.items, document.amounts, with_mandate=False),
            "withholding_taxes": _withholding_totals(document.amounts),
        }
    )
    return data


def credit_note_list_item(document: SandboxDocument) -> dict[str, Any]:
    """One row of ``GET /v1/credit-notes`` (inferred: the bill row's fields plus the bill reference)."""
    request = document.request
    assert isinstance(request, CreditNoteRequest)
    return {
        "id": document.id,
        **_list_row(document, request.send_email),
        "created_at": artifacts.factus_datetime(document.created_at),
        "bill_id": document.bill.id if document.bill else None,
        "number_bill": document.bill.number if document.bill else None,
    }


def range_list_item(chosen: NumberingRange, today: Any) -> dict[str, Any]:
    """One row of ``GET /v1/numbering-ranges`` (§8.1): ``document`` is the name, dates ``YYYY-MM-DD``."""
    return {
        "id": chosen.id,
        "document": catalogs.RANGE_DOCUMENTS[chosen.document].name,
        "prefix": chosen.prefix,
        "from": chosen.start,
        "to": chosen.end,
        "current": chosen.current,
        "resolution_number": chosen.resolution_number,
        "start_date": chosen.start_date.isoformat(),
        "end_date": chosen.end_date.isoformat(),
        "technical_key": chosen.technical_key,
        "is_expired": chosen.is_expired(today),
        "is_active": int(chosen.is_active),
        "deleted_at": None,
        "created_at": artifacts.iso_utc(chosen.created_at),
        "updated_at": artifacts.iso_utc(chosen.updated_at),
    }


def range_detail(chosen: NumberingRange, today: Any) -> dict[str, Any]:
    """``GET /v1/numbering-ranges/{id}`` (§8.1): ``document`` is the code, dates ``DD-MM-YYYY``."""
    return {
        "id": chosen.id,
        "document": chosen.document,
        "document_name": catalogs.RANGE_DOCUMENTS[chosen.document].name,
        "prefix": chosen.prefix,
        "from": chosen.start,
        "to": chosen.end,
        "current": chosen.current,
        "resolution_number": chosen.resolution_number,
        "start_date": artifacts.factus_date(chosen.start_date),
        "end_date": artifacts.factus_date(chosen.end_date),
        "technical_key": chosen.technical_key,
        "is_expired": chosen.is_expired(today),
        "is_active": int(chosen.is_active),
        "created_at": artifacts.iso_utc(chosen.created_at),
        "updated_at": artifacts.iso_utc(chosen.updated_at),
    }


def _page_links(base_url: str, current: int, last: int) -> list[dict[str, Any]]:
    """Laravel-like page links with Factus' Spanish labels (§1, §6.1).

    All pages when there are at most 8; otherwise the first and last page, a window around the
    current page and ``"..."`` gaps (the DOC1 example, page 1 of 17, shows 1 2 3 4 ... 17).
    """

    def page(n: int) -> dict[str, Any]:
        return {"url": f"{base_url}?page={n}", "label": n, "active": n == current, "page": n}

    gap = {"url": None, "label": "...", "active": False}
    if last <= 8:
        middle: list[dict[str, Any]] = [page(n) for n in range(1, last + 1)]
    elif current <= 3:
        middle = [page(n) for n in range(1, 5)] + [gap, page(last)]
    elif current >= last - 2:
        middle = [page(1), gap] + [page(n) for n in range(last - 3, last + 1)]
    else:
        middle = (
            [page(1), gap] + [page(n) for n in range(current - 1, current + 2)] + [gap, page(last)]
        )
    previous = {
        "url": f"{base_url}?page={current - 1}" if 1 < current <= last else None,
        "label": "&laquo; Anterior",
        "active": False,
    }
    following = {
        "url": f"{base_url}?page={current + 1}" if current < last else None,
        "label": "Siguiente &raquo;",
        "active": False,
    }
    return [previous, *middle, following]


def paginate(
    rows: Sequence[T],
    page: int,
    per_page: int,
    base_url: str,
    render: Callable[[T], dict[str, Any]],
) -> dict[str, Any]:
    """Slice ``rows`` into one page: ``{"data": [...], "pagination": {total, per_page, current_page,
    last_page, from, to, links}}`` (§6.1). A page past the end has empty ``data`` and null from/to."""
    total = len(rows)
    last = max(1, -(-total // per_page))
    start = (page - 1) * per_page
    chunk = rows[start : start + per_page]
    return {
        "data": [render(row) for row in chunk],
        "pagination": {
            "total": total,
            "per_page": per_page,
            "current_page": page,
            "last_page": last,
            "from": start + 1 if chunk else None,
            "to": start + len(chunk) if chunk else None,
            "links": _page_links(base_url, page, last),
        },
    }


def spoil_unique_code(data: dict[str, Any], kind: str) -> None:
    """Make a validate answer's CUFE (bill) or CUDE (credit note) invalid, in place: keep its
    first 64 characters (a SHA-256's length, where DIAN's code is a SHA-384: 96 hex).

    The ``invalid_cufe`` fault: the document itself stays validated with its real code, which
    ``show`` and the lists keep returning (a 201 whose code is not to be trusted).
    """
    block, key = ("bill", "cufe") if kind == "bill" else ("credit_note", "cude")
    code = data[block].get(key)
    data[block][key] = code[:64] if isinstance(code, str) else None
