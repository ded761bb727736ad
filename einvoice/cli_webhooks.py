"""``einvoice webhooks ...``: an organization's webhook endpoints and their deliveries, thin
commands over :mod:`einvoice.services.webhooks` (docs/webhooks.md).

Mounted by :func:`einvoice.cli._mount_optional_groups` as the ``webhooks`` group. The secret of
a new endpoint is printed once, by ``add``, and never again (it is stored encrypted with
``EINVOICE_SECRET_KEY``).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from einvoice.cli import _print_json, _session_factory, console, friendly_errors
from einvoice.domain.jobs import FollowupStatus

webhooks_app = typer.Typer(no_args_is_help=True,
                           help="Signed outcome webhooks (Standard Webhooks) to ERP endpoints.")


def _endpoint_dict(view: Any) -> dict[str, Any]:
    return {"id": str(view.id), "organization_id": view.organization_id, "url": view.url,
            "event_types": list(view.event_types), "description": view.description,
            "disabled_at": view.disabled_at, "created_at": view.created_at}


def _delivery_dict(row: Any) -> dict[str, Any]:
    return {"id": str(row.id), "job_id": str(row.job_id), "endpoint_id": str(row.endpoint_id),
            "organization_id": row.organization_id, "event_type": row.event_type,
            "event_id": row.event_id, "status": row.status, "attempt_count": row.attempt_count,
            "max_attempts": row.max_attempts, "attempts_logged": row.attempts,
            "last_response_status": row.last_status, "last_error": row.last_error,
            "last_attempt_at": row.last_attempt_at, "next_retry_at": row.next_retry_at,
            "error_code": row.error_code, "created_at": row.created_at,
            "completed_at": row.completed_at}


@webhooks_app.command("add")
@friendly_errors
def webhooks_add(
    org: int = typer.Option(..., "--org", help="The organization (organizations.id)."),
    url: str = typer.Option(..., "--url", help="http:// or https:// URL to POST events to."),
    event: list[str] = typer.Option(
        [], "--event", help="An event type to receive (repeat it); none given: every type."),
    description: str = typer.Option(None, "--description", help="A note for operators."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Register an endpoint; prints its signing secret ONCE (store it in the receiver)."""
    from einvoice.crypto import SecretBox  # noqa: PLC0415
    from einvoice.services.webhooks import add_endpoint  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    box = SecretBox.from_settings(get_settings())
    with _session_factory()() as session:
        created = add_endpoint(session, box, organization_id=org, url=url, event_types=event,
                               description=description)
        session.commit()
    if as_json:
        _print_json({**_endpoint_dict(created.endpoint), "secret": created.secret})
        return
    types = ", ".join(created.endpoint.event_types) or "every event type"
    console.print(f"[green]endpoint {created.endpoint.id} added for organization {org}[/green] "
                  f"({escape(created.endpoint.url)}, {types})", soft_wrap=True, highlight=False)
    console.print("signing secret (shown once; give it to the receiver):", highlight=False)
    typer.echo(created.secret)


@webhooks_app.command("list")
@friendly_errors
def webhooks_list(
    org: int = typer.Option(None, "--org", help="Only this organization."),
    deliveries: bool = typer.Option(False, "--deliveries",
                                    help="Recent deliveries instead of endpoints."),
    endpoint: str = typer.Option(None, "--endpoint", help="Deliveries of this endpoint only."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="Deliveries to show."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Endpoints (no secrets), or with --deliveries the recent deliveries with their status,
    attempts and the last HTTP status."""
    from rich.table import Table  # noqa: PLC0415

    from einvoice.services.webhooks import list_deliveries, list_endpoints  # noqa: PLC0415

    with _session_factory()() as session:
        if deliveries or endpoint:
            rows = [_delivery_dict(r) for r in list_deliveries(
                session, organization_id=org, endpoint_id=endpoint, limit=limit)]
        else:
            rows = [_endpoint_dict(v) for v in list_endpoints(session, org)]
    if as_json:
        _print_json(rows)
        return
    if deliveries or endpoint:
        table = Table(title="webhook deliveries (newest first)")
        for col in ("delivery", "event", "job", "status", "tries", "last HTTP", "last error"):
            table.add_column(col)
        for d in rows:
            last = "-" if d["last_response_status"] is None else str(d["last_response_status"])
            table.add_row(d["id"], d["event_type"], d["job_id"][:8], d["status"],
                          f"{d['attempt_count']}/{d['max_attempts']}", last,
                          escape((d["last_error"] or "")[:60]))
    else:
        table = Table(title="webhook endpoints")
        for col in ("endpoint", "org", "url", "events", "state"):
            table.add_column(col)
        for e in rows:
            table.add_row(e["id"], str(e["organization_id"]), escape(e["url"]),
                          ", ".join(e["event_types"]) or "all",
                          "disabled" if e["disabled_at"] else "enabled")
    console.print(table)


@webhooks_app.command("attempts")
@friendly_errors
def webhooks_attempts(delivery_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """The attempt log of one delivery: HTTP status, error and duration of every try."""
    from rich.table import Table  # noqa: PLC0415

    from einvoice.services.webhooks import delivery_attempts  # noqa: PLC0415

    with _session_factory()() as session:
        attempts = delivery_attempts(session, delivery_id)
    if as_json:
        _print_json(attempts)
        return
    table = Table(title=f"attempts of delivery {delivery_id}")
    for col in ("#", "at", "HTTP", "ms", "error"):
        table.add_column(col)
    for a in attempts:
        table.add_row(str(a["attempt"]), str(a["created_at"]),
                      "-" if a["response_status"] is None else str(a["response_status"]),
                      "-" if a["duration_ms"] is None else str(a["duration_ms"]),
                      escape(a["error"] or ""))
    console.print(table)


@webhooks_app.command("test")
@friendly_errors
def webhooks_test(endpoint_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Send a signed webhook.test event to one endpoint (retried like any delivery)."""
    from einvoice.services.webhooks import send_test  # noqa: PLC0415

    with _session_factory()() as session:
        delivery_id = send_test(session, endpoint_id, actor="cli")
        session.commit()
    if as_json:
        _print_json({"endpoint_id": endpoint_id, "delivery_id": str(delivery_id)})
    else:
        console.print(f"[green]test event queued (delivery {delivery_id}); see `einvoice "
                      f"webhooks attempts {delivery_id}`[/green]", soft_wrap=True)


@webhooks_app.command("redeliver")
@friendly_errors
def webhooks_redeliver(delivery_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Send a delivery again from attempt 1 with the same webhook-id (receivers deduplicate)."""
    from einvoice.services.webhooks import redeliver  # noqa: PLC0415

    with _session_factory()() as session:
        key = redeliver(session, delivery_id, actor="cli")
        session.commit()
    if as_json:
        _print_json({"delivery_id": str(key), "status": FollowupStatus.PENDING.value})
    else:
        console.print(f"[green]delivery {key} queued again[/green]", soft_wrap=True)


@webhooks_app.command("disable")
@friendly_errors
def webhooks_disable(endpoint_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Disable an endpoint: no new deliveries; its pending ones fail without being sent."""
    from einvoice.services.webhooks import disable_endpoint  # noqa: PLC0415

    with _session_factory()() as session:
        view = disable_endpoint(session, endpoint_id)
        session.commit()
    if as_json:
        _print_json(_endpoint_dict(view))
    else:
        console.print(f"[yellow]endpoint {view.id} disabled[/yellow]", soft_wrap=True)
