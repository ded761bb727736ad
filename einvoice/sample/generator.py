"""A realistic ERP dataset for demos and tests, generated deterministically from a seed.

:func:`generate_sample` fills the ERP tables (``organizations``, ``branches``, ``customers``,
``products``, ``invoice_sequences``, ``invoice_sales``, ``invoice_items``) with issuers, customers,
products, numbering ranges, invoices and credit notes; :func:`sample_organization` and
:func:`make_invoice` are the small factories other tests use for one issuer or one invoice.

Determinism: every choice comes from one ``random.Random(seed)`` and every UUID from its bits,
and no clock is read except to default ``today`` (the caller passes ``today`` to pin it), so the
same seed and ``today`` on the same (fresh) schema give identical rows. Integer ids
(organizations, branches, products, sequences) are the database's identity values, identical
between fresh databases.

How the ERP computes an invoice here (what :func:`einvoice.factus.v1_body.build_bill_payload`
compares its ``total`` with, FACTUS_API.md §4.2): per line, ``base = unit_price × qty × (1 −
discount_rate/100)``; with net prices (``tax_included`` false) ``net = round2(base)``, ``tax =
round2(net × rate/100)``; with IVA-included prices ``gross = round2(base)``, ``net = round2(gross /
(1 + rate/100))``, ``tax = gross − net``. ``invoice_items.total_line`` is the line's gross (net +
tax), ``invoice_sales.subtotal`` = Σ net, ``tax_total`` = Σ tax, ``total`` = Σ gross + surcharges.
Withholdings (``invoice_items.withholding_taxes``) do not change the total, as on Factus.

Deliberately wrong invoices, each refused by the domain before any HTTP call (the code each is
expected to raise is in :class:`WrongInvoice`):

* ``invalid_dv``: a company customer whose stored NIT check digit is off by a typo;
* ``unknown_municipality``: a customer whose ``municipality_id`` holds the DANE code 68001
  (Bucaramanga) instead of the Factus id 919, a classic ERP mix-up;
* ``non_integer_quantity``: a line of 1.5 kg of a product sold by weight (Factus v1 takes whole
  quantities, FACTUS_API.md §3.4); in a dataset for Factus v2, which takes two decimals, the line
  is 1.125 kg instead and the expected code ``quantity_too_precise``;
* ``numbering_range_expired``: a sale of the branch whose own resolution (``SETV``, Factus range
  12, like the sandbox's expired range) ended a year before ``today``. The repository prefers a
  branch's own range (:func:`einvoice.db.invoices.load_invoice`), so only that branch's invoices
  hit it.
"""

from __future__ import annotations

import random
import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypedDict

from sqlalchemy.orm import Session
from stdnum import ean
from stdnum.co import nit as co_nit

from einvoice.db.models import (
    Branch,
    Customer,
    InvoiceItem,
    InvoiceSale,
    InvoiceSequence,
    Organization,
    Product,
)
from einvoice.domain.payload import BOGOTA, round2
from einvoice.sample import catalog
from einvoice.sample.catalog import BranchSpec, OrganizationSpec, Place, ProductSpec

HUNDRED = Decimal(100)
ZERO = Decimal(0)

#: The wrong kinds, in the order they are handed out (so a small ``wrong_share`` still covers
#: the first ones): each is the :class:`~einvoice.domain.errors.PayloadError` code it causes.
WRONG_KINDS: tuple[str, ...] = (
    "invalid_dv",
    "unknown_municipality",
    "non_integer_quantity",
    "numbering_range_expired",
)
#: What the mistaken ERP stored as ``customers.municipality_id``: Bucaramanga's DANE code, which
#: is no Factus id (those run 1–1122).
DANE_CODE_AS_MUNICIPALITY_ID = 68001
#: Quantity of the fractional line: 1.5 kg (v1 takes whole quantities); 1.125 kg for v2 (which
#: takes two decimals).
FRACTIONAL_QTY = Decimal("1.5")
FRACTIONAL_QTY_V2 = Decimal("1.125")
#: The code each wrong kind raises on a Factus v2 account, where it differs from the kind's name.
V2_WRONG_CODES = {"non_integer_quantity": "quantity_too_precise"}

# ERP statuses of a sale still waiting for its e-invoice (``validated`` is written on acceptance).
STATUS_PAID = "paid"
STATUS_ISSUED = "issued"
STATUS_PARTIALLY_PAID = "partially_paid"
STATUS_OVERDUE = "overdue"

# Share of the dataset's customers that are companies (the rest are natural persons).
COMPANY_SHARE = 0.35
DISCOUNT_RATES = (Decimal(2), Decimal("2.5"), Decimal(5), Decimal(5), Decimal(10))
RETE_RENTA_GOODS = Decimal("2.5")
RETE_RENTA_SERVICES = Decimal(4)
RETE_IVA = Decimal(15)


class WrongInvoice(TypedDict):
    """A sample invoice the domain must refuse: its id and the ``PayloadError.code`` expected."""

    invoice_id: uuid.UUID
    expected_error_code: str


@dataclass(frozen=True, slots=True)
class SampleSummary:
    """What :func:`generate_sample` inserted.

    Attributes:
        seed / today: the arguments the dataset was generated with.
        organization_ids: ``organizations.id`` in creation order.
        customer_ids: every ``customers.id`` inserted (valid and deliberately broken).
        valid_invoice_ids: invoices (``document_type`` ``'invoice'``) that build a Factus payload.
        wrong_invoices: invoices the domain refuses, each with its expected error code.
        credit_note_ids: ``invoice_sales`` rows with ``document_type`` ``'credit_note'``.
    """

    seed: int
    today: date
    organization_ids: tuple[int, ...]
    customer_ids: tuple[uuid.UUID, ...]
    valid_invoice_ids: tuple[uuid.UUID, ...]
    wrong_invoices: tuple[WrongInvoice, ...]
    credit_note_ids: tuple[uuid.UUID, ...]

    @property
    def invoice_ids(self) -> tuple[uuid.UUID, ...]:
        """Every invoice id (valid first, then wrong), credit notes excluded."""
        return self.valid_invoice_ids + tuple(w["invoice_id"] for w in self.wrong_invoices)


# --- Small helpers ---------------------------------------------------------------------------


def bogota_today() -> date:
    """Today's calendar date in Bogotá (UTC−5): the default ``today`` of this module."""
    return datetime.now(BOGOTA).date()


def _ascii_slug(text: str, sep: str = ".") -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", sep, plain.lower()).strip(sep)


def _dv(nit: str) -> int:
    return int(co_nit.calc_check_digit(nit))


def _as_decimal(value: object) -> Decimal:
    if isinstance(value, float):
        raise TypeError("pass money and quantities as Decimal, int or str, not float")
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _check_columns(model: type[Any], keys: object, what: str) -> None:
    unknown = sorted(set(keys) - set(model.__table__.columns.keys()))  # type: ignore[call-overload]
    if unknown:
        raise ValueError(f"not columns of {what}: {', '.join(unknown)}")


def _json_number(value: Decimal) -> int | float:
    # JSONB holds numbers; a whole rate is written as an int (2.5 stays 2.5) like Factus's
    # examples. The domain parser reads floats through str(), so 2.5 comes back as Decimal("2.5").
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True, slots=True)
class LineAmounts:
    """One ERP line in COP: after discount, ``net`` + ``tax`` = ``gross``; ``discount`` on the
    ``unit_price`` basis."""

    net: Decimal
    tax: Decimal
    gross: Decimal
    discount: Decimal


def line_amounts(
    *,
    unit_price: Decimal,
    qty: Decimal,
    tax_rate: Decimal,
    discount_rate: Decimal,
    tax_included: bool,
) -> LineAmounts:
    """Compute one line the way the sample ERP does (module docstring), all in COP.

    Inputs: ``unit_price`` (COP, net or IVA-included per ``tax_included``), ``qty``, ``tax_rate``
    and ``discount_rate`` in percent. Output: :class:`LineAmounts`, 2-decimal amounts.
    """
    undiscounted = unit_price * qty
    discount = round2(undiscounted * discount_rate / HUNDRED)
    base = undiscounted * (1 - discount_rate / HUNDRED)
    if tax_included:
        gross = round2(base)
        net = round2(gross / (1 + tax_rate / HUNDRED))
        return LineAmounts(net=net, tax=gross - net, gross=gross, discount=discount)
    net = round2(base)
    tax = round2(net * tax_rate / HUNDRED)
    return LineAmounts(net=net, tax=tax, gross=net + tax, discount=discount)


def _shelf_price(product: ProductSpec) -> Decimal:
    """IVA-included retail price, rounded to the nearest 100 pesos as Colombian shops price."""
    gross = product.net_price * (1 + product.tax_rate / HUNDRED)
    return (gross / HUNDRED).quantize(Decimal(1), rounding=ROUND_HALF_UP) * HUNDRED


# --- Organizations ---------------------------------------------------------------------------


@dataclass(slots=True)
class _OrgContext:
    spec: OrganizationSpec
    org: Organization
    branches: list[Branch]
    expired_branch: Branch | None
    products: list[tuple[ProductSpec, Product]]
    customers: list[Customer] = field(default_factory=list)


def _insert_organization(
    session: Session,
    spec: OrganizationSpec,
    *,
    today: date,
    with_branches: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> _OrgContext:
    """Insert one issuer with its branches, products and numbering ranges (flush, no commit)."""
    values: dict[str, Any] = {
        "name": spec.name,
        "legal_name": spec.legal_name,
        "nit": spec.nit,
        "tax_id": f"{spec.nit}-{_dv(spec.nit)}",
        "dv": _dv(spec.nit),
        "email": spec.email,
        "phone": spec.phone,
        "address": spec.address,
        "city": spec.place.name,
        "country_code": "CO",
        "municipality_id": spec.place.factus_id,
        "economic_activity": spec.economic_activity,
        "registration_code": spec.registration_code,
        "graphic_representation_name": spec.name,
        "fiscal_responsibilities": list(spec.fiscal_responsibilities),
    }
    if overrides:
        _check_columns(Organization, overrides, "organizations")
        values.update(overrides)
        if "nit" in overrides and "dv" not in overrides and overrides["nit"]:
            values["dv"] = _dv(str(overrides["nit"]))
            values["tax_id"] = f"{overrides['nit']}-{values['dv']}"
    org = Organization(**values)
    session.add(org)
    session.flush()

    def branch_row(branch: BranchSpec) -> Branch:
        return Branch(
            organization_id=org.id, name=branch.name, address=branch.address,
            city=branch.place.name, phone=branch.phone, email=branch.email,
            municipality_id=branch.place.factus_id,
        )

    branches = [branch_row(b) for b in spec.branches] if with_branches else []
    expired = (
        branch_row(spec.expired_branch)
        if with_branches and spec.expired_branch is not None
        else None
    )
    products = [
        (
            product,
            Product(
                organization_id=org.id, sku=product.sku, name=product.name,
                barcode=_gtin13(org.id, position),
            ),
        )
        for position, product in enumerate(spec.products)
    ]
    session.add_all([*branches, *([expired] if expired else []), *(p for _, p in products)])
    session.flush()
    session.add_all(_numbering_ranges(org.id, today, expired))
    session.flush()
    return _OrgContext(spec, org, branches, expired, products)


def _gtin13(org_id: int, position: int) -> str:
    """A GTIN-13 under Colombia's GS1 prefix 770 with a correct check digit (python-stdnum)."""
    body = f"770{org_id % 10000:04d}{position:05d}"
    return body + ean.calc_check_digit(body)


def _numbering_ranges(
    org_id: int, today: date, expired_branch: Branch | None
) -> list[InvoiceSequence]:
    """The org's ranges, shaped like the Factus sandbox's (FACTUS_API.md §8.1).

    Invoice range SETP 990000000–995000000 (resolution 18760000001, Factus id 8) and credit-note
    range NC (Factus id 5, no resolution or technical key, as Factus lists notes' ranges), both
    active and valid from a year before ``today`` to a year after. With an ``expired_branch``,
    that branch also gets its own old SETV range (Factus id 12) that ended a year before.
    """
    valid_from = today - timedelta(days=365)
    valid_until = today + timedelta(days=365)
    ranges = [
        InvoiceSequence(
            organization_id=org_id, document_type="invoice",
            resolution_number=catalog.INVOICE_RESOLUTION, resolution_date=valid_from,
            prefix=catalog.INVOICE_PREFIX, range_start=catalog.INVOICE_RANGE_START,
            range_end=catalog.INVOICE_RANGE_END, current_number=catalog.INVOICE_RANGE_START,
            valid_from=valid_from, valid_until=valid_until,
            technical_key=catalog.SANDBOX_TECHNICAL_KEY, is_active=True, alert_threshold=1000,
            factus_numbering_range_id=catalog.INVOICE_RANGE_FACTUS_ID,
        ),
        InvoiceSequence(
            organization_id=org_id, document_type="credit_note",
            prefix=catalog.CREDIT_NOTE_PREFIX, range_start=1, range_end=99999999,
            current_number=1, valid_from=valid_from, valid_until=valid_until, is_active=True,
            alert_threshold=100, factus_numbering_range_id=catalog.CREDIT_NOTE_RANGE_FACTUS_ID,
        ),
    ]
    if expired_branch is not None:
        ended = today - timedelta(days=365)
        started = ended - timedelta(days=730)
        ranges.append(
            # Still flagged active: the ERP never noticed the resolution ended, which is
            # exactly the mistake the domain must catch (numbering_range_expired).
            InvoiceSequence(
                organization_id=org_id, branch_id=expired_branch.id, document_type="invoice",
                resolution_number=catalog.EXPIRED_RESOLUTION, resolution_date=started,
                prefix=catalog.EXPIRED_PREFIX, range_start=1, range_end=1000000,
                current_number=4187, valid_from=started, valid_until=ended,
                technical_key=catalog.SANDBOX_TECHNICAL_KEY, is_active=True,
                alert_threshold=1000,
                factus_numbering_range_id=catalog.EXPIRED_RANGE_FACTUS_ID,
            )
        )
    return ranges


def sample_organization(
    session: Session,
    *,
    index: int = 0,
    today: date | None = None,
    with_branches: bool = True,
    **overrides: Any,
) -> Organization:
    """Insert one sample issuer with its branches, products and numbering ranges.

    Inputs:
        index: which issuer of :data:`einvoice.sample.catalog.ORGANIZATIONS` (0 Agrocomercial
            del Fonce, San Gil, 3 branches + 1 with an expired range; 1 Ferretería Industrial
            Antioquia, Medellín; 2 Tostadora Valle Alto, Cali).
        today: anchors the ranges' validity (default: today in Bogotá).
        with_branches: False inserts no branches (its invoices then carry no establishment).
        overrides: ``organizations`` column values to replace, e.g. ``nit="900123456"`` (the DV
            is recomputed unless ``dv`` is given too) or ``municipality_id=...``.
    Output: the flushed :class:`Organization` row (``id`` set). Nothing is committed.
    Raises: ``IndexError`` for an unknown ``index``; ``ValueError`` for an override that is not
        a column.
    """
    spec = catalog.ORGANIZATIONS[index]
    ctx = _insert_organization(
        session, spec, today=today or bogota_today(), with_branches=with_branches,
        overrides=overrides,
    )
    return ctx.org


# --- Customers -------------------------------------------------------------------------------


class _People:
    """Makes plausible Colombian customers from the seeded generator."""

    def __init__(self, rng: random.Random, new_id: Callable[[], uuid.UUID]) -> None:
        self.rng = rng
        self.new_id = new_id
        self.used_companies: set[str] = set()
        self.used_numbers: set[str] = set()

    def _address(self) -> str:
        rng = self.rng
        letter = rng.choice(("", "", "", "A", "B"))
        return (
            f"{rng.choice(catalog.STREET_KINDS)} {rng.randint(1, 120)}{letter} # "
            f"{rng.randint(1, 99)}-{rng.randint(1, 99):02d}{rng.choice(catalog.ADDRESS_SUFFIXES)}"
        )

    def _mobile(self) -> str:
        return f"{self.rng.choice(catalog.MOBILE_PREFIXES)}{self.rng.randint(0, 9999999):07d}"

    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self.used_numbers:
                self.used_numbers.add(value)
                return str(value)

    def natural(
        self, org: _OrgContext, place: Place | None = None, names: tuple[str, str] | None = None
    ) -> Customer:
        rng = self.rng
        if names is None:
            first = rng.choice(catalog.FEMALE_NAMES if rng.random() < 0.5 else catalog.MALE_NAMES)
            last = f"{rng.choice(catalog.SURNAMES)} {rng.choice(catalog.SURNAMES)}"
        else:
            first, last = names
        prefix = rng.choice(org.spec.cc_prefixes)
        # 10-digit cédulas (issued since 2004) start with 10/11; older ones have 8 digits.
        digits = 10 if len(prefix) == 4 else 8
        number = self._unique(
            lambda: prefix + "".join(str(rng.randint(0, 9)) for _ in range(digits - len(prefix)))
        )
        place = place or rng.choice(org.spec.customer_places)
        mail_user = f"{_ascii_slug(first.split()[0])}.{_ascii_slug(last.split()[0])}"
        if rng.random() < 0.5:
            mail_user += f"{rng.randint(1, 99)}"
        return Customer(
            id=self.new_id(), organization_id=org.org.id, first_name=first, last_name=last,
            identification_type="CC", identification_number=number,
            email=f"{mail_user}@{rng.choice(catalog.MAIL_DOMAINS)}", phone=self._mobile(),
            address=self._address(), city=place.name, legal_organization_id=2, tribute_id=21,
            municipality_id=place.factus_id, fiscal_responsibilities=["R-99-PN"],
        )

    def company(self, org: _OrgContext) -> Customer:
        rng = self.rng
        while True:
            trade = f"{rng.choice(catalog.COMPANY_KINDS)} {rng.choice(catalog.COMPANY_NAMES)}"
            if trade not in self.used_companies:
                self.used_companies.add(trade)
                break
        legal = f"{trade} {rng.choice(catalog.COMPANY_SUFFIXES)}"
        nit_prefix = rng.choice(catalog.NIT_PREFIXES)
        number = self._unique(lambda: nit_prefix + f"{rng.randint(0, 999999):06d}")
        place = rng.choice(org.spec.customer_places)
        responsibilities = rng.choice(catalog.COMPANY_RESPONSIBILITIES)
        return Customer(
            id=self.new_id(), organization_id=org.org.id, company_name=legal, trade_name=trade,
            identification_type="NIT", identification_number=number, dv=_dv(number),
            email=f"{rng.choice(catalog.COMPANY_MAIL_USERS)}@{_ascii_slug(trade, '')}.com.co",
            phone=f"{place.area_code}{rng.randint(0, 9999999):07d}", address=self._address(),
            city=place.name, legal_organization_id=1,
            # Responsible for IVA unless it is in the simple regime or has no responsibility.
            tribute_id=21 if responsibilities in (("O-47",), ("R-99-PN",)) else 18,
            municipality_id=place.factus_id, fiscal_responsibilities=list(responsibilities),
        )

    def passport_holder(self, org: _OrgContext) -> Customer:
        first, last, address, city = catalog.FOREIGN_PASSPORT_PERSON
        number = self._unique(lambda: f"{self.rng.randint(500000000, 599999999)}")
        return Customer(
            id=self.new_id(), organization_id=org.org.id, first_name=first, last_name=last,
            identification_type="PP", identification_number=number,
            email=f"{_ascii_slug(first)}.{_ascii_slug(last)}@gmail.com", phone="+15035550147",
            # A non-resident: no Colombian municipality (Factus: send it for Colombians, §3.3).
            address=address, city=city, legal_organization_id=2, tribute_id=21,
            municipality_id=None, fiscal_responsibilities=["R-99-PN"],
        )

    def resident_foreigner(self, org: _OrgContext) -> Customer:
        customer = self.natural(org, names=self.rng.choice(catalog.FOREIGN_RESIDENT_NAMES))
        customer.identification_type = "CE"
        customer.identification_number = self._unique(
            lambda: f"{self.rng.randint(1000000, 6999999)}"
        )
        return customer


# --- Invoices --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    product: ProductSpec | None
    product_id: int | None
    description: str
    code_reference: str
    qty: Decimal
    unit_price: Decimal
    tax_rate: Decimal
    discount_rate: Decimal
    is_excluded: bool
    unit_measure_id: int
    withholding_taxes: list[dict[str, Any]]
    note: str | None = None


def _item_row(
    invoice_id: uuid.UUID, line: _Line, tax_included: bool, item_id: uuid.UUID | None
) -> tuple[InvoiceItem, LineAmounts]:
    amounts = line_amounts(
        unit_price=line.unit_price, qty=line.qty, tax_rate=line.tax_rate,
        discount_rate=line.discount_rate, tax_included=tax_included,
    )
    item = InvoiceItem(
        invoice_id=invoice_id, product_id=line.product_id, description=line.description,
        qty=line.qty, unit_price=line.unit_price, tax_code="01", tax_rate=line.tax_rate,
        total_line=amounts.gross, discount_amount=amounts.discount, tax_included=tax_included,
        code_reference=line.code_reference, discount_rate=line.discount_rate,
        unit_measure_id=line.unit_measure_id, standard_code_id=1,
        is_excluded=1 if line.is_excluded else 0, tribute_id=1,
        withholding_taxes=line.withholding_taxes, note=line.note,
    )
    if item_id is not None:
        item.id = item_id
    return item, amounts


def _totals(amounts: Sequence[LineAmounts], surcharges: Decimal) -> dict[str, Decimal]:
    subtotal = sum((a.net for a in amounts), ZERO)
    tax_total = sum((a.tax for a in amounts), ZERO)
    total = sum((a.gross for a in amounts), ZERO) + surcharges
    return {"subtotal": subtotal, "tax_total": tax_total, "total": total}


@dataclass(slots=True)
class _Invoice:
    row: InvoiceSale
    items: list[InvoiceItem]
    lines: list[_Line]


class _Invoicer:
    """Makes sample invoices for the issuers' customers from the seeded generator."""

    def __init__(self, rng: random.Random, new_id: Callable[[], uuid.UUID], today: date,
                 *, api_version: str = "v1") -> None:
        self.rng = rng
        self.new_id = new_id
        self.today = today
        self.reteica = api_version == "v1"
        self.fractional_qty = FRACTIONAL_QTY_V2 if api_version == "v2" else FRACTIONAL_QTY

    def _issued_at(self) -> datetime:
        # Business hours in Bogotá, so the date is the same in UTC (the repository reads
        # TIMESTAMPTZ back in UTC and keeps the date).
        day = self.today - timedelta(days=self.rng.randint(0, 59))
        clock = time(self.rng.randint(8, 17), self.rng.randint(0, 59), self.rng.randint(0, 59))
        return datetime.combine(day, clock, tzinfo=BOGOTA)

    def _lines(self, org: _OrgContext, *, is_company: bool) -> list[_Line]:
        rng = self.rng
        regular = [(spec, row) for spec, row in org.products if not spec.sold_by_weight]
        count = rng.choice((1, 2, 2, 3, 3, 4, 5))
        chosen = rng.sample(org.products if rng.random() < 0.3 else regular, k=count)
        lines = []
        for spec, row in chosen:
            top = spec.max_qty if is_company else min(spec.max_qty, 4)
            qty = Decimal(rng.randint(1, top))
            discount = rng.choice(DISCOUNT_RATES) if rng.random() < (0.3 if is_company else 0.1) \
                else ZERO
            lines.append(
                _Line(
                    product=spec, product_id=row.id, description=spec.name,
                    code_reference=spec.sku, qty=qty, unit_price=spec.net_price,
                    tax_rate=spec.tax_rate, discount_rate=discount,
                    is_excluded=spec.is_excluded, unit_measure_id=spec.unit_measure_id,
                    withholding_taxes=[],
                )
            )
        return lines

    def _price(self, line: _Line, *, tax_included: bool, is_company: bool) -> None:
        assert line.product is not None
        if tax_included:
            line.unit_price = _shelf_price(line.product)
        elif is_company and self.rng.random() < 0.3:
            # A negotiated B2B price a little off the list, with cents.
            factor = self.rng.choice((Decimal("0.985"), Decimal("0.97"), Decimal("1.015")))
            line.unit_price = round2(line.product.net_price * factor)

    def _withholdings(self, org: _OrgContext, lines: list[_Line]) -> None:
        """Self-withholdings on a company sale (Factus v1 codes 05, 06, 07; v2 has no 07)."""
        # Drawn whatever ``reteica`` says, so both kinds of dataset share every other value.
        with_ica = self.rng.random() < 0.5 and self.reteica
        for line in lines:
            assert line.product is not None
            rate = RETE_RENTA_SERVICES if line.product.is_service else RETE_RENTA_GOODS
            entries: list[dict[str, Any]] = [{"code": "06", "withholding_tax_rate":
                                             _json_number(rate)}]
            if line.tax_rate > 0:
                entries.append({"code": "05", "withholding_tax_rate": _json_number(RETE_IVA)})
            if with_ica:
                entries.append(
                    {"code": "07", "withholding_tax_rate": _json_number(org.spec.reteica_rate)}
                )
            line.withholding_taxes = entries

    def invoice(
        self,
        org: _OrgContext,
        customer: Customer,
        *,
        branch: Branch | None,
        fractional_line: bool = False,
    ) -> _Invoice:
        """One sale of ``org`` to ``customer``; ``fractional_line`` adds 1.5 kg of a product
        sold by weight (the ``non_integer_quantity`` defect)."""
        rng = self.rng
        is_company = customer.legal_organization_id == 1
        # Shops price with IVA included for consumers; companies negotiate net prices.
        tax_included = not is_company
        lines = self._lines(org, is_company=is_company)
        for line in lines:
            self._price(line, tax_included=tax_included, is_company=is_company)
        if fractional_line:
            spec, product_row = next((s, r) for s, r in org.products if s.sold_by_weight)
            lines.append(
                _Line(
                    product=spec, product_id=product_row.id, description=spec.name,
                    code_reference=spec.sku, qty=self.fractional_qty, unit_price=spec.net_price,
                    tax_rate=spec.tax_rate, discount_rate=ZERO, is_excluded=spec.is_excluded,
                    unit_measure_id=spec.unit_measure_id, withholding_taxes=[],
                )
            )
            self._price(lines[-1], tax_included=tax_included, is_company=is_company)
        if is_company and rng.random() < 0.5:
            self._withholdings(org, lines)

        credit = rng.random() < (0.7 if is_company else 0.15)
        issued_at = self._issued_at()
        invoice_id = self.new_id()
        items, amounts = [], []
        for line in lines:
            item, line_total = _item_row(invoice_id, line, tax_included, self.new_id())
            items.append(item)
            amounts.append(line_total)

        surcharges: list[dict[str, Any]] = []
        surcharge = ZERO
        if is_company and credit and rng.random() < 0.15:
            surcharge = Decimal(rng.choice((15000, 25000, 35000)))
            base = sum((a.net for a in amounts), ZERO)
            surcharges.append(
                {
                    "concept_type": "03", "is_surcharge": True,
                    "reason": rng.choice(catalog.SURCHARGE_REASONS),
                    "base_amount": str(base), "amount": str(round2(surcharge)),
                }
            )
        totals = _totals(amounts, surcharge)

        if credit:
            terms = rng.choice(catalog.CREDIT_TERMS_DAYS)
            method_code, method = rng.choice(catalog.PAYMENT_METHODS_CREDIT)
            due_day = issued_at.date() + timedelta(days=terms)
            due_at: datetime | None = datetime.combine(due_day, time(12), tzinfo=BOGOTA)
            paid = round2(totals["total"] * Decimal("0.4")) if rng.random() < 0.25 else ZERO
            balance = totals["total"] - paid
            if due_day < self.today:
                status = STATUS_OVERDUE
            else:
                status = STATUS_PARTIALLY_PAID if paid else STATUS_ISSUED
        else:
            terms = 0
            method_code, method = rng.choice(catalog.PAYMENT_METHODS_CASH)
            due_at, balance, status = None, ZERO, STATUS_PAID

        sale = InvoiceSale(
            id=invoice_id, organization_id=org.org.id,
            branch_id=branch.id if branch is not None else None, customer_id=customer.id,
            issue_date=issued_at, due_date=due_at, currency="COP", balance=balance,
            status=status, notes=rng.choice(catalog.INVOICE_NOTES), payment_method=method,
            tax_included=tax_included, payment_terms=terms, document_type="invoice",
            operation_type="10", payment_form="2" if credit else "1",
            payment_method_code=method_code, send_email=False, allowance_charges=surcharges,
            **totals,
        )
        return _Invoice(sale, items, lines)

    def credit_note(self, original: _Invoice, *, full: bool) -> _Invoice:
        """A credit note on ``original``: full (concept 2, every line and surcharge) or partial
        (concept 1, the goods of some lines returned). FACTUS_API.md §7.1."""
        rng = self.rng
        source = original.row
        assert source.tax_included is not None
        assert source.issue_date is not None
        if full:
            lines = list(original.lines)
            surcharges = list(source.allowance_charges or [])
        else:
            keep = rng.randint(1, len(original.lines) - 1)
            lines = rng.sample(original.lines, k=keep)
            surcharges = []
        note_id = self.new_id()
        items, amounts = [], []
        for line in lines:
            item, line_total = _item_row(note_id, line, source.tax_included, self.new_id())
            items.append(item)
            amounts.append(line_total)
        surcharge = sum((Decimal(c["amount"]) for c in surcharges), ZERO)
        issued_at = source.issue_date + timedelta(days=rng.randint(1, 6))
        if issued_at.date() > self.today:
            issued_at = source.issue_date + timedelta(minutes=45)
        row = InvoiceSale(
            id=note_id, organization_id=source.organization_id, branch_id=source.branch_id,
            customer_id=source.customer_id, issue_date=issued_at, currency="COP",
            balance=ZERO, status=STATUS_ISSUED,
            notes=(
                "Anulación total de la factura por error en el pedido."
                if full else "Devolución parcial de mercancía en mal estado."
            ),
            payment_method=source.payment_method, tax_included=source.tax_included,
            payment_terms=0, document_type="credit_note", related_invoice_id=source.id,
            correction_concept_code=2 if full else 1, operation_type="10", payment_form="1",
            payment_method_code=source.payment_method_code, send_email=False,
            allowance_charges=surcharges, **_totals(amounts, surcharge),
        )
        return _Invoice(row, items, lines)


# --- The dataset ------------------------------------------------------------------------------


def generate_sample(
    session: Session,
    *,
    seed: int = 7,
    organizations: int = 3,
    customers: int = 60,
    invoices: int = 240,
    wrong_share: float = 0.05,
    credit_notes: int = 4,
    today: date | None = None,
    api_version: str = "v1",
) -> SampleSummary:
    """Insert a realistic ERP dataset (flushed, never committed: the caller commits).

    Inputs:
        seed: seeds the one ``random.Random`` every value and UUID comes from.
        organizations: issuers to create, 1–3 (:data:`einvoice.sample.catalog.ORGANIZATIONS`:
            San Gil with 3 branches and one more whose resolution expired, Medellín, Cali).
        customers: ``customers`` rows in all, spread over the issuers; includes one foreign
            passport holder (PP), one resident foreigner (CE) when there is room, and one broken
            customer per customer-level defect in use; the rest are natural persons (CC, about
            65 %) and companies (NIT with correct DV, ``legal_organization_id`` 1).
        invoices: ``invoice_sales`` rows with ``document_type`` ``'invoice'``.
        wrong_share: share of those invoices made wrong, ``round(invoices × wrong_share)``,
            handed out in the order of :data:`WRONG_KINDS`.
        credit_notes: credit notes on distinct valid invoices: half (rounded down) partial
            (concept 1, fewer lines than the invoice), the rest full (concept 2, equal to it).
        today: the date everything is relative to (issue dates in the 60 days before it,
            ranges valid a year around it, the expired range ended a year before it); default
            today in Bogotá.
        api_version: the Factus API version of the account the dataset is for: ``v1`` gives
            half the company sales a ReteICA self-withholding (code 07), which Factus v2 has no
            code for (its table lists only 05 ReteIVA and 06 ReteRenta); ``v2`` leaves it out,
            and its fractional line has three decimals (:data:`V2_WRONG_CODES`).
    Output: :class:`SampleSummary`.
    Raises: ``ValueError`` when an argument is out of range (``organizations`` not 1–3,
        ``wrong_share`` not in [0, 1], too few customers or valid invoices for what is asked).
    """
    if not 1 <= organizations <= len(catalog.ORGANIZATIONS):
        raise ValueError(f"organizations must be 1–{len(catalog.ORGANIZATIONS)}")
    if not 0 <= wrong_share <= 1 or invoices < 0 or credit_notes < 0:
        raise ValueError("wrong_share must be in [0, 1]; invoices and credit_notes ≥ 0")
    today = today or bogota_today()
    rng = random.Random(seed)

    def new_id() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    wrong_count = round(invoices * wrong_share)
    kinds = [WRONG_KINDS[i % len(WRONG_KINDS)] for i in range(wrong_count)]
    broken_customers = [k for k in ("invalid_dv", "unknown_municipality") if k in kinds]
    good_count = customers - len(broken_customers)
    if good_count < 2 * organizations:
        raise ValueError(f"need at least {2 * organizations + len(broken_customers)} customers")
    if invoices - wrong_count < credit_notes:
        raise ValueError("more credit notes than valid invoices to credit")

    orgs = [
        _insert_organization(session, spec, today=today)
        for spec in catalog.ORGANIZATIONS[:organizations]
    ]

    # Customers: round-robin over the issuers so each gets a natural person and a company first.
    people = _People(rng, new_id)
    passport_slot = organizations - 1  # the first customer of the last issuer (Cali's coffee)
    resident_slot = 2 * organizations  # the third customer of the first issuer
    for slot in range(good_count):
        org = orgs[slot % organizations]
        rank = slot // organizations
        if slot == passport_slot:
            customer = people.passport_holder(org)
        elif slot == resident_slot:
            customer = people.resident_foreigner(org)
        elif rank == 0 or (rank > 1 and rng.random() >= COMPANY_SHARE):
            customer = people.natural(org)
        else:
            customer = people.company(org)
        org.customers.append(customer)
    broken: dict[str, tuple[_OrgContext, Customer]] = {}
    if "invalid_dv" in kinds:
        org = orgs[1 % organizations]
        customer = people.company(org)
        assert customer.dv is not None
        customer.dv = (customer.dv + rng.randint(1, 9)) % 10  # a typo in the check digit
        broken["invalid_dv"] = (org, customer)
    if "unknown_municipality" in kinds:
        org = orgs[0]
        customer = people.natural(org, catalog.BUCARAMANGA)
        customer.municipality_id = DANE_CODE_AS_MUNICIPALITY_ID
        broken["unknown_municipality"] = (org, customer)
    all_customers = [c for org in orgs for c in org.customers] + [c for _, c in broken.values()]
    session.add_all(all_customers)
    session.flush()

    invoicer = _Invoicer(rng, new_id, today, api_version=api_version)
    wrong_at = dict(zip(sorted(rng.sample(range(invoices), k=wrong_count)), kinds, strict=True))
    weights = [org.spec.invoice_weight for org in orgs]
    valid: list[_Invoice] = []
    wrong: list[tuple[_Invoice, str]] = []
    for position in range(invoices):
        kind = wrong_at.get(position)
        if kind in broken:
            org, customer = broken[kind]
        elif kind == "numbering_range_expired":
            org = orgs[0]
            customer = rng.choice(org.customers)
        else:
            org = rng.choices(orgs, weights=weights)[0]
            customer = rng.choice(org.customers)
        if kind == "numbering_range_expired":
            branch = org.expired_branch
        else:
            branch = rng.choice(org.branches) if org.branches else None
        made = invoicer.invoice(
            org, customer, branch=branch, fractional_line=kind == "non_integer_quantity"
        )
        if kind is None:
            valid.append(made)
        else:
            wrong.append((made, kind))

    notes: list[_Invoice] = []
    multi_line = [inv for inv in valid if len(inv.lines) > 1]
    single_line = [inv for inv in valid if len(inv.lines) == 1]
    partial_wanted = credit_notes // 2 if multi_line else 0
    partial_targets = rng.sample(multi_line, k=min(partial_wanted, len(multi_line)))
    taken = {inv.row.id for inv in partial_targets}
    full_pool = [inv for inv in single_line + multi_line if inv.row.id not in taken]
    full_targets = rng.sample(full_pool, k=credit_notes - len(partial_targets))
    notes.extend(invoicer.credit_note(target, full=True) for target in full_targets)
    notes.extend(invoicer.credit_note(target, full=False) for target in partial_targets)

    every = valid + [inv for inv, _ in wrong] + notes
    session.add_all([inv.row for inv in every])
    session.flush()
    session.add_all([item for inv in every for item in inv.items])
    session.flush()

    return SampleSummary(
        seed=seed,
        today=today,
        organization_ids=tuple(org.org.id for org in orgs),
        customer_ids=tuple(c.id for c in all_customers),
        valid_invoice_ids=tuple(inv.row.id for inv in valid),
        wrong_invoices=tuple(
            WrongInvoice(invoice_id=inv.row.id,
                         expected_error_code=(V2_WRONG_CODES.get(kind, kind)
                                              if api_version == "v2" else kind))
            for inv, kind in wrong
        ),
        credit_note_ids=tuple(note.row.id for note in notes),
    )


# --- One invoice, for other tests ------------------------------------------------------------

_DEFAULT_ITEMS: tuple[Mapping[str, Any], ...] = (
    {"description": "Café tostado molido 500 g", "code_reference": "AGF-CAF-50", "qty": 2,
     "unit_price": "15900", "tax_rate": "5"},
    {"description": "Machete 22 pulgadas", "code_reference": "AGF-MAC-22", "qty": 1,
     "unit_price": "23900", "tax_rate": "19", "discount_rate": "10"},
)


def make_invoice(
    session: Session,
    *,
    org: Organization | None = None,
    customer_overrides: Mapping[str, Any] | None = None,
    items: Sequence[Mapping[str, Any]] | None = None,
    tax_included: bool = False,
    payment_form: str = "1",
    branch_id: int | None = None,
    invoice_overrides: Mapping[str, Any] | None = None,
    today: date | None = None,
) -> uuid.UUID:
    """Insert ONE valid invoice (and what it needs) and return its ``invoice_sales.id``.

    Inputs:
        org: the issuer; default a new :func:`sample_organization` without branches (with its
            SETP and NC ranges valid around ``today``).
        customer_overrides: ``customers`` column values over the default customer, a natural
            person with a cédula in San Gil (e.g. ``{"dv": 3}`` or
            ``{"municipality_id": 68001}`` to make a wrong one).
        items: one mapping per line with ``invoice_items`` column values; ``qty``,
            ``unit_price`` (COP), ``tax_rate`` and ``discount_rate`` (percent) may be
            ``Decimal``, int or str. Missing keys take defaults (a 19 % unit item). Default: two
            lines, coffee at 5 % and a machete at 19 % with a 10 % discount.
        tax_included: whether the unit prices include IVA (set on the invoice and its items).
        payment_form: ``"1"`` cash or ``"2"`` credit (due 30 days after issue).
        branch_id: the establishment, if any.
        invoice_overrides: ``invoice_sales`` column values applied last (e.g. ``total=...``).
        today: the issue date (default today in Bogotá).
    Output: the new invoice's UUID; rows are flushed, not committed. ``subtotal``,
        ``tax_total`` and ``total`` are computed from the items as :func:`line_amounts` does.
    Raises: ``TypeError`` for a float amount (use ``Decimal`` or str).
    """
    today = today or bogota_today()
    if org is None:
        org = sample_organization(session, today=today, with_branches=False)
    customer_values: dict[str, Any] = {
        "organization_id": org.id, "first_name": "María", "last_name": "Gómez Rueda",
        "identification_type": "CC", "identification_number": "1098765432",
        "email": "maria.gomez@gmail.com", "phone": "3001112233",
        "address": "Carrera 9 # 12-34", "city": "San Gil", "legal_organization_id": 2,
        "tribute_id": 21, "municipality_id": catalog.SAN_GIL.factus_id,
    }
    customer_values.update(customer_overrides or {})
    customer = Customer(**customer_values)
    session.add(customer)
    session.flush()

    issued_at = datetime.combine(today, time(10), tzinfo=BOGOTA)
    invoice = InvoiceSale(
        organization_id=org.id, branch_id=branch_id, customer_id=customer.id,
        issue_date=issued_at, currency="COP", status=STATUS_ISSUED, tax_included=tax_included,
        document_type="invoice", operation_type="10", payment_form=payment_form,
        payment_method_code="10" if payment_form == "1" else "47", send_email=False,
        due_date=issued_at + timedelta(days=30) if payment_form == "2" else None,
        payment_terms=30 if payment_form == "2" else 0, allowance_charges=[],
    )
    session.add(invoice)
    session.flush()

    amounts = []
    for spec in items if items is not None else _DEFAULT_ITEMS:
        values = dict(spec)
        line = _Line(
            product=None, product_id=values.pop("product_id", None),
            description=values.pop("description", "Artículo de prueba"),
            code_reference=values.pop("code_reference", "SKU-TEST"),
            qty=_as_decimal(values.pop("qty", 1)),
            unit_price=_as_decimal(values.pop("unit_price", "10000")),
            tax_rate=_as_decimal(values.pop("tax_rate", "19")),
            discount_rate=_as_decimal(values.pop("discount_rate", 0)),
            is_excluded=bool(values.pop("is_excluded", False)),
            unit_measure_id=values.pop("unit_measure_id", catalog.UNIT),
            withholding_taxes=values.pop("withholding_taxes", []),
            note=values.pop("note", None),
        )
        _check_columns(InvoiceItem, values, "invoice_items")
        item, line_total = _item_row(invoice.id, line, tax_included, None)
        for column, value in values.items():
            setattr(item, column, value)
        session.add(item)
        amounts.append(line_total)
    for column, value in _totals(amounts, ZERO).items():
        setattr(invoice, column, value)
    invoice.balance = ZERO if payment_form == "1" else invoice.total
    _check_columns(InvoiceSale, invoice_overrides or {}, "invoice_sales")
    for column, value in (invoice_overrides or {}).items():
        setattr(invoice, column, value)
    session.flush()
    return invoice.id
