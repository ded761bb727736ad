"""Command line of the simulator: ``einvoice sandbox serve`` (and ``python -m einvoice.sandbox``).

Every flag sets a startup fault or limit (see :mod:`einvoice.sandbox.faults`); the same settings can
be changed at run time with ``POST /__sandbox/faults``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from einvoice.sandbox.server import ACCOUNTS_ENV, MODES, serve
from einvoice.sandbox.state import AccountSpec

app = typer.Typer(
    help="The Factus v1/v2 sandbox simulator (the other side of the wire).", no_args_is_help=True
)


def _account(value: str, mode: str = "both") -> AccountSpec:
    parts = value.split(":", 3)
    if len(parts) != 4 or not all(parts):
        raise typer.BadParameter("expected client_id:client_secret:username:password")
    return AccountSpec(
        client_id=parts[0],
        client_secret=parts[1],
        username=parts[2],
        password=parts[3],
        v1_enabled=MODES[mode]["v1_enabled"],
        v2_enabled=MODES[mode]["v2_enabled"],
    )


def _accounts_json(value: str | None) -> list[AccountSpec]:
    if not value:
        return []
    try:
        return [AccountSpec(**spec) for spec in json.loads(value)]
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(f"invalid accounts JSON: {exc}") from exc


@app.callback()
def main() -> None:
    """The Factus v1 sandbox simulator."""


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8787,
    latency_ms: Annotated[float, typer.Option(help="Added latency per request, ms.")] = 0.0,
    latency_jitter_ms: Annotated[
        float, typer.Option(help="Uniform ± jitter on the latency, ms.")
    ] = 0.0,
    fault_500: Annotated[float, typer.Option(help="Share of requests answered 500.")] = 0.0,
    fault_503: Annotated[float, typer.Option(help="Share of requests answered 503.")] = 0.0,
    fault_timeout: Annotated[
        float,
        typer.Option(
            help="Share of new documents stored and validated, then left hanging and dropped."
        ),
    ] = 0.0,
    fault_429: Annotated[float, typer.Option(help="Share of requests answered 429.")] = 0.0,
    fault_dian_rejection: Annotated[
        float, typer.Option(help="Share of new documents DIAN rejects.")
    ] = 0.0,
    fault_dian_slow: Annotated[
        float, typer.Option(help="Share of new documents left pending (status 0).")
    ] = 0.0,
    fault_dian_stuck: Annotated[
        float, typer.Option(help="Share of new documents left pending for good (resends too).")
    ] = 0.0,
    fault_invalid_cufe: Annotated[
        float, typer.Option(help="Share of new documents answered with an invalid CUFE/CUDE.")
    ] = 0.0,
    token_latency_ms: Annotated[
        float, typer.Option(help="Added latency of POST /oauth/token only, ms.")
    ] = 0.0,
    fault_expired_token: Annotated[
        float, typer.Option(help="Share of /v1 requests whose token expires.")
    ] = 0.0,
    rate_limit: Annotated[
        int, typer.Option(help="Requests per minute per account; 0 disables.")
    ] = 80,
    token_expires_in: Annotated[int, typer.Option(help="Access-token lifetime, seconds.")] = 3600,
    timeout_hang_seconds: Annotated[
        float, typer.Option(help="How long a timeout fault hangs, seconds.")
    ] = 35.0,
    retry_after_seconds: Annotated[
        int, typer.Option(help="Retry-After of an injected 429, seconds.")
    ] = 1,
    seed: Annotated[
        int | None, typer.Option(help="Seed: the same requests get the same faults.")
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option(help="Extra account client_id:client_secret:username:password (repeatable)."),
    ] = None,
    v2_account: Annotated[
        list[str] | None,
        typer.Option(
            help="Extra v2-only account (403 on /v1, like a Factus account opened today), "
            "client_id:client_secret:username:password (repeatable)."
        ),
    ] = None,
    v1_account: Annotated[
        list[str] | None,
        typer.Option(
            help="Extra v1-only account (403 on /v2), client_id:client_secret:username:password "
            "(repeatable)."
        ),
    ] = None,
    accounts_json: Annotated[
        str | None,
        typer.Option(
            envvar=ACCOUNTS_ENV,
            show_envvar=True,
            help="Extra accounts as a JSON list of objects with the fields of POST /__sandbox/accounts.",
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the simulator until interrupted (Ctrl-C)."""
    accounts = (
        [_account(value) for value in account or []]
        + [_account(value, "v2") for value in v2_account or []]
        + [_account(value, "v1") for value in v1_account or []]
        + _accounts_json(accounts_json)
    )
    typer.echo(f"Factus sandbox simulator on http://{host}:{port}", err=True)
    serve(
        host,
        port,
        accounts=accounts,
        access_log=access_log,
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        error_500=fault_500,
        error_503=fault_503,
        timeout_after_store=fault_timeout,
        rate_limit_429=fault_429,
        dian_rejection=fault_dian_rejection,
        dian_slow=fault_dian_slow,
        dian_stuck=fault_dian_stuck,
        invalid_cufe=fault_invalid_cufe,
        token_latency_ms=token_latency_ms,
        expired_token=fault_expired_token,
        rate_limit_per_minute=rate_limit or None,
        token_expires_in=token_expires_in,
        timeout_hang_seconds=timeout_hang_seconds,
        retry_after_seconds=retry_after_seconds,
        seed=seed,
    )
