"""``einvoice api serve`` and ``einvoice api-keys create|list|revoke``: the HTTP API's commands.

Mounted by :func:`einvoice.cli._mount_optional_groups` (``api_app`` as ``api``, ``keys_app`` as
``api-keys``). A key is printed once, at creation; lists show its prefix, never the key.
"""

from __future__ import annotations

import typer

from einvoice.cli import _print_json, _session_factory, console, friendly_errors

api_app = typer.Typer(no_args_is_help=True, help="The HTTP API for ERPs (FastAPI).")
keys_app = typer.Typer(no_args_is_help=True, help="API keys of an organization.")


@api_app.command("serve")
@friendly_errors
def api_serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    key_cache_seconds: float = typer.Option(
        30.0, "--key-cache-seconds", help="How long a key's check is reused (the longest a "
        "revoked key keeps working)."),
) -> None:
    """Serve the API with uvicorn (one process; OpenAPI at /docs and /openapi.json)."""
    import uvicorn  # noqa: PLC0415
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415

    from einvoice import logs, metrics  # noqa: PLC0415
    from einvoice.api import create_app  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    # EINVOICE_LOG_FORMAT for every line, uvicorn's too (with json, its loggers get no
    # handlers of their own and write through the root's); this process's own Factus
    # counters go to PROMETHEUS_MULTIPROC_DIR with the workers'.
    logs.configure(settings)
    metrics.setup(settings.prometheus_multiproc_dir)
    app = create_app(settings, key_cache_seconds=key_cache_seconds)
    json_logs = settings.einvoice_log_format == "json"
    # uvicorn's own access log would repeat einvoice.api.access without the organization.
    uvicorn.run(app, host=host, port=port, access_log=False, proxy_headers=True,
                log_level="info", log_config=None if json_logs else LOGGING_CONFIG)


@keys_app.command("create")
@friendly_errors
def keys_create(
    org: int = typer.Option(..., "--org", help="The organization the key acts for."),
    name: str = typer.Option("default", "--name", help="What the key is for (shown in lists)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a key and print it once: it is stored only as a hash and cannot be shown again."""
    from einvoice.services.api_keys import create_key  # noqa: PLC0415

    with _session_factory()() as session:
        created = create_key(session, org, name)
        result = {"organization_id": org, "name": created.row.name,
                  "prefix": created.row.prefix, "key": created.key,
                  "created_at": created.row.created_at}
        session.commit()
    if as_json:
        _print_json(result)
        return
    console.print(f"[green]key {result['prefix']} created for organization {org}[/green]")
    console.print(created.key, highlight=False, soft_wrap=True)
    console.print("[yellow]Copy it now: it is shown only this once.[/yellow]")


@keys_app.command("list")
@friendly_errors
def keys_list(
    org: int = typer.Option(..., "--org"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The organization's keys: prefix, name, created, last used, revoked (never the key)."""
    from rich.table import Table  # noqa: PLC0415

    from einvoice.services.api_keys import list_keys  # noqa: PLC0415

    with _session_factory()() as session:
        rows = [{"prefix": k.prefix, "name": k.name, "created_at": k.created_at,
                 "last_used_at": k.last_used_at, "revoked_at": k.revoked_at}
                for k in list_keys(session, org)]
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"API keys of organization {org}")
    for col in ("prefix", "name", "created", "last used", "revoked"):
        table.add_column(col)
    for row in rows:
        table.add_row(str(row["prefix"]), str(row["name"]), str(row["created_at"])[:19],
                      str(row["last_used_at"] or "")[:19], str(row["revoked_at"] or "")[:19])
    console.print(table)


@keys_app.command("revoke")
@friendly_errors
def keys_revoke(
    prefix: str = typer.Argument(..., help="The key's prefix (8 characters, from the list)."),
    org: int = typer.Option(..., "--org"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Revoke a key: refused at once by a new API process, within the key cache's TTL (30 s by
    default) by a running one."""
    from einvoice.services.api_keys import revoke_key  # noqa: PLC0415

    with _session_factory()() as session:
        key = revoke_key(session, org, prefix)
        result = {"prefix": key.prefix, "name": key.name, "revoked_at": key.revoked_at}
        session.commit()
    if as_json:
        _print_json(result)
    else:
        console.print(f"[green]key {result['prefix']} revoked[/green]")
