"""Everything specific to Factus API **v2** on the response side: paths, list parameters, the
range-creation body, and the parsers that turn v2 answers into the same version-neutral models
of :mod:`einvoice.factus.schemas` that :mod:`einvoice.factus.v1` fills.

The client (:mod:`einvoice.factus.client`) calls the same function names here as in ``v1``
(``bill_show_path``, ``list_params``, ``parse_bill``, ...) for an account whose
``api_version`` is ``"v2"``; services never see which version answered. The request body of a
v2 bill or credit note is built elsewhere (``einvoice.factus.v2_body``): here it is only encoded.

Sources: the Factus v2 docs (mirrored in ``sbetav/factus-js`` under ``factus-docs/v2/``) and
FACTUS_API.md §10 (what the real sandbox did in Oct 2026). What differs from v1:

* per-document paths put the number first (``/v2/bills/{number}/download-pdf``); show is
  ``GET /v2/bills/{number}``; delete keeps v1's shape (``facturas/eliminar``,
  ``notas-credito/eliminar``); AttachedDocument XML is new;
* the page size is ``filter[per_page]`` (``facturas/listar-y-filtrar``), and lists take
  ``filter[created_at][start_date|end_date]``;
* a document is flat under ``data`` (``facturas/crear-y-validar`` "Respuesta"): ``is_validated``
  (bool) instead of ``status``, ``validated_at`` as ``"08-10-2026 09:23:26 PM"`` (Bogotá),
  ``links{qr, public_url}`` and no QR image, ``totals{gross_amount, ...}``, ``errors`` as an
  object keyed by DIAN rule; a credit note carries ``cude`` and ``bill_number``; documents have no
  internal ``id``;
* list rows carry ``number``, ``reference_code``, ``is_validated``, ``errors`` and ``total``, but
  no CUFE and no links (FACTUS_API.md §10.1): the reconcile lookup lists, then shows by number;
* numbering ranges: ``document`` is a code (``"21"``) with ``document_name``; the ranges DIAN
  associated with the company are read with ``GET /v2/numbering-ranges/dian`` and only used once
  created with ``POST /v2/numbering-ranges`` (``rangos-de-numeracion/*``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel

from einvoice.factus import v1
from einvoice.factus.schemas import (
    BillListItem,
    BillResult,
    Company,
    CreditNoteListItem,
    CreditNoteResult,
    DianNumberingRange,
    DownloadedFile,
    NumberingRange,
    Page,
    to_flag,
)
from einvoice.factus.v1 import bad_shape, data_of, parse_page, validate_model

VERSION = "v2"

# --- paths ----------------------------------------------------------------------------------

TOKEN_PATH = v1.TOKEN_PATH  # autenticacion/auth: the same OAuth endpoint for both versions
BILLS_VALIDATE_PATH = "/v2/bills/validate"  # facturas/crear-y-validar
BILLS_PATH = "/v2/bills"  # facturas/listar-y-filtrar
CREDIT_NOTES_VALIDATE_PATH = "/v2/credit-notes/validate"  # notas-credito/crear-y-validar
CREDIT_NOTES_PATH = "/v2/credit-notes"  # notas-credito/ver-filtrar
NUMBERING_RANGES_PATH = "/v2/numbering-ranges"  # rangos-de-numeracion/obtener-rangos, crear-rango
DIAN_NUMBERING_RANGES_PATH = "/v2/numbering-ranges/dian"  # rangos-asociados-al-software
COMPANY_PATH = "/v2/companies"  # empresas/ver


def _segment(value: str) -> str:
    # A number or reference code is caller data: quoted, "a/b" or "?" cannot change the route.
    return quote(str(value), safe="")


def bill_show_path(number: str) -> str:
    """``GET /v2/bills/{number}`` (``facturas/ver``)."""
    return f"{BILLS_PATH}/{_segment(number)}"


def bill_pdf_path(number: str) -> str:
    """``GET /v2/bills/{number}/download-pdf`` (``facturas/descargar-pdf``)."""
    return f"{bill_show_path(number)}/download-pdf"


def bill_xml_path(number: str) -> str:
    """``GET /v2/bills/{number}/download-xml`` (``facturas/descargar-xml``)."""
    return f"{bill_show_path(number)}/download-xml"


def bill_attached_xml_path(number: str) -> str:
    """``GET /v2/bills/{number}/download-attached-document-xml``
    (``facturas/descargar-xml-attacheddocument``)."""
    return f"{bill_show_path(number)}/download-attached-document-xml"


def bill_send_email_path(number: str) -> str:
    """``POST /v2/bills/{number}/send-email`` (``facturas/enviar-correo``)."""
    return f"{bill_show_path(number)}/send-email"


def bill_delete_path(reference_code: str) -> str:
    """``DELETE /v2/bills/destroy/reference/{reference_code}`` (``facturas/eliminar``)."""
    return f"{BILLS_PATH}/destroy/reference/{_segment(reference_code)}"


def credit_note_show_path(number: str) -> str:
    """``GET /v2/credit-notes/{number}`` (``notas-credito/ver``)."""
    return f"{CREDIT_NOTES_PATH}/{_segment(number)}"


def credit_note_pdf_path(number: str) -> str:
    """``GET /v2/credit-notes/{number}/download-pdf`` (``notas-credito/descargar-pdf``)."""
    return f"{credit_note_show_path(number)}/download-pdf"


def credit_note_xml_path(number: str) -> str:
    """``GET /v2/credit-notes/{number}/download-xml`` (``notas-credito/descargar-xml``)."""
    return f"{credit_note_show_path(number)}/download-xml"


def credit_note_attached_xml_path(number: str) -> str:
    """``GET /v2/credit-notes/{number}/download-attached-document-xml``."""
    return f"{credit_note_show_path(number)}/download-attached-document-xml"


def credit_note_send_email_path(number: str) -> str:
    """``POST /v2/credit-notes/{number}/send-email`` (``notas-credito/enviar-correo``)."""
    return f"{credit_note_show_path(number)}/send-email"


def credit_note_delete_path(reference_code: str) -> str:
    """``DELETE /v2/credit-notes/reference/{reference_code}`` (``notas-credito/eliminar``)."""
    return f"{CREDIT_NOTES_PATH}/reference/{_segment(reference_code)}"


def numbering_range_path(range_id: int) -> str:
    """``GET /v2/numbering-ranges/{id}`` (``rangos-de-numeracion/ver-rango``)."""
    return f"{NUMBERING_RANGES_PATH}/{int(range_id)}"


# --- list parameters ------------------------------------------------------------------------

#: ``filter[...]`` names of the bill list (``facturas/listar-y-filtrar``); ``created_from`` /
#: ``created_to`` are ours for ``filter[created_at][start_date|end_date]`` (``YYYY-MM-DD``).
BILL_FILTERS = v1.BILL_FILTERS | {"created_from", "created_to"}
CREDIT_NOTE_FILTERS = BILL_FILTERS  # notas-credito/ver-filtrar (inferred: the same filters)
NUMBERING_RANGE_FILTERS = v1.NUMBERING_RANGE_FILTERS  # rangos-de-numeracion/obtener-rangos
PAGE_PARAM = "page"
PER_PAGE_PARAM = "filter[per_page]"  # "Cantidad de registros por pagina. Por defecto ... 10"
_NESTED_FILTERS = {
    "created_from": "filter[created_at][start_date]",
    "created_to": "filter[created_at][end_date]",
}


def list_params(
    filters: Mapping[str, Any],
    allowed: frozenset[str],
    *,
    page: int | None = None,
    per_page: int | None = None,
) -> dict[str, str]:
    """Query parameters of a v2 list: ``filter[<name>]=<value>``, ``filter[per_page]``, ``page``.

    Booleans become ``"1"``/``"0"``, dates ``YYYY-MM-DD``; ``None`` values are left out.

    Raises:
        ValueError: for a filter name v2 does not document, so a typo cannot widen a lookup.
    """
    unknown = sorted(set(filters) - allowed)
    if unknown:
        raise ValueError(f"unknown Factus filter(s) {unknown}; allowed: {sorted(allowed)}")
    plain = {k: v for k, v in filters.items() if k not in _NESTED_FILTERS}
    params = v1.list_params(plain, allowed, page=page)
    for name, key in _NESTED_FILTERS.items():
        value = filters.get(name)
        if value is not None:
            params[key] = value.isoformat() if isinstance(value, date) else str(value)
    if per_page is not None:
        params[PER_PAGE_PARAM] = str(per_page)
    return params


# --- request bodies -------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # v2 documents amounts, rates and quantities as strings ("10000.00"): a Decimal goes
        # as its exact text, never through a float.
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to Factus as JSON")


def encode_body(payload: BaseModel | Mapping[str, Any]) -> bytes:
    """UTF-8 JSON bytes of a v2 request body.

    Input: a mapping shaped like the v2 body (``Decimal`` values become JSON strings with their
    exact digits, dates ``YYYY-MM-DD``) or a pydantic model (dumped without ``None`` fields).
    Raises ``TypeError`` for a value JSON cannot carry.
    """
    data = (
        payload.model_dump(mode="json", exclude_none=True)
        if isinstance(payload, BaseModel)
        else payload
    )
    return json.dumps(data, default=_json_default, ensure_ascii=False).encode("utf-8")


send_email_body = v1.send_email_body  # enviar-correo: {"email": ...}, required as on v1
reference_code_of = v1.reference_code_of

#: Range document codes (v2 ``tablas-de-referencia/tablas`` "Códigos de tipos de documento para
#: los rangos de numeración"): 21 invoice, 22 credit note, 23 debit note, 24 support document.
INVOICE_RANGE_DOCUMENT = "21"
CREDIT_NOTE_RANGE_DOCUMENT = "22"
MAX_PREFIX_LENGTH = 4  # crear-rango: "prefix Máx.4 caracteres"


def numbering_range_body(
    *,
    document: str,
    prefix: str,
    current: int,
    resolution_number: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /v2/numbering-ranges`` (``rangos-de-numeracion/crear-rango`` and its
    examples: ``{"document": "21", "prefix": "SETP", "resolution_number": "18760000009",
    "current": 984000000}``; a credit-note range ``{"document": "22", "prefix": "NC",
    "current": 1}`` has no resolution).

    ``current`` is the next number to issue (the docs add: if numbers of the range were already
    used elsewhere, the last one used).

    Raises:
        ValueError: a document that is not a 2-digit code, an empty prefix or one over 4
            characters, a negative ``current``.
    """
    if not (len(document) == 2 and document.isdigit()):
        raise ValueError(f"document must be a 2-digit range document code, not {document!r}")
    if not prefix or len(prefix) > MAX_PREFIX_LENGTH or not prefix.isalnum():
        raise ValueError(f"prefix must be 1-{MAX_PREFIX_LENGTH} letters or digits, not {prefix!r}")
    if current < 0:
        raise ValueError("current must not be negative")
    body: dict[str, Any] = {"document": document, "prefix": prefix, "current": int(current)}
    if resolution_number:
        body["resolution_number"] = str(resolution_number)
    return body


# --- responses ------------------------------------------------------------------------------

parse_token = v1.parse_token  # the OAuth answer is the same for both versions

_TOTALS = {  # neutral name -> v2 ``data.totals`` name
    "gross_value": "gross_amount",
    "taxable_amount": "taxable_amount",
    "tax_amount": "tax_amount",
    "discount_amount": "discount_amount",
    "surcharge_amount": "surcharge_amount",
    "total": "total",
    "prepayment_amount": "prepayment_amount",
    "cash_rounding_amount": "cash_rounding_amount",
}


def _status(row: Mapping[str, Any]) -> int:
    """v2's ``is_validated`` as v1's ``status`` (1 validated, 0 not)."""
    if "is_validated" in row:
        return 1 if to_flag(row.get("is_validated")) else 0
    # Not seen: a v2 document without ``is_validated``. manejo-errores shows ``validated_at``
    # as the success sign, so a non-empty one counts.
    return 1 if row.get("validated_at") else 0


def _object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a field Factus left out or null)."""
    return value if isinstance(value, dict) else {}


def _document_fields(data: dict[str, Any], message: Any) -> dict[str, Any]:
    fields = dict(data)
    links = _object(data.get("links"))
    totals = _object(data.get("totals"))
    fields["status"] = _status(data)
    fields["qr"] = links.get("qr")
    fields["public_url"] = links.get("public_url")
    fields["qr_image"] = None
    fields["totals"] = {ours: totals.get(theirs) for ours, theirs in _TOTALS.items()}
    if fields["totals"]["gross_value"] is None:
        fields["totals"]["gross_value"] = totals.get("gross_value")
    fields["message"] = message if isinstance(message, str) else None
    fields["raw"] = data
    return fields


def _document(body: Any, what: str) -> dict[str, Any]:
    data = data_of(body, what)
    if not isinstance(data, dict):
        raise bad_shape(what, "'data' is not an object")
    if "number" not in data and "reference_code" not in data:
        raise bad_shape(what, "no 'data.number' or 'data.reference_code'")
    return data


def parse_bill(body: Any) -> BillResult:
    """Validate (201) or show (200) body of a v2 bill → :class:`BillResult`.

    ``data`` is the bill itself (``facturas/crear-y-validar`` "Respuesta"): ``is_validated`` →
    ``status`` 1/0, ``links.qr`` → ``qr``, ``links.public_url`` → ``public_url``,
    ``validated_at`` ("08-10-2026 09:23:26 PM", Bogotá) → UTC, ``totals.gross_amount`` →
    ``totals.gross_value``, ``errors`` (object keyed by rule) → rules. No ``id``, no QR image.

    Raises:
        ResponseDecodingError: ``data`` is not a document object.
    """
    data = _document(body, "a bill")
    return validate_model(BillResult, _document_fields(data, body.get("message")), "a bill")


def parse_credit_note(body: Any) -> CreditNoteResult:
    """Validate or show body of a v2 credit note → :class:`CreditNoteResult`.

    As :func:`parse_bill`, plus ``cude`` (the note's own code; observed on the real sandbox,
    FACTUS_API.md §10.1), ``bill_number`` and, when sent, ``bill_cufe``. A ``cufe`` key is not
    read as the note's code: in v1 it is the bill's.

    Raises:
        ResponseDecodingError: ``data`` is not a document object.
    """
    data = _document(body, "a credit note")
    fields = _document_fields(data, body.get("message"))
    fields.pop("cufe", None)
    return validate_model(CreditNoteResult, fields, "a credit note")


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    row = dict(entry)
    if "status" not in row:
        row["status"] = _status(entry)
    return row


def parse_bill_page(body: Any) -> Page[BillListItem]:
    """``GET /v2/bills`` body → one :class:`Page` of :class:`BillListItem` (rows' ``is_validated``
    becomes ``status``; ``errors`` keyed by rule; no CUFE)."""
    return parse_page(body, BillListItem, "the bill list", row=_row)


def parse_credit_note_page(body: Any) -> Page[CreditNoteListItem]:
    """``GET /v2/credit-notes`` body → one :class:`Page` of :class:`CreditNoteListItem`."""
    return parse_page(body, CreditNoteListItem, "the credit-note list", row=_row)


def parse_numbering_range_page(body: Any) -> Page[NumberingRange]:
    """``GET /v2/numbering-ranges`` body → one :class:`Page` of :class:`NumberingRange`."""
    return parse_page(body, NumberingRange, "the numbering-range list")


def parse_numbering_range(body: Any) -> NumberingRange:
    """``POST /v2/numbering-ranges`` (201) or ``GET /v2/numbering-ranges/{id}`` body →
    :class:`NumberingRange` (``crear-rango`` "Response").

    Raises:
        ResponseDecodingError: ``data`` is not a range object with an ``id``.
    """
    data = data_of(body, "a numbering range")
    if not isinstance(data, dict):
        raise bad_shape("a numbering range", "'data' is not an object")
    return validate_model(NumberingRange, data, "a numbering range")


def parse_dian_numbering_ranges(body: Any) -> list[DianNumberingRange]:
    """``GET /v2/numbering-ranges/dian`` body (``data`` is an array: ``rangos-asociados-al-
    software``; a paginated ``data.data`` is read too) → :class:`DianNumberingRange` list."""
    return list(parse_page(body, DianNumberingRange, "the DIAN numbering ranges").items)


def parse_company(body: Any) -> Company:
    """``GET /v2/companies`` body → :class:`Company`. The v2 docs give no response table; the
    fields are read as v1's (inferred), and unknown or missing ones are tolerated."""
    return v1.parse_company(body)


def parse_download(body: Any, kind: Literal["pdf", "xml"]) -> DownloadedFile:
    """Download body (``data{file_name, pdf_base_64_encoded | xml_base_64_encoded}``, the same as
    v1; the AttachedDocument XML too, per ``descargar-xml-attacheddocument``) →
    :class:`DownloadedFile`. Raises ResponseDecodingError as :func:`einvoice.factus.v1.parse_download`."""
    return v1.parse_download(body, kind)
