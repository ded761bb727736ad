"""Fixtures of the simulator's integration tests (a real simulator process, reached with httpx)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from einvoice.sandbox.server import SandboxServer
from tests.fixtures.sandbox import sandbox, sandbox_clean  # noqa: F401 - fixtures
from tests.integration.sandbox.sandbox_http import client_for


@pytest.fixture
def api(sandbox_clean: SandboxServer) -> Iterator[httpx.Client]:  # noqa: F811 - the imported fixture
    """An authenticated client of the default account on a freshly reset simulator."""
    with client_for(sandbox_clean.base_url) as client:
        yield client
