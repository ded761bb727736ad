"""What a validated document carries besides its amounts: CUFE/CUDE, QR, PDF, XML, dates, file names.

- **CUFE / CUDE** (FACTUS_API.md §4.1: 96 lowercase hex): SHA-384 over the DIAN "Anexo técnico"
  concatenation ``NumFac FecFac HorFac ValFac 01 ValImp1 04 ValImp2 03 ValImp3 ValTot NitOFE NumAdq
  ClTec TipoAmbiente``; for a credit note the CUDE ends with the software PIN instead of the
  technical key. ``TipoAmbiente`` is ``2`` (habilitación), as in the Factus sandbox.
- **QR**: the sandbox URL ``https://catalogo-vpfe-hab.dian.gov.co/document/searchqr?documentkey=<cufe>``
  (§4.1) rendered as a real PNG (zxing-cpp encodes, Pillow writes the PNG), sent as
  ``"data:image/png;base64, <png>"`` (note the space, §4.1).
- **PDF**: a small, well-formed one-page PDF 1.4 listing the document's key data (the graphic
  representation Factus would send; its exact look is not part of the contract).
- **XML**: a UBL 2.1-like ``Invoice`` / ``CreditNote`` with the DIAN essentials.
- **File names** (§6.4): ``fv|nc`` + NIT zero-padded to 10 + ``000`` + 2-digit year + 8-digit
  consecutive; the consecutive is the document's internal id (inferred: DIAN numbers the files of
  each issuer, not the invoices).
- **Dates** (§1): bills show ``DD-MM-YYYY hh:mm:ss AM|PM`` in Bogotá time (UTC−5, no DST).
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree as ET

import zxingcpp
from PIL import Image

from einvoice.sandbox.amounts import money

BOGOTA = timezone(timedelta(hours=-5), "America/Bogota")
QR_BASE = "https://catalogo-vpfe-hab.dian.gov.co/document/searchqr?documentkey="
SANDBOX_ENVIRONMENT = "2"
_IVA, _ICA, _INC = 1, 3, 4  # product tribute ids whose taxes enter the CUFE


def factus_datetime(moment: datetime) -> str:
    """Format a UTC ``moment`` as Factus shows bill times: ``"21-01-2025 06:08:25 PM"`` (Bogotá)."""
    return moment.astimezone(BOGOTA).strftime("%d-%m-%Y %I:%M:%S %p")


def factus_date(day: date) -> str:
    """Format a date as ``DD-MM-YYYY`` (ranges inside a bill, §4.1)."""
    return day.strftime("%d-%m-%Y")


def iso_utc(moment: datetime) -> str:
    """Format a UTC ``moment`` as ``2023-06-01T08:00:38Z`` (numbering-range ``created_at``, §8.1)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def qr_url(cufe: str) -> str:
    """Return the DIAN habilitación lookup URL for a CUFE/CUDE (§4.1)."""
    return QR_BASE + cufe


def qr_image(cufe: str) -> str:
    """Return ``"data:image/png;base64, <PNG>"`` of a QR code holding :func:`qr_url` of ``cufe``.

    A version-8 QR code at error-correction level L (the URL is 163 characters), as a 1-bit PNG
    with one pixel per module and the standard 4-module quiet zone (viewers scale it up).

    Cost matters: the simulator answers ~200 validations per second on a 2-core machine beside
    the system under test. zxing-cpp (C++) encodes in ~0.4 ms and Pillow writes the PNG in
    ~0.06 ms; the pure-Python segno used before took ~2.3 ms, three quarters of the simulator's
    CPU per validation (py-spy, 2026-11-22).
    """
    code = zxingcpp.create_barcode(qr_url(cufe), zxingcpp.BarcodeFormat.QRCode, ec_level="L")
    # zxing's image is a buffer of 8-bit pixels, untyped as such: copied (a few hundred bytes).
    modules: Any = code.to_image(scale=1, add_quiet_zones=True)
    height, width = modules.shape
    buffer = io.BytesIO()
    Image.frombuffer("L", (width, height), bytes(modules), "raw", "L", 0, 1).convert(
        "1").save(buffer, "PNG", compress_level=1)
    return "data:image/png;base64, " + base64.b64encode(buffer.getvalue()).decode("ascii")


def cufe(
    *,
    number: str,
    issued_at: datetime,
    taxable_amount: Decimal,
    tax_by_tribute: dict[int, Decimal],
    total: Decimal,
    issuer_nit: str,
    customer_identification: str,
    key: str,
) -> str:
    """Compute a CUFE (bill) or CUDE (credit note) as 96 lowercase hex characters.

    Args:
        number: the document number (prefix + consecutive).
        issued_at: the issue moment (UTC); written as Bogotá date and ``HH:MM:SS-05:00``.
        taxable_amount: ``ValFac``, the taxable base in COP.
        tax_by_tribute: taxes per product tribute id; IVA (1), INC (4) and ICA (3) enter the hash.
        total: ``ValTot`` in COP.
        issuer_nit: the issuing company's NIT without DV.
        customer_identification: the customer's identification.
        key: the range's technical key (CUFE) or the software PIN (CUDE).

    Returns:
        The SHA-384 hex digest of the DIAN concatenation (module docstring).
    """
    local = issued_at.astimezone(BOGOTA)
    parts = [
        number,
        local.strftime("%Y-%m-%d"),
        local.strftime("%H:%M:%S") + "-05:00",
        money(taxable_amount),
        "01",
        money(tax_by_tribute.get(_IVA, Decimal(0))),
        "04",
        money(tax_by_tribute.get(_INC, Decimal(0))),
        "03",
        money(tax_by_tribute.get(_ICA, Decimal(0))),
        money(total),
        issuer_nit,
        customer_identification,
        key,
        SANDBOX_ENVIRONMENT,
    ]
    return hashlib.sha384("".join(parts).encode("utf-8")).hexdigest()


def file_name(kind_prefix: str, nit: str, issued_at: datetime, internal_id: int) -> str:
    """Return the DIAN-style file name Factus gives downloads (§6.4), without extension.

    Args:
        kind_prefix: ``"fv"`` for bills, ``"nc"`` for credit notes.
        nit: issuer NIT without DV.
        issued_at: issue moment (UTC); its Bogotá year gives the 2 digits.
        internal_id: the document's internal id, used as the 8-digit consecutive.

    Example: ``file_name("fv", "901724254", <2025>, 13136) == "fv09017242540002500013136"``.
    """
    year = issued_at.astimezone(BOGOTA).strftime("%y")
    return f"{kind_prefix}{int(nit):010d}000{year}{internal_id % 10**8:08d}"


def _pdf_text(text: str) -> bytes:
    encoded = text.encode("cp1252", errors="replace")
    return encoded.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def pdf_document(title: str, lines: Sequence[str]) -> bytes:
    """Build a one-page A4 PDF 1.4 showing ``title`` and ``lines`` in Helvetica.

    Args:
        title: first line, in a larger font.
        lines: further lines (Spanish text is fine: WinAnsi encoding).

    Returns:
        The PDF bytes, with a correct cross-reference table (readable by any PDF viewer).
    """
    content = bytearray(b"BT /F1 16 Tf 50 790 Td (" + _pdf_text(title) + b") Tj /F1 10 Tf")
    for line in lines:
        content += b" 0 -16 Td (" + _pdf_text(line) + b") Tj"
    content += b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
        ),
        b"<< /Length "
        + str(len(content)).encode()
        + b" >>\nstream\n"
        + bytes(content)
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)


_NS = {
    "": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
_CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
# Serialize with the usual UBL prefixes rather than ns0/ns1.
ET.register_namespace("cac", _NS["cac"])
ET.register_namespace("cbc", _NS["cbc"])


def _cbc(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{_NS['cbc']}}}{tag}", attrs)
    element.text = text
    return element


def _cac(parent: ET.Element, tag: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{_NS['cac']}}}{tag}")


def ubl_document(
    *,
    credit_note: bool,
    number: str,
    uuid: str,
    issued_at: datetime,
    issuer_nit: str,
    issuer_dv: str,
    issuer_name: str,
    customer_identification: str,
    customer_name: str,
    lines: Sequence[tuple[str, int, Decimal, Decimal]],
    taxable_amount: Decimal,
    tax_amount: Decimal,
    surcharge_amount: Decimal,
    total: Decimal,
    billing_reference: tuple[str, str] | None = None,
) -> bytes:
    """Build a UBL 2.1-like XML of a bill (``Invoice``) or credit note (``CreditNote``).

    Args:
        credit_note: True for a ``CreditNote`` root, else ``Invoice``.
        number, uuid: document number and CUFE/CUDE.
        issued_at: issue moment (UTC).
        issuer_nit, issuer_dv, issuer_name: the issuing company.
        customer_identification, customer_name: the customer.
        lines: ``(name, quantity, taxable_amount, tax_amount)`` per item (COP).
        taxable_amount, tax_amount, surcharge_amount, total: document totals (COP).
        billing_reference: ``(bill number, bill CUFE)`` for a credit note that references a bill.

    Returns:
        UTF-8 XML bytes with an XML declaration.
    """
    root_ns = _CREDIT_NOTE_NS if credit_note else _NS[""]
    root = ET.Element(f"{{{root_ns}}}{'CreditNote' if credit_note else 'Invoice'}")
    local = issued_at.astimezone(BOGOTA)
    _cbc(root, "UBLVersionID", "UBL 2.1")
    _cbc(root, "CustomizationID", "20" if credit_note else "10")
    _cbc(root, "ProfileExecutionID", SANDBOX_ENVIRONMENT)
    _cbc(root, "ID", number)
    _cbc(
        root,
        "UUID",
        uuid,
        schemeID=SANDBOX_ENVIRONMENT,
        schemeName="CUDE-SHA384" if credit_note else "CUFE-SHA384",
    )
    _cbc(root, "IssueDate", local.strftime("%Y-%m-%d"))
    _cbc(root, "IssueTime", local.strftime("%H:%M:%S") + "-05:00")
    _cbc(
        root,
        "CreditNoteTypeCode" if credit_note else "InvoiceTypeCode",
        "91" if credit_note else "01",
    )
    _cbc(root, "DocumentCurrencyCode", "COP")
    _cbc(root, "LineCountNumeric", str(len(lines)))
    if billing_reference is not None:
        reference = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
        _cbc(reference, "ID", billing_reference[0])
        _cbc(reference, "UUID", billing_reference[1], schemeName="CUFE-SHA384")
    for role, identification, name, scheme in (
        ("AccountingSupplierParty", issuer_nit, issuer_name, issuer_dv),
        ("AccountingCustomerParty", customer_identification, customer_name, ""),
    ):
        party = _cac(_cac(root, role), "Party")
        tax_scheme = _cac(party, "PartyTaxScheme")
        _cbc(tax_scheme, "RegistrationName", name)
        _cbc(tax_scheme, "CompanyID", identification, schemeID=scheme, schemeAgencyID="195")
    tax_total = _cac(root, "TaxTotal")
    _cbc(tax_total, "TaxAmount", money(tax_amount), currencyID="COP")
    monetary = _cac(root, "LegalMonetaryTotal")
    _cbc(monetary, "LineExtensionAmount", money(taxable_amount), currencyID="COP")
    _cbc(monetary, "TaxExclusiveAmount", money(taxable_amount), currencyID="COP")
    _cbc(monetary, "TaxInclusiveAmount", money(taxable_amount + tax_amount), currencyID="COP")
    _cbc(monetary, "ChargeTotalAmount", money(surcharge_amount), currencyID="COP")
    _cbc(monetary, "PayableAmount", money(total), currencyID="COP")
    for index, (name, quantity, line_taxable, line_tax) in enumerate(lines, start=1):
        line = _cac(root, "CreditNoteLine" if credit_note else "InvoiceLine")
        _cbc(line, "ID", str(index))
        _cbc(
            line,
            "CreditedQuantity" if credit_note else "InvoicedQuantity",
            str(quantity),
            unitCode="94",
        )
        _cbc(line, "LineExtensionAmount", money(line_taxable), currencyID="COP")
        _cbc(_cac(line, "TaxTotal"), "TaxAmount", money(line_tax), currencyID="COP")
        _cbc(_cac(line, "Item"), "Description", name)
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml


def b64(data: bytes) -> str:
    """Return ``data`` base64-encoded as ASCII text (Factus' ``*_base_64_encoded`` fields)."""
    return base64.b64encode(data).decode("ascii")
