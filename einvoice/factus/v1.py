"""Everything specific to Factus API **v1**: paths, request bodies, filter names, response shapes.

FACTUS_API.md Decision 1: v1 and v2 are both spoken, per account. Every v1 path and field name
lives in this one module; :mod:`einvoice.factus.v2` sits beside it with the same function names
(§10: other paths, ``is_validated``/``validated_at``, ``links``), and the client
(:mod:`einvoice.factus.client`) calls the names of the account's version. The results are the
version-neutral models of :mod:`einvoice.factus.schemas`. The response helpers ``bad_shape``,
``data_of``, ``validate_model`` and ``parse_page`` are shared with v2.

Contents:

* paths (§2, §6, §7.1, §8) and the form fields of the two OAuth grants (§2);
* ``filter[...]`` query names of the lists (§6.1, §8.1), checked so a typo cannot silently
  turn a lookup into "all bills";
* request models :class:`BillRequest` (§3) and :class:`CreditNoteRequest` (§7.1), strict, with
  ``Decimal`` money serialised the way v1 takes it (Decision 7: ``price`` is the unit price with
  tax included, ``quantity`` an integer, ``tax_rate`` a ``"19.00"`` string);
* ``parse_*`` functions that turn a v1 response body into the neutral models.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from einvoice.factus.errors import ResponseDecodingError
from einvoice.factus.schemas import (
    BillListItem,
    BillResult,
    Company,
    CreditNoteListItem,
    CreditNoteResult,
    DownloadedFile,
    MeasurementUnit,
    Municipality,
    NumberingRange,
    Page,
    ProductTribute,
    TokenResponse,
)

VERSION = "v1"

# --- paths ----------------------------------------------------------------------------------

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path. §2 (same for v1 and v2)
BILLS_VALIDATE_PATH = "/v1/bills/validate"  # §3
BILLS_PATH = "/v1/bills"  # §6.1
CREDIT_NOTES_VALIDATE_PATH = "/v1/credit-notes/validate"  # §7.1
CREDIT_NOTES_PATH = "/v1/credit-notes"  # §7.1
NUMBERING_RANGES_PATH = "/v1/numbering-ranges"  # §8.1
MUNICIPALITIES_PATH = "/v1/municipalities"  # §8.2
MEASUREMENT_UNITS_PATH = "/v1/measurement-units"  # §8.2
PRODUCT_TRIBUTES_PATH = "/v1/tributes/products"  # §8.2
COMPANY_PATH = "/v1/company"  # §8.2


def _segment(value: str) -> str:
    # A reference code is caller data: quote it so "a/b" or "?" cannot change the route.
    return quote(str(value), safe="")


def bill_show_path(number: str) -> str:
    """``GET /v1/bills/show/{number}`` (§6.2)."""
    return f"/v1/bills/show/{_segment(number)}"


def bill_pdf_path(number: str) -> str:
    """``GET /v1/bills/download-pdf/{number}`` (§6.4)."""
    return f"/v1/bills/download-pdf/{_segment(number)}"


def bill_xml_path(number: str) -> str:
    """``GET /v1/bills/download-xml/{number}`` (§6.4)."""
    return f"/v1/bills/download-xml/{_segment(number)}"


def bill_delete_path(reference_code: str) -> str:
    """``DELETE /v1/bills/destroy/reference/{reference_code}`` (§6.6)."""
    return f"/v1/bills/destroy/reference/{_segment(reference_code)}"


def bill_send_email_path(number: str) -> str:
    """``POST /v1/bills/send-email/{number}`` (§6.5)."""
    return f"/v1/bills/send-email/{_segment(number)}"


def credit_note_send_email_path(number: str) -> str:
    """``POST /v1/credit-notes/send-email/{number}`` (§7.1)."""
    return f"/v1/credit-notes/send-email/{_segment(number)}"


def credit_note_show_path(number: str) -> str:
    """``GET /v1/credit-notes/{number}`` (§7.1)."""
    return f"/v1/credit-notes/{_segment(number)}"


def credit_note_pdf_path(number: str) -> str:
    """``GET /v1/credit-notes/download-pdf/{number}`` (§7.1)."""
    return f"/v1/credit-notes/download-pdf/{_segment(number)}"


def credit_note_xml_path(number: str) -> str:
    """``GET /v1/credit-notes/download-xml/{number}`` (§7.1)."""
    return f"/v1/credit-notes/download-xml/{_segment(number)}"


def credit_note_delete_path(reference_code: str) -> str:
    """``DELETE /v1/credit-notes/reference/{reference_code}`` (§7.1; differs from bills)."""
    return f"/v1/credit-notes/reference/{_segment(reference_code)}"


# --- OAuth forms (§2) -----------------------------------------------------------------------


def password_grant_form(
    client_id: str, client_secret: str, username: str, password: str
) -> dict[str, str]:
    """The ``application/x-www-form-urlencoded`` fields of the password grant (§2)."""
    return {
        "grant_type": "password",
        "client_id": client_id,
        "client_secret": client_secret,
        "username": username,
        "password": password,
    }


def refresh_grant_form(client_id: str, client_secret: str, refresh_token: str) -> dict[str, str]:
    """The form fields of the refresh grant (§2)."""
    return {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }


# --- list filters (§6.1, §8.1) --------------------------------------------------------------

BILL_FILTERS = frozenset(
    {"identification", "names", "number", "prefix", "reference_code", "status"}
)
CREDIT_NOTE_FILTERS = BILL_FILTERS  # §7.1: "same filters as bills"
NUMBERING_RANGE_FILTERS = frozenset(
    {"id", "document", "resolution_number", "technical_key", "is_active"}
)
PAGE_PARAM = "page"
# Page size: undocumented on v1 (§12.7); the FJS1 v1 SDK sends ``per_page``. Factus may ignore
# it, in which case pages stay at 10 rows and only the number of calls changes.
PER_PAGE_PARAM = "per_page"
CATALOG_NAME_PARAM = "name"  # §8.2: ?name=<substring>


def list_params(
    filters: Mapping[str, Any],
    allowed: frozenset[str],
    *,
    page: int | None = None,
    per_page: int | None = None,
) -> dict[str, str]:
    """Query parameters ``filter[<name>]=<value>`` (+ ``page``, ``per_page``) for a v1 list.

    Booleans become ``"1"``/``"0"`` (flags are 0/1: §1); ``None`` values are left out.

    Raises:
        ValueError: for a filter name v1 does not document, so a typo cannot widen a lookup.
    """
    unknown = sorted(set(filters) - allowed)
    if unknown:
        raise ValueError(f"unknown Factus filter(s) {unknown}; allowed: {sorted(allowed)}")
    params: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        # A bool goes on the wire as 0/1.
        params[f"filter[{name}]"] = str(int(value) if isinstance(value, bool) else value)
    if page is not None:
        params[PAGE_PARAM] = str(page)
    if per_page is not None:
        params[PER_PAGE_PARAM] = str(per_page)
    return params


# --- request bodies (§3, §7.1) --------------------------------------------------------------


def _number(value: Decimal) -> int | float:
    # v1 documents these as numbers; an integral amount goes as an int, like the examples.
    return int(value) if value == value.to_integral_value() else float(value)


def _percent_text(value: Decimal) -> str:
    return f"{value:.2f}"


WireAmount = Annotated[
    Decimal, Field(ge=0, decimal_places=2), PlainSerializer(_number, return_type=int | float)
]
WirePercent = Annotated[
    Decimal,
    Field(ge=0, le=100, decimal_places=2),
    PlainSerializer(_number, return_type=int | float),
]
WireTaxRate = Annotated[
    Decimal, Field(ge=0, le=100, decimal_places=2), PlainSerializer(_percent_text, return_type=str)
]
WireFlag = Annotated[bool, PlainSerializer(int, return_type=int)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Establishment(_Request):
    """``establishment`` (§3.2): only when the issuer has several establishments."""

    name: str
    address: str
    phone_number: str
    email: str
    municipality_id: int


class Customer(_Request):
    """``customer`` (§3.3). ``identification`` of a NIT goes without DV or hyphen; ``dv`` is
    optional (Factus computes it); ``legal_organization_id`` 1 legal / 2 natural person;
    ``tribute_id`` 18 (IVA) or 21 (no aplica); ``municipality_id`` from ``/v1/municipalities``."""

    identification_document_id: int
    identification: str = Field(min_length=1)
    dv: str | None = None
    company: str | None = None
    trade_name: str | None = None
    names: str | None = None
    address: str | None = None
    email: str | None = None
    phone: str | None = None
    legal_organization_id: int
    tribute_id: int
    municipality_id: int | None = None


class WithholdingTax(_Request):
    """An item's self-withholding (§3.4): 05 ReteIVA, 06 ReteRenta, 07 ReteICA; rate in percent."""

    code: Literal["05", "06", "07"]
    withholding_tax_rate: WirePercent


class Mandate(_Request):
    """``items[].mandate`` (§3.4), required when ``scheme_id`` is ``"1"``."""

    identification_document_id: int
    identification: str


class CreditNoteItem(_Request):
    """A credit-note line (§7.1: bill items without ``scheme_id``/``mandate``).

    ``price`` is the unit price **with tax included** in COP (Decision 7), ``quantity`` an
    integer, ``discount_rate`` and ``tax_rate`` percentages; ``is_excluded`` True = excluded from
    IVA; ids from the catalogs (``unit_measure_id`` 70 = unidad, ``standard_code_id`` 1,
    ``tribute_id`` 1 = IVA).
    """

    code_reference: str = Field(min_length=1)
    name: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    discount_rate: WirePercent = Decimal(0)
    price: WireAmount
    tax_rate: WireTaxRate
    unit_measure_id: int
    standard_code_id: int
    is_excluded: WireFlag = False
    tribute_id: int
    withholding_taxes: list[WithholdingTax] = Field(default_factory=list)
    note: str | None = None


class BillItem(CreditNoteItem):
    """A bill line (§3.4); adds ``scheme_id``/``mandate`` for mandate operations (type 11)."""

    scheme_id: Literal["0", "1"] | None = None
    mandate: Mandate | None = None


class AllowanceCharge(_Request):
    """``allowance_charges[]`` (§3.5); only concept ``"03"`` (recargo condicionado) is live."""

    concept_type: str
    is_surcharge: bool
    reason: str
    base_amount: WireAmount
    amount: WireAmount


class OrderReference(_Request):
    """``order_reference`` (§3.1)."""

    reference_code: str
    issue_date: date | None = None


class RelatedDocument(_Request):
    """``related_documents[]`` (§3.1), required for document ``"03"``."""

    code: str
    issue_date: date
    number: str


class BillingPeriod(_Request):
    """``billing_period`` (§3.1); times as ``HH:mm:ss``."""

    start_date: date
    start_time: str | None = None
    end_date: date
    end_time: str | None = None


class BillRequest(_Request):
    """The body of ``POST /v1/bills/validate`` (§3.1).

    ``reference_code`` is the job's stable idempotency key (Decision 3). ``numbering_range_id``
    may be left out only when the account has exactly one active invoice range.

    Raises (on construction):
        pydantic.ValidationError: missing required fields, a non-integer quantity, amounts with
            more than 2 decimals, ``payment_form`` "2" without ``payment_due_date``, document
            "03" without ``related_documents``, an observation over 250 characters.
    """

    numbering_range_id: int | None = None
    document: Literal["01", "03"] | None = None
    reference_code: str = Field(min_length=1)
    observation: str | None = Field(default=None, max_length=250)
    payment_form: Literal["1", "2"] | None = None
    payment_due_date: date | None = None
    payment_method_code: str | None = None
    operation_type: Literal["10", "11", "12"] | None = None
    send_email: bool | None = None
    order_reference: OrderReference | None = None
    related_documents: list[RelatedDocument] | None = None
    billing_period: BillingPeriod | None = None
    establishment: Establishment | None = None
    customer: Customer
    items: list[BillItem] = Field(min_length=1)
    allowance_charges: list[AllowanceCharge] | None = None

    @model_validator(mode="after")
    def _conditional_fields(self) -> BillRequest:
        if self.payment_form == "2" and self.payment_due_date is None:
            raise ValueError("payment_due_date is required when payment_form is '2' (crédito)")
        if self.document == "03" and not self.related_documents:
            raise ValueError("related_documents is required when document is '03'")
        return self


class CreditNoteRequest(_Request):
    """The body of ``POST /v1/credit-notes/validate`` (§7.1).

    ``correction_concept_code`` 1–6 (2 = anulación); ``customization_id`` 20 references a bill by
    its Factus **internal id** ``bill_id`` (``BillResult.id``), 22 has no bill and needs
    ``billing_period``. ``customer`` defaults to the bill's customer when left out.

    Raises (on construction):
        pydantic.ValidationError: as :class:`BillRequest`, plus ``bill_id`` missing for 20 and
            ``billing_period`` missing for 22.
    """

    numbering_range_id: int | None = None
    correction_concept_code: int = Field(ge=1, le=6)
    customization_id: Literal[20, 22]
    bill_id: int | None = None
    reference_code: str = Field(min_length=1)
    payment_method_code: str | None = None
    send_email: bool | None = None
    observation: str | None = Field(default=None, max_length=250)
    establishment: Establishment | None = None
    customer: Customer | None = None
    billing_period: BillingPeriod | None = None
    items: list[CreditNoteItem] = Field(min_length=1)
    allowance_charges: list[AllowanceCharge] | None = None

    @model_validator(mode="after")
    def _conditional_fields(self) -> CreditNoteRequest:
        if self.customization_id == 20 and self.bill_id is None:
            raise ValueError("bill_id is required when customization_id is 20")
        if self.customization_id == 22 and self.billing_period is None:
            raise ValueError("billing_period is required when customization_id is 22")
        return self


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to Factus as JSON")


def encode_body(payload: BaseModel | Mapping[str, Any]) -> bytes:
    """UTF-8 JSON bytes for a request body.

    Input: a request model (dumped without ``None`` fields) or a mapping already shaped like v1
    (``Decimal`` values become JSON numbers, dates ``YYYY-MM-DD``). Raises ``TypeError`` for a
    value JSON cannot carry.
    """
    data = (
        payload.model_dump(mode="json", exclude_none=True)
        if isinstance(payload, BaseModel)
        else payload
    )
    return json.dumps(data, default=_json_default, ensure_ascii=False).encode("utf-8")


def send_email_body(email: str) -> dict[str, str]:
    """Body of the send-email call: ``{"email": address}``. Factus requires the address (its
    "enviar correo" page lists ``email`` as required; the simulator answers 422 without it).

    Raises:
        ValueError: an empty ``email`` (the caller resolves the customer's address first).
    """
    if not email:
        raise ValueError("send-email needs an e-mail address")
    return {"email": email}


def reference_code_of(payload: BaseModel | Mapping[str, Any]) -> str | None:
    """The ``reference_code`` of a request (model or mapping), for logs and lookups."""
    value = (
        getattr(payload, "reference_code", None)
        if isinstance(payload, BaseModel)
        else payload.get("reference_code")
    )
    return str(value) if value is not None else None


# --- responses ------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def bad_shape(what: str, detail: str = "") -> ResponseDecodingError:
    """The :class:`ResponseDecodingError` for an answer to ``what`` that is not the shape we
    expect (``detail`` says where); shared with :mod:`einvoice.factus.v2`."""
    return ResponseDecodingError(
        f"Factus answered {what} in an unexpected shape" + (f": {detail}" if detail else "")
    )


def data_of(body: Any, what: str) -> Any:
    """The envelope's ``data`` (both versions wrap answers in ``{status, message, data}``).

    Raises:
        ResponseDecodingError: not an object, or no ``data``.
    """
    if not isinstance(body, dict) or "data" not in body:
        raise bad_shape(what, "no 'data' in the body")
    return body["data"]


def validate_model(model: type[M], value: Any, what: str) -> M:
    """``model.model_validate(value)``, a validation failure raised as ResponseDecodingError."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise bad_shape(what, f"{where}: {first.get('msg')}") from None


_TOTALS = (
    "gross_value",
    "taxable_amount",
    "tax_amount",
    "discount_amount",
    "surcharge_amount",
    "total",
)


def parse_token(body: Any) -> TokenResponse:
    """``POST /oauth/token`` 200 body (§2) → :class:`TokenResponse`.

    Raises:
        ResponseDecodingError: no ``access_token`` or ``expires_in``. The message never
            contains the body (it holds tokens).
    """
    if not isinstance(body, dict):
        raise bad_shape("the token call", "not a JSON object")
    try:
        return TokenResponse.model_validate(body)
    except ValidationError as exc:
        fields = sorted({str(err["loc"][0]) for err in exc.errors() if err.get("loc")})
        raise bad_shape("the token call", f"missing or invalid {fields}") from None


def _document_fields(
    document: dict[str, Any], data: dict[str, Any], message: Any
) -> dict[str, Any]:
    fields = dict(document)
    fields["validated_at"] = document.get("validated")
    fields["totals"] = {name: document.get(name) for name in _TOTALS}
    fields["message"] = message if isinstance(message, str) else None
    fields["raw"] = data
    return fields


def parse_bill(body: Any) -> BillResult:
    """Validate (201) or show (200) body → :class:`BillResult` (§4.1, §6.2).

    v1 nests the bill under ``data.bill``; ``validated`` becomes ``validated_at``.

    Raises:
        ResponseDecodingError: no ``data.bill`` object.
    """
    data = data_of(body, "a bill")
    if not isinstance(data, dict) or not isinstance(data.get("bill"), dict):
        raise bad_shape("a bill", "no 'data.bill' object")
    return validate_model(
        BillResult, _document_fields(data["bill"], data, body.get("message")), "a bill"
    )


def parse_credit_note(body: Any) -> CreditNoteResult:
    """Validate or show body of a credit note → :class:`CreditNoteResult` (§7.1).

    v1 names: ``data.credit_note``; its ``cufe`` is the bill's (→ ``bill_cufe``),
    ``number_bill`` → ``bill_number``. A show answer without the ``credit_note`` wrapper (the
    docs do not show one) is read as the note itself.

    Raises:
        ResponseDecodingError: no credit-note object.
    """
    data = data_of(body, "a credit note")
    if not isinstance(data, dict):
        raise bad_shape("a credit note", "'data' is not an object")
    note = data.get("credit_note", data)
    if not isinstance(note, dict) or not ("number" in note or "reference_code" in note):
        raise bad_shape("a credit note", "no 'data.credit_note' object")
    fields = _document_fields(note, data, body.get("message"))
    fields["bill_cufe"] = note.get("cufe")
    fields["bill_number"] = note.get("number_bill")
    fields.pop("cufe", None)
    return validate_model(CreditNoteResult, fields, "a credit note")


def parse_page(
    body: Any,
    item: type[M],
    what: str,
    *,
    row: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Page[M]:
    """A paginated list body (``data{data[], pagination{}}``, §6.1; or a plain ``data[]``) →
    one :class:`Page` of ``item``; ``row`` maps each row's wire names first (v2 lists).

    Raises:
        ResponseDecodingError: no list where the rows should be, or a row ``item`` refuses.
    """
    data = data_of(body, what)
    items: Any
    pagination: Any
    if isinstance(data, list):  # an unpaginated answer: one page holding everything
        items, pagination = data, {}
    elif isinstance(data, dict):
        items = data.get("data", [])
        pagination = data.get("pagination") or {}
    else:
        raise bad_shape(what, "'data' is neither a list nor an object")
    if not isinstance(items, list) or not isinstance(pagination, dict):
        raise bad_shape(what, "no 'data.data' list")
    page = {
        "items": [
            validate_model(item, row(entry) if row and isinstance(entry, dict) else entry, what)
            for entry in items
        ],
        "total": pagination.get("total"),
        "per_page": pagination.get("per_page"),
        "current_page": pagination.get("current_page") or 1,
        "last_page": pagination.get("last_page") or 1,
    }
    return validate_model(Page[item], page, what)  # type: ignore[valid-type]


def parse_bill_page(body: Any) -> Page[BillListItem]:
    """``GET /v1/bills`` body → one :class:`Page` of :class:`BillListItem` (§6.1)."""
    return parse_page(body, BillListItem, "the bill list")


def parse_credit_note_page(body: Any) -> Page[CreditNoteListItem]:
    """``GET /v1/credit-notes`` body → one :class:`Page` of :class:`CreditNoteListItem`."""
    return parse_page(body, CreditNoteListItem, "the credit-note list")


def parse_numbering_range_page(body: Any) -> Page[NumberingRange]:
    """``GET /v1/numbering-ranges`` body → one :class:`Page` of :class:`NumberingRange` (§8.1)."""
    return parse_page(body, NumberingRange, "the numbering-range list")


def _catalog(body: Any, item: type[M], what: str) -> list[M]:
    return list(parse_page(body, item, what).items)


def parse_municipalities(body: Any) -> list[Municipality]:
    """``GET /v1/municipalities`` body (a plain list, §8.2) → :class:`Municipality` list."""
    return _catalog(body, Municipality, "the municipalities")


def parse_measurement_units(body: Any) -> list[MeasurementUnit]:
    """``GET /v1/measurement-units`` body → :class:`MeasurementUnit` list (§8.2)."""
    return _catalog(body, MeasurementUnit, "the measurement units")


def parse_product_tributes(body: Any) -> list[ProductTribute]:
    """``GET /v1/tributes/products`` body → :class:`ProductTribute` list (§8.2)."""
    return _catalog(body, ProductTribute, "the product tributes")


def parse_company(body: Any) -> Company:
    """``GET /v1/company`` body → :class:`Company` (§8.2)."""
    data = data_of(body, "the company")
    if not isinstance(data, dict):
        raise bad_shape("the company", "'data' is not an object")
    return validate_model(Company, data, "the company")


def parse_download(body: Any, kind: Literal["pdf", "xml"]) -> DownloadedFile:
    """Download body (§6.4: ``data{file_name, pdf_base_64_encoded | xml_base_64_encoded}``) →
    :class:`DownloadedFile` with the decoded bytes.

    Raises:
        ResponseDecodingError: no file name, no content field, or content that is not base64.
    """
    data = data_of(body, f"a {kind.upper()} download")
    field = f"{kind}_base_64_encoded"
    if not isinstance(data, dict) or not isinstance(data.get(field), str):
        raise bad_shape(f"a {kind.upper()} download", f"no 'data.{field}'")
    encoded = data[field]
    if encoded.startswith("data:") and "," in encoded:
        encoded = encoded.split(",", 1)[1]
    try:
        content = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad_shape(f"a {kind.upper()} download", "content is not base64") from None
    return validate_model(
        DownloadedFile,
        {"file_name": data.get("file_name") or "", "content": content},
        f"a {kind.upper()} download",
    )
