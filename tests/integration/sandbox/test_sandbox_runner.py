"""``SandboxServer`` and ``python -m einvoice.sandbox``: startup flags, startup accounts, failures."""

from __future__ import annotations

import httpx
import pytest

from einvoice.sandbox.server import SandboxServer, SandboxServerError
from einvoice.sandbox.state import AccountSpec
from tests.fixtures.payloads import v1_bill
from tests.integration.sandbox.sandbox_http import client_for

TENANT = AccountSpec(
    client_id="boot-client",
    client_secret="boot-secret",
    username="boot@einvoice.test",
    password="boot-password",
)


def test_startup_faults_and_accounts_reach_the_child_process_and_survive_resets():
    with SandboxServer(
        dian_slow=1.0, rate_limit_per_minute=None, token_expires_in=600, seed=9, accounts=[TENANT]
    ) as server:
        faults = server.faults()
        with client_for(
            server.base_url,
            client_id="boot-client",
            client_secret="boot-secret",
            username="boot@einvoice.test",
            password="boot-password",
        ) as tenant:
            answer = tenant.post("/v1/bills/validate", json=v1_bill("BOOT-1"))
        server.reset(drop_added_accounts=True)
        accounts = [a["key"] for a in httpx.get(f"{server.base_url}/__sandbox/accounts").json()]

    assert (
        faults["dian_slow"],
        faults["rate_limit_per_minute"],
        faults["token_expires_in"],
        faults["seed"],
    ) == (1.0, None, 600, 9)
    assert answer.status_code == 201
    assert answer.json()["data"]["bill"]["status"] == 0
    assert "X-RateLimit-Limit" not in answer.headers
    assert accounts == ["sandbox-client/sandbox@einvoice.test", "boot-client/boot@einvoice.test"]


def test_a_port_already_taken_is_reported_with_the_servers_own_words(sandbox: SandboxServer):
    with pytest.raises(SandboxServerError, match="exited with code"):
        SandboxServer(port=sandbox.port, startup_timeout=10).start()


def test_base_url_needs_a_running_server():
    with pytest.raises(SandboxServerError):
        _ = SandboxServer().base_url
