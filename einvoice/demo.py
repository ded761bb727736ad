"""``make demo`` / ``einvoice demo``: the main job end to end on one machine.

What it does, in order:

0. refuses to run at all when ``FACTUS_ENVIRONMENT`` is ``production`` or ``FACTUS_BASE_URL``
   names the production Factus host (:func:`refuse_production`): its synthetic invoices would be
   real DIAN documents and use up real numbers of the account's numbering ranges;
1. starts the embedded PostgreSQL and Redis (:mod:`einvoice.devservices`, folder ``.einvoice/demo``);
2. starts the Factus simulator with a realistic DIAN latency (a few hundred ms to over a second)
   and a small share of faults (503s, DIAN slow), and registers the demo account in it: v2-only
   like a Factus account opened today, found by ``FACTUS_API_VERSION=auto`` (its first v1 call
   is refused and the account is stored as v2), or, with ``--api v1|v2``, an account of that
   version only with ``FACTUS_API_VERSION`` set to it — unless ``FACTUS_BASE_URL`` and the four
   ``FACTUS_*`` credentials point at a real Factus account, which is then used instead;
3. recreates the demo database, migrates it and loads the deterministic sample ERP dataset
   (:mod:`einvoice.sample`);
4. starts a Celery worker (threads pool), beat, Flower (:mod:`einvoice.launch`) and the HTTP API
   (``einvoice api serve``), creates an API key per organization and registers a webhook
   endpoint per organization on a receiver in this process (:mod:`einvoice.demo_erp`), which
   verifies every delivery's signature;
5. enqueues every invoice: a third through the Python producer (:func:`enqueue_invoice`), a third
   as plain SQL inserts and a third over HTTP, as ERPs in other languages would; credit notes too;
6. shows progress until every job is final, then prints the summary: counts by status, time,
   invoices per minute, each accepted invoice's number and CUFE, each rejection's reason, the
   webhooks received and verified, and the Flower and API URLs. ``--keep`` leaves everything
   running for exploring.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select, text

from einvoice.devservices import DevServices, free_port, project_root
from einvoice.errors import ConfigError
from einvoice.launch import (
    WORKER_READY,
    ChildProcess,
    ProcessGroup,
    beat_args,
    celery_command,
    einvoice_command,
    flower_args,
    worker_args,
)
from einvoice.settings import FACTUS_URLS

DEMO_DB = "einvoice_demo"
SANDBOX_CREDENTIALS = {
    "FACTUS_CLIENT_ID": "demo-client",
    "FACTUS_CLIENT_SECRET": "demo-secret",
    "FACTUS_USERNAME": "demo@einvoice.test",
    "FACTUS_PASSWORD": "demo-password",
}


@dataclass
class DemoOptions:
    """Knobs of a demo run (all have CLI flags)."""

    seed: int = 7
    invoices: int = 240
    keep: bool = False
    timeout: float = 600.0
    concurrency: int = 32
    latency_ms: int = 700
    latency_jitter_ms: int = 500
    fault_share: float = 0.03
    flower_port: int = 5555
    # The simulator demo account's API version ("v1" or "v2", also set as FACTUS_API_VERSION);
    # None: a v2-only account with FACTUS_API_VERSION=auto, which finds it.
    api_version: str | None = None


def _configured(name: str, environ: Mapping[str, str], env_files: Iterable[Path]) -> list[str]:
    """The values of variable ``name`` the demo's processes may see, as pydantic-settings reads them.

    The process environment wins (names are case-insensitive); without it, each ``.env`` file
    that exists may supply the value.
    """
    from dotenv import dotenv_values  # noqa: PLC0415 - pydantic-settings' own .env reader

    found = [value for key, value in environ.items() if key.upper() == name]
    if found:
        return found
    for env_file in env_files:
        if env_file.is_file():
            found += [v for k, v in dotenv_values(env_file).items() if k.upper() == name and v]
    return found


def refuse_production(
    environ: Mapping[str, str] | None = None, env_files: Iterable[Path] | None = None
) -> None:
    """Stop the demo before it starts anything when it could reach the production Factus.

    Inputs:
        environ: the environment the demo and its workers inherit (default ``os.environ``).
        env_files: the ``.env`` files the settings may read (default: the current folder's and
            the checkout's, the workers' working folder).

    Raises:
        ConfigError: ``FACTUS_ENVIRONMENT`` is ``production`` (any case), or ``FACTUS_BASE_URL``
            names the production host (``FACTUS_URLS["production"]``, FACTUS_API.md). The demo's
            invoices are synthetic; in production each would become a legal DIAN document and
            consume a real number of the numbering range.
    """
    environ = os.environ if environ is None else environ
    files = list(env_files) if env_files is not None else [
        Path.cwd() / ".env", project_root() / ".env"]
    production_host = urlsplit(FACTUS_URLS["production"]).hostname
    if any(v.strip().lower() == "production"
           for v in _configured("FACTUS_ENVIRONMENT", environ, files)):
        raise ConfigError(
            "einvoice demo refuses FACTUS_ENVIRONMENT=production: its synthetic invoices would "
            "become real DIAN documents and use up real numbers; unset FACTUS_ENVIRONMENT or set "
            "it to sandbox",
            reason="demo_refuses_production",
        )
    if any(urlsplit(v.strip()).hostname == production_host
           for v in _configured("FACTUS_BASE_URL", environ, files)):
        raise ConfigError(
            f"einvoice demo refuses FACTUS_BASE_URL={FACTUS_URLS['production']} (production "
            "Factus): its synthetic invoices would become real DIAN documents and use up real "
            "numbers; unset FACTUS_BASE_URL or point it at the sandbox",
            reason="demo_refuses_production",
        )


def _real_factus_configured() -> bool:
    return bool(os.environ.get("FACTUS_BASE_URL")) and all(
        os.environ.get(name) for name in SANDBOX_CREDENTIALS)


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo; return the process exit status (0 when every job ended final).

    Raises:
        ConfigError: the environment points at the production Factus (:func:`refuse_production`);
            raised before anything starts.
        einvoice.devservices.ServiceError: PostgreSQL or Redis could not start.
        einvoice.launch.LaunchError: the Celery worker exited, or was not ready within 60 s.
    """
    refuse_production()
    from einvoice.db import migrate  # noqa: PLC0415
    from einvoice.db.engine import make_engine, make_session_factory  # noqa: PLC0415
    from einvoice.db.models import ElectronicInvoicingJob  # noqa: PLC0415
    from einvoice.demo_erp import WebhookReceiver, wait_healthy  # noqa: PLC0415
    from einvoice.sample import generate_sample  # noqa: PLC0415

    out = console or Console()
    # `timeout` or a supervisor stops us with SIGTERM: unwind through `finally` like Ctrl-C, so
    # the worker, beat, Flower, the simulator and the services are stopped too.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    base = project_root() / ".einvoice" / "demo"
    services = DevServices.load(base)
    services.base_dir = base
    if services.pg_port == 55432:  # not the developer's own services' ports
        services.pg_port, services.redis_port = 55433, 56380
    out.rule("[bold]einvoice demo")
    out.print("starting PostgreSQL and Redis (embedded, no Docker)...")
    env_vars = services.up()
    log_dir = base / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    with psycopg.connect(services.postgres.admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DEMO_DB}"')
    db_url = services.postgres.url.rsplit("/", 1)[0] + f"/{DEMO_DB}"
    import redis  # noqa: PLC0415

    redis.Redis.from_url(services.redis.url).flushall()

    env = dict(os.environ)
    env.update(env_vars)
    env.update(DATABASE_URL=db_url, PYTHONUNBUFFERED="1", EINVOICE_DISPATCH_INTERVAL="1",
               EINVOICE_DIAN_SLOW_RECHECK_SECONDS="3", EINVOICE_RETRY_BASE_SECONDS="1",
               EINVOICE_RETRY_CAP_SECONDS="20", EINVOICE_REDISPATCH_SECONDS="30")
    procs = ProcessGroup()
    sandbox = None
    receiver = WebhookReceiver(free_port()).start()
    try:
        if _real_factus_configured():
            out.print(f"using the real Factus account at [b]{env['FACTUS_BASE_URL']}[/b]")
        else:
            from einvoice.sandbox.server import SandboxServer  # noqa: PLC0415

            share = options.fault_share
            sandbox = SandboxServer(
                latency_ms=options.latency_ms, latency_jitter_ms=options.latency_jitter_ms,
                error_503=share / 2, error_500=share / 4, dian_slow=share / 3, seed=options.seed,
                rate_limit_per_minute=None,
            ).start()
            register_demo_account(sandbox, options.api_version)
            # The simulator has no rate limit in the demo; our client's shared limiter still
            # paces every call (a real account gets the default 80/min).
            env.update(SANDBOX_CREDENTIALS, FACTUS_BASE_URL=sandbox.base_url,
                       FACTUS_ENVIRONMENT="sandbox", FACTUS_RATE_LIMIT_PER_MINUTE="1200",
                       FACTUS_API_VERSION=options.api_version or "auto")
            out.print(f"Factus simulator at [b]{sandbox.base_url}[/b] "
                      f"(latency {options.latency_ms}±{options.latency_jitter_ms} ms, "
                      f"{share:.0%} faults); demo account "
                      f"{'v2-only, FACTUS_API_VERSION=auto' if options.api_version is None else options.api_version + '-only'}")
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
                                                "EINVOICE_SECRET_KEY")})
        migrate.upgrade(db_url)
        engine = make_engine(db_url)
        factory = make_session_factory(engine)
        with factory() as session:
            # The demo account speaks v2 unless --api v1: v2 has no ReteICA code.
            sample = generate_sample(session, seed=options.seed, invoices=options.invoices,
                                     api_version=options.api_version or "v2")
            session.commit()
        out.print(f"loaded the sample ERP: {len(sample.organization_ids)} organizations, "
                  f"{len(sample.valid_invoice_ids) + len(sample.wrong_invoices)} invoices "
                  f"({len(sample.wrong_invoices)} wrong on purpose), "
                  f"{len(sample.credit_note_ids)} credit notes")

        worker = procs.spawn(ChildProcess(
            "worker", celery_command(*worker_args(concurrency=options.concurrency,
                                                  name="demo@%h")),
            env, log_dir / "worker.log"))
        procs.spawn(ChildProcess("beat", celery_command(*beat_args(log_dir / "beat-schedule")),
                                 env, log_dir / "beat.log"))
        flower_port = options.flower_port if not _port_busy(options.flower_port) else free_port()
        procs.spawn(ChildProcess("flower", celery_command(*flower_args(flower_port)), env,
                                 log_dir / "flower.log"))
        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        procs.spawn(ChildProcess("api", einvoice_command("api", "serve", "--port", str(api_port)), env, log_dir / "api.log"))
        api_keys = _connect_erp(factory, env["EINVOICE_SECRET_KEY"], sample.organization_ids,
                                receiver)
        worker.wait_for(WORKER_READY, timeout=60)
        wait_healthy(api_url)
        out.print(f"worker, beat, Flower and the HTTP API started (logs in {log_dir}); "
                  f"a webhook endpoint per organization at {receiver.url('/org/N')}")

        started = time.monotonic()
        invoice_ids = list(sample.valid_invoice_ids) + [w["invoice_id"] for w in sample.wrong_invoices]
        by_python, by_sql, by_http = _enqueue(factory, invoice_ids, sample.credit_note_ids,
                                              api_url, api_keys)
        total = len(invoice_ids) + len(sample.credit_note_ids)
        out.print(f"enqueued {len(by_python)} invoices with the Python producer, {len(by_sql)} "
                  f"with plain SQL inserts, {len(by_http)} over HTTP, and "
                  f"{len(sample.credit_note_ids)} credit notes")

        _wait_final(out, factory, total, options.timeout)
        elapsed = time.monotonic() - started
        with factory() as session:
            jobs = list(session.scalars(select(ElectronicInvoicingJob)
                                        .order_by(ElectronicInvoicingJob.document_number)))
        _summary(out, jobs, elapsed, flower_port, sample)
        _webhook_summary(out, receiver, len(jobs))
        out.print(f"HTTP API: {api_url}/docs")
        _console_screenshots(out, factory, api_url)
        ok = all(j.status in FINAL for j in jobs)
        if options.keep:
            out.print(f"[yellow]--keep:[/yellow] services stay up. Flower: http://127.0.0.1:{flower_port}"
                      f"  DATABASE_URL={db_url}  REDIS_URL={services.redis.url}. Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        engine.dispose()
        return 0 if ok else 1
    finally:
        procs.stop_all(timeout=20)
        receiver.stop()
        if sandbox is not None:
            sandbox.stop()
        if not options.keep:
            services.down()


#: The final job statuses.
FINAL = ("accepted", "rejected", "failed", "cancelled")


def _wait_final(out: Console, factory: Any, total: int, timeout: float) -> None:
    """Show a progress bar until ``total`` jobs are final or ``timeout`` seconds pass."""
    from einvoice.db.models import ElectronicInvoicingJob  # noqa: PLC0415

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
            "{task.completed}/{task.total}"), TimeElapsedColumn(), console=out) as progress:
        bar = progress.add_task("jobs final", total=total)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with factory() as session:
                counts = dict(session.execute(select(ElectronicInvoicingJob.status, func.count())
                                              .group_by(ElectronicInvoicingJob.status)).all())
            done = sum(counts.get(s, 0) for s in FINAL)
            progress.update(bar, completed=done, description=_describe(counts))
            if done >= total:
                return
            time.sleep(0.5)


#: Where ``make demo`` leaves the console's screenshots, under the checkout.
SCREENSHOTS_DIR = Path(".einvoice") / "console-screenshots"


def _console_screenshots(out: Console, factory: Any, api_url: str) -> None:
    """Create a demo admin of the operator console and write a PNG of each console page into
    :data:`SCREENSHOTS_DIR` with ``scripts/console_screenshots.py`` (a real chromium). Skipped,
    with a line saying why, outside a checkout or without chromium: the demo's outcome does not
    depend on it."""
    import secrets  # noqa: PLC0415

    from einvoice.services.console_auth import create_user  # noqa: PLC0415

    root = project_root()
    script = root / "scripts" / "console_screenshots.py"
    if not script.exists() or shutil.which("chromium") is None:
        out.print("console screenshots skipped (needs the checkout's scripts/ and chromium)")
        return
    password = secrets.token_urlsafe(18)
    with factory() as session:
        create_user(session, username="demo-admin", password=password, role="admin")
        session.commit()
    env = {**os.environ, "CONSOLE_PASSWORD": password}
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(script), "--base-url", api_url, "--username", "demo-admin",
         "--out", str(root / SCREENSHOTS_DIR)], env=env, capture_output=True, text=True, check=False,
        timeout=180)
    if done.returncode != 0:
        out.print(f"[yellow]console screenshots failed:[/yellow] {done.stderr.strip()[-300:]}")
        return
    out.print(f"console: {api_url}/console/ ({len(done.stdout.split())} screenshots in "
              f"{SCREENSHOTS_DIR}/)")


def _webhook_summary(out: Console, receiver: Any, final_jobs: int) -> None:
    """Wait up to 15 s for one verified delivery per final job, then print what came."""
    deadline = time.monotonic() + 15
    while receiver.received() < final_jobs and time.monotonic() < deadline:
        time.sleep(0.2)
    out.print(f"webhooks received and verified: {receiver.received()}/{final_jobs} ("
              + ", ".join(f"{k} {v}" for k, v in sorted(receiver.events.items()))
              + f"); refused signatures: {receiver.refused}")


def _connect_erp(factory: Any, secret_key: str, organization_ids: Iterable[int],
                 receiver: Any) -> dict[int, str]:
    """Create an API key and a webhook endpoint (on ``receiver``) per organization.

    Returns:
        Organization id -> its API key (in clear: the demo is the ERP here).
    """
    from einvoice.crypto import SecretBox  # noqa: PLC0415
    from einvoice.services.api_keys import create_key  # noqa: PLC0415
    from einvoice.services.webhooks import add_endpoint  # noqa: PLC0415

    keys: dict[int, str] = {}
    with factory() as session:
        box = SecretBox(secret_key)
        for org in organization_ids:
            keys[org] = create_key(session, org, "demo").key
            endpoint = add_endpoint(session, box, organization_id=org,
                                    url=receiver.url(f"/org/{org}"))
            receiver.secrets[f"/org/{org}"] = endpoint.secret
        session.commit()
    return keys


def _enqueue(factory: Any, invoice_ids: list[Any], credit_note_ids: Iterable[Any], api_url: str,
             api_keys: dict[int, str]) -> tuple[list[Any], list[Any], list[Any]]:
    """Enqueue a third of ``invoice_ids`` each way (Python producer, plain SQL, HTTP), then the
    credit notes with the Python producer. Returns the three thirds.

    Raises:
        ConfigError: the HTTP API refused an invoice.
    """
    from einvoice.demo_erp import post_job  # noqa: PLC0415
    from einvoice.services.enqueue import enqueue_invoice  # noqa: PLC0415

    by_python, by_sql, by_http = invoice_ids[0::3], invoice_ids[1::3], invoice_ids[2::3]
    with factory() as session:
        organization_of = dict(session.execute(text(
            "SELECT id, organization_id FROM invoice_sales WHERE id = ANY(:ids)"),
            {"ids": by_http}).tuples().all())
    for invoice_id in by_http:
        status, body = post_job(api_url, api_keys[organization_of[invoice_id]], invoice_id)
        if status not in (200, 201):
            raise ConfigError(f"the HTTP API refused invoice {invoice_id}: {status} {body}")
    with factory() as session:
        for invoice_id in by_python:
            enqueue_invoice(session, invoice_id)
            session.commit()
        for invoice_id in by_sql:
            session.execute(text(
                "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, "
                "document_type, provider) SELECT organization_id, id, 'invoice', 'factus' "
                "FROM invoice_sales WHERE id = :id"), {"id": invoice_id})
            session.commit()
        for note_id in credit_note_ids:
            enqueue_invoice(session, note_id, "credit_note")
            session.commit()
    return by_python, by_sql, by_http


def register_demo_account(sandbox: Any, api_version: str | None) -> None:
    """Add the demo account (:data:`SANDBOX_CREDENTIALS`) to a running simulator: ``v2`` only
    (403 on every ``/v1`` route, as a Factus account opened today) unless ``api_version`` is
    ``"v1"``."""
    sandbox.add_account(SANDBOX_CREDENTIALS["FACTUS_CLIENT_ID"],
                        SANDBOX_CREDENTIALS["FACTUS_CLIENT_SECRET"],
                        SANDBOX_CREDENTIALS["FACTUS_USERNAME"],
                        SANDBOX_CREDENTIALS["FACTUS_PASSWORD"], mode=api_version or "v2")


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _port_busy(port: int) -> bool:
    from einvoice.devservices import port_open  # noqa: PLC0415

    return port_open(port)


def _describe(counts: dict[str, int]) -> str:
    order = ("pending", "processing", "sent", "accepted", "rejected", "failed")
    return " ".join(f"{s}={counts[s]}" for s in order if counts.get(s))


def _summary(out: Console, jobs: list[Any], elapsed: float, flower_port: int, sample: Any) -> None:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    accepted = [j for j in jobs if j.status == "accepted"]
    table = Table(title="accepted documents")
    for col in ("number", "type", "CUFE / CUDE"):
        table.add_column(col)
    for job in accepted:
        table.add_row(job.document_number or "", job.document_type, job.cufe or "")
    out.print(table)
    problems = [j for j in jobs if j.status in ("rejected", "failed")]
    if problems:
        rejections = Table(title="rejected or failed, with the reason")
        for col in ("job", "status", "error_code", "reason"):
            rejections.add_column(col)
        for job in problems:
            rejections.add_row(str(job.id)[:8], job.status, job.error_code or "",
                               (job.error_message or "")[:100])
        out.print(rejections)
    rate = len(accepted) / elapsed * 60 if elapsed > 0 else 0.0
    out.rule("[bold]summary")
    out.print("jobs by status: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    expected = {str(w["invoice_id"]): w["expected_error_code"] for w in sample.wrong_invoices}
    wrong_ok = sum(1 for j in jobs if str(j.invoice_id) in expected and j.status == "rejected"
                   and j.error_code == expected[str(j.invoice_id)])
    out.print(f"wrong invoices rejected with their rule code: {wrong_ok}/{len(expected)}")
    out.print(f"time: {elapsed:.1f} s; accepted per minute: {rate:.0f}")
    out.print(f"Flower: http://127.0.0.1:{flower_port}")
