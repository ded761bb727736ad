"""The money arithmetic of a Factus v1 bill or credit note (FACTUS_API.md §4.2), in ``Decimal``.

v1 sends each item's ``price`` as the unit price **with tax included** (Decision 7). The simulator
derives every amount of the response from it:

- ``line = price × quantity × (1 − discount_rate/100)``, rounded to the cent; it is ``items[].total``.
- ``taxable_amount = gross_value = round2(line / (1 + tax_rate/100))``; ``tax_amount = line − taxable``.
- ``discount = round2(price × quantity × discount_rate/100 / (1 + tax_rate/100))``.
- Document ``gross_value``, ``taxable_amount`` and ``tax_amount`` are sums of the items';
  ``total = Σ line + surcharges − discounts`` (allowance charges); withholdings do not reduce it.
- ReteIVA (05) ``value = round2(unrounded tax × rate/100)`` where the unrounded tax is
  ``line − line / (1 + tax_rate/100)``: a real v1 capture shows ``2155462.18`` where the rounded tax
  gives ``.19`` (FACTUS_API.md §4.2 caveat). ReteRenta (06) and ReteICA (07)
  ``value = taxable_amount × rate/100`` (ReteICA's base is inferred).
- Allowance ``percentage = amount / base_amount × 100``.

v2 sends ``price`` **net of tax** and quantities with up to two decimals, several taxes per line
(Factus v2 docs ``facturas/crear-y-validar``, ``buenas-practicas/cambios-v2-v1``); see
:func:`net_item_amounts`. Both kinds of item end in the same :class:`DocumentAmounts`, so a document
renders through either version.

Rounding is half-up to 2 decimals (PHP ``round``). This checks to the cent against the DOC1 example
(§4.3 and the "Factura avanzada" response) and the v2 "redondeo en medios de pago" example. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal("0.00")

RETE_IVA = "05"


def round2(value: Decimal) -> Decimal:
    """Round a COP amount to the cent, half away from zero (PHP ``round($x, 2)``)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    """Format an amount as Factus does in responses: a string with exactly 2 decimals (``"81232.50"``)."""
    return f"{round2(value):.2f}"


@dataclass(frozen=True)
class WithholdingInput:
    """A self-withholding requested on an item: ``code`` "05"/"06"/"07" and ``rate`` in percent."""

    code: str
    rate: Decimal


@dataclass(frozen=True)
class ItemInput:
    """The monetary fields of one request item.

    Attributes:
        price: unit price in COP, tax included (v1).
        quantity: units (whole in v1).
        discount_rate: percent, 0-100.
        tax_rate: percent (``"19.00"`` → ``Decimal("19.00")``).
        tribute_id: product tribute id (1 IVA, 3 ICA, 4 INC, ...), used to split taxes for the CUFE.
        withholdings: self-withholdings of the item.
    """

    price: Decimal
    quantity: int | Decimal
    discount_rate: Decimal
    tax_rate: Decimal
    tribute_id: int = 1
    withholdings: tuple[WithholdingInput, ...] = ()


@dataclass(frozen=True)
class TaxInput:
    """One v2 ``items[].taxes[]`` entry: ``tribute_id`` (the catalog id of its code), ``code``
    (``"01"`` IVA, ``"04"`` INC, ``"35"``), ``rate`` in percent, ``is_excluded`` (no tax)."""

    tribute_id: int
    code: str
    rate: Decimal
    is_excluded: bool = False


@dataclass(frozen=True)
class NetItemInput:
    """The monetary fields of one v2 item (price **net** of tax).

    Attributes:
        price: unit price in COP without tax and before discount.
        quantity: units, up to two decimals.
        discount_rate: percent, 0-100 (used when ``discount_amount`` is None).
        discount_amount: the line discount in COP, when sent instead of a rate.
        taxes: the line's taxes (at least one in a valid request).
        withholdings: self-withholdings of the item (``rate`` in percent).
    """

    price: Decimal
    quantity: Decimal
    discount_rate: Decimal
    discount_amount: Decimal | None
    taxes: tuple[TaxInput, ...]
    withholdings: tuple[WithholdingInput, ...] = ()


@dataclass(frozen=True)
class TaxAmount:
    """A computed line tax: ``tribute_id``, ``code``, ``rate`` (percent), ``taxable_amount`` and
    ``tax_amount`` (COP, 2 decimals), ``is_excluded``."""

    tribute_id: int
    code: str
    rate: Decimal
    taxable_amount: Decimal
    tax_amount: Decimal
    is_excluded: bool


@dataclass(frozen=True)
class AllowanceInput:
    """One ``allowance_charges[]`` entry: ``is_surcharge`` true adds ``amount`` (COP) to the total."""

    is_surcharge: bool
    base_amount: Decimal
    amount: Decimal


@dataclass(frozen=True)
class WithholdingAmount:
    """A computed withholding: ``code``, ``rate`` (percent) and ``value`` (COP, 2 decimals)."""

    code: str
    rate: Decimal
    value: Decimal


@dataclass(frozen=True)
class ItemAmounts:
    """The amounts of one item (COP, 2 decimals): see the module docstring for each formula."""

    line: Decimal
    gross_value: Decimal
    taxable_amount: Decimal
    tax_amount: Decimal
    discount: Decimal
    withholdings: tuple[WithholdingAmount, ...]
    taxes: tuple[TaxAmount, ...] = ()


@dataclass(frozen=True)
class AllowanceAmounts:
    """An allowance charge with its ``percentage`` (``amount / base_amount × 100``, 2 decimals)."""

    is_surcharge: bool
    base_amount: Decimal
    amount: Decimal
    percentage: Decimal


@dataclass(frozen=True)
class DocumentAmounts:
    """All amounts of a document (COP, 2 decimals).

    Attributes:
        items: per-item amounts, in request order.
        allowances: per-allowance amounts, in request order.
        gross_value, taxable_amount, tax_amount: sums over items.
        discount_amount: sum of allowances that are not surcharges (``"0.00"`` in practice, since
            Factus v1 only offers concept 03, a surcharge).
        surcharge_amount: sum of surcharges.
        total: ``Σ line + surcharge_amount − discount_amount``.
        withholdings: totals per withholding code, sorted by code (as DOC1's example lists them).
        tax_by_tribute: ``{tribute_id: tax}``, used by the CUFE (IVA 1, INC 4, ICA 3).
    """

    items: tuple[ItemAmounts, ...]
    allowances: tuple[AllowanceAmounts, ...]
    gross_value: Decimal
    taxable_amount: Decimal
    tax_amount: Decimal
    discount_amount: Decimal
    surcharge_amount: Decimal
    total: Decimal
    withholdings: tuple[WithholdingAmount, ...]
    tax_by_tribute: dict[int, Decimal]


def _withholding_amounts(
    withholdings: tuple[WithholdingInput, ...], *, iva: Decimal, taxable: Decimal
) -> tuple[WithholdingAmount, ...]:
    """A line's withholdings by code: ReteIVA on the unrounded ``iva``, the others on ``taxable``."""
    return tuple(
        WithholdingAmount(
            code=w.code,
            rate=w.rate,
            value=round2((iva if w.code == RETE_IVA else taxable) * w.rate / HUNDRED),
        )
        for w in sorted(withholdings, key=lambda w: w.code)
    )


def item_amounts(item: ItemInput) -> ItemAmounts:
    """Compute one item's amounts per FACTUS_API.md §4.2 (v1, tax-included price).

    Args:
        item: the item's monetary fields.

    Returns:
        The item's line total, taxable base, tax, discount and withholdings, each rounded to the cent.
    """
    gross = item.price * item.quantity
    tax_factor = 1 + item.tax_rate / HUNDRED
    line = round2(gross * (1 - item.discount_rate / HUNDRED))
    taxable = round2(line / tax_factor)
    tax = line - taxable
    # ReteIVA's base is the tax before rounding (FACTUS_API.md §4.2: real 2155462.18, not .19).
    unrounded_tax = line - line / tax_factor
    discount = round2(gross * item.discount_rate / HUNDRED / tax_factor)
    withholdings = _withholding_amounts(item.withholdings, iva=unrounded_tax, taxable=taxable)
    return ItemAmounts(
        line=line,
        gross_value=taxable,
        taxable_amount=taxable,
        tax_amount=tax,
        discount=discount,
        withholdings=withholdings,
    )


def net_item_amounts(item: NetItemInput) -> ItemAmounts:
    """Compute one v2 item's amounts from its net price.

    ``gross = price × quantity``; ``discount = discount_amount`` or ``round2(gross × rate/100)``;
    ``taxable = round2(gross − discount)``; each tax ``round2(taxable × rate/100)`` (0 when
    excluded); ``line = taxable + Σ taxes``. ReteIVA is ``round2(IVA × rate/100)`` on the unrounded
    IVA, ReteRenta ``round2(taxable × rate/100)``. Per-line tax rounding checks to the cent against
    the v2 "redondeo en medios de pago" example (total 260564.81).

    Args:
        item: the item's monetary fields.

    Returns:
        :class:`ItemAmounts` with ``taxes`` filled and ``gross_value = taxable_amount``.
    """
    gross = item.price * item.quantity
    if item.discount_amount is not None:
        discount = round2(item.discount_amount)
    else:
        discount = round2(gross * item.discount_rate / HUNDRED)
    taxable = round2(gross - discount)
    taxes = tuple(
        TaxAmount(
            tribute_id=t.tribute_id,
            code=t.code,
            rate=ZERO if t.is_excluded else t.rate,
            taxable_amount=taxable,
            tax_amount=ZERO if t.is_excluded else round2(taxable * t.rate / HUNDRED),
            is_excluded=t.is_excluded,
        )
        for t in item.taxes
    )
    tax = sum((t.tax_amount for t in taxes), ZERO)
    iva = sum(
        (taxable * t.rate / HUNDRED for t in item.taxes if t.code == "01" and not t.is_excluded),
        Decimal(0),
    )
    withholdings = _withholding_amounts(item.withholdings, iva=iva, taxable=taxable)
    return ItemAmounts(
        line=taxable + tax,
        gross_value=taxable,
        taxable_amount=taxable,
        tax_amount=tax,
        discount=discount,
        withholdings=withholdings,
        taxes=taxes,
    )


def allowance_amounts(allowance: AllowanceInput) -> AllowanceAmounts:
    """Compute an allowance charge's percentage of its base (0 when the base is 0)."""
    percentage = (
        round2(allowance.amount / allowance.base_amount * HUNDRED)
        if allowance.base_amount
        else ZERO
    )
    return AllowanceAmounts(
        is_surcharge=allowance.is_surcharge,
        base_amount=round2(allowance.base_amount),
        amount=round2(allowance.amount),
        percentage=percentage,
    )


def document_amounts(
    items: Sequence[ItemInput | NetItemInput], allowances: Iterable[AllowanceInput] = ()
) -> DocumentAmounts:
    """Compute a whole document's amounts from its items and allowance charges (FACTUS_API.md §4.2).

    Args:
        items: the request items, v1 (:class:`ItemInput`, tax-included price) or v2
            (:class:`NetItemInput`, net price); at least one in a valid request.
        allowances: the request's ``allowance_charges``.

    Returns:
        :class:`DocumentAmounts` with every sum rounded to the cent.
    """
    computed = tuple(
        net_item_amounts(item) if isinstance(item, NetItemInput) else item_amounts(item)
        for item in items
    )
    charges = tuple(allowance_amounts(a) for a in allowances)
    surcharge = sum((c.amount for c in charges if c.is_surcharge), ZERO)
    discount = sum((c.amount for c in charges if not c.is_surcharge), ZERO)
    lines = sum((c.line for c in computed), ZERO)
    withholding_totals: dict[str, tuple[Decimal, Decimal]] = {}
    for amounts in computed:
        for w in amounts.withholdings:
            _, value = withholding_totals.get(w.code, (w.rate, ZERO))
            withholding_totals[w.code] = (w.rate, value + w.value)
    tax_by_tribute: dict[int, Decimal] = {}
    for item, amounts in zip(items, computed, strict=True):
        if isinstance(item, NetItemInput):
            for tax in amounts.taxes:
                tax_by_tribute[tax.tribute_id] = (
                    tax_by_tribute.get(tax.tribute_id, ZERO) + tax.tax_amount
                )
            continue
        tax_by_tribute[item.tribute_id] = (
            tax_by_tribute.get(item.tribute_id, ZERO) + amounts.tax_amount
        )
    return DocumentAmounts(
        items=computed,
        allowances=charges,
        gross_value=sum((c.gross_value for c in computed), ZERO),
        taxable_amount=sum((c.taxable_amount for c in computed), ZERO),
        tax_amount=sum((c.tax_amount for c in computed), ZERO),
        discount_amount=discount,
        surcharge_amount=surcharge,
        total=lines + surcharge - discount,
        withholdings=tuple(
            WithholdingAmount(code=code, rate=rate, value=value)
            for code, (rate, value) in sorted(withholding_totals.items())
        ),
        tax_by_tribute=tax_by_tribute,
    )
