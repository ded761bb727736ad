"""CUFE, QR image, PDF, XML and file names of the simulator's documents (FACTUS_API.md §4.1, §6.4)."""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib
from datetime import UTC, datetime
from decimal import Decimal
from xml.etree import ElementTree as ET

import zxingcpp
from PIL import Image

from einvoice.sandbox import artifacts

ISSUED = datetime(2025, 3, 14, 15, 21, 4, tzinfo=UTC)  # 10:21:04 AM in Bogotá


def _cufe(**changes: object) -> str:
    fields: dict[str, object] = {
        "number": "SETP990010377",
        "issued_at": ISSUED,
        "taxable_amount": Decimal(40000),
        "tax_by_tribute": {1: Decimal(7600)},
        "total": Decimal(47600),
        "issuer_nit": "901724254",
        "customer_identification": "1020304050",
        "key": "fc8eac422eba16e22ffd8c6f94b3f40a6e38162c",
    }
    fields.update(changes)
    return artifacts.cufe(**fields)  # type: ignore[arg-type]


def test_the_cufe_is_96_lowercase_hex_and_depends_on_the_invoice_fields():
    first = _cufe()

    assert re.fullmatch(r"[0-9a-f]{96}", first)
    assert _cufe() == first
    assert _cufe(number="SETP990010378") != first
    assert _cufe(total=Decimal("47600.01")) != first


def test_bill_times_are_shown_in_bogota_with_am_pm():
    assert artifacts.factus_datetime(ISSUED) == "14-03-2025 10:21:04 AM"


def test_the_file_name_follows_the_dian_pattern_of_the_real_example():
    name = artifacts.file_name("fv", "901724254", datetime(2025, 6, 1, tzinfo=UTC), 13136)

    assert name == "fv09017242540002500013136"


def test_the_qr_image_is_a_real_png_of_a_qr_code_after_the_factus_prefix():
    image = artifacts.qr_image(_cufe())

    prefix, encoded = image.split(",", 1)
    assert prefix == "data:image/png;base64"
    assert encoded.startswith(" ")
    png = base64.b64decode(encoded.strip())
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    # a version-8 QR code (49 modules) plus a 4-module quiet zone on each side
    assert width == height == 57
    idat = png[png.index(b"IDAT") + 4 : png.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == height * (1 + (width + 7) // 8)


def test_a_qr_reader_reads_the_dian_lookup_url_of_the_cufe_from_the_qr_image():
    cufe = _cufe()
    png = base64.b64decode(artifacts.qr_image(cufe).split(",", 1)[1].strip())

    # Scaled up as a viewer shows it, then decoded from the PNG's pixels: a broken PNG, inverted
    # colours (the reader may not try the inverse) or the wrong URL fail here; the size and the
    # quiet zone are checked by the test above.
    picture = Image.open(io.BytesIO(png)).convert("L")
    picture = picture.resize((picture.width * 4, picture.height * 4), Image.Resampling.NEAREST)
    found = zxingcpp.read_barcode(picture, formats=zxingcpp.BarcodeFormat.QRCode, try_invert=False)

    assert found is not None
    assert found.text == artifacts.qr_url(cufe)
    assert found.text == "https://catalogo-vpfe-hab.dian.gov.co/document/searchqr?documentkey=" + cufe


def test_the_pdf_is_well_formed_with_a_correct_cross_reference_table():
    pdf = artifacts.pdf_document(
        "Factura electrónica de venta", ["Total: 47600.00 COP", "(paréntesis)"]
    )

    assert pdf.startswith(b"%PDF-1.4")
    assert pdf.rstrip().endswith(b"%%EOF")
    startxref = int(pdf.rsplit(b"startxref", 1)[1].split()[0])
    assert pdf[startxref : startxref + 4] == b"xref"
    offsets = [int(line[:10]) for line in pdf[startxref:].split(b"\n")[3:8]]
    for number, offset in enumerate(offsets, start=1):
        assert pdf[offset:].startswith(f"{number} 0 obj".encode())
    assert b"\\(par\xe9ntesis\\)" in pdf


def test_the_xml_is_ubl_with_the_cufe_and_the_payable_amount():
    xml = artifacts.ubl_document(
        credit_note=False,
        number="SETP990010377",
        uuid=_cufe(),
        issued_at=ISSUED,
        issuer_nit="901724254",
        issuer_dv="1",
        issuer_name="FACTUS S.A.S.",
        customer_identification="1020304050",
        customer_name="María Gómez",
        lines=[("Café", 2, Decimal(40000), Decimal(7600))],
        taxable_amount=Decimal(40000),
        tax_amount=Decimal(7600),
        surcharge_amount=Decimal(0),
        total=Decimal(47600),
    )

    root = ET.fromstring(xml)  # noqa: S314 - the simulator's own XML
    cbc = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}"
    assert root.tag.endswith("Invoice")
    assert root.find(f"{cbc}UUID").text == _cufe()  # type: ignore[union-attr]
    assert root.find(f".//{cbc}PayableAmount").text == "47600.00"  # type: ignore[union-attr]
