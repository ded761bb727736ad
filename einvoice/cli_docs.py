"""``einvoice docs ...`` and ``einvoice jobs resend-email``: the documents archive and the e-mail
resend of accepted jobs, thin commands over :mod:`einvoice.services.documents`.

Mounted by :func:`einvoice.cli._mount_optional_groups`: ``docs_app`` as the ``docs`` group and
:func:`jobs_resend_email` as ``resend-email`` of the ``jobs`` group. (Registered there, on the
running module's ``jobs_app``, because ``python -m einvoice.cli`` runs the CLI as ``__main__``,
a different module object from the ``einvoice.cli`` this module imports.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import typer

from einvoice.cli import _print_json, _session_factory, console, friendly_errors

docs_app = typer.Typer(no_args_is_help=True,
                       help="PDF and XML of accepted jobs, downloaded once from Factus and stored.")


@docs_app.command("get")
@friendly_errors
def docs_get(
    job_id: str,
    pdf: bool = typer.Option(False, "--pdf", help="The PDF (graphic representation)."),
    xml: bool = typer.Option(False, "--xml", help="The XML (DIAN's signed document)."),
    output: Path = typer.Option(None, "-o", "--output",
                                help="File to write (default: the DIAN file name, here)."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Write a job's stored PDF or XML to a file (the bytes are checked against their SHA-256)."""
    from einvoice.services.documents import get_document  # noqa: PLC0415

    if pdf == xml:
        raise typer.BadParameter("give exactly one of --pdf or --xml")
    kind = "pdf" if pdf else "xml"
    with _session_factory()() as session:
        file_name, content = get_document(session, job_id, kind)
    target = output or Path(file_name)
    target.write_bytes(content)
    if as_json:
        _print_json({"job_id": job_id, "kind": kind, "file": str(target), "file_name": file_name,
                     "size_bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()})
    else:
        console.print(f"[green]wrote {target} ({len(content)} bytes)[/green]")


@docs_app.command("show")
@friendly_errors
def docs_show(job_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A job's stored files and its follow-ups (archive, e-mails) with their state."""
    from rich.table import Table  # noqa: PLC0415

    from einvoice.services.documents import followup_report  # noqa: PLC0415

    with _session_factory()() as session:
        report = followup_report(session, job_id)
    if as_json:
        _print_json(report)
        return
    console.print(f"[b]job[/b] {report['job_id']} ({report['status']}, {report['number'] or '-'})")
    files = Table(title="stored files")
    for col in ("kind", "file name", "bytes", "sha256"):
        files.add_column(col)
    for d in report["documents"]:
        files.add_row(d["kind"], d["file_name"], str(d["size_bytes"]), d["sha256"])
    console.print(files)
    followups = Table(title="follow-ups")
    for col in ("kind", "status", "tries", "to", "error"):
        followups.add_column(col)
    for f in report["followups"]:
        error = f"{f['error_code']}: {f['error_message']}" if f["error_code"] else ""
        followups.add_row(f["kind"], f["status"], f"{f['attempt_count']}/{f['max_attempts']}",
                          f["to_address"] or "", error[:80])
    console.print(followups)


@docs_app.command("archive")
@friendly_errors
def docs_archive(job_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Archive an accepted job's PDF and XML now (first time, or again after a failed archive)."""
    from einvoice.services.documents import request_archive  # noqa: PLC0415

    with _session_factory()() as session:
        followup = request_archive(session, job_id, actor="cli")
        result = {"job_id": str(followup.job_id), "followup_id": str(followup.id),
                  "status": followup.status}
        session.commit()
    if as_json:
        _print_json(result)
    else:
        console.print(f"[green]archive of job {result['job_id']} {result['status']}[/green]")


@friendly_errors
def jobs_resend_email(
    job_id: str,
    to: str = typer.Option(None, "--to", help="Address to send to (default: the customer's)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """E-mail an accepted invoice again through Factus (at most 2 per document per day)."""
    from einvoice.services.documents import request_email_resend  # noqa: PLC0415

    with _session_factory()() as session:
        followup = request_email_resend(session, job_id, to, actor="cli")
        result = {"job_id": str(followup.job_id), "followup_id": str(followup.id),
                  "to": followup.to_address, "status": followup.status}
        session.commit()
    if as_json:
        _print_json(result)
    else:
        console.print(f"[green]e-mail to {result['to'] or 'the customer'} queued "
                      f"(follow-up {result['followup_id']}); see `einvoice docs show "
                      f"{result['job_id']}`[/green]")
