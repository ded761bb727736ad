"""Every error class over real HTTP against the simulator, and what the client does about each
(FACTUS_API.md §5, Decisions 2–4): renewal on 401, retries only where repeating is harmless,
and a validate with an unknown outcome reconciled by reference code instead of re-sent. The
scenarios that concern documents run on both API versions (the ``api`` fixture)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
from conftest import V2_ONLY, VersionedApi, sandbox_grants
from factus_payloads import bill, v2_bill

from einvoice.factus.client import FactusClient, RetryPolicy, Timeouts
from einvoice.factus.errors import (
    ApiVersionNotEnabled,
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    PayloadValidationError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from einvoice.sandbox.server import SandboxServer

MakeClient = Callable[..., FactusClient]


def _validate_posts(api: VersionedApi) -> int:
    return int(api.stats()["validate_posts"]["bill"])


def test_a_malformed_payload_is_a_payload_error_with_field_messages(api: VersionedApi) -> None:
    if api.version == "v1":
        payload = bill("BAD-1").model_dump(mode="json", exclude_none=True)
        payload["items"][0]["quantity"] = 2.5  # v1 quantities are integers (§3.4)
    else:
        payload = v2_bill("BAD-1")
        payload["items"][0]["quantity"] = "2.505"  # v2: at most two decimals
    del payload["reference_code"]

    with pytest.raises(PayloadValidationError) as caught:
        api.client.validate_bill(payload)

    assert caught.value.status_code == 422
    assert not caught.value.transient
    assert {"items.0.quantity", "reference_code"} <= set(caught.value.field_errors)


def test_wrong_credentials_are_an_authentication_error(make_sandbox_client: MakeClient) -> None:
    with pytest.raises(AuthenticationError) as bad_password:
        make_sandbox_client(password="wrong").company()
    with pytest.raises(AuthenticationError) as bad_client:
        make_sandbox_client(client_secret="wrong").company()
    assert bad_password.value.reason == "factus_invalid_grant"
    assert bad_client.value.status_code == 401
    assert "wrong" not in bad_password.value.message + bad_client.value.message


@pytest.mark.parametrize(("mode", "spoken"), [("v2", "v1"), ("v1", "v2")])
def test_an_account_not_enabled_for_the_version_spoken_is_forbidden(
    make_sandbox_client: MakeClient, sandbox_clean: SandboxServer, mode: str, spoken: str
) -> None:
    # Given an account enabled for one version only, and a client speaking the other
    sandbox_clean.add_account(**V2_ONLY, mode=mode)
    client = make_sandbox_client(**V2_ONLY, api_version=spoken)

    # When it sends a bill
    with pytest.raises(ForbiddenError) as caught:
        client.validate_bill(bill("V-1") if spoken == "v1" else v2_bill("V-1"))

    # Then the 403 says which version the account lacks (a configuration error, permanent)
    assert isinstance(caught.value, ApiVersionNotEnabled)
    assert caught.value.version == spoken
    assert (caught.value.reason, caught.value.transient) == ("factus_version_not_enabled", False)
    stats = sandbox_clean.account_stats(V2_ONLY["username"], V2_ONLY["client_id"])
    assert stats["validations_by_reference"]["bill"] == {}


def test_an_unknown_document_is_not_found(client: FactusClient) -> None:
    with pytest.raises(NotFoundError):
        client.show_bill("SETP1")
    with pytest.raises(NotFoundError):
        client.download_bill_pdf("SETP1")


def test_revoked_tokens_are_renewed_once_and_the_call_repeated(
    client: FactusClient, sandbox_clean: SandboxServer
) -> None:
    # Given a client holding a token that Factus then revokes with its refresh token
    client.company()
    sandbox_clean.reset(revoke_tokens=True)

    # When the next call is made
    company = client.company()

    # Then it succeeded after the refresh grant failed and a password grant worked (Decision 2)
    assert company.nit == "901724254"
    assert sandbox_grants(sandbox_clean) == {"400": 1, "200": 1}
    # (a revoked token cannot be tied to its account, so these are the global counters)
    assert sandbox_clean.stats()["global"]["requests"]["GET /v1/company"] == {"401": 1, "200": 1}


def test_a_token_rejected_twice_is_an_authentication_error(
    api: VersionedApi, sandbox_clean: SandboxServer
) -> None:
    api.client.list_numbering_ranges()  # get the token first
    sandbox_clean.set_faults(expired_token=1.0)

    with pytest.raises(AuthenticationError):
        api.client.validate_bill(api.bill("EXP-1"))

    # one renewal, one repeat, and the bill was never processed
    assert api.stats()["requests"][api.route("POST", "/bills/validate")] == {"401": 2}
    assert sum(sandbox_grants(sandbox_clean).values()) == 2
    assert api.stats()["validations_by_reference"]["bill"] == {}


def test_injected_429s_are_waited_out_then_raised(
    api: VersionedApi, sandbox_clean: SandboxServer
) -> None:
    api.client.list_numbering_ranges()  # get the token first: token calls get 429s too
    sandbox_clean.set_faults(rate_limit_429=1.0, retry_after_seconds=1)

    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        api.client.validate_bill(api.bill("RL-1"))

    # the client waited the Retry-After once (2 attempts), and nothing was validated
    assert time.monotonic() - started >= 1.0
    assert caught.value.retry_after == 1.0
    assert caught.value.transient
    assert api.stats()["requests"][api.route("POST", "/bills/validate")] == {"429": 2}


def test_the_real_rate_limit_gives_a_retry_after_the_client_does_not_sleep_through(
    make_sandbox_client: MakeClient, sandbox_clean: SandboxServer
) -> None:
    sandbox_clean.set_faults(rate_limit_per_minute=3)
    client = make_sandbox_client(retry=RetryPolicy(attempts=3, max_retry_after=0.5))
    client.company()  # token + company = 2 requests
    client.company()  # 3

    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        client.company()

    assert time.monotonic() - started < 0.5  # handed to the job layer, not slept through
    assert 0 < caught.value.retry_after <= 60


def test_server_errors_on_reads_are_retried_and_validate_is_sent_once(
    api: VersionedApi, sandbox_clean: SandboxServer
) -> None:
    api.client.list_numbering_ranges()
    sandbox_clean.set_faults(error_500=1.0)

    with pytest.raises(ServerError):
        api.client.list_bills()
    with pytest.raises(ServerError) as on_validate:
        api.client.validate_bill(api.bill("E500-1"))

    requests = api.stats()["requests"]
    assert requests[api.route("GET", "/bills")] == {"500": 2}  # the read was repeated
    assert requests[api.route("POST", "/bills/validate")] == {"500": 1}  # the create was not
    assert on_validate.value.may_have_reached
    assert on_validate.value.reason == "server_error"


def test_maintenance_is_told_apart_from_other_server_errors(
    client: FactusClient, sandbox_clean: SandboxServer
) -> None:
    client.company()
    sandbox_clean.set_faults(error_503=1.0)
    with pytest.raises(ServerError) as caught:
        client.company()
    assert caught.value.maintenance
    assert caught.value.reason == "factus_maintenance"


def test_a_timeout_after_the_bill_was_stored_is_reconciled_not_resent(
    api: VersionedApi, make_sandbox_client: MakeClient, sandbox_clean: SandboxServer
) -> None:
    # Given Factus stores and validates the bill but the answer never comes back in time
    account = V2_ONLY if api.version == "v2" else {}
    client = make_sandbox_client(**account, api_version=api.version,
                                 timeouts=Timeouts(connect=2.0, read=5.0, validate=1.0))
    client.list_numbering_ranges()
    sandbox_clean.set_faults(timeout_after_store=1.0, timeout_hang_seconds=3)

    with pytest.raises(TransportError) as caught:
        client.validate_bill(api.bill("HANG-1"))
    assert caught.value.reason == "timeout_unknown_outcome"
    assert caught.value.may_have_reached

    # When the job layer looks the reference up before sending again (Decision 3)
    sandbox_clean.set_faults(timeout_after_store=0.0)
    found = client.find_bill_by_reference("HANG-1")

    # Then the bill is there, validated, and was sent exactly once
    assert found is not None
    assert found.is_validated
    assert found.cufe
    assert found.totals.total is not None
    assert found.reference_code == "HANG-1"
    assert _validate_posts(api) == 1
    assert api.stats()["validations_by_reference"]["bill"] == {"HANG-1": 1}


def test_an_unreachable_factus_is_a_connect_error_that_sent_nothing(
    make_sandbox_client: MakeClient,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    client = make_sandbox_client(base_url=f"http://127.0.0.1:{closed_port}")

    with pytest.raises(TransportError) as caught:
        client.validate_bill(bill("DOWN-1"))

    assert caught.value.reason == "connect_error"
    assert not caught.value.may_have_reached
    assert caught.value.transient
