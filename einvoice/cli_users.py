"""``einvoice users create|list|disable|unlock|password``: the operator console's accounts.

Mounted by :func:`einvoice.cli._mount_optional_groups` as ``users``. A password is never an
option (it would stay in the shell's history and in ``ps``): it is asked twice at a prompt, or
read from standard input with ``--password-stdin`` (one line, for scripts). Lists never show a
hash.
"""

from __future__ import annotations

import sys

import typer

from einvoice.cli import _print_json, _session_factory, console, friendly_errors

users_app = typer.Typer(no_args_is_help=True,
                        help="Accounts of the operator console (/console): viewer, operator, admin.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("create")
@friendly_errors
def users_create(
    username: str = typer.Option(..., "--username", help="Sign-in name (stored in lower case)."),
    role: str = typer.Option(..., "--role", help="viewer (reads), operator (also acts on jobs) "
                             "or admin (also configures accounts, ranges, webhooks, API keys)."),
    org: int = typer.Option(None, "--org", help="Only this organization (default: all)."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from standard input."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a console account; the password is asked twice (or read with --password-stdin)."""
    from einvoice.services.console_auth import create_user  # noqa: PLC0415

    password = _read_password(password_stdin)
    with _session_factory()() as session:
        user = create_user(session, username=username, password=password, role=role,
                           organization_id=org)
        result = {"username": user.username, "role": user.role,
                  "organization_id": user.organization_id, "created_at": user.created_at}
        session.commit()
    if as_json:
        _print_json(result)
        return
    scope = f"organization {org}" if org is not None else "every organization"
    console.print(f"[green]user {result['username']} created ({role}, {scope})[/green]")


@users_app.command("list")
@friendly_errors
def users_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every account: role, organization, state (active, locked, disabled), last sign-in."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from rich.table import Table  # noqa: PLC0415

    from einvoice.services.console_auth import list_users  # noqa: PLC0415

    now = datetime.now(UTC)
    with _session_factory()() as session:
        rows = [{"username": u.username, "role": u.role, "organization_id": u.organization_id,
                 "state": ("disabled" if u.disabled_at else
                           "locked" if u.locked_until and u.locked_until > now else "active"),
                 "failed_attempts": u.failed_attempts, "locked_until": u.locked_until,
                 "last_sign_in_at": u.last_sign_in_at, "created_at": u.created_at}
                for u in list_users(session)]
    if as_json:
        _print_json(rows)
        return
    table = Table(title="Console users")
    for col in ("username", "role", "organization", "state", "last sign-in", "created"):
        table.add_column(col)
    for row in rows:
        org = row["organization_id"]
        table.add_row(str(row["username"]), str(row["role"]),
                      "all" if org is None else str(org), str(row["state"]),
                      str(row["last_sign_in_at"] or "")[:19], str(row["created_at"])[:19])
    console.print(table)


@users_app.command("disable")
@friendly_errors
def users_disable(username: str = typer.Argument(...)) -> None:
    """Turn an account off: it is signed out everywhere at once and it can no longer sign in."""
    from einvoice.services.console_auth import disable_user  # noqa: PLC0415

    with _session_factory()() as session:
        user = disable_user(session, username)
        name = user.username
        session.commit()
    console.print(f"[green]user {name} disabled[/green]")


@users_app.command("unlock")
@friendly_errors
def users_unlock(username: str = typer.Argument(...)) -> None:
    """Lift a lock-out (5 failed sign-ins lock an account for 15 minutes)."""
    from einvoice.services.console_auth import unlock_user  # noqa: PLC0415

    with _session_factory()() as session:
        user = unlock_user(session, username)
        name = user.username
        session.commit()
    console.print(f"[green]user {name} unlocked[/green]")


@users_app.command("password")
@friendly_errors
def users_password(
    username: str = typer.Argument(...),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from standard input."),
) -> None:
    """Set a new password (asked twice); the account is signed out everywhere and a lock-out
    is lifted."""
    from einvoice.services.console_auth import set_password  # noqa: PLC0415

    password = _read_password(password_stdin)
    with _session_factory()() as session:
        user = set_password(session, username, password)
        name = user.username
        session.commit()
    console.print(f"[green]password of {name} changed[/green]")
