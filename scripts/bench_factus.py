"""Benchmark: how much throughput does ``FactusClient`` cost compared with a bare HTTP loop?

Both sides POST ``/v1/bills/validate`` to the Factus simulator (faults off, its rate limit off,
``--latency-ms`` of added latency per request, 200 ms by default, like a DIAN round trip would add
more) for ``--seconds`` each, with ``--concurrency`` requests in flight (50 by default):

* baseline: an ``asyncio`` loop of ``httpx.AsyncClient`` tasks sending a fixed token and a
  pre-encoded body, counting 201 answers: the most the simulator can give;
* client: the same number of threads sharing one ``FactusClient`` (pooled ``httpx.Client``,
  token manager, no client-side rate limit, tolerant parsing of every answer into ``BillResult``).

It prints ``BASELINE_RPS=``, ``CLIENT_RPS=`` and ``RATIO=`` (client / baseline) on their own lines,
plus error counts. Every request uses a new ``reference_code``. Short mode: ``--seconds 3``.

Usage::

    .venv/bin/python scripts/bench_factus.py [--seconds 10] [--concurrency 50] [--latency-ms 200]

Exit status: 0, or 1 when either side completed no request.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from einvoice.factus.client import FactusClient, build_http_client
from einvoice.factus.errors import FactusError
from einvoice.factus.ratelimit import NoRateLimit
from einvoice.factus.tokens import FactusAccount
from einvoice.sandbox.server import SandboxServer
from einvoice.settings import load_settings

CLIENT_ID, CLIENT_SECRET = "sandbox-client", "sandbox-secret"
USERNAME, PASSWORD = "sandbox@einvoice.test", "sandbox-password"


def payload(reference_code: str) -> dict[str, Any]:
    """A valid v1 bill for the simulator (FACTUS_API.md §3.6 shape) with ``reference_code``."""
    return {
        "numbering_range_id": 8,
        "reference_code": reference_code,
        "observation": "",
        "payment_form": "1",
        "payment_method_code": "10",
        "send_email": False,
        "customer": {
            "identification_document_id": 3,
            "identification": "1020304050",
            "names": "María Gómez",
            "address": "Cra 7 # 12-34",
            "email": "maria@example.com",
            "phone": "3001112233",
            "legal_organization_id": 2,
            "tribute_id": 21,
            "municipality_id": 980,
        },
        "items": [
            {
                "code_reference": "SKU-1",
                "name": "Café 500 g",
                "quantity": 2,
                "discount_rate": 0,
                "price": 23800,
                "tax_rate": "19.00",
                "unit_measure_id": 70,
                "standard_code_id": 1,
                "is_excluded": 0,
                "tribute_id": 1,
                "withholding_taxes": [],
            }
        ],
    }


@dataclass
class Tally:
    """Thread-safe counts of one side of the benchmark."""

    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def success(self) -> None:
        """Count one call that succeeded."""
        with self.lock:
            self.ok += 1

    def failure(self, reason: str) -> None:
        """Count one failed call under ``reason`` (an error's reason code)."""
        with self.lock:
            self.errors[reason] = self.errors.get(reason, 0) + 1


def password_token(base_url: str) -> str:
    """One access token for the baseline loop (form-encoded password grant, §2)."""
    response = httpx.post(
        base_url + "/oauth/token",
        data={
            "grant_type": "password",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "username": USERNAME,
            "password": PASSWORD,
        },
        headers={"Accept": "application/json"},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def _baseline(base_url: str, token: str, seconds: float, concurrency: int) -> Tally:
    tally = Tally()
    counter = itertools.count()
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                body = json.dumps(payload(f"BASE-{next(counter)}")).encode()
                try:
                    response = await http.post("/v1/bills/validate", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    tally.failure(type(exc).__name__)
                    continue
                if response.status_code == 201:
                    tally.success()
                else:
                    tally.failure(str(response.status_code))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


def run_baseline(base_url: str, seconds: float, concurrency: int) -> tuple[Tally, float]:
    """The bare async loop; returns its tally and the elapsed seconds."""
    token = password_token(base_url)
    started = time.monotonic()
    tally = asyncio.run(_baseline(base_url, token, seconds, concurrency))
    return tally, time.monotonic() - started


def run_client(base_url: str, seconds: float, concurrency: int) -> tuple[Tally, float]:
    """``FactusClient`` from a pool of ``concurrency`` threads; returns its tally and seconds."""
    settings = load_settings(factus_max_connections=concurrency, factus_base_url=base_url)
    account = FactusAccount(
        key="bench",
        environment="sandbox",
        base_url=base_url,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        username=USERNAME,
        password=SecretStr(PASSWORD),
    )
    tally = Tally()
    counter = itertools.count()
    with build_http_client(settings) as http:
        client = FactusClient(account, http=http, limiter=NoRateLimit())
        client.tokens.access_token()  # steady state: the baseline's token is also taken up front
        deadline = time.monotonic() + seconds

        def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    result = client.validate_bill(payload(f"CLIENT-{next(counter)}"))
                except FactusError as exc:
                    tally.failure(exc.reason)
                    continue
                if result.is_validated:
                    tally.success()
                else:
                    tally.failure("not_validated")

        started = time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool:
            for future in [pool.submit(worker) for _ in range(concurrency)]:
                future.result()
        return tally, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    """Run both sides against a fresh simulator and print the figures. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each side")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="simulator latency")
    args = parser.parse_args(argv)

    with SandboxServer(latency_ms=args.latency_ms, rate_limit_per_minute=None) as sandbox:
        baseline, baseline_seconds = run_baseline(sandbox.base_url, args.seconds, args.concurrency)
        sandbox.reset()
        client, client_seconds = run_client(sandbox.base_url, args.seconds, args.concurrency)

    baseline_rps = baseline.ok / baseline_seconds
    client_rps = client.ok / client_seconds
    ratio = client_rps / baseline_rps if baseline_rps else 0.0
    print(
        f"# {args.concurrency} in flight, {args.latency_ms:.0f} ms simulator latency, "
        f"{args.seconds:g} s per side"
    )
    print(f"BASELINE_RPS={baseline_rps:.1f}")
    print(f"CLIENT_RPS={client_rps:.1f}")
    print(f"RATIO={ratio:.3f}")
    print(f"BASELINE_ERRORS={json.dumps(baseline.errors, sort_keys=True)}")
    print(f"CLIENT_ERRORS={json.dumps(client.errors, sort_keys=True)}")
    return 0 if baseline.ok and client.ok else 1


if __name__ == "__main__":
    sys.exit(main())
