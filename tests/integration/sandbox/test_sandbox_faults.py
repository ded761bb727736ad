"""Fault injection and the rate limit over HTTP (FACTUS_API.md "The simulator", §9, §11.6)."""

from __future__ import annotations

import time

import httpx
import pytest

from einvoice.sandbox.server import SandboxServer, SandboxServerError
from tests.fixtures.payloads import v1_bill
from tests.integration.sandbox.sandbox_http import client_for, create_bill, password_grant


def test_error_500_and_503_answer_without_storing_anything(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    sandbox_clean.set_faults(error_500=1.0)
    five_hundred = api.post("/v1/bills/validate", json=v1_bill("F-500"))
    sandbox_clean.set_faults(error_500=0.0, error_503=1.0)
    five_oh_three = api.get("/v1/bills")

    assert (five_hundred.status_code, five_hundred.json()) == (500, {"message": "Server Error"})
    assert five_oh_three.status_code == 503
    stats = sandbox_clean.account_stats()
    assert stats["documents_stored"]["bill"] == 0
    assert stats["requests"]["POST /v1/bills/validate"] == {"500": 1}
    assert stats["requests"]["GET /v1/bills"] == {"503": 1}


def test_an_injected_429_carries_retry_after_and_the_rate_limit_headers(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    sandbox_clean.set_faults(rate_limit_429=1.0, retry_after_seconds=2)

    response = api.get("/v1/company")

    assert response.status_code == 429
    assert response.json() == {"message": "Too Many Attempts."}
    assert response.headers["Retry-After"] == "2"
    assert response.headers["X-RateLimit-Limit"] == "80"
    assert int(response.headers["X-RateLimit-Reset"]) > time.time() - 1


def test_the_per_minute_quota_counts_every_call_of_the_account_token_calls_included(
    sandbox_clean: SandboxServer,
):
    # Given a quota of 3 requests per minute
    sandbox_clean.set_faults(rate_limit_per_minute=3)
    base = sandbox_clean.base_url

    # When the account asks for a token and makes three calls
    with client_for(base) as api:
        first = api.get("/v1/company")
        second = api.get("/v1/company")
        third = api.get("/v1/company")

    # Then the token call and two calls pass, with the remaining quota counting down, and the 4th is refused
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert [first.headers["X-RateLimit-Remaining"], second.headers["X-RateLimit-Remaining"]] == [
        "1",
        "0",
    ]
    assert third.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert third.json() == {"message": "Too Many Attempts."}
    # other accounts have their own quota
    sandbox_clean.add_account("quota-client", "quota-secret", "quota@einvoice.test", "pw")
    assert (
        password_grant(
            base,
            client_id="quota-client",
            client_secret="quota-secret",
            username="quota@einvoice.test",
            password="pw",
        ).status_code
        == 200
    )


def test_the_rate_limit_can_be_switched_off(sandbox_clean: SandboxServer):
    sandbox_clean.set_faults(rate_limit_per_minute=None)

    with client_for(sandbox_clean.base_url) as api:
        statuses = {api.get("/v1/measurement-units").status_code for _ in range(90)}
        last = api.get("/v1/measurement-units")

    assert statuses == {200}
    assert "X-RateLimit-Limit" not in last.headers


def test_timeout_after_store_leaves_a_validated_document_behind_a_client_timeout(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    # Given the simulator stores and validates, then hangs longer than the client waits
    sandbox_clean.set_faults(timeout_after_store=1.0, timeout_hang_seconds=1.0)

    # When the client sends a bill with a short read timeout
    with pytest.raises(httpx.ReadTimeout):
        api.post("/v1/bills/validate", json=v1_bill("TIMEOUT-1"), timeout=0.3)

    # Then the bill exists and is validated, exactly once
    rows = api.get("/v1/bills", params={"filter[reference_code]": "TIMEOUT-1"}).json()["data"][
        "data"
    ]
    assert [(row["reference_code"], row["status"]) for row in rows] == [("TIMEOUT-1", 1)]
    # and a resend with the same reference gets that same document, not a second one
    sandbox_clean.set_faults(timeout_after_store=0.0)
    resent = api.post("/v1/bills/validate", json=v1_bill("TIMEOUT-1"))
    assert resent.status_code == 201
    assert resent.json()["data"]["bill"]["number"] == rows[0]["number"]
    assert sandbox_clean.account_stats()["validations_by_reference"]["bill"] == {"TIMEOUT-1": 1}


def test_a_patient_client_sees_the_connection_dropped_after_the_hang(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    sandbox_clean.set_faults(timeout_after_store=1.0, timeout_hang_seconds=0.2)

    with pytest.raises(httpx.TransportError):
        api.post("/v1/bills/validate", json=v1_bill("DROP-1"), timeout=5.0)

    assert sandbox_clean.account_stats()["validations_by_reference"]["bill"] == {"DROP-1": 1}


def test_dian_slow_answers_status_0_and_a_resend_validates_it_without_a_duplicate(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    sandbox_clean.set_faults(dian_slow=1.0)

    slow = api.post("/v1/bills/validate", json=v1_bill("SLOW-1"))

    assert slow.status_code == 201
    pending = slow.json()["data"]["bill"]
    assert (pending["status"], pending["errors"], pending["validated"]) == (0, [], None)
    # while pending it blocks other bills
    assert api.post("/v1/bills/validate", json=v1_bill("SLOW-2")).status_code == 409

    resent = api.post("/v1/bills/validate", json=v1_bill("SLOW-1"))

    assert resent.status_code == 201
    assert resent.json()["data"]["bill"]["status"] == 1
    assert resent.json()["data"]["bill"]["number"] == pending["number"]
    stats = sandbox_clean.account_stats()
    assert stats["validations_by_reference"]["bill"] == {"SLOW-1": 1}
    assert stats["documents_stored"]["bill"] == 1


def test_an_injected_dian_rejection_is_stored_with_status_0(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    sandbox_clean.set_faults(dian_rejection=1.0)

    response = api.post("/v1/bills/validate", json=v1_bill("REJ-1"))

    assert response.status_code == 422
    assert response.json()["status"] == "Validation error"
    assert list(response.json()["data"]["errors"]) == ["FAD06"]
    rows = api.get("/v1/bills", params={"filter[status]": "0"}).json()["data"]["data"]
    assert [row["reference_code"] for row in rows] == ["REJ-1"]
    assert sandbox_clean.account_stats()["validations_by_reference"]["bill"] == {}


def test_an_expired_token_fault_expires_the_token_for_good_and_a_refresh_recovers(
    sandbox_clean: SandboxServer,
):
    base = sandbox_clean.base_url
    tokens = password_grant(base).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    sandbox_clean.set_faults(expired_token=1.0)

    expired = httpx.get(f"{base}/v1/company", headers=headers)
    sandbox_clean.set_faults(expired_token=0.0)
    still_expired = httpx.get(f"{base}/v1/company", headers=headers)
    refreshed = httpx.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
            "refresh_token": tokens["refresh_token"],
        },
    ).json()

    assert (expired.status_code, expired.json()) == (401, {"message": "Unauthenticated."})
    assert still_expired.status_code == 401
    fresh = httpx.get(
        f"{base}/v1/company", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
    )
    assert fresh.status_code == 200


def test_latency_delays_every_answer(api: httpx.Client, sandbox_clean: SandboxServer):
    sandbox_clean.set_faults(latency_ms=300)

    started = time.monotonic()
    response = api.get("/v1/company")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_seed_makes_the_fault_sequence_repeatable(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    def run() -> list[int]:
        sandbox_clean.set_faults(error_500=0.3, error_503=0.3, seed=123)
        return [api.get("/v1/measurement-units").status_code for _ in range(15)]

    first, second = run(), run()

    assert first == second
    assert {200, 500, 503} == set(first)


def test_bad_fault_settings_are_refused_and_reset_restores_the_startup_faults(
    sandbox_clean: SandboxServer,
):
    with pytest.raises(SandboxServerError, match="400"):
        sandbox_clean.set_faults(error_500=2)
    with pytest.raises(SandboxServerError, match="400"):
        sandbox_clean.set_faults(bogus=1)
    sandbox_clean.set_faults(error_503=0.5, latency_ms=10)

    sandbox_clean.reset()

    faults = sandbox_clean.faults()
    assert (faults["error_503"], faults["latency_ms"], faults["rate_limit_per_minute"]) == (
        0.0,
        0.0,
        80,
    )


def test_a_reset_forgets_documents_but_never_reuses_a_number(
    api: httpx.Client, sandbox_clean: SandboxServer
):
    before = create_bill(api, "RESET-1")["number"]

    sandbox_clean.reset()
    after = create_bill(api, "RESET-1")["number"]

    assert after != before
    assert api.get(f"/v1/bills/show/{before}").status_code == 404
