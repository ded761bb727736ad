"""Every Factus endpoint of the client over real HTTP against the simulator (FACTUS_API.md §2–§8,
§10): bills, credit notes, downloads, e-mail, deletes, lists across pages, and reference data.

The document scenarios run on both API versions (the ``api`` fixture: v1 on the default account,
v2 on a v2-only account); what only one version has is tested on that version."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from conftest import V2_ONLY, VersionedApi, sandbox_grants
from factus_payloads import v2_bill, v2_credit_note

from einvoice.factus.client import FactusClient
from einvoice.factus.errors import (
    ApiVersionNotEnabled,
    ConflictError,
    DianRejectionError,
    NotFoundError,
    PayloadValidationError,
    PendingDocumentConflict,
)
from einvoice.sandbox.server import SandboxServer

HEX96 = re.compile(r"^[0-9a-f]{96}$")
MakeClient = Callable[..., FactusClient]


def test_a_valid_bill_is_accepted_with_cufe_qr_and_totals(
    api: VersionedApi, sandbox_clean: SandboxServer
) -> None:
    # When a bill of 2 × 23 800 COP (tax included; v2: 20 000 net + IVA) is validated
    result = api.client.validate_bill(api.bill("POS-1"))

    # Then DIAN accepted it and the job has what it must record (Decision 4)
    assert result.is_validated
    assert result.reference_code == "POS-1"
    assert result.number is not None
    assert result.number.startswith("SETP")
    assert result.cufe is not None
    assert HEX96.match(result.cufe)
    assert result.qr is not None
    assert result.cufe in result.qr
    assert result.public_url is not None
    assert result.public_url.startswith("https://")
    assert result.validated_at is not None
    assert result.validated_at.tzinfo is not None
    assert (result.totals.total, result.totals.tax_amount) == (
        Decimal("47600.00"),
        Decimal("7600.00"),
    )
    if api.version == "v1":  # v1 alone sends a QR image and Factus's internal id
        assert result.qr_image is not None
        assert result.qr_image.startswith("data:image/png;base64,")
        assert result.id is not None
    # and it was validated exactly once, after one password grant
    stats = api.stats()
    assert stats["validations_by_reference"]["bill"] == {"POS-1": 1}
    assert sandbox_grants(sandbox_clean) == {"200": 1}


def test_show_and_find_by_reference_give_back_the_same_bill(api: VersionedApi) -> None:
    # Given two bills whose references overlap (the list filter matches partially)
    client = api.client
    target = client.validate_bill(api.bill("INV-1"))
    client.validate_bill(api.bill("INV-10"))
    assert target.number is not None

    shown = client.show_bill(target.number)
    found = client.find_bill_by_reference("INV-1")

    assert shown.cufe == target.cufe
    assert shown.is_validated
    assert found is not None
    assert (found.number, found.cufe) == (target.number, target.cufe)
    assert client.find_bill_by_reference("INV-404") is None


def test_list_bills_walks_every_page(api: VersionedApi) -> None:
    # Given 12 bills: two pages of 10 (§6.1)
    client = api.client
    for n in range(12):
        client.validate_bill(api.bill(f"PAGE-{n:02d}"))

    rows = client.list_bills(reference_code="PAGE-")

    assert sorted(row.reference_code or "" for row in rows) == [f"PAGE-{n:02d}" for n in range(12)]
    assert all(row.is_validated and row.total == Decimal("47600.00") for row in rows)
    lists = api.stats()["requests"][api.route("GET", "/bills")]
    assert lists == {"200": 2}


def test_downloads_give_the_pdf_and_xml_bytes(api: VersionedApi) -> None:
    client = api.client
    number = client.validate_bill(api.bill("DL-1")).number
    assert number is not None

    pdf = client.download_bill_pdf(number)
    xml = client.download_bill_xml(number)

    assert pdf.content.startswith(b"%PDF")
    assert pdf.file_name.startswith("fv")
    assert xml.content.lstrip().startswith(b"<")
    assert xml.file_name == pdf.file_name


def test_bill_e_mail_is_sent_and_its_daily_quota_is_a_conflict(api: VersionedApi) -> None:
    client = api.client
    number = client.validate_bill(api.bill("MAIL-1")).number
    assert number is not None

    assert client.send_bill_email(number, "cliente@example.com")
    assert client.send_bill_email(number, "compras@example.com")
    with pytest.raises(ConflictError):
        client.send_bill_email(number, "cliente@example.com")  # 2 per document per day (§6.5)


def test_a_dian_slow_bill_is_pending_and_a_resend_validates_it_once(
    api: VersionedApi, sandbox_clean: SandboxServer
) -> None:
    # Given DIAN answers late (§5.5)
    client = api.client
    sandbox_clean.set_faults(dian_slow=1.0)
    pending = client.validate_bill(api.bill("SLOW-1"))
    assert pending.is_pending
    assert not pending.is_validated
    assert pending.validated_at is None

    # When the same payload is re-sent later with the same reference
    sandbox_clean.set_faults(dian_slow=0.0)
    settled = client.validate_bill(api.bill("SLOW-1"))

    # Then the same document is validated, not a second one
    assert settled.is_validated
    assert settled.number == pending.number
    assert api.stats()["documents_stored"]["bill"] == 1


def test_a_rejected_bill_blocks_the_account_until_it_is_deleted(
    api: VersionedApi, sandbox_clean: SandboxServer
) -> None:
    # Given DIAN rejects a bill (Decision 4)
    client = api.client
    sandbox_clean.set_faults(dian_rejection=1.0)
    with pytest.raises(DianRejectionError) as rejected:
        client.validate_bill(api.bill("REJ-1"))
    assert rejected.value.rule_codes
    assert not rejected.value.transient
    sandbox_clean.set_faults(dian_rejection=0.0)

    # Then the stored rejected bill blocks any other bill (§5.3)
    with pytest.raises(PendingDocumentConflict):
        client.validate_bill(api.bill("NEXT-1"))

    # When the job layer finds the pending one and deletes it
    pending = client.list_bills(status=0)
    assert [row.reference_code for row in pending] == ["REJ-1"]
    assert "eliminado" in client.delete_bill("REJ-1")

    # Then the next bill goes through
    assert client.validate_bill(api.bill("NEXT-1")).is_validated
    # and a validated bill cannot be deleted, an unknown one is not found
    with pytest.raises(ConflictError):
        client.delete_bill("NEXT-1")
    with pytest.raises(NotFoundError):
        client.delete_bill("NEVER-SENT")


def test_credit_note_lifecycle(api: VersionedApi) -> None:
    # Given a validated bill
    client = api.client
    invoice = client.validate_bill(api.bill("CN-BILL-1"))

    # When a credit note of one unit is validated against it (v1 §7.1: by Factus id; v2: by
    # number)
    note = client.validate_credit_note(api.credit_note("CN-1", invoice))

    # Then it carries its own CUDE and points at the bill
    assert note.is_validated
    assert note.number is not None
    assert note.cude is not None
    assert HEX96.match(note.cude)
    assert note.bill_number == invoice.number
    assert note.totals.total == Decimal("23800.00")
    # and it can be shown, found, listed and downloaded
    assert client.show_credit_note(note.number).cude == note.cude
    found = client.find_credit_note_by_reference("CN-1")
    assert found is not None
    assert found.number == note.number
    assert [row.number for row in client.list_credit_notes(reference_code="CN-1")] == [note.number]
    assert client.download_credit_note_pdf(note.number).content.startswith(b"%PDF")
    assert client.download_credit_note_xml(note.number).file_name.startswith("nc")
    assert api.stats()["validations_by_reference"]["credit_note"] == {"CN-1": 1}


def test_a_rejected_credit_note_is_deleted_by_reference(
    api: VersionedApi, sandbox_clean: SandboxServer
) -> None:
    client = api.client
    invoice = client.validate_bill(api.bill("CN-BILL-2"))
    sandbox_clean.set_faults(dian_rejection=1.0)
    with pytest.raises(DianRejectionError):
        client.validate_credit_note(api.credit_note("CN-REJ", invoice))
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
    assert setp.from_ == 990000000
    assert setp.current is not None
    assert all(r.is_active for r in ranges)
    assert {r.prefix for r in invoice_ranges} >= {"SETP"}
    assert [(m.id, m.code, m.department) for m in municipalities] == [(980, "68679", "Santander")]
    assert (70, "94", "unidad") in [(u.id, u.code, u.name) for u in units]
    assert (1, "01", "IVA") in [(t.id, t.code, t.name) for t in tributes]
    assert (company.nit, company.dv) == ("901724254", "1")


# --- what only v2 has ----------------------------------------------------------------------


def test_v2_gives_the_attached_document_xml_of_bills_and_credit_notes(
    make_sandbox_client: MakeClient, sandbox_clean: SandboxServer
) -> None:
    # Given a v2-only account with a validated bill and a credit note against it
    sandbox_clean.add_account(**V2_ONLY, mode="v2")
    client = make_sandbox_client(**V2_ONLY, api_version="v2")
    invoice = client.validate_bill(v2_bill("AD-1"))
    assert invoice.number is not None
    note = client.validate_credit_note(v2_credit_note("AD-NC-1", invoice.number))
    assert note.number is not None
    assert note.cude is not None

    # When their AttachedDocument XMLs are downloaded (v2 descargar-xml-attacheddocument)
    bill_ad = client.download_bill_attached_xml(invoice.number)
    note_ad = client.download_credit_note_attached_xml(note.number)

    # Then each is DIAN's container around the document's own XML
    assert bill_ad.content.lstrip().startswith(b"<?xml")
    assert b"AttachedDocument" in bill_ad.content
    assert invoice.number.encode() in bill_ad.content
    assert b"AttachedDocument" in note_ad.content
    assert note.number.encode() in note_ad.content


def test_ranges_associated_at_dian_are_created_then_used(
    make_sandbox_client: MakeClient, sandbox_clean: SandboxServer
) -> None:
    # Given a v2 account whose company associated its ranges at DIAN, none created in Factus
    sandbox_clean.add_account(**V2_ONLY, mode="v2", ranges_registered=False)
    client = make_sandbox_client(**V2_ONLY, api_version="v2")
    body = v2_bill("RANGE-1")
    del body["numbering_range_id"]
    with pytest.raises(PayloadValidationError) as before:
        client.validate_bill(body)
    assert "numbering_range_id" in before.value.field_errors

    # When the operator reads what DIAN associated and creates the invoice range from it, and
    # a credit-note range (which has no resolution)
    dian = client.dian_numbering_ranges()
    setp = next(r for r in dian if r.prefix == "SETP")
    invoices = client.create_numbering_range(from_dian=setp)
    notes = client.create_numbering_range(document="22", prefix="NC", current=1)

    # Then both are Factus ranges, listed, and the next bill is numbered from the invoice one
    assert setp.resolution_number
    assert setp.from_ is not None
    assert setp.end_date is not None
    assert (invoices.document, invoices.prefix, invoices.resolution_number) == (
        "21", "SETP", setp.resolution_number)
    assert invoices.is_active
    assert invoices.current == setp.from_
    assert (notes.document, notes.prefix, notes.resolution_number) == ("22", "NC", None)
    assert {r.id for r in client.list_numbering_ranges()} == {invoices.id, notes.id}
    bill_result = client.validate_bill(body)
    assert bill_result.is_validated
    assert (bill_result.number or "").startswith("SETP")
    # and the same range cannot be created twice
    with pytest.raises(PayloadValidationError):
        client.create_numbering_range(document="22", prefix="NC", current=1)


def test_a_v1_only_call_on_a_v2_only_account_says_the_version_is_not_enabled(
    make_sandbox_client: MakeClient, sandbox_clean: SandboxServer
) -> None:
    # Given a v2-only account (its client speaks v2)
    sandbox_clean.add_account(**V2_ONLY, mode="v2")
    client = make_sandbox_client(**V2_ONLY, api_version="v2")

    # When it asks for a catalog that only v1 serves (v2 publishes tables instead)
    with pytest.raises(ApiVersionNotEnabled) as caught:
        client.municipalities(name="San Gil")

    # Then the 403 names the refused version: an account problem, not a job's
    assert (caught.value.version, caught.value.reason) == ("v1", "factus_version_not_enabled")
    assert not caught.value.transient
    assert caught.value.status_code == 403
    # while its documents go through v2
    assert client.validate_bill(v2_bill("V2-OK")).is_validated
