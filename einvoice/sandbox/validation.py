"""Payload validation of ``POST /v1/bills/validate`` and ``POST /v1/credit-notes/validate``.

Factus runs a Laravel FormRequest before anything else; the simulator does the same, in this pure
module (no state, no I/O): it checks required fields, types and the ids of the reference tables
(:mod:`einvoice.sandbox.catalogs`) and returns either the Laravel error bag or a normalized request.
Checks that need the account's state (the numbering range, the referenced bill) are done by
:mod:`einvoice.sandbox.documents` and :mod:`einvoice.sandbox.ranges`, which reuse :class:`ErrorBag` so
that all of them end in one 422.

Sources: field tables of DOC1 "Factura avanzada" and "Notas crédito / crear y validar" as
FACTUS_API.md §3 and §7.1 reproduce them; messages are the ones FACTUS_API.md §5.2 quotes, the rest
follow Laravel's Spanish defaults (inferred). Numeric fields accept numbers or numeric strings, as
Laravel does ("examples send ``"21"``", §3). A field path in a message is written as Laravel writes it
(``items.0.quantity``); top-level names without a Spanish label lose their underscores
(``payment method code``, as in §5.2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from einvoice.sandbox import catalogs
from einvoice.sandbox.amounts import AllowanceInput, ItemInput, WithholdingInput

# Spanish labels Factus uses for some attributes (FACTUS_API.md §5.2).
ATTRIBUTE_LABELS = {
    "reference_code": "código de referencia",
    "numbering_range_id": "id rango de numeración",
    "customization_id": "Tipo de nota crédito",
}
OBSERVATION_MAX = 250
_NIT = re.compile(r"^\d{1,15}$")
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}$")


def label(path: str) -> str:
    """Return the name Laravel prints for a field ``path`` (see the module docstring)."""
    if path in ATTRIBUTE_LABELS:
        return ATTRIBUTE_LABELS[path]
    return path if "." in path else path.replace("_", " ")


class ErrorBag:
    """Laravel's validation error bag: ``{field: [messages]}`` in the order errors were found."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        """Record ``message`` for ``path`` (a dotted field path such as ``items.0.price``)."""
        self.errors.setdefault(path, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def body(self) -> dict[str, Any]:
        """Return the 422 body Factus sends for payload errors (FACTUS_API.md §5.2).

        Returns:
            ``{"message": "<first error> (and N more errors)", "errors": {field: [msg, ...]}}``; the
            suffix counts every other message, singular "error" for one, none when alone.
        """
        messages = [m for msgs in self.errors.values() for m in msgs]
        first = messages[0] if messages else "Error de validación"
        rest = len(messages) - 1
        if rest == 1:
            first += " (and 1 more error)"
        elif rest > 1:
            first += f" (and {rest} more errors)"
        return {"message": first, "errors": self.errors}


# ---------------------------------------------------------------------------------------------
# Normalized requests


@dataclass(frozen=True)
class CustomerData:
    """A validated ``customer`` object; ids are ints, texts are strings (``""`` when absent)."""

    identification_document_id: int
    identification: str
    dv: str | None
    company: str
    trade_name: str
    names: str
    address: str
    email: str
    phone: str
    legal_organization_id: int
    tribute_id: int
    municipality_id: int | None


@dataclass(frozen=True)
class EstablishmentData:
    """A validated ``establishment`` object."""

    name: str
    address: str
    phone_number: str
    email: str
    municipality_id: int


@dataclass(frozen=True)
class ItemData:
    """A validated item: its money fields (:attr:`money`) plus the descriptive ones."""

    code_reference: str
    name: str
    quantity: int
    discount_rate: Decimal
    price: Decimal
    tax_rate: Decimal
    unit_measure_id: int
    standard_code_id: int
    is_excluded: int
    tribute_id: int
    withholdings: tuple[WithholdingInput, ...]
    scheme_id: str | None = None
    note: str | None = None
    mandate: dict[str, Any] | None = None

    @property
    def money(self) -> ItemInput:
        """The item as :class:`einvoice.sandbox.amounts.ItemInput`."""
        return ItemInput(
            price=self.price,
            quantity=self.quantity,
            discount_rate=self.discount_rate,
            tax_rate=self.tax_rate,
            tribute_id=self.tribute_id,
            withholdings=self.withholdings,
        )


@dataclass(frozen=True)
class AllowanceData:
    """A validated ``allowance_charges[]`` entry."""

    concept_type: str
    is_surcharge: bool
    reason: str
    base_amount: Decimal
    amount: Decimal

    @property
    def money(self) -> AllowanceInput:
        """The allowance as :class:`einvoice.sandbox.amounts.AllowanceInput`."""
        return AllowanceInput(self.is_surcharge, self.base_amount, self.amount)


@dataclass(frozen=True)
class BillRequest:
    """A validated ``POST /v1/bills/validate`` body with Factus' defaults applied (§3.1)."""

    numbering_range_id: int | None
    document: str
    reference_code: str
    observation: str | None
    payment_form: str
    payment_due_date: date | None
    payment_method_code: str
    operation_type: str
    send_email: bool
    order_reference: dict[str, Any] | None
    related_documents: list[dict[str, Any]]
    billing_period: dict[str, Any] | None
    establishment: EstablishmentData | None
    customer: CustomerData
    items: tuple[ItemData, ...]
    allowances: tuple[AllowanceData, ...] = field(default=())


@dataclass(frozen=True)
class CreditNoteRequest:
    """A validated ``POST /v1/credit-notes/validate`` body (§7.1); ``customer`` None = the bill's."""

    numbering_range_id: int | None
    correction_concept_code: int
    customization_id: int
    bill_id: int | None
    reference_code: str
    payment_method_code: str
    send_email: bool
    observation: str | None
    billing_period: dict[str, Any] | None
    establishment: EstablishmentData | None
    customer: CustomerData | None
    items: tuple[ItemData, ...]
    allowances: tuple[AllowanceData, ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# Value coercion, Laravel style


def _missing(value: Any) -> bool:
    """Laravel ``required`` fails on null, a blank string and an empty array or object."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, dict)):
        return not value
    return False


def as_int(value: Any) -> int | None:
    """Return ``value`` as an int if Laravel's ``integer`` rule accepts it (``2``, ``"2"``, ``2.0``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.match(value.strip()):
        return int(value.strip())
    return None


def as_decimal(value: Any) -> Decimal | None:
    """Return ``value`` as a Decimal if Laravel's ``numeric`` rule accepts it, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return Decimal(repr(value))
    if isinstance(value, (int, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        return result if result.is_finite() else None
    return None


def as_bool(value: Any) -> bool | None:
    """Return ``value`` as a bool if Laravel's ``boolean`` rule accepts it (true/false/0/1/"0"/"1")."""
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return bool(int(value))
    return None


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


class _Checker:
    """Field checks that write Laravel messages into an :class:`ErrorBag`."""

    def __init__(self, bag: ErrorBag) -> None:
        self.bag = bag

    def fail(self, path: str, template: str, **params: Any) -> None:
        self.bag.add(path, template.format(a=label(path), **params))

    def absent(self, path: str, value: Any, *, required: bool) -> bool:
        """True when ``value`` is missing; a missing required value is an "obligatorio" error."""
        if not _missing(value):
            return False
        if required:
            self.fail(path, "El campo {a} es obligatorio.")
        return True

    def objects(self, path: str, rows: list[Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``("<path>.<i>.", row)`` for each object of ``rows``; any other entry is an error."""
        for index, row in enumerate(rows or []):
            if not isinstance(row, dict):
                self.fail(f"{path}.{index}", "El campo {a} debe ser un objeto.")
                continue
            yield f"{path}.{index}.", row

    def string(self, path: str, value: Any, *, required: bool, max_len: int | None = None) -> str:
        if self.absent(path, value, required=required):
            return ""
        if not isinstance(value, str):
            self.fail(path, "El campo {a} debe ser una cadena de caracteres.")
            return ""
        if max_len is not None and len(value) > max_len:
            self.fail(path, "El campo {a} no debe ser mayor que {n} caracteres.", n=max_len)
        return value

    def integer(
        self, path: str, value: Any, *, required: bool, minimum: int | None = None
    ) -> int | None:
        if self.absent(path, value, required=required):
            return None
        result = as_int(value)
        if result is None:
            self.fail(path, "El campo {a} debe ser un número entero.")
            return None
        if minimum is not None and result < minimum:
            self.fail(path, "El campo {a} debe ser al menos {n}.", n=minimum)
            return None
        return result

    def in_table(
        self, path: str, value: Any, table: Mapping[int, Any], *, required: bool
    ) -> int | None:
        if self.absent(path, value, required=required):
            return None
        result = as_int(value)
        if result is None or result not in table:
            self.fail(path, "El campo {a} es inválido.")
            return None
        return result

    def code_in(
        self, path: str, value: Any, table: Mapping[str, Any], *, default: str | None
    ) -> str | None:
        if self.absent(path, value, required=default is None):
            return default
        code = (
            str(value).strip()
            if isinstance(value, (str, int)) and not isinstance(value, bool)
            else None
        )
        if code is None or code not in table:
            self.fail(path, "El campo {a} es inválido.")
            return None
        return code

    def number(
        self,
        path: str,
        value: Any,
        *,
        required: bool,
        minimum: Decimal | None = None,
        maximum: Decimal | None = None,
        max_decimals: int | None = None,
    ) -> Decimal | None:
        if self.absent(path, value, required=required):
            return None
        result = as_decimal(value)
        if result is None:
            self.fail(path, "El campo {a} debe ser numérico.")
            return None
        if minimum is not None and maximum is not None and not minimum <= result <= maximum:
            self.fail(path, "El campo {a} debe estar entre {lo} y {hi}.", lo=minimum, hi=maximum)
            return None
        if minimum is not None and result < minimum:
            self.fail(path, "El campo {a} debe ser al menos {n}.", n=minimum)
            return None
        if max_decimals is not None and _decimals(result) > max_decimals:
            self.fail(
                path, "El campo {a} debe tener como máximo {n} cifras decimales.", n=max_decimals
            )
            return None
        return result

    def percent(
        self, path: str, value: Any, *, required: bool, zero: Decimal = Decimal(0)
    ) -> Decimal | None:
        """A rate in percent: 0 to 100 with at most 2 decimals.

        ``zero`` is the lower bound as the message prints it ("0" in v1, "0.00" in v2).
        """
        return self.number(
            path, value, required=required, minimum=zero, maximum=Decimal(100), max_decimals=2
        )

    def boolean(self, path: str, value: Any, *, default: bool) -> bool:
        if value is None:
            return default
        result = as_bool(value)
        if result is None:
            self.fail(path, "El campo {a} debe tener un valor verdadero o falso.")
            return default
        return result

    def ymd(self, path: str, value: Any, *, required: bool) -> date | None:
        if self.absent(path, value, required=required):
            return None
        try:
            # A calendar date: no time zone applies.
            return datetime.strptime(str(value), "%Y-%m-%d").date()  # noqa: DTZ007
        except ValueError:
            self.fail(path, "El campo {a} debe coincidir con el formato Y-m-d.")
            return None

    def hms(self, path: str, value: Any, *, required: bool) -> str | None:
        if self.absent(path, value, required=required):
            return None
        if not isinstance(value, str) or not _TIME.match(value):
            self.fail(path, "El campo {a} debe coincidir con el formato H:i:s.")
            return None
        return value

    def obj(self, path: str, value: Any, *, required: bool) -> dict[str, Any] | None:
        if self.absent(path, value, required=required):
            return None
        if not isinstance(value, dict):
            self.fail(path, "El campo {a} debe ser un objeto.")
            return None
        return value

    def array(self, path: str, value: Any, *, required: bool) -> list[Any] | None:
        if self.absent(path, value, required=required):
            return None
        if not isinstance(value, list):
            self.fail(path, "El campo {a} debe ser un arreglo.")
            return None
        return value

    def email(self, path: str, value: Any, *, required: bool) -> str:
        text = self.string(path, value, required=required)
        if text and not _EMAIL.match(text):
            self.fail(path, "El campo {a} no es un correo válido.")
        return text


# ---------------------------------------------------------------------------------------------
# Sections shared by bills and credit notes


def _customer(c: _Checker, raw: dict[str, Any]) -> CustomerData | None:
    p = "customer."
    doc_id = c.in_table(
        p + "identification_document_id",
        raw.get("identification_document_id"),
        catalogs.IDENTIFICATION_DOCUMENTS,
        required=True,
    )
    identification = c.string(p + "identification", _text(raw.get("identification")), required=True)
    if doc_id == catalogs.NIT_DOCUMENT_ID and identification and not _NIT.match(identification):
        # A NIT goes without DV or hyphen (DOC1 customer.identification); DIAN NITs have ≤ 15 digits.
        c.fail(p + "identification", "El formato del campo {a} es inválido.")
    dv_raw = raw.get("dv")
    dv: str | None = None
    if not _missing(dv_raw):
        dv_int = as_int(dv_raw)
        if dv_int is None or not 0 <= dv_int <= 9:
            c.fail(p + "dv", "El campo {a} debe ser un número entero de un dígito.")
        else:
            dv = str(dv_int)
    legal_org = c.in_table(
        p + "legal_organization_id",
        raw.get("legal_organization_id"),
        catalogs.LEGAL_ORGANIZATIONS,
        required=True,
    )
    tribute = c.in_table(
        p + "tribute_id", raw.get("tribute_id"), catalogs.CUSTOMER_TRIBUTES, required=True
    )
    company = c.string(p + "company", raw.get("company"), required=False)
    names = c.string(p + "names", raw.get("names"), required=False)
    if legal_org == 1 and not company:
        c.fail(
            p + "company", "El campo {a} es obligatorio cuando customer.legal organization id es 1."
        )
    if legal_org == 2 and not names:
        c.fail(
            p + "names", "El campo {a} es obligatorio cuando customer.legal organization id es 2."
        )
    municipality = c.in_table(
        p + "municipality_id", raw.get("municipality_id"), catalogs.municipalities(), required=False
    )
    trade_name = c.string(p + "trade_name", raw.get("trade_name"), required=False)
    address = c.string(p + "address", raw.get("address"), required=False)
    email = c.email(p + "email", raw.get("email"), required=False)
    phone_raw = raw.get("phone")
    phone = c.string(
        p + "phone", str(phone_raw) if isinstance(phone_raw, int) else phone_raw, required=False
    )
    if doc_id is None or legal_org is None or tribute is None:
        return None
    return CustomerData(
        identification_document_id=doc_id,
        identification=identification,
        dv=dv,
        company=company,
        trade_name=trade_name,
        names=names,
        address=address,
        email=email,
        phone=phone,
        legal_organization_id=legal_org,
        tribute_id=tribute,
        municipality_id=municipality,
    )


def _establishment(c: _Checker, raw: dict[str, Any]) -> EstablishmentData | None:
    p = "establishment."
    name = c.string(p + "name", raw.get("name"), required=True)
    address = c.string(p + "address", raw.get("address"), required=True)
    phone_raw = raw.get("phone_number")
    phone = c.string(
        p + "phone_number",
        str(phone_raw) if isinstance(phone_raw, int) else phone_raw,
        required=True,
    )
    email = c.email(p + "email", raw.get("email"), required=True)
    municipality = c.in_table(
        p + "municipality_id", raw.get("municipality_id"), catalogs.municipalities(), required=True
    )
    if municipality is None:
        return None
    return EstablishmentData(name, address, phone, email, municipality)


def _items(
    c: _Checker, raw: Any, *, operation_type: str | None, allow_mandates: bool
) -> tuple[ItemData, ...]:
    rows = c.array("items", raw, required=True)
    if rows is None:
        return ()
    result: list[ItemData] = []
    ok = all(isinstance(item, dict) for item in rows)
    for p, item in c.objects("items", rows):
        before = len(c.bag.errors)
        code_reference = c.string(
            p + "code_reference", _text(item.get("code_reference")), required=True
        )
        name = c.string(p + "name", item.get("name"), required=True)
        quantity = c.integer(p + "quantity", item.get("quantity"), required=True, minimum=1)
        discount_rate = c.percent(p + "discount_rate", item.get("discount_rate"), required=True)
        price = c.number(
            p + "price", item.get("price"), required=True, minimum=Decimal(0), max_decimals=2
        )
        tax_rate = c.percent(p + "tax_rate", item.get("tax_rate"), required=True)
        unit = c.in_table(
            p + "unit_measure_id",
            item.get("unit_measure_id"),
            catalogs.UNIT_MEASURES,
            required=True,
        )
        standard = c.in_table(
            p + "standard_code_id",
            item.get("standard_code_id"),
            catalogs.STANDARD_CODES,
            required=True,
        )
        excluded = c.in_table(
            p + "is_excluded", item.get("is_excluded"), {0: 0, 1: 1}, required=True
        )
        tribute = c.in_table(
            p + "tribute_id", item.get("tribute_id"), catalogs.PRODUCT_TRIBUTES, required=True
        )
        withholdings = _withholdings(c, p, item.get("withholding_taxes"))
        note = c.string(p + "note", item.get("note"), required=False) or None
        scheme_id: str | None = None
        mandate: dict[str, Any] | None = None
        if allow_mandates:
            scheme_raw = item.get("scheme_id")
            if operation_type == catalogs.MANDATE_OPERATION and _missing(scheme_raw):
                c.fail(p + "scheme_id", "El campo {a} es obligatorio cuando operation type es 11.")
            elif not _missing(scheme_raw):
                scheme_id = str(scheme_raw)
                if scheme_id not in ("0", "1"):
                    c.fail(p + "scheme_id", "El campo {a} es inválido.")
            if scheme_id == "1":
                mandate = c.obj(p + "mandate", item.get("mandate"), required=True)
                if mandate is not None:
                    c.in_table(
                        p + "mandate.identification_document_id",
                        mandate.get("identification_document_id"),
                        catalogs.IDENTIFICATION_DOCUMENTS,
                        required=True,
                    )
                    c.string(
                        p + "mandate.identification",
                        _text(mandate.get("identification")),
                        required=True,
                    )
        if len(c.bag.errors) != before or None in (
            quantity,
            discount_rate,
            price,
            tax_rate,
            unit,
            standard,
            excluded,
            tribute,
        ):
            ok = False
            continue
        assert quantity is not None
        assert discount_rate is not None
        assert price is not None
        assert tax_rate is not None
        assert unit is not None
        assert standard is not None
        assert excluded is not None
        assert tribute is not None
        result.append(
            ItemData(
                code_reference=code_reference,
                name=name,
                quantity=quantity,
                discount_rate=discount_rate,
                price=price,
                tax_rate=tax_rate,
                unit_measure_id=unit,
                standard_code_id=standard,
                is_excluded=excluded,
                tribute_id=tribute,
                withholdings=withholdings,
                scheme_id=scheme_id,
                note=note,
                mandate=mandate,
            )
        )
    return tuple(result) if ok else ()


def _text(value: Any) -> Any:
    """Codes sent as numbers (``"code_reference": 12345``) are accepted as their text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _withholdings(
    c: _Checker,
    prefix: str,
    raw: Any,
    *,
    table: Mapping[str, Any] = catalogs.WITHHOLDING_TAXES,
    rate_field: str = "withholding_tax_rate",
    zero: Decimal = Decimal(0),
) -> tuple[WithholdingInput, ...]:
    """An item's ``withholding_taxes[]``: v1 names the rate ``withholding_tax_rate``, v2 ``rate``.

    ``zero`` is the lower bound as the version's message prints it ("0" in v1, "0.00" in v2).
    """
    rows = c.array(prefix + "withholding_taxes", raw, required=False)
    result: list[WithholdingInput] = []
    for p, row in c.objects(prefix + "withholding_taxes", rows):
        code = c.code_in(p + "code", _text(row.get("code")), table, default=None)
        rate = c.percent(p + rate_field, row.get(rate_field), required=True, zero=zero)
        if code is not None and rate is not None:
            result.append(WithholdingInput(code=code, rate=rate))
    return tuple(result)


def _allowances(c: _Checker, raw: Any) -> tuple[AllowanceData, ...]:
    rows = c.array("allowance_charges", raw, required=False)
    result: list[AllowanceData] = []
    for p, row in c.objects("allowance_charges", rows):
        concept = c.code_in(
            p + "concept_type", row.get("concept_type"), catalogs.ALLOWANCE_CONCEPTS, default=None
        )
        surcharge_raw = row.get("is_surcharge")
        if surcharge_raw is None:
            c.fail(p + "is_surcharge", "El campo {a} es obligatorio.")
        surcharge = c.boolean(p + "is_surcharge", surcharge_raw, default=True)
        reason = c.string(p + "reason", row.get("reason"), required=True)
        base = c.number(
            p + "base_amount",
            row.get("base_amount"),
            required=True,
            minimum=Decimal(0),
            max_decimals=2,
        )
        amount = c.number(
            p + "amount", row.get("amount"), required=True, minimum=Decimal(0), max_decimals=2
        )
        if (
            concept is not None
            and base is not None
            and amount is not None
            and surcharge_raw is not None
        ):
            result.append(AllowanceData(concept, surcharge, reason, base, amount))
    return tuple(result)


def _billing_period(
    c: _Checker, raw: Any, *, required: bool, end_time_required: bool = True
) -> dict[str, Any] | None:
    """``billing_period``; v1 requires ``end_time`` (§3.1), v2 does not."""
    period = c.obj("billing_period", raw, required=required)
    if period is None:
        return None
    start = c.ymd("billing_period.start_date", period.get("start_date"), required=True)
    start_time = c.hms("billing_period.start_time", period.get("start_time"), required=False)
    end = c.ymd("billing_period.end_date", period.get("end_date"), required=True)
    end_time = c.hms("billing_period.end_time", period.get("end_time"), required=end_time_required)
    if start and end and end < start:
        c.fail(
            "billing_period.end_date",
            "El campo {a} debe ser una fecha posterior o igual a billing_period.start_date.",
        )
    return {"start_date": start, "start_time": start_time, "end_date": end, "end_time": end_time}


def _reference_code(c: _Checker, raw: Any) -> str:
    return c.string("reference_code", _text(raw), required=True, max_len=255)


def _order_and_related(
    c: _Checker, raw: dict[str, Any], document: str | None
) -> tuple[dict[str, Any] | None, list[Any]]:
    """A bill's ``order_reference`` and ``related_documents[]`` (required for document 03)."""
    order_reference = c.obj("order_reference", raw.get("order_reference"), required=False)
    if order_reference is not None:
        c.string(
            "order_reference.reference_code",
            _text(order_reference.get("reference_code")),
            required=True,
        )
        c.ymd("order_reference.issue_date", order_reference.get("issue_date"), required=False)
    related = (
        c.array(
            "related_documents",
            raw.get("related_documents"),
            required=document == catalogs.TRANSMISSION_INSTRUMENT,
        )
        or []
    )
    for p, doc in c.objects("related_documents", related):
        c.string(p + "code", _text(doc.get("code")), required=True)
        c.ymd(p + "issue_date", doc.get("issue_date"), required=True)
        c.string(p + "number", _text(doc.get("number")), required=True)
    return order_reference, related


def _begin(body: Any) -> tuple[dict[str, Any], _Checker]:
    """The body as an object (anything else counts as an empty one) and a checker on a new bag."""
    return (body if isinstance(body, dict) else {}), _Checker(ErrorBag())


# ---------------------------------------------------------------------------------------------
# Public entry points


def validate_bill(body: Any) -> tuple[BillRequest | None, ErrorBag]:
    """Validate a ``POST /v1/bills/validate`` body (FACTUS_API.md §3).

    Args:
        body: the decoded JSON body (anything: a non-object counts as an empty object).

    Returns:
        ``(request, bag)``: the normalized request with defaults applied when ``bag`` is empty,
        else ``(None, bag)`` with every payload error found. Range existence and the like are
        checked later against the account's state.
    """
    raw, c = _begin(body)
    bag = c.bag
    range_id = c.integer("numbering_range_id", raw.get("numbering_range_id"), required=False)
    document = c.code_in("document", raw.get("document"), catalogs.BILL_DOCUMENTS, default="01")
    reference_code = _reference_code(c, raw.get("reference_code"))
    observation = c.string(
        "observation", raw.get("observation"), required=False, max_len=OBSERVATION_MAX
    )
    payment_form = c.code_in(
        "payment_form", _text(raw.get("payment_form")), catalogs.PAYMENT_FORMS, default="1"
    )
    due_raw = raw.get("payment_due_date")
    if payment_form == catalogs.CREDIT_PAYMENT_FORM and _missing(due_raw):
        c.fail("payment_due_date", "El campo {a} es obligatorio cuando payment form es 2.")
        due = None
    else:
        due = c.ymd("payment_due_date", due_raw, required=False)
    method = c.code_in(
        "payment_method_code",
        _text(raw.get("payment_method_code")),
        catalogs.PAYMENT_METHODS,
        default="10",
    )
    operation = c.code_in(
        "operation_type", _text(raw.get("operation_type")), catalogs.OPERATION_TYPES, default="10"
    )
    # Real v1 bills show ``send_email: 0`` when the request omits it (FACTUS_API.md §0 TUT).
    send_email = c.boolean("send_email", raw.get("send_email"), default=False)
    order_reference, related = _order_and_related(c, raw, document)
    billing_period = _billing_period(c, raw.get("billing_period"), required=False)
    establishment_raw = c.obj("establishment", raw.get("establishment"), required=False)
    establishment = _establishment(c, establishment_raw) if establishment_raw is not None else None
    customer_raw = c.obj("customer", raw.get("customer"), required=True)
    customer = _customer(c, customer_raw) if customer_raw is not None else None
    items = _items(c, raw.get("items"), operation_type=operation, allow_mandates=True)
    allowances = _allowances(c, raw.get("allowance_charges"))
    if bag or customer is None or not items or None in (document, payment_form, method, operation):
        return None, bag
    assert document is not None
    assert payment_form is not None
    assert method is not None
    assert operation is not None
    return BillRequest(
        numbering_range_id=range_id,
        document=document,
        reference_code=reference_code,
        observation=observation or None,
        payment_form=payment_form,
        payment_due_date=due,
        payment_method_code=method,
        operation_type=operation,
        send_email=send_email,
        order_reference=order_reference,
        related_documents=related,
        billing_period=billing_period,
        establishment=establishment,
        customer=customer,
        items=items,
        allowances=allowances,
    ), bag


def validate_credit_note(body: Any) -> tuple[CreditNoteRequest | None, ErrorBag]:
    """Validate a ``POST /v1/credit-notes/validate`` body (FACTUS_API.md §7.1).

    ``bill_id`` is required when ``customization_id`` is 20 and ``billing_period`` when it is 22;
    whether the bill exists, is validated and belongs to the account is checked against state.

    Args:
        body: the decoded JSON body.

    Returns:
        ``(request, bag)`` as :func:`validate_bill`.
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
    customization = c.in_table(
        "customization_id",
        raw.get("customization_id"),
        catalogs.CREDIT_NOTE_CUSTOMIZATIONS,
        required=True,
    )
    bill_id: int | None = None
    if customization == catalogs.CUSTOMIZATION_WITH_BILL:
        bill_raw = raw.get("bill_id")
        if _missing(bill_raw):
            c.fail("bill_id", "El campo {a} es obligatorio cuando Tipo de nota crédito es 20.")
        else:
            bill_id = as_int(bill_raw)
            if bill_id is None:
                c.fail("bill_id", "La factura seleccionada no existe.")
    reference_code = _reference_code(c, raw.get("reference_code"))
    method = c.code_in(
        "payment_method_code",
        _text(raw.get("payment_method_code")),
        catalogs.PAYMENT_METHODS,
        default="10",
    )
    send_email = c.boolean("send_email", raw.get("send_email"), default=True)
    observation = c.string(
        "observation", raw.get("observation"), required=False, max_len=OBSERVATION_MAX
    )
    billing_period = _billing_period(
        c, raw.get("billing_period"), required=customization == catalogs.CUSTOMIZATION_WITHOUT_BILL
    )
    establishment_raw = c.obj("establishment", raw.get("establishment"), required=False)
    establishment = _establishment(c, establishment_raw) if establishment_raw is not None else None
    customer_raw = c.obj(
        "customer",
        raw.get("customer"),
        required=customization == catalogs.CUSTOMIZATION_WITHOUT_BILL,
    )
    customer = _customer(c, customer_raw) if customer_raw is not None else None
    items = _items(c, raw.get("items"), operation_type=None, allow_mandates=False)
    allowances = _allowances(c, raw.get("allowance_charges"))
    if bag or concept is None or customization is None or not items or method is None:
        return None, bag
    return CreditNoteRequest(
        numbering_range_id=range_id,
        correction_concept_code=concept,
        customization_id=customization,
        bill_id=bill_id,
        reference_code=reference_code,
        payment_method_code=method,
        send_email=send_email,
        observation=observation or None,
        billing_period=billing_period,
        establishment=establishment,
        customer=customer,
        items=items,
        allowances=allowances,
    ), bag
