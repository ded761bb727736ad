"""Version-neutral results of Factus calls, parsed tolerantly (FACTUS_API.md §1, §4, §6, §8, §12).

These pydantic models are what the rest of ``einvoice`` sees. Their field names are ours; the
mapping from the wire names lives in :mod:`einvoice.factus.v1` (``data.bill.validated``,
``number_bill``, ``pdf_base_64_encoded``, the envelope nesting) and :mod:`einvoice.factus.v2`
(``is_validated``, ``links.qr``, ``totals.gross_amount``, ``cude``), which fill the same models:
services never see which version answered.

Tolerance, because Factus field sets change over time (§4.1 "Parse tolerantly", §12):

* unknown fields are ignored and missing ones default (``None``, ``[]`` or ``False``);
* money strings (``"81232.50"``) and JSON numbers become ``Decimal`` (COP); a value that is not a
  number becomes ``None`` and is logged, rather than failing a response that did succeed;
* 0/1 integers, ``"0"``/``"1"`` and JSON booleans become ``bool`` (§1);
* numbers where we expect text (``"dv": 1``, ``"code": 68679``) become text;
* date-times in every format of §1 become timezone-aware UTC ``datetime``: ``"DD-MM-YYYY hh:mm:ss
  AM|PM"`` and other zone-less forms are Bogotá time (UTC-5 all year: Colombia has had no daylight
  saving since 1993, so a fixed offset is exact and needs no tz database), ISO with ``Z`` or an
  offset keeps its zone. Dates (``"DD-MM-YYYY"``, ``"YYYY-MM-DD"``) become ``date``;
* DIAN messages such as ``"Regla: FAJ43b, Notificación: ..."`` or ``"Regla: FAK24, Rechazo: ..."``
  become :class:`DianRule` values, whether they come as a list of strings, as an object keyed by
  rule, or as Laravel ``{field: [messages]}`` (§5.4).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

logger = logging.getLogger("einvoice.factus")

#: Colombia's civil time: UTC-5, no daylight saving since 1993 (why a fixed offset is exact).
BOGOTA = timezone(timedelta(hours=-5), name="America/Bogota")

_AMPM_SPANISH = re.compile(r"\b([ap])\.?\s?m\.?(?=\s*$)", re.IGNORECASE)
_DATETIME_FORMATS = (
    "%d-%m-%Y %I:%M:%S %p",  # bill created_at / validated (§1, confirmed TUT)
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %I:%M %p",
    "%d-%m-%Y %H:%M",
    "%d/%m/%Y %I:%M:%S %p",
    "%d/%m/%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
)
_DATE_FORMATS = ("%d-%m-%Y", "%Y-%m-%d", "%d/%m/%Y")


def _lenient(kind: str, value: Any) -> None:
    logger.warning("factus response: ignoring unparseable %s value %r", kind, str(value)[:60])


def parse_factus_datetime(value: Any) -> datetime | None:
    """Return a Factus date-time as an aware UTC ``datetime``, or ``None`` when absent.

    Input: ``None``/``""``; a ``datetime`` (naive means Bogotá); epoch seconds (int/float); or text
    in one of the §1 formats: ``"21-01-2025 06:08:25 PM"`` (also ``p. m.``), ``"DD-MM-YYYY
    HH:mm:ss"``, ``"DD-MM-YYYY"`` (midnight Bogotá), ``"YYYY-MM-DD[ HH:mm:ss]"`` (Bogotá) or ISO 8601
    (``"2023-06-01T08:00:38Z"``, zone kept; without zone, Bogotá). Zone-less forms are Bogotá time
    because that is how Factus prints them (§1, TUT); for ISO without zone this is inferred.

    Raises:
        ValueError: for text in none of those formats.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=BOGOTA)
        return aware.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=BOGOTA).astimezone(UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=UTC)
    text = " ".join(str(value).split())
    text = _AMPM_SPANISH.sub(lambda m: m.group(1).upper() + "M", text)
    for fmt in _DATETIME_FORMATS + _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=BOGOTA).astimezone(UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"unrecognised Factus date-time {text!r}") from None
    return parse_factus_datetime(parsed)


def parse_factus_date(value: Any) -> date | None:
    """Return a Factus date (``"DD-MM-YYYY"``, ``"YYYY-MM-DD"``, ISO date-time) as a ``date``.

    The calendar date is taken as written (no zone conversion): Factus dates such as a numbering
    range's ``start_date`` are calendar days in Colombia (§1, §8.1). ``None``/``""`` give ``None``.

    Raises:
        ValueError: for text in none of those formats.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a calendar date, no zone
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        pass
    head = text.split(" ", 1)[0].split("T", 1)[0]
    if head != text:
        return parse_factus_date(head)
    raise ValueError(f"unrecognised Factus date {text!r}")


def _to_datetime(value: Any) -> datetime | None:
    try:
        return parse_factus_datetime(value)
    except ValueError:
        _lenient("date-time", value)
        return None


def _to_date(value: Any) -> date | None:
    try:
        return parse_factus_date(value)
    except ValueError:
        _lenient("date", value)
        return None


def to_decimal(value: Any) -> Decimal | None:
    """Return a Factus amount (``"81232.50"``, ``40000``, ``47600.5``) as ``Decimal``; ``None`` if absent.

    Floats go through ``str`` so ``0.1`` stays ``Decimal("0.1")``. Raises ``ValueError`` for text
    that is not a number (thousand separators are not guessed).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value))
    text = str(value).strip()
    if not text:
        return None
    try:
        result = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    return result


def _to_money(value: Any) -> Decimal | None:
    try:
        return to_decimal(value)
    except ValueError:
        _lenient("amount", value)
        return None


def to_flag(value: Any) -> bool:
    """Return a Factus 0/1 flag as ``bool``: accepts 0/1, ``"0"``/``"1"``, JSON booleans,
    ``"true"``/``"false"``; ``None`` or ``""`` is ``False`` (§1: flags are 0/1 integers, a few are
    JSON booleans)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)):
        return value != 0
    text = str(value).strip().lower()
    if text in {"", "0", "false", "no", "n"}:
        return False
    if text in {"1", "true", "yes", "si", "sí", "y"}:
        return True
    _lenient("flag", value)
    return False


def _name_of(value: Any) -> Any:
    """Reduce ``{"name": ...}`` objects to their name where we keep only a name."""
    if isinstance(value, dict):
        return value.get("name")
    return value


Money = Annotated[Decimal | None, BeforeValidator(_to_money)]
Flag = Annotated[bool, BeforeValidator(to_flag)]
UtcDateTime = Annotated[datetime | None, BeforeValidator(_to_datetime)]
CalendarDate = Annotated[date | None, BeforeValidator(_to_date)]
NameText = Annotated[str | None, BeforeValidator(_name_of)]


class WireModel(BaseModel):
    """Base of every parsed Factus result: ignores unknown fields, turns numbers into text where
    text is expected, and is immutable."""

    model_config = ConfigDict(
        extra="ignore", coerce_numbers_to_str=True, frozen=True, populate_by_name=True
    )


# --- DIAN rules ------------------------------------------------------------------------------

_RULE = re.compile(
    r"^\s*Regla\s*:\s*(?P<code>[^,]*?)\s*,\s*(?P<kind>Rechazo|Notificaci[oó]n)\s*:?\s*(?P<text>.*)$",
    re.IGNORECASE | re.DOTALL,
)

#: DIAN rule "90": "Documento procesado anteriormente" (§5.4, ERRUTIL): never re-send.
ALREADY_PROCESSED_RULE = "90"


class DianRule(WireModel):
    """One DIAN rule message attached to a document (§5.4).

    Attributes:
        code: the rule code as DIAN writes it (``"FAK24"``, ``"FAJ43b"``, ``"90"``), or ``None``
            when the message carries no code.
        kind: ``"rejection"`` ("Rechazo": the document is not valid) or ``"notification"``
            ("Notificación": a warning on a valid document).
        text: the explanation after the kind, e.g. ``"No está informado el DV del NIT"``.
    """

    code: str | None = None
    kind: Literal["notification", "rejection"]
    text: str = ""

    @classmethod
    def parse(cls, message: str, *, key: str | None = None) -> DianRule:
        """Parse ``"Regla: FAK24, Rechazo: No está informado el DV del NIT"`` into a rule.

        A message without the ``Regla: X, Kind:`` prefix keeps its whole text; its code is
        ``key`` (the object key it came under, if any) and it counts as a rejection when it
        mentions "rechazo" (the v1 test in DOC2 ``manejo-errores``), else as a notification.
        """
        match = _RULE.match(message)
        kind: Literal["notification", "rejection"]
        if match:
            kind = "rejection" if match["kind"].lower() == "rechazo" else "notification"
            code = match["code"].strip() or key
            return cls(code=code, kind=kind, text=match["text"].strip())
        kind = "rejection" if "rechaz" in message.lower() else "notification"
        return cls(code=key, kind=kind, text=message.strip())

    @property
    def is_rejection(self) -> bool:
        """True for a "Rechazo" rule."""
        return self.kind == "rejection"


def is_rule_message(message: str) -> bool:
    """True when ``message`` has the DIAN ``"Regla: X, Rechazo|Notificación: ..."`` form."""
    return bool(_RULE.match(message))


def _strings_with_keys(errors: Any) -> Iterable[tuple[str | None, str]]:
    if errors is None:
        return
    if isinstance(errors, str):
        yield None, errors
    elif isinstance(errors, dict):
        for key, value in errors.items():
            for _, text in _strings_with_keys(value):
                yield str(key), text
    elif isinstance(errors, (list, tuple)):
        for value in errors:
            if isinstance(value, dict) and "message" in value:
                yield None, str(value["message"])
            else:
                yield from _strings_with_keys(value)
    else:
        yield None, str(errors)


def dian_rules_from(errors: Any) -> list[DianRule]:
    """Normalise a Factus ``errors`` value into rules (§5.4: the three observed forms).

    Input: ``["Regla: 90, Rechazo: ..."]``, ``{"FAK24": "Regla: FAK24, Rechazo: ..."}``,
    ``{"field": ["message", ...]}``, ``[]``, ``{}`` or ``None``. Output: one :class:`DianRule` per
    message, in order. Empty strings are dropped.
    """
    return [
        DianRule.parse(text, key=key) for key, text in _strings_with_keys(errors) if text.strip()
    ]


def messages_of(errors: Any) -> list[tuple[str | None, str]]:
    """Flatten any ``errors`` value into ``(key, message)`` pairs (used by the error mapping)."""
    return list(_strings_with_keys(errors))


def _rules(value: Any) -> list[DianRule]:
    if isinstance(value, list) and all(isinstance(item, DianRule) for item in value):
        return value
    return dian_rules_from(value)


DianRules = Annotated[list[DianRule], BeforeValidator(_rules)]


# --- OAuth ----------------------------------------------------------------------------------


class TokenResponse(WireModel):
    """The answer of ``POST /oauth/token`` (§2), password or refresh grant.

    ``access_token`` and ``refresh_token`` are ``SecretStr`` so a log or ``repr`` never shows
    them; ``expires_in`` is the access token's lifetime in seconds as Factus states it (never
    assumed: Decision 2).
    """

    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_in: int = Field(ge=0)


# --- documents ------------------------------------------------------------------------------


class DocumentTotals(WireModel):
    """Totals of a bill or credit note in COP, as Factus computed them (§4.1, §4.2).

    ``None`` means Factus did not send the field (older responses lack ``discount_amount`` and
    ``surcharge_amount``: §4.1). ``prepayment_amount`` and ``cash_rounding_amount`` come only
    from v2 (``data.totals``, v2 ``facturas/crear-y-validar``); v2's ``gross_amount`` is
    ``gross_value`` here. ``total`` is what the customer pays (v2: after prepayments).
    """

    gross_value: Money = None
    taxable_amount: Money = None
    tax_amount: Money = None
    discount_amount: Money = None
    surcharge_amount: Money = None
    total: Money = None
    prepayment_amount: Money = None
    cash_rounding_amount: Money = None


class _DocumentResult(WireModel):
    id: int | None = None
    number: str | None = None
    reference_code: str | None = None
    status: int | None = None
    qr: str | None = None
    qr_image: str | None = None
    public_url: str | None = None
    validated_at: UtcDateTime = None
    created_at: UtcDateTime = None
    totals: DocumentTotals = Field(default_factory=DocumentTotals)
    errors: DianRules = Field(default_factory=list)
    message: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def is_validated(self) -> bool:
        """True when DIAN accepted the document (``status`` 1: §4.1, Decision 4)."""
        return self.status == 1

    @property
    def rejections(self) -> list[DianRule]:
        """The "Rechazo" rules among ``errors``."""
        return [rule for rule in self.errors if rule.is_rejection]

    @property
    def notifications(self) -> list[DianRule]:
        """The "Notificación" rules among ``errors`` (warnings on a valid document)."""
        return [rule for rule in self.errors if not rule.is_rejection]

    @property
    def is_rejected(self) -> bool:
        """True when not validated and a rule says "Rechazo" (DOC2 ``manejo-errores`` v1)."""
        return not self.is_validated and bool(self.rejections)

    @property
    def is_pending(self) -> bool:
        """True when not validated and not rejected: DIAN is slow; re-send with the same
        reference code later (Decision 4, §5.5)."""
        return not self.is_validated and not self.rejections


class BillResult(_DocumentResult):
    """A bill as ``POST /v1/bills/validate`` or ``GET /v1/bills/show/{number}`` return it (§4, §6.2).

    Attributes:
        id: Factus internal id (what a v1 credit note's ``bill_id`` needs: §7.1); ``None`` on
            v2, whose documents carry no id (a v2 credit note names its bill by ``number``).
        number: prefix + consecutive, e.g. ``"SETP990010377"``.
        reference_code: our idempotency key (§9).
        status: 1 validated by DIAN, 0 not validated (§4.1; v2 ``is_validated`` true/false).
        cufe: 96 lowercase hex characters once validated.
        qr: the DIAN lookup URL (v2 ``links.qr``); qr_image: ``"data:image/png;base64, ..."``
            (v1 only: v2 sends no image, ``None``).
        public_url: Factus's public page of the document (v1 ``bill.public_url``, v2
            ``links.public_url``), when sent.
        validated_at, created_at: UTC.
        totals: amounts in COP.
        errors: DIAN rules (notifications on a valid bill, rejections otherwise).
        message: the envelope's ``message``.
        raw: the whole ``data`` object as received (for ``response_payload``).
    """

    cufe: str | None = None


class CreditNoteResult(_DocumentResult):
    """A credit note as ``POST /v1/credit-notes/validate`` or ``GET /v1/credit-notes/{number}``
    return it (§7.1).

    Attributes:
        cude: the note's own unique code (96 hex). bill_id / bill_number / bill_cufe: the bill it
        corrects (v1 ``bill_id``, ``number_bill``, ``cufe``). Other fields as in :class:`BillResult`.
    """

    cude: str | None = None
    bill_id: int | None = None
    bill_number: str | None = None
    bill_cufe: str | None = None


class BillListItem(WireModel):
    """One row of ``GET /v1/bills`` (§6.1). Lists carry no CUFE and no QR: use show for those."""

    id: int | None = None
    number: str | None = None
    reference_code: str | None = None
    identification: str | None = None
    names: str | None = None
    company: str | None = None
    graphic_representation_name: str | None = None
    email: str | None = None
    total: Money = None
    status: int | None = None
    errors: DianRules = Field(default_factory=list)
    send_email: Flag = False
    created_at: UtcDateTime = None

    @property
    def is_validated(self) -> bool:
        """True when ``status`` is 1."""
        return self.status == 1


class CreditNoteListItem(BillListItem):
    """One row of ``GET /v1/credit-notes``. The docs give the filters only ("same as bills",
    §7.1); that the rows look like bill rows is inferred. ``bill_number``: the bill it
    corrects, when the row says (v2 rows carry it; inferred from the real sandbox)."""

    bill_number: str | None = None


T = TypeVar("T")


class Page(WireModel, Generic[T]):
    """One page of a Factus list (§6.1 ``pagination``): ``items`` plus the page counters.

    ``last_page`` is how many pages there are; a page past the end has no items.
    """

    items: list[T] = Field(default_factory=list)
    total: int | None = None
    per_page: int | None = None
    current_page: int = 1
    last_page: int = 1


# --- reference data -------------------------------------------------------------------------


class NumberingRange(WireModel):
    """A numbering range from ``GET /v1/numbering-ranges`` (§8.1).

    ``document`` is the document name in v1 lists (``"Factura de Venta"``) and a code in the
    single-range endpoint and in v2 (``"21"``, with ``document_name`` beside it: v2
    ``crear-rango``); ``current`` is the next number to use; ``start_date``/``end_date`` are
    calendar dates; ``is_active`` is 0/1 and ``is_expired`` a bool on the wire.
    """

    id: int
    document: str | None = None
    prefix: str | None = None
    from_: int | None = Field(default=None, alias="from")
    to: int | None = None
    current: int | None = None
    resolution_number: str | None = None
    technical_key: str | None = None
    start_date: CalendarDate = None
    end_date: CalendarDate = None
    is_expired: Flag = False
    is_active: Flag = False
    document_name: str | None = None


class DianNumberingRange(WireModel):
    """A range DIAN has associated with the company's software, from
    ``GET /v2/numbering-ranges/dian`` (v2 ``rangos-de-numeracion/rangos-asociados-al-software``).

    Factus does not use such a range until it is created with ``POST /v2/numbering-ranges``
    (FACTUS_API.md §10.1). ``from_``/``to`` bound the consecutive; ``start_date``/``end_date``
    are the resolution's validity (calendar dates); ``technical_key`` is DIAN's clave técnica.
    The list carries no document code: a range with a resolution is an invoice range (21).
    """

    prefix: str | None = None
    from_: int | None = Field(default=None, alias="from")
    to: int | None = None
    resolution_number: str | None = None
    start_date: CalendarDate = None
    end_date: CalendarDate = None
    technical_key: str | None = None


class Municipality(WireModel):
    """A municipality from ``GET /v1/municipalities`` (§8.2): ``code`` is the 5-digit DANE code."""

    id: int
    code: str | None = None
    name: str
    department: NameText = None


class MeasurementUnit(WireModel):
    """A unit from ``GET /v1/measurement-units`` (§8.2), e.g. 70 / ``"94"`` / ``"unidad"``."""

    id: int
    code: str | None = None
    name: str


class ProductTribute(WireModel):
    """A product tribute from ``GET /v1/tributes/products`` (§8.2), e.g. 1 / ``"01"`` / IVA."""

    id: int
    code: str | None = None
    name: str
    description: str | None = None


class CodeName(WireModel):
    """A ``{code, name}`` pair (tributes, legal organisations, responsibilities)."""

    code: str | None = None
    name: str | None = None


class Company(WireModel):
    """The issuing company from ``GET /v1/company`` (§8.2)."""

    nit: str | None = None
    dv: str | None = None
    company: str | None = None
    trade_name: str | None = None
    names: str | None = None
    surnames: str | None = None
    graphic_representation_name: str | None = None
    registration_code: str | None = None
    economic_activity: str | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None
    url_logo: str | None = None
    municipality: NameText = None
    tribute: CodeName | None = None
    legal_organization: CodeName | None = None
    responsibilities: list[CodeName] = Field(default_factory=list)


class DownloadedFile(WireModel):
    """A document file from a download endpoint (§6.4).

    Attributes:
        file_name: the DIAN name without extension, e.g. ``"fv09017242540002500013136"``.
        content: the decoded file bytes (PDF or XML).
    """

    file_name: str
    content: bytes = Field(repr=False)
