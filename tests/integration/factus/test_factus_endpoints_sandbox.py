"""Every Factus endpoint of the client over real HTTP against the simulator (FACTUS_API.md §2–§8):
bills, credit notes, downloads, e-mail, deletes, lists across pages, and reference data."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from conftest import sandbox_grants
from factus_payloads import bill, credit_note

from einvoice.factus.client import FactusClient
from einvoice.factus.errors import (
    ConflictError,
    DianRejectionError,
    NotFoundError,
    PendingDocumentConflict,
)
from einvoice.sandbox.server import SandboxServer

HEX96 = re.compile(r"^[0-9a-f]{96}$")


def test_a_valid_bill_is_accepted_with_cufe_qr_and_totals(
    client: FactusClient, sandbox_clean: SandboxServer
) -> None:
    # When a bill of 2 × 23 800 COP (tax included) is validated
    result = client.validate_bill(bill("POS-1"))

    # Then DIAN accepted it and the job has what it must record (Decision 4)
    assert result.is_validated and result.reference_code == "POS-1"
    assert result.number is not None and result.number.startswith("SETP")
    assert result.cufe is not None and HEX96.match(result.cufe)
    assert result.qr is not None and result.cufe in result.qr
    assert result.qr_image is not None and result.qr_image.startswith("data:image/png;base64,")
    assert result.validated_at is not None and result.validated_at.tzinfo is not None
    assert (result.totals.total, result.totals.tax_amount) == (
        Decimal("47600.00"),
        Decimal("7600.00"),
    )
    assert result.id is not None
    # and it was validated exactly once, after one password grant
    stats = sandbox_clean.account_stats()
    assert stats["validations_by_reference"]["bill"] == {"POS-1": 1}
    assert sandbox_grants(sandbox_clean) == {"200": 1}


def test_show_and_find_by_reference_give_back_the_same_bill(client: FactusClient) -> None:
    # Given two bills whose references overlap (the list filter matches partially)
    target = client.validate_bill(bill("INV-1"))
    client.validate_bill(bill("INV-10"))
    assert target.number is not None

    shown = client.show_bill(target.number)
    found = client.find_bill_by_reference("INV-1")

    assert shown.cufe == target.cufe and shown.is_validated
    assert found is not None and (found.number, found.cufe) == (target.number, target.cufe)
    assert client.find_bill_by_reference("INV-404") is None


def test_list_bills_walks_every_page(client: FactusClient, sandbox_clean: SandboxServer) -> None:
    # Given 12 bills: two pages of 10 (§6.1)
    for n in range(12):
        client.validate_bill(bill(f"PAGE-{n:02d}"))

    rows = client.list_bills(reference_code="PAGE-")

    assert sorted(row.reference_code or "" for row in rows) == [f"PAGE-{n:02d}" for n in range(12)]
    assert all(row.is_validated and row.total == Decimal("47600.00") for row in rows)
    lists = sandbox_clean.account_stats()["requests"]["GET /v1/bills"]
    assert lists == {"200": 2}


def test_downloads_give_the_pdf_and_xml_bytes(client: FactusClient) -> None:
    number = client.validate_bill(bill("DL-1")).number
    assert number is not None

    pdf = client.download_bill_pdf(number)
    xml = client.download_bill_xml(number)

    assert pdf.content.startswith(b"%PDF") and pdf.file_name.startswith("fv")
    assert xml.content.lstrip().startswith(b"<") and xml.file_name == pdf.file_name


def test_bill_e_mail_is_sent_and_its_daily_quota_is_a_conflict(client: FactusClient) -> None:
    number = client.validate_bill(bill("MAIL-1")).number
    assert number is not None

    assert client.send_bill_email(number, "cliente@example.com")
    assert client.send_bill_email(number, "compras@example.com")
    with pytest.raises(ConflictError):
        client.send_bill_email(number, "cliente@example.com")  # 2 per document per day (§6.5)


def test_a_dian_slow_bill_is_pending_and_a_resend_validates_it_once(
    client: FactusClient, sandbox_clean: SandboxServer
) -> None:
    # Given DIAN answers late (§5.5)
    sandbox_clean.set_faults(dian_slow=1.0)
    pending = client.validate_bill(bill("SLOW-1"))
    assert pending.is_pending and not pending.is_validated

    # When the same payload is re-sent later with the same reference
    sandbox_clean.set_faults(dian_slow=0.0)
    settled = client.validate_bill(bill("SLOW-1"))

    # Then the same document is validated, not a second one
    assert settled.is_validated and settled.number == pending.number
    assert sandbox_clean.account_stats()["documents_stored"]["bill"] == 1


def test_a_rejected_bill_blocks_the_account_until_it_is_deleted(
    client: FactusClient, sandbox_clean: SandboxServer
) -> None:
    # Given DIAN rejects a bill (Decision 4)
    sandbox_clean.set_faults(dian_rejection=1.0)
    with pytest.raises(DianRejectionError) as rejected:
        client.validate_bill(bill("REJ-1"))
    assert rejected.value.rule_codes and not rejected.value.transient
    sandbox_clean.set_faults(dian_rejection=0.0)

    # Then the stored rejected bill blocks any other bill (§5.3)
    with pytest.raises(PendingDocumentConflict):
        client.validate_bill(bill("NEXT-1"))

    # When the job layer finds the pending one and deletes it
    pending = client.list_bills(status=0)
    assert [row.reference_code for row in pending] == ["REJ-1"]
    assert "eliminado" in client.delete_bill("REJ-1")

    # Then the next bill goes through
    assert client.validate_bill(bill("NEXT-1")).is_validated
    # and a validated bill cannot be deleted, an unknown one is not found
    with pytest.raises(ConflictError):
        client.delete_bill("NEXT-1")
    with pytest.raises(NotFoundError):
        client.delete_bill("NEVER-SENT")


def test_credit_note_lifecycle(client: FactusClient, sandbox_clean: SandboxServer) -> None:
    # Given a validated bill
    invoice = client.validate_bill(bill("CN-BILL-1"))
    assert invoice.id is not None

    # When a credit note of one unit is validated against its Factus id (§7.1)
    note = client.validate_credit_note(credit_note("CN-1", invoice.id))

    # Then it carries its own CUDE and points at the bill
    assert note.is_validated and note.number is not None
    assert note.cude is not None and HEX96.match(note.cude)
    assert note.bill_number == invoice.number
    assert note.totals.total == Decimal("23800.00")
    # and it can be shown, found, listed and downloaded
    assert client.show_credit_note(note.number).cude == note.cude
    found = client.find_credit_note_by_reference("CN-1")
    assert found is not None and found.number == note.number
    assert [row.number for row in client.list_credit_notes(reference_code="CN-1")] == [note.number]
    assert client.download_credit_note_pdf(note.number).content.startswith(b"%PDF")
    assert client.download_credit_note_xml(note.number).file_name.startswith("nc")
    assert sandbox_clean.account_stats()["validations_by_reference"]["credit_note"] == {"CN-1": 1}


def test_a_rejected_credit_note_is_deleted_by_reference(
    client: FactusClient, sandbox_clean: SandboxServer
) -> None:
    invoice = client.validate_bill(bill("CN-BILL-2"))
    assert invoice.id is not None
    sandbox_clean.set_faults(dian_rejection=1.0)
    with pytest.raises(DianRejectionError):
        client.validate_credit_note(credit_note("CN-REJ", invoice.id))
    sandbox_clean.set_faults(dian_rejection=0.0)

    assert "eliminado" in client.delete_credit_note("CN-REJ")
    assert client.find_credit_note_by_reference("CN-REJ") is None
    with pytest.raises(NotFoundError):
        client.delete_credit_note("CN-REJ")
    with pytest.raises(NotFoundError):
        client.show_credit_note("NC999999")


def test_reference_data_endpoints(client: FactusClient) -> None:
    ranges = client.list_numbering_ranges(is_active=True)
    invoice_ranges = client.list_numbering_ranges(document="21")
    municipalities = client.municipalities(name="San Gil")
    units = client.measurement_units()
    tributes = client.product_tributes()
    company = client.company()

    setp = next(r for r in ranges if r.prefix == "SETP")
    assert (setp.id, setp.is_active, setp.is_expired) == (8, True, False)
    assert setp.from_ == 990000000 and setp.current is not None
    assert all(r.is_active for r in ranges)
    assert {r.prefix for r in invoice_ranges} >= {"SETP"}
    assert [(m.id, m.code, m.department) for m in municipalities] == [(980, "68679", "Santander")]
    assert (70, "94", "unidad") in [(u.id, u.code, u.name) for u in units]
    assert (1, "01", "IVA") in [(t.id, t.code, t.name) for t in tributes]
    assert (company.nit, company.dv) == ("901724254", "1")
