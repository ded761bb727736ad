"""The client's plumbing against a scripted Factus (httpx.MockTransport): token use and 401
renewal, which failures are retried and which never are, Retry-After, timeouts, pagination,
exact reference lookups, rate-limit slots and secret-free logs (FACTUS_API.md Decisions 2–6)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
from factus_double import (
    CLIENT_SECRET,
    PASSWORD,
    ScriptedFactus,
    Sleeps,
    answer,
    bill_body,
    json_response,
    list_body,
    raise_,
    request_json,
    validated_body,
)

from einvoice.factus import v1
from einvoice.factus.client import FactusClient, RetryPolicy
from einvoice.factus.errors import (
    AuthenticationError,
    NotFoundError,
    RateLimitedError,
    ResponseDecodingError,
    ServerError,
    TransportError,
)
from einvoice.factus.tokens import FactusAccount

MakeClient = Callable[..., FactusClient]
PAYLOAD = {"reference_code": "POS-1", "customer": {}, "items": []}
VALIDATE = ("POST", "/v1/bills/validate")


def test_first_call_logs_in_with_a_form_encoded_password_grant(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    # Given a fresh client and a Factus that validates
    factus.on(*VALIDATE, answer(201, bill_body()))
    client = make_client()

    # When a bill is validated
    bill = client.validate_bill(PAYLOAD)

    # Then one password grant was made with the account's credentials, form-encoded (§2)
    token_call = factus.requests[0]
    assert token_call.url.path == "/oauth/token"
    assert token_call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert factus.grants == [
        {
            "grant_type": "password",
            "client_id": "client-id-1",
            "client_secret": CLIENT_SECRET,
            "username": "user@einvoice.test",
            "password": PASSWORD,
        }
    ]
    # and the validate call carried the token and JSON headers (§1)
    (call,) = factus.api_requests()
    assert call.headers["authorization"] == "Bearer access-1"
    assert call.headers["accept"] == "application/json"
    assert call.headers["content-type"] == "application/json"
    assert request_json(call) == PAYLOAD
    assert bill.number == "SETP990010377"
    assert bill.is_validated


def test_the_token_is_reused_until_it_nears_expiry(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on("GET", "/v1/bills/show/SETP1", answer(200, bill_body()))
    client = make_client()
    for _ in range(3):
        client.show_bill("SETP1")
    assert len(factus.grants) == 1


@pytest.mark.parametrize("account", ["v1", "v2"], indirect=True)
def test_a_401_renews_the_token_once_and_repeats_the_call_once(
    factus: ScriptedFactus, make_client: MakeClient, account: FactusAccount
) -> None:
    # Given Factus rejects the first token (revoked early) and accepts the next, on either
    # version's validate route
    version = account.api_version
    factus.on("POST", f"/{version}/bills/validate", answer(401, {"message": "Unauthenticated."}),
              answer(201, validated_body(version)))
    client = make_client()

    bill = client.validate_bill(PAYLOAD)

    # Then the client renewed with the refresh grant and repeated the call with the new token
    assert [g["grant_type"] for g in factus.grants] == ["password", "refresh_token"]
    assert factus.grants[1]["refresh_token"] == "refresh-1"
    assert [r.headers["authorization"] for r in factus.api_requests()] == [
        "Bearer access-1",
        "Bearer access-2",
    ]
    assert bill.is_validated


def test_a_second_401_is_an_authentication_error(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on(*VALIDATE, answer(401, {"message": "Unauthenticated."}))
    client = make_client()
    with pytest.raises(AuthenticationError) as caught:
        client.validate_bill(PAYLOAD)
    assert caught.value.reason == "factus_401"
    assert not caught.value.transient
    assert len(factus.api_requests()) == 2
    assert len(factus.grants) == 2


def test_a_failed_refresh_falls_back_to_the_password_grant(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    # Given the refresh token was revoked (Passport answers 400 invalid_request: §2, inferred)
    factus.on(
        "POST",
        "/oauth/token",
        answer(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3600,
                "access_token": "a1",
                "refresh_token": "r1",
            },
        ),
        answer(400, {"error": "invalid_request", "message": "The refresh token is invalid."}),
        answer(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3600,
                "access_token": "a2",
                "refresh_token": "r2",
            },
        ),
    )
    factus.on(*VALIDATE, answer(401, {"message": "Unauthenticated."}), answer(201, bill_body()))
    client = make_client()

    client.validate_bill(PAYLOAD)

    assert [g["grant_type"] for g in factus.grants] == ["password", "refresh_token", "password"]
    assert factus.api_requests()[-1].headers["authorization"] == "Bearer a2"


def test_wrong_credentials_fail_without_retrying(
    factus: ScriptedFactus, make_client: MakeClient, sleeps: Sleeps
) -> None:
    factus.on(
        "POST",
        "/oauth/token",
        answer(401, {"error": "invalid_client", "message": "Client authentication failed"}),
    )
    client = make_client()
    with pytest.raises(AuthenticationError):
        client.show_bill("SETP1")
    assert len(factus.grants) == 1
    assert sleeps.calls == []
    assert factus.api_requests() == []


def test_reads_are_retried_with_backoff_on_server_errors(
    factus: ScriptedFactus, make_client: MakeClient, sleeps: Sleeps
) -> None:
    factus.on(
        "GET",
        "/v1/bills/show/SETP1",
        answer(503, {"message": "Mantenimiento"}),
        answer(500, {"message": "boom"}),
        answer(200, bill_body()),
    )
    bill = make_client().show_bill("SETP1")
    assert bill.number == "SETP990010377"
    assert len(factus.api_requests()) == 3
    assert len(sleeps.calls) == 2
    assert all(0 <= s <= 1.0 for s in sleeps.calls)


def test_reads_give_up_after_the_configured_attempts(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on("GET", "/v1/bills/show/SETP1", answer(503, {"message": "Mantenimiento"}))
    client = make_client(retry=RetryPolicy(attempts=2, backoff_initial=0.01, backoff_max=0.01))
    with pytest.raises(ServerError) as caught:
        client.show_bill("SETP1")
    assert caught.value.maintenance
    assert len(factus.api_requests()) == 2


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (answer(500, {"message": "Ha ocurrido un error inesperado"}), "server_error"),
        (answer(503, {"message": "Mantenimiento"}), "factus_maintenance"),
        (raise_(httpx.ReadTimeout), "timeout_unknown_outcome"),
        (raise_(httpx.RemoteProtocolError), "connection_lost"),
        (lambda request: httpx.Response(201, text="<html>cut"), "bad_response"),
    ],
)
def test_a_validate_with_an_unknown_outcome_is_never_resent(
    factus: ScriptedFactus,
    make_client: MakeClient,
    sleeps: Sleeps,
    failure: Callable[[httpx.Request], httpx.Response],
    reason: str,
) -> None:
    # Given Factus may have stored the bill but we cannot know (Decision 3)
    factus.on(*VALIDATE, failure, answer(201, bill_body()))
    client = make_client()

    # When validating, the error is raised for the job layer to reconcile by reference code
    with pytest.raises((ServerError, TransportError, ResponseDecodingError)) as caught:
        client.validate_bill(PAYLOAD)

    # Then the bill was sent exactly once
    assert len(factus.api_requests()) == 1
    assert caught.value.reason == reason
    assert caught.value.transient
    assert caught.value.may_have_reached
    assert sleeps.calls == []


def test_a_validate_that_never_left_is_resent(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on(*VALIDATE, raise_(httpx.ConnectError), answer(201, bill_body()))
    bill = make_client().validate_bill(PAYLOAD)
    assert bill.is_validated
    assert len(factus.api_requests()) == 2


def test_connect_errors_say_the_request_did_not_reach_factus(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on(*VALIDATE, raise_(httpx.ConnectError))
    with pytest.raises(TransportError) as caught:
        make_client().validate_bill(PAYLOAD)
    assert caught.value.reason == "connect_error"
    assert not caught.value.may_have_reached
    assert len(factus.api_requests()) == 3  # the policy's attempts


@pytest.mark.parametrize("account", ["v1", "v2"], indirect=True)
def test_429_waits_the_retry_after_then_goes_on(
    factus: ScriptedFactus, make_client: MakeClient, sleeps: Sleeps, account: FactusAccount
) -> None:
    # limite-de-request: Retry-After (and the X-RateLimit-* headers) on both versions
    version = account.api_version
    factus.on(
        "POST", f"/{version}/bills/validate",
        answer(429, {"message": "Too Many Attempts."},
               {"Retry-After": "3", "X-RateLimit-Limit": "80", "X-RateLimit-Remaining": "0"}),
        answer(201, validated_body(version)),
    )
    bill = make_client().validate_bill(PAYLOAD)
    assert bill.is_validated
    assert sleeps.calls == [3.0]


def test_a_long_retry_after_is_handed_to_the_job_layer(
    factus: ScriptedFactus, make_client: MakeClient, sleeps: Sleeps
) -> None:
    factus.on(*VALIDATE, answer(429, {"message": "Too Many Attempts."}, {"Retry-After": "120"}))
    with pytest.raises(RateLimitedError) as caught:
        make_client().validate_bill(PAYLOAD)
    assert caught.value.retry_after == 120.0
    assert sleeps.calls == []
    assert len(factus.api_requests()) == 1


def test_validate_gets_the_long_timeout_and_reads_the_short_one(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on(*VALIDATE, answer(201, bill_body()))
    factus.on("GET", "/v1/bills/show/SETP1", answer(200, bill_body()))
    client = make_client()
    client.validate_bill(PAYLOAD)
    client.show_bill("SETP1")
    validate_call, show_call = factus.api_requests()
    assert validate_call.extensions["timeout"]["read"] == 31.0
    assert show_call.extensions["timeout"]["read"] == 7.0
    assert show_call.extensions["timeout"]["connect"] == 2.0


def test_list_bills_walks_every_page_with_the_filters(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        rows = [{"id": page * 10 + i, "number": f"SETP{page}{i}", "status": 0} for i in range(2)]
        return json_response(200, list_body(rows, page=page, last_page=3))

    factus.on("GET", "/v1/bills", pages)
    rows = make_client().list_bills(status=0)
    assert [row.number for row in rows] == [
        "SETP10",
        "SETP11",
        "SETP20",
        "SETP21",
        "SETP30",
        "SETP31",
    ]
    assert [r.url.params["page"] for r in factus.api_requests()] == ["1", "2", "3"]
    assert {r.url.params["filter[status]"] for r in factus.api_requests()} == {"0"}


def test_an_unknown_filter_is_refused_before_any_call(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    with pytest.raises(ValueError, match="reference"):
        make_client().list_bills(reference="POS-1")
    assert factus.requests == []


def test_find_by_reference_ignores_partial_matches(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    # Given the list filter also returns INV-10 for INV-1 (a LIKE match)
    factus.on(
        "GET",
        "/v1/bills",
        answer(
            200,
            list_body(
                [
                    {"id": 2, "number": "SETP2", "reference_code": "INV-10", "status": 1},
                    {"id": 1, "number": "SETP1", "reference_code": "INV-1", "status": 1},
                ]
            ),
        ),
    )
    factus.on(
        "GET",
        "/v1/bills/show/SETP1",
        answer(200, bill_body(number="SETP1", reference_code="INV-1")),
    )

    found = make_client().find_bill_by_reference("INV-1")

    assert found is not None
    assert found.number == "SETP1"
    lookup = factus.api_requests()[0].url.params
    assert lookup["filter[reference_code]"] == "INV-1"
    assert lookup["per_page"] == "100"  # big pages: partial matches can be many


def test_find_by_reference_returns_none_when_factus_has_no_such_bill(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on("GET", "/v1/bills", answer(200, list_body([])))
    assert make_client().find_bill_by_reference("INV-404") is None
    assert len(factus.api_requests()) == 1


def test_delete_quotes_the_reference_and_reports_unknown_ones(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on(
        "DELETE",
        "/v1/bills/destroy/reference/A%2FB",
        answer(
            404,
            {
                "status": "Not Found",
                "message": "No se encontró el documento con código de referencia A/B",
            },
        ),
    )
    with pytest.raises(NotFoundError):
        make_client().delete_bill("A/B")
    assert factus.api_requests()[0].url.raw_path == b"/v1/bills/destroy/reference/A%2FB"


def test_downloads_send_email_and_catalogs_use_their_v1_routes(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    xml = b"<Invoice/>"
    factus.on(
        "GET",
        "/v1/bills/download-xml/SETP1",
        answer(
            200,
            {"data": {"file_name": "fv1", "xml_base_64_encoded": base64.b64encode(xml).decode()}},
        ),
    )
    factus.on(
        "POST",
        "/v1/bills/send-email/SETP1",
        answer(200, {"status": "OK", "message": "Factura enviada al cliente con éxito"}),
    )
    factus.on(
        "GET",
        "/v1/municipalities",
        answer(
            200,
            {"data": [{"id": 980, "code": "68679", "name": "San Gil", "department": "Santander"}]},
        ),
    )
    client = make_client()

    assert client.download_bill_xml("SETP1").content == xml
    assert client.send_bill_email("SETP1", "a@b.test") == "Factura enviada al cliente con éxito"
    assert [m.name for m in client.municipalities(name="San")] == ["San Gil"]

    _, email_call, municipalities_call = factus.api_requests()
    assert request_json(email_call) == {"email": "a@b.test"}
    assert municipalities_call.url.params["name"] == "San"


def test_a_bill_request_model_goes_out_with_v1_number_formats(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    # Decision 7: Decimal in code; price a number (tax included), quantity an int, tax_rate "19.00"
    factus.on(*VALIDATE, answer(201, bill_body()))
    request = v1.BillRequest(
        numbering_range_id=8,
        reference_code="POS-1",
        customer=v1.Customer(
            identification_document_id=3,
            identification="1020304050",
            names="María Gómez",
            legal_organization_id=2,
            tribute_id=21,
            municipality_id=980,
        ),
        items=[
            v1.BillItem(
                code_reference="SKU-1",
                name="Café 500 g",
                quantity=2,
                price=Decimal("23800.50"),
                tax_rate=Decimal(19),
                unit_measure_id=70,
                standard_code_id=1,
                tribute_id=1,
            )
        ],
    )
    make_client().validate_bill(request)
    sent = request_json(factus.api_requests()[0])
    assert sent["items"][0]["price"] == 23800.5
    assert sent["items"][0]["quantity"] == 2
    assert sent["items"][0]["tax_rate"] == "19.00"
    assert sent["items"][0]["is_excluded"] == 0
    assert "observation" not in sent  # None fields are left out


class CountingLimiter:
    """Counts the slots the client takes."""

    def __init__(self) -> None:
        self.slots: list[str] = []

    def acquire(self, account_key: str) -> float:
        self.slots.append(account_key)
        return 0.0


def test_every_call_takes_a_rate_limit_slot_token_calls_and_repeats_included(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on(*VALIDATE, answer(401, {"message": "Unauthenticated."}), answer(201, bill_body()))
    limiter = CountingLimiter()
    make_client(limiter=limiter).validate_bill(PAYLOAD)
    # password grant, validate (401), refresh grant, validate again
    assert limiter.slots == ["default"] * 4
    assert len(factus.requests) == 4


class WaitingLimiter:
    """Reports that every slot took ``waited`` seconds to come."""

    def __init__(self, waited: float) -> None:
        self.waited = waited

    def acquire(self, account_key: str) -> float:
        return self.waited


class Blocked(Exception):
    pass


def test_a_validate_that_queued_for_its_slot_runs_its_check_and_is_not_sent_when_it_fails(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on(*VALIDATE, answer(201, bill_body()))
    checks: list[str] = []

    def blocked() -> None:
        checks.append("checked")
        raise Blocked

    client = make_client(limiter=WaitingLimiter(0.3))
    with pytest.raises(Blocked):
        client.validate_bill(PAYLOAD, before_send=blocked)
    assert checks == ["checked"]
    # only the token call went out, not the validate
    assert [r.url.path for r in factus.requests] == ["/oauth/token"]


def test_a_validate_that_got_its_slot_at_once_skips_the_check(
    factus: ScriptedFactus, make_client: MakeClient
) -> None:
    factus.on(*VALIDATE, answer(201, bill_body()))
    checks: list[str] = []
    make_client(limiter=WaitingLimiter(0.0)).validate_bill(
        PAYLOAD, before_send=lambda: checks.append("checked"))
    assert checks == []
    assert [r.url.path for r in factus.requests] == ["/oauth/token", "/v1/bills/validate"]


def test_logs_show_method_path_status_and_latency_but_never_a_secret(
    factus: ScriptedFactus, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    factus.on(*VALIDATE, answer(401, {"message": "Unauthenticated."}), answer(201, bill_body()))
    caplog.set_level(logging.DEBUG)

    make_client().validate_bill(PAYLOAD)

    records = [r for r in caplog.records if r.name == "einvoice.factus"]
    validate_logs = [r for r in records if getattr(r, "factus_path", None) == "/v1/bills/validate"]
    assert [r.factus_status for r in validate_logs] == [401, 201]  # type: ignore[attr-defined]
    assert all(r.factus_latency_ms >= 0 for r in validate_logs)  # type: ignore[attr-defined]
    assert "registrado y validado" in validate_logs[-1].getMessage()
    for secret in (CLIENT_SECRET, PASSWORD, "access-1", "access-2", "refresh-1", "Bearer"):
        assert secret not in caplog.text
