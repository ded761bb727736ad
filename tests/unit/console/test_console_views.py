"""The console's pure helpers: what a payload shows, the QR image, the job table's query string
and its page cursor, the Colombian days of the date filter."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, date, datetime

import pytest

from einvoice.services.console_views import (
    REDACTED,
    ConsoleInputError,
    decode_cursor,
    encode_cursor,
    parse_job_query,
    qr_data_uri,
    redact,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def test_secrets_are_hidden_at_any_depth_and_the_rest_is_kept() -> None:
    payload = {"customer": {"names": "María", "password": "x"}, "Access_Token": "eyJ",
               "items": [{"price": "1", "client_secret": "s"}], "numbering_range_id": 8}

    shown = redact(payload)

    assert shown == {"customer": {"names": "María", "password": REDACTED},
                     "Access_Token": REDACTED, "items": [{"price": "1", "client_secret": REDACTED}],
                     "numbering_range_id": 8}


def test_the_qr_is_factus_png_when_it_is_one_else_drawn_from_its_text() -> None:
    png = "data:image/png;base64, " + base64.b64encode(PNG).decode()

    assert qr_data_uri(png, "https://catalogo-vpfe.dian.gov.co/x") == (
        "data:image/png;base64," + base64.b64encode(PNG).decode())
    drawn = qr_data_uri("data:text/html;base64,PHNjcmlwdD4=", "https://catalogo-vpfe.dian.gov.co/x")
    assert drawn is not None
    assert drawn.startswith("data:image/svg+xml")
    assert qr_data_uri(None, None) is None


def test_the_query_string_becomes_filters_with_colombian_days() -> None:
    query = parse_job_query({"status": ["rejected", "failed", "rejected"], "org": ["7"],
                             "from": ["2026-12-01"], "to": ["2026-12-01"],
                             "number": [" setp990000001 "], "customer": ["900.123.456"],
                             "order": ["oldest"]})
    filters = query.filters()

    assert query.statuses == ("rejected", "failed")
    assert (query.organization_id, query.number, query.customer) == (7, "SETP990000001",
                                                                     "900123456")
    assert not query.newest_first
    # Bogotá is UTC-5: 1 December in Colombia is 05:00 UTC that day to 05:00 UTC the next
    assert filters.created_from == datetime(2026, 12, 1, 5, tzinfo=UTC)
    assert filters.created_to == datetime(2026, 12, 2, 5, tzinfo=UTC)
    assert query.params()["status"] == ["rejected", "failed"]
    assert query.date_to == date(2026, 12, 1)


@pytest.mark.parametrize(("params", "field"), [
    ({"status": ["lost"]}, "status"), ({"type": ["receipt"]}, "type"),
    ({"org": ["uno"]}, "org"), ({"from": ["ayer"]}, "from")])
def test_a_bad_filter_names_its_field(params: dict[str, list[str]], field: str) -> None:
    with pytest.raises(ConsoleInputError) as refused:
        parse_job_query(params)
    assert refused.value.field == field


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    created, job_id = datetime(2026, 12, 7, 20, 34, 12, 123456, tzinfo=UTC), uuid.uuid4()

    assert decode_cursor(encode_cursor(created, job_id)) == (created, job_id)
    with pytest.raises(ConsoleInputError):
        decode_cursor("not-a-cursor")
