"""`einvoice jobs show` explains a job's error right under it, from the error catalogue
(docs/dian-errors.md): Spanish by default, English with --lang en, and in --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.integration.pipeline.conftest import seed_invoice, seed_organization


def _show(db_url: str, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTUS_", "EINVOICE_"))}
    env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url,
               EINVOICE_SECRET_KEY=Fernet.generate_key().decode(), COLUMNS="200")
    result = subprocess.run([sys.executable, "-m", "einvoice.cli", "jobs", "show", *args],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result


def test_jobs_show_explains_a_dian_rejection_under_the_error(
    db_url: str, redis_url: str, session: Session
) -> None:
    # Given a job DIAN rejected for the customer's check digit, as the worker leaves it
    seed_organization(session)
    invoice_id = seed_invoice(session)
    job_id = str(session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, status, "
        "attempt_count, error_code, error_message) VALUES (1, :inv, 'rejected', 1, "
        "'dian_rejected:FAK24', 'FAK24: DV no corresponde al NIT informado') RETURNING id"),
        {"inv": invoice_id}).scalar_one())
    session.commit()

    # When the operator shows it
    lines = _show(db_url, redis_url, job_id).stdout.splitlines()

    # Then the explanation follows the error line: the rejection, then DIAN's rule, in Spanish,
    error_at = next(i for i, line in enumerate(lines) if line.startswith("error_message:"))
    assert lines[error_at + 1] == "Explicación:"
    block = "\n".join(lines[error_at + 1:])
    assert "  dian_rejected: La DIAN rechazó el documento" in block
    assert "  FAK24: Regla FAK24 (Rechazo): el dígito de verificación (DV)" in block
    assert "    Campo del ERP: customers.dv" in block
    assert "    Reintentar: después de corregir (einvoice jobs retry)" in block
    # in English on request,
    english = _show(db_url, redis_url, job_id, "--lang", "en").stdout
    assert "Explanation:" in english
    assert "What to do: Set customers.dv to the DV on the customer's RUT" in english
    # and in the JSON an ERP script reads.
    shown = json.loads(_show(db_url, redis_url, job_id, "--json").stdout)
    assert [e["code"] for e in shown["explanation"]] == ["dian_rejected", "FAK24"]
    assert shown["explanation"][1]["erp_field"] == "customers.dv"


def test_jobs_show_of_a_job_without_error_prints_no_explanation(
    db_url: str, redis_url: str, session: Session
) -> None:
    seed_organization(session)
    job_id = str(session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id) VALUES (1, :inv) "
        "RETURNING id"), {"inv": seed_invoice(session)}).scalar_one())
    session.commit()

    out = _show(db_url, redis_url, job_id).stdout

    assert "Explicación" not in out
    assert json.loads(_show(db_url, redis_url, job_id, "--json").stdout)["explanation"] == []
