"""Parts of a validate body that Factus v1 and v2 write the same way.

Sources: FACTUS_API.md §3.3 (``customer``), §3.6 (``billing_period``, ``order_reference``,
``establishment``) for v1; the v2 docs ``facturas/crear-y-validar`` and
``descripcion-de-campos`` (``sbetav/factus-js``, ``factus-docs/v2/``) name the same fields with
the same shapes. What differs between the versions (ids against codes, number formats) stays in
:mod:`einvoice.factus.v1_body` and :mod:`einvoice.factus.v2_body`.
"""

from __future__ import annotations

from typing import Any

from einvoice.domain.document import Establishment, OrderReference, Party, Period

JsonDict = dict[str, Any]
#: A billing period stored with dates only covers whole days; ``end_time`` is required by v1.
END_OF_DAY = "23:59:59"


def truncated(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one "…" when cut.

    The observation is free text: a long one is truncated, not refused (v1 DOC1 allows 250
    characters, v2 500).
    """
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def party_names(party: Party, body: JsonDict) -> None:
    """Add a customer's ``dv``, ``company`` or ``names``, and its contact fields to ``body``.

    ``dv`` is sent as a string although Factus types it as an int (its examples send ``"3"``); a
    missing DV is filled by the domain, not left for Factus to compute, so the stored payload
    shows what was sent.
    """
    if party.dv is not None:
        body["dv"] = str(party.dv)
    if party.company is not None:
        body["company"] = party.company
    else:
        body["names"] = party.names
    for key in ("trade_name", "address", "email", "phone"):
        value = getattr(party, key)
        if value is not None:
            body[key] = value


def establishment_contact(place: Establishment) -> JsonDict:
    """``establishment`` without its municipality (v1 sends the id, v2 the DANE code)."""
    return {"name": place.name, "address": place.address, "phone_number": place.phone_number,
            "email": place.email}


def billing_period(period: Period) -> JsonDict:
    """``billing_period``: ISO dates, ``HH:MM:SS`` times, ``end_time`` at least end of day."""
    entry: JsonDict = {"start_date": period.start_date.isoformat()}
    if period.start_time is not None:
        entry["start_time"] = period.start_time.strftime("%H:%M:%S")
    entry["end_date"] = period.end_date.isoformat()
    entry["end_time"] = (period.end_time.strftime("%H:%M:%S")
                         if period.end_time is not None else END_OF_DAY)
    return entry


def order_reference(reference: OrderReference) -> JsonDict:
    """``order_reference``: the buyer's order number and, when known, its ISO issue date."""
    order: JsonDict = {"reference_code": reference.reference_code}
    if reference.issue_date is not None:
        order["issue_date"] = reference.issue_date.isoformat()
    return order
