"""The documents archive through the real pipeline: after acceptance a follow-up
downloads the PDF and the XML once and stores them with their SHA-256 and size.

The scenarios that download from Factus run on both API versions (``BOTH_VERSIONS``): v1's
``/v1/bills/download-pdf/{number}`` and v2's ``/v2/bills/{number}/download-pdf`` end in the same
stored files."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.errors import JobError
from einvoice.services.documents import get_document, request_archive, run_followup
from tests.integration.followups.conftest import (
    BOTH_VERSIONS,
    InProcess,
    Pipeline,
    accepted_job,
    cli_env,
    followups,
    insert_job_sql,
    run_cli,
    seed_invoice,
    seed_organization,
    wait_for_event,
    wait_for_followups,
)

pytestmark = pytest.mark.slow


def _stored(session: Session, job_id: uuid.UUID) -> dict[str, dict[str, object]]:
    rows = session.execute(text(
        "SELECT kind, file_name, content, sha256, size_bytes, created_at "
        "FROM electronic_invoicing_documents WHERE job_id = :j"), {"j": job_id}).mappings().all()
    return {r["kind"]: dict(r) for r in rows}


@BOTH_VERSIONS
def test_pdf_and_xml_are_stored_once_with_their_hashes_even_when_the_download_fails_first(
    make_pipeline: Callable[..., Pipeline], session: Session, in_process: InProcess,
) -> None:
    # Given an accepted invoice whose archive follow-up waits in the queue (no worker takes the
    # reference queue yet), and a Factus that answers every download with 503 or 500
    pipeline = make_pipeline(start=False, beat=True)
    pipeline.launcher.worker(queues="submission,maintenance", name="submitter")
    job_id = accepted_job(pipeline, session)
    pipeline.sandbox.set_faults(error_503=0.5, error_500=0.5, seed=3)

    # When a worker takes the archive, fails at least once, and Factus comes back
    pipeline.launcher.worker(queues="reference", name="archiver")
    wait_for_event(pipeline, job_id, "archive_retry")
    pipeline.sandbox.set_faults(error_503=0.0, error_500=0.0)
    [archive] = wait_for_followups(pipeline.factory, job_id, "archive", 1)

    # Then the archive is done after more than one attempt, the job is still accepted,
    assert archive["status"] == "done", archive
    assert archive["attempt_count"] >= 2, archive
    session.expire_all()
    assert session.execute(text("SELECT status FROM electronic_invoicing_jobs WHERE id = :j"),
                           {"j": job_id}).scalar_one() == "accepted"
    # and one PDF and one XML are stored, each with the SHA-256 and size of its bytes
    stored = _stored(session, job_id)
    assert sorted(stored) == ["pdf", "xml"]
    for kind, row in stored.items():
        content = bytes(row["content"])  # type: ignore[arg-type]
        assert row["sha256"] == hashlib.sha256(content).hexdigest()
        assert row["size_bytes"] == len(content) > 0
        assert str(row["file_name"]).startswith("fv0901724254")
        assert str(
            row["file_name"]).endswith(f".{kind}")
    number, cufe = session.execute(text(
        "SELECT document_number, cufe FROM electronic_invoicing_jobs WHERE id = :j"),
        {"j": job_id}).one()
    assert bytes(stored["pdf"]["content"]).startswith(b"%PDF")  # type: ignore[arg-type]
    xml = bytes(stored["xml"]["content"])  # type: ignore[arg-type]
    assert number.encode() in xml
    assert cufe.encode() in xml
    # and each file was downloaded successfully exactly once, after the failed tries
    assert pipeline.requests_to("bill_pdf").get("200") == 1
    assert pipeline.requests_to("bill_xml").get("200") == 1
    assert sum(pipeline.requests_to("bill_pdf").values()) > 1
    types = [t for t, _ in pipeline.events(job_id)]
    assert types.index("accepted") < types.index("archive_retry") < types.index("archived")

    # When the same follow-up runs again (a duplicate message, then a row put back to pending)
    ctx = in_process.context(pipeline)
    duplicate = run_followup(ctx, archive["id"])
    session.execute(text("UPDATE electronic_invoicing_followups SET status = 'pending' "
                         "WHERE id = :f"), {"f": archive["id"]})
    session.commit()
    rerun = run_followup(ctx, archive["id"])

    # Then nothing is downloaded or stored again
    assert (duplicate, rerun) == ("not_due", "done")
    session.expire_all()
    again = _stored(session, job_id)
    assert {k: (r["sha256"], r["created_at"]) for k, r in again.items()} == {
        k: (r["sha256"], r["created_at"]) for k, r in stored.items()}
    assert pipeline.requests_to("bill_pdf").get("200") == 1
    assert pipeline.requests_to("bill_xml").get("200") == 1
    # and an operator's request to archive it again is refused
    with pytest.raises(JobError, match="stored already"):
        request_archive(session, job_id)
    session.rollback()


def test_docs_get_writes_the_stored_pdf_and_xml(
    make_pipeline: Callable[..., Pipeline], session: Session, tmp_path: Path,
) -> None:
    # Given an accepted invoice whose archive is done
    pipeline = make_pipeline()
    job_id = accepted_job(pipeline, session)
    wait_for_followups(pipeline.factory, job_id, "archive", 1, statuses=("done",))
    stored = _stored(session, job_id)

    # When an operator asks for the PDF into a named file, and for the XML under its own name
    pdf = run_cli(pipeline.env, "docs", "get", str(job_id), "--pdf", "-o",
                  str(tmp_path / "factura.pdf"), "--json", cwd=tmp_path)
    xml = run_cli(pipeline.env, "docs", "get", str(job_id), "--xml", cwd=tmp_path)
    missing = run_cli(pipeline.env, "docs", "get", str(uuid.uuid4()), "--pdf", cwd=tmp_path)
    shown = run_cli(pipeline.env, "docs", "show", str(job_id), "--json")

    # Then the files hold exactly the stored bytes
    assert pdf.returncode == 0, pdf.stderr
    assert (tmp_path / "factura.pdf").read_bytes() == bytes(stored["pdf"]["content"])  # type: ignore[arg-type]
    assert json.loads(pdf.stdout)["sha256"] == stored["pdf"]["sha256"]
    assert xml.returncode == 0, xml.stderr
    xml_file = tmp_path / str(stored["xml"]["file_name"])
    assert xml_file.read_bytes() == bytes(stored["xml"]["content"])  # type: ignore[arg-type]
    # and `docs show` lists both files and the finished archive
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert {d["kind"]: d["sha256"] for d in report["documents"]} == {
        k: r["sha256"] for k, r in stored.items()}
    assert [(f["kind"], f["status"]) for f in report["followups"]] == [("archive", "done")]
    # and an unknown job is one clear error line
    assert missing.returncode == 1
    assert "no job" in missing.stderr


def test_a_stored_file_whose_bytes_changed_is_refused(
    make_pipeline: Callable[..., Pipeline], session: Session,
) -> None:
    # Given an archived job whose stored PDF was altered in the database (same length)
    pipeline = make_pipeline()
    job_id = accepted_job(pipeline, session)
    wait_for_followups(pipeline.factory, job_id, "archive", 1, statuses=("done",))
    session.execute(text(
        "UPDATE electronic_invoicing_documents SET content = overlay(content placing '\\x00'::bytea "
        "from 20 for 1) WHERE job_id = :j AND kind = 'pdf'"), {"j": job_id})
    session.commit()

    # When it is read back, then the SHA-256 check refuses it; the XML still reads
    with pytest.raises(JobError, match="does not match its SHA-256"):
        get_document(session, job_id, "pdf")
    name, content = get_document(session, job_id, "xml")
    assert name.endswith(".xml")
    assert content
    assert followups(pipeline.factory, job_id, "archive")[0]["status"] == "done"


@BOTH_VERSIONS
def test_with_the_archive_off_an_accepted_job_gets_no_download_until_an_operator_asks(
    make_pipeline: Callable[..., Pipeline], session: Session, in_process: InProcess,
) -> None:
    # Given workers on every queue with EINVOICE_ARCHIVE_DOCUMENTS=false, and beat
    pipeline = make_pipeline(beat=True, EINVOICE_ARCHIVE_DOCUMENTS="false")

    # When an invoice is accepted
    job_id = accepted_job(pipeline, session)

    # Then it has its CUFE, but no follow-up and no download, even after beat's rounds
    assert session.execute(text("SELECT cufe FROM electronic_invoicing_jobs WHERE id = :j"),
                           {"j": job_id}).scalar_one()
    time.sleep(2.0)  # four dispatcher intervals of the test environment
    assert followups(pipeline.factory, job_id) == []
    assert pipeline.requests_to("bill_pdf") == {}
    assert pipeline.requests_to("bill_xml") == {}
    # and an operator's request archives it all the same
    request_archive(session, job_id, publisher=in_process.publisher(pipeline))
    session.commit()
    [_archive] = wait_for_followups(pipeline.factory, job_id, "archive", 1, statuses=("done",))
    assert sorted(_stored(session, job_id)) == ["pdf", "xml"]


def test_documents_are_not_archived_for_a_job_that_is_not_accepted(
    session: Session, session_factory: sessionmaker[Session], db_url: str, redis_url: str,
) -> None:
    # Given a pending job (plain SQL insert, no worker)
    seed_organization(session)
    invoice_id = seed_invoice(session)
    session.commit()
    job_id = insert_job_sql(session, invoice_id)

    # When an operator asks for its PDF, or to archive it
    got = run_cli(cli_env(db_url, redis_url), "docs", "get", str(job_id), "--pdf")
    with pytest.raises(JobError, match="only an accepted job"):
        request_archive(session, job_id)
    session.rollback()

    # Then both are refused with the reason, and no follow-up exists
    assert got.returncode == 1
    assert "is pending" in got.stderr
    assert followups(session_factory, job_id) == []
