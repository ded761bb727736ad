"""The money arithmetic of a Factus v1 bill or credit note (FACTUS_API.md §4.2), in ``Decimal``.

v1 sends each item's ``price`` as the unit price **with tax included** (Decision 7). The simulator
derives every amount of the response from it:

- ``line = price × quantity × (1 − discount_rate/100)``, rounded to the cent; it is ``items[].total``.
- ``taxable_amount = gross_value = round2(line / (1 + tax_rate/100))``; ``tax_amount = line − taxable``.
- ``discount = round2(price × quantity × discount_rate/100 / (1 + tax_rate/100))``.
- Document ``gross_value``, ``taxable_amount`` and ``tax_amount`` are sums of the items';
  ``total = Σ line + surcharges − discounts`` (allowance charges); withholdings do not reduce it.
- ReteIVA (05) ``value = tax_amount × rate/100``; ReteRenta (06) and ReteICA (07)
  ``value = taxable_amount × rate/100`` (ReteICA's base is inferred).
- Allowance ``percentage = amount / base_amount × 100``.

Rounding is half-up to 2 decimals (PHP ``round``). This checks to the cent against the DOC1 example
(§4.3 and the "Factura avanzada" response). No I/O here.
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
        quantity: integer units.
        discount_rate: percent, 0-100.
        tax_rate: percent (``"19.00"`` → ``Decimal("19.00")``).
        tribute_id: product tribute id (1 IVA, 3 ICA, 4 INC, ...), used to split taxes for the CUFE.
        withholdings: self-withholdings of the item.
    """

    price: Decimal
    quantity: int
    discount_rate: Decimal
    tax_rate: Decimal
    tribute_id: int = 1
    withholdings: tuple[WithholdingInput, ...] = ()


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
    discount = round2(gross * item.discount_rate / HUNDRED / tax_factor)
    withholdings = tuple(
        WithholdingAmount(
            code=w.code,
            rate=w.rate,
            value=round2((tax if w.code == RETE_IVA else taxable) * w.rate / HUNDRED),
        )
        for w in sorted(item.withholdings, key=lambda w: w.code)
    )
    return ItemAmounts(
        line=line,
        gross_value=taxable,
        taxable_amount=taxable,
        tax_amount=tax,
        discount=discount,
        withholdings=withholdings,
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
    items: Sequence[ItemInput], allowances: Iterable[AllowanceInput] = ()
) -> DocumentAmounts:
    """Compute a whole document's amounts from its items and allowance charges (FACTUS_API.md §4.2).

    Args:
        items: the request items (at least one in a valid request; an empty list gives zeros).
        allowances: the request's ``allowance_charges``.

    Returns:
        :class:`DocumentAmounts` with every sum rounded to the cent.
    """
    computed = tuple(item_amounts(item) for item in items)
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
