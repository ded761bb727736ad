"""The simulator's numbering ranges: the ones every account starts with, the ones DIAN associated
with its company, picking a range for a new document, and creating one through v2.

Rules (FACTUS_API.md §8.1, §10.1, §11.4; "inferred" where the contract says so):

- Every account starts with the Factus sandbox's ranges (SETP id 8 for invoices, NC id 9 for
  credit notes, ...) plus, with ``test_ranges``, an expired, an exhausted and an inactive one.
- An account created with ``ranges_registered=False`` starts with no range; the ranges DIAN
  associated with it (:meth:`RangeBook.dian_ranges`) become usable once created with
  :meth:`RangeBook.create_range` (``POST /v2/numbering-ranges``), as on the real v2 platform.
- A document without ``numbering_range_id`` takes the one usable range of its document type; a
  range that is inactive, expired (Bogotá days) or exhausted refuses new documents (422).
- Numbers are ``prefix + current``; ``current`` never goes back (:mod:`einvoice.sandbox.state`
  keeps it across resets).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from einvoice.sandbox import artifacts, catalogs
from einvoice.sandbox.validation import ErrorBag

if TYPE_CHECKING:
    from einvoice.sandbox.accounts import Account

# Range ids every account gets (FACTUS_API.md §8.1: SETP is id 8 for real sandbox users).
INVOICE_RANGE_ID = 8
CREDIT_NOTE_RANGE_ID = 9
DEBIT_NOTE_RANGE_ID = 10
SUPPORT_DOCUMENT_RANGE_ID = 11
EXPIRED_RANGE_ID = 12
EXHAUSTED_RANGE_ID = 13
INACTIVE_RANGE_ID = 14
SANDBOX_TECHNICAL_KEY = "fc8eac422eba16e22ffd8c6f94b3f40a6e38162c"


def utcnow() -> datetime:
    """The current UTC time (every timestamp of the simulator)."""
    return datetime.now(UTC)


def bogota_today() -> date:
    """Today's date in Bogotá (range expiry and the daily e-mail quota count Colombian days)."""
    return utcnow().astimezone(artifacts.BOGOTA).date()


@dataclass
class NumberingRange:
    """A numbering range (FACTUS_API.md §8.1). ``current`` is the next number to use."""

    id: int
    document: str  # range document code, "21" invoice, "22" credit note, ...
    prefix: str
    start: int
    end: int
    current: int
    resolution_number: str | None
    start_date: date
    end_date: date
    technical_key: str | None
    is_active: bool = True
    created_at: datetime = field(default_factory=lambda: datetime(2023, 6, 1, 8, 0, 38, tzinfo=UTC))
    updated_at: datetime = field(default_factory=utcnow)

    def is_expired(self, today: date) -> bool:
        """True once ``today`` (Bogotá) is past ``end_date``."""
        return today > self.end_date

    def is_exhausted(self) -> bool:
        """True when every number from ``start`` to ``end`` has been used."""
        return self.current > self.end

    def usable(self, today: date) -> bool:
        """Active, not expired and not exhausted: a range a new document can take a number from."""
        return self.is_active and not self.is_expired(today) and not self.is_exhausted()

    @property
    def months(self) -> int:
        """Validity in whole months (``numbering_range.months`` of a bill, e.g. 132)."""
        return (
            (self.end_date.year - self.start_date.year) * 12
            + self.end_date.month
            - self.start_date.month
        )


def default_ranges(test_ranges: bool) -> dict[int, NumberingRange]:
    """The ranges every account starts with, shaped like the Factus sandbox's (§1, §8.1).

    Returns:
        ``{range_id: NumberingRange}``, all unused; with ``test_ranges`` also the expired (12),
        exhausted (13) and inactive (14) invoice ranges.
    """
    start, end = date(2019, 1, 19), date(2030, 1, 19)
    ranges = [
        NumberingRange(
            INVOICE_RANGE_ID,
            catalogs.INVOICE_RANGE,
            "SETP",
            990000000,
            995000000,
            990000000,
            "18760000001",
            start,
            end,
            SANDBOX_TECHNICAL_KEY,
        ),
        NumberingRange(
            CREDIT_NOTE_RANGE_ID,
            catalogs.CREDIT_NOTE_RANGE,
            "NC",
            1,
            99999999,
            1,
            None,
            start,
            end,
            None,
        ),
        NumberingRange(DEBIT_NOTE_RANGE_ID, "23", "ND", 1, 99999999, 1, None, start, end, None),
        NumberingRange(
            SUPPORT_DOCUMENT_RANGE_ID,
            "24",
            "SEDS",
            984000000,
            985000000,
            984000000,
            "18760000001",
            start,
            end,
            None,
        ),
    ]
    if test_ranges:
        ranges += [
            NumberingRange(
                EXPIRED_RANGE_ID,
                catalogs.INVOICE_RANGE,
                "SETV",
                1,
                1000000,
                1,
                "18760000002",
                date(2019, 1, 19),
                date(2020, 1, 19),
                SANDBOX_TECHNICAL_KEY,
            ),
            NumberingRange(
                EXHAUSTED_RANGE_ID,
                catalogs.INVOICE_RANGE,
                "SETX",
                1,
                10,
                11,
                "18760000003",
                start,
                end,
                SANDBOX_TECHNICAL_KEY,
            ),
            NumberingRange(
                INACTIVE_RANGE_ID,
                catalogs.INVOICE_RANGE,
                "SETI",
                1,
                1000000,
                1,
                "18760000004",
                start,
                end,
                SANDBOX_TECHNICAL_KEY,
                is_active=False,
            ),
        ]
    return {r.id: r for r in ranges}


def pick_range(
    account: Account, range_id: int | None, document: str, bag: ErrorBag, today: date
) -> NumberingRange | None:
    """The range a new document of range type ``document`` takes (FACTUS_API.md §8.1).

    Without ``range_id``, the account's one usable range of that type; with it, that range
    when it belongs to the account and has that type. Returns None after adding the 422 error
    on ``numbering_range_id`` to ``bag``. Whether the range may still number is
    :func:`range_problem`'s question.
    """
    if range_id is None:
        usable = [
            r for r in account.ranges.values() if r.document == document and r.usable(today)
        ]
        if len(usable) == 1:
            return usable[0]
        bag.add("numbering_range_id", "El campo id rango de numeración es obligatorio.")
        return None
    chosen = account.ranges.get(range_id)
    if chosen is None or chosen.document != document:
        bag.add("numbering_range_id", "El campo id rango de numeración es inválido.")
        return None
    return chosen


def range_problem(chosen: NumberingRange, today: date) -> str | None:
    """Why ``chosen`` cannot number a document ``today`` (inactive, expired, exhausted: the 422
    text Factus gives on ``numbering_range_id``), or None when it can."""
    if not chosen.is_active:
        return "El rango de numeración seleccionado no está activo."
    if chosen.is_expired(today):
        return "El rango de numeración seleccionado se encuentra vencido."
    if chosen.is_exhausted():
        return "El rango de numeración seleccionado no tiene consecutivos disponibles."
    return None


class RangeBook:
    """The numbering-range part of :class:`einvoice.sandbox.state.SandboxState` (a mixin: the
    state owns the lock and the set of created range ids)."""

    lock: threading.RLock
    # Ids of ranges created through the API: never reused, even after a reset.
    _created_range_ids: set[int]

    def dian_ranges(self, account: Account) -> list[NumberingRange]:
        """The ranges DIAN associated with the account's company (``GET /v2/numbering-ranges/dian``)."""
        with self.lock:
            return list(account.dian_ranges)

    def create_range(
        self,
        account: Account,
        document: str,
        prefix: str,
        current: int,
        resolution_number: str | None,
    ) -> tuple[NumberingRange | None, ErrorBag]:
        """Create a numbering range (``POST /v2/numbering-ranges``, v2 ``crear-rango``).

        Documents 21 (invoice), 24 (support document) and 30 (paper) need ``resolution_number`` of a
        range DIAN associated with the company (:meth:`dian_ranges`) whose prefix matches; the new
        range takes its limits, dates and technical key. Other documents (22 credit note, 23 debit
        note, 25 adjustment note) have no resolution: numbers 1 to 99,999,999, valid ten years from
        today (inferred). ``current`` is the next number to use.

        Args:
            account: the caller's account.
            document: range document code (validated by the caller against the v2 table).
            prefix: 1-4 alphanumeric characters (validated by the caller).
            current: the next number, within the range.
            resolution_number: the DIAN resolution, when the document needs one.

        Returns:
            ``(range, bag)``: the new range with an empty bag, or ``(None, bag)`` with 422 errors
            (unknown resolution or prefix, ``current`` outside the range, prefix already in use).
        """
        bag = ErrorBag()
        today = bogota_today()
        with self.lock:
            if any(r.document == document and r.prefix == prefix for r in account.ranges.values()):
                bag.add("prefix", "El prefijo ya está registrado para este tipo de documento.")
                return None, bag
            if document in catalogs.RESOLUTION_RANGE_DOCUMENTS:
                source = next(
                    (
                        r
                        for r in account.dian_ranges
                        if r.resolution_number == resolution_number and r.prefix == prefix
                    ),
                    None,
                )
                if source is None:
                    bag.add(
                        "resolution_number",
                        "La resolución no está asociada al software con ese prefijo en la DIAN.",
                    )
                    return None, bag
                start, end = source.start, source.end
                start_date, end_date = source.start_date, source.end_date
                technical_key = source.technical_key if document == catalogs.INVOICE_RANGE else None
            else:
                resolution_number = None
                start, end = 1, 99999999
                start_date, end_date = today, today.replace(year=today.year + 10)
                technical_key = None
            if not start <= current <= end:
                bag.add("current", f"El campo current debe estar entre {start} y {end}.")
                return None, bag
            range_id = max([INACTIVE_RANGE_ID, *account.ranges, *self._created_range_ids]) + 1
            self._created_range_ids.add(range_id)
            created = NumberingRange(
                range_id,
                document,
                prefix,
                start,
                end,
                current,
                resolution_number,
                start_date,
                end_date,
                technical_key,
                created_at=utcnow(),
            )
            account.ranges[range_id] = created
            return created, bag

