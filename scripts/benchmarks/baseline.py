"""The bare loops that give B1 its bound: the workers' own payloads POSTed straight to the
simulator by one asyncio process (httpx at 50 in flight, aiohttp at 100)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter

import loadkit
from loadkit import Database

# ------------------------------------------------------------------------------------------
# The bare loops (the physical bound)
# ------------------------------------------------------------------------------------------


def password_token(base_url: str) -> str:
    """One access token of the simulator's default account (password grant, FACTUS_API.md §2)."""
    import httpx

    response = httpx.post(
        base_url + "/oauth/token",
        data={"grant_type": "password", **{k.lower(): v for k, v in {
            "client_id": loadkit.DEFAULT_FACTUS["FACTUS_CLIENT_ID"],
            "client_secret": loadkit.DEFAULT_FACTUS["FACTUS_CLIENT_SECRET"],
            "username": loadkit.DEFAULT_FACTUS["FACTUS_USERNAME"],
            "password": loadkit.DEFAULT_FACTUS["FACTUS_PASSWORD"]}.items()}},
        headers={"Accept": "application/json"}, timeout=30)
    response.raise_for_status()
    return str(response.json()["access_token"])


def baseline_bodies(db: Database, job_ids: list[uuid.UUID]) -> list[bytes]:
    """The payloads the workers sent for ``job_ids``, each with a new reference code, encoded."""
    with db.connect() as conn:
        rows = conn.execute("SELECT request_payload FROM electronic_invoicing_jobs "
                            "WHERE id = ANY(%s) AND request_payload IS NOT NULL",
                            (job_ids,)).fetchall()
    bodies = []
    for (stored,) in rows:
        payload = dict(stored)
        payload["reference_code"] = "BL" + str(payload["reference_code"])[2:]
        bodies.append(json.dumps(payload).encode())
    return bodies


def run_loop(kind: str, base_url: str, bodies: list[bytes], in_flight: int,
             api_version: str = "v2") -> tuple[int, float, dict[str, int]]:
    """POST every body to ``/<api_version>/bills/validate`` with ``in_flight`` concurrent
    requests, using ``kind`` (``httpx`` or ``aiohttp``). Returns (201 answers, elapsed seconds,
    other outcomes)."""
    token = password_token(base_url)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
               "Content-Type": "application/json"}
    url = f"{base_url}/{api_version}/bills/validate"
    errors: Counter[str] = Counter()
    ok = 0
    queue = iter(bodies)

    async def with_httpx() -> None:
        import httpx

        nonlocal ok
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:
            async def worker() -> None:
                nonlocal ok
                for body in queue:
                    try:
                        response = await http.post(url, content=body, headers=headers)
                    except httpx.HTTPError as exc:
                        errors[type(exc).__name__] += 1
                        continue
                    if response.status_code == 201:
                        ok += 1
                    else:
                        errors[str(response.status_code)] += 1
            await asyncio.gather(*(worker() for _ in range(in_flight)))

    async def with_aiohttp() -> None:
        import aiohttp

        nonlocal ok
        connector = aiohttp.TCPConnector(limit=in_flight)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            async def worker() -> None:
                nonlocal ok
                for body in queue:
                    try:
                        async with http.post(url, data=body, headers=headers) as response:
                            await response.read()
                            status = response.status
                    except aiohttp.ClientError as exc:
                        errors[type(exc).__name__] += 1
                        continue
                    if status == 201:
                        ok += 1
                    else:
                        errors[str(status)] += 1
            await asyncio.gather(*(worker() for _ in range(in_flight)))

    started = time.monotonic()
    asyncio.run(with_httpx() if kind == "httpx" else with_aiohttp())
    return ok, time.monotonic() - started, dict(errors)
