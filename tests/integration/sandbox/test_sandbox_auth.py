"""OAuth and bearer authentication of the simulator (FACTUS_API.md §2, §5.6, §11.1-§11.2)."""

from __future__ import annotations

import time

import httpx

from einvoice.sandbox.server import SandboxServer
from tests.integration.sandbox.sandbox_http import DEFAULT_CREDENTIALS, password_grant


def _refresh(base_url: str, refresh_token: str, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": DEFAULT_CREDENTIALS["client_id"],
        "client_secret": DEFAULT_CREDENTIALS["client_secret"],
        "refresh_token": refresh_token,
        **overrides,
    }
    return httpx.post(f"{base_url}/oauth/token", data=form)


def _company(base_url: str, token: str) -> httpx.Response:
    return httpx.get(f"{base_url}/v1/company", headers={"Authorization": f"Bearer {token}"})


def test_a_password_grant_returns_a_bearer_jwt_with_expires_in(sandbox_clean: SandboxServer):
    response = password_grant(sandbox_clean.base_url)

    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].count(".") == 2
    assert body["refresh_token"]
    assert _company(sandbox_clean.base_url, body["access_token"]).status_code == 200


def test_the_token_form_may_also_be_multipart(sandbox_clean: SandboxServer):
    form = {
        "grant_type": (None, "password"),
        **{k: (None, v) for k, v in DEFAULT_CREDENTIALS.items()},
    }

    response = httpx.post(f"{sandbox_clean.base_url}/oauth/token", files=form)

    assert response.status_code == 200
    assert response.json()["access_token"]


def test_a_wrong_client_secret_is_401_invalid_client(sandbox_clean: SandboxServer):
    response = password_grant(sandbox_clean.base_url, client_secret="nope")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.json()["message"] == "Client authentication failed"


def test_a_wrong_password_is_400_invalid_grant(sandbox_clean: SandboxServer):
    response = password_grant(sandbox_clean.base_url, password="nope")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert response.json()["message"] == "The user credentials were incorrect."


def test_a_missing_field_or_grant_type_is_400(sandbox_clean: SandboxServer):
    missing = httpx.post(
        f"{sandbox_clean.base_url}/oauth/token",
        data={"grant_type": "password", "client_id": "sandbox-client"},
    )
    unknown = httpx.post(
        f"{sandbox_clean.base_url}/oauth/token", data={"grant_type": "client_credentials"}
    )

    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unsupported_grant_type")


def test_refresh_tokens_rotate_and_the_old_pair_is_revoked(sandbox_clean: SandboxServer):
    base = sandbox_clean.base_url
    first = password_grant(base).json()

    second = _refresh(base, first["refresh_token"])

    assert second.status_code == 200
    fresh = second.json()
    assert fresh["refresh_token"] != first["refresh_token"]
    assert _company(base, fresh["access_token"]).status_code == 200
    # the used refresh token is revoked, and so is the access token it came with
    reused = _refresh(base, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert reused.json()["message"] == "The refresh token is invalid."
    assert _company(base, first["access_token"]).status_code == 401


def test_a_refresh_token_only_works_with_its_own_client(sandbox_clean: SandboxServer):
    sandbox_clean.add_account("other-client", "other-secret", "other@einvoice.test", "pw")
    token = password_grant(sandbox_clean.base_url).json()["refresh_token"]

    response = _refresh(
        sandbox_clean.base_url, token, client_id="other-client", client_secret="other-secret"
    )

    assert response.status_code == 400


def test_v1_without_a_valid_bearer_token_is_401_unauthenticated(sandbox_clean: SandboxServer):
    base = sandbox_clean.base_url

    missing = httpx.get(f"{base}/v1/bills")
    garbage = _company(base, "not-a-token")

    for response in (missing, garbage):
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthenticated."}


def test_access_tokens_expire_after_the_configured_lifetime(sandbox_clean: SandboxServer):
    sandbox_clean.set_faults(token_expires_in=1)
    body = password_grant(sandbox_clean.base_url).json()
    assert body["expires_in"] == 1
    assert _company(sandbox_clean.base_url, body["access_token"]).status_code == 200

    time.sleep(1.2)

    assert _company(sandbox_clean.base_url, body["access_token"]).status_code == 401
    assert _refresh(sandbox_clean.base_url, body["refresh_token"]).status_code == 200
