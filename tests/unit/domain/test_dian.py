"""DIAN / Factus reference rules: identification types, NIT check digit, codes."""

from __future__ import annotations

import pytest

from einvoice.domain import dian


@pytest.mark.parametrize(
    ("erp_value", "factus_id"),
    [
        ("CC", 3),
        ("NIT", 6),
        ("CE", 5),
        ("TI", 2),
        ("PP", 7),
        ("RC", 1),
        ("TE", 4),
        ("DIE", 8),
        ("PEP", 9),
        ("NIT_EXT", 10),
        ("NUIP", 11),
        # DIAN codes (seed 002 "Tipos de Documento de Identidad")
        ("11", 1),
        ("12", 2),
        ("13", 3),
        ("21", 4),
        ("22", 5),
        ("31", 6),
        ("41", 7),
        ("42", 8),
        ("47", 9),
        ("50", 10),
        ("91", 11),
        # case, spacing and punctuation variants
        (" cc ", 3),
        ("C.C.", 3),
        ("nit", 6),
        ("Nit-Ext", 10),
        ("nit ext", 10),
        ("NIT de otro país", 10),
        ("documento extranjero", 8),
        ("Documento de identificación extranjero", 8),
        ("Cédula de ciudadanía", 3),
        ("CEDULA DE EXTRANJERIA", 5),
        ("Pasaporte", 7),
    ],
)
def test_identification_types_map_to_factus_ids(erp_value: str, factus_id: int) -> None:
    assert dian.identification_document_id(erp_value) == factus_id


@pytest.mark.parametrize("erp_value", [None, "", "  ", "XX", "cedula", "3", "6", "99"])
def test_unknown_identification_types_map_to_none(erp_value: str | None) -> None:
    # "3" and "6" are Factus ids, not DIAN codes: accepting them would make "11" ambiguous.
    assert dian.identification_document_id(erp_value) is None


@pytest.mark.parametrize(
    ("nit", "dv"),
    [
        ("901724254", 1),  # FACTUS S.A.S., the shared sandbox company (FACTUS_API.md §1)
        ("900825759", 7),  # HALLTEC S.A.S. in DOC1's validate response example
        ("800197268", 4),  # DIAN itself
        ("890903938", 8),  # Bancolombia
    ],
)
def test_nit_check_digit_matches_real_nits(nit: str, dv: int) -> None:
    assert dian.nit_check_digit(nit) == dv


# The last one is in fullwidth digits on purpose: str.isdigit() accepts them, DIAN does not.
@pytest.mark.parametrize("bad", ["", "90172425-4", "90172425A", "９０１"])  # noqa: RUF001
def test_nit_check_digit_refuses_anything_but_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="digits only"):
        dian.nit_check_digit(bad)


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("05", "05"),
        ("5", "05"),
        ("ReteIVA", "05"),
        ("rete_iva", "05"),
        ("06", "06"),
        (6, "06"),
        ("ReteFuente", "06"),
        ("ReteRenta", "06"),
        ("rete fuente", "06"),
        ("07", "07"),
        ("ReteICA", "07"),
        ("RETE-ICA", "07"),
    ],
)
def test_withholding_labels_map_to_factus_codes(label: str | int, code: str) -> None:
    assert dian.withholding_tax_code(label) == code


@pytest.mark.parametrize("label", [None, "", "01", "IVA", "retecree"])
def test_unknown_withholding_labels_map_to_none(label: str | None) -> None:
    assert dian.withholding_tax_code(label) is None


def test_customer_with_company_name_defaults_to_legal_person() -> None:
    assert dian.default_legal_organization_id("ACME S.A.S.") == dian.LEGAL_PERSON
    assert dian.default_legal_organization_id("  ") == dian.NATURAL_PERSON
    assert dian.default_legal_organization_id(None) == dian.NATURAL_PERSON


def test_unit_measures_are_the_ids_factus_publishes_not_the_seed_table() -> None:
    # Factus /v1/measurement-units: 70 unidad, 414 KGM, 449 LBR, 512 MTR, 874 GLL. The seed's
    # 71 = KGM contradicts Factus and must not be accepted by default.
    assert {uid: code for uid, (code, _name) in dian.UNIT_MEASURES.items()} == {
        70: "94",
        414: "KGM",
        449: "LBR",
        512: "MTR",
        874: "GLL",
    }
    assert 71 not in dian.UNIT_MEASURES


def test_reference_tables_hold_the_documented_codes() -> None:
    assert set(dian.PAYMENT_METHODS) == {"10", "42", "20", "47", "71", "72", "1", "49", "48", "ZZZ"}
    assert set(dian.PAYMENT_FORMS) == {"1", "2"}
    assert set(dian.CORRECTION_CONCEPTS) == {1, 2, 3, 4, 5, 6}
    assert set(dian.WITHHOLDING_TAXES) == {"05", "06", "07"}
    assert set(dian.CUSTOMER_TRIBUTES) == {18, 21}
    assert set(dian.PRODUCT_TRIBUTES) == set(range(1, 18))
    assert dian.PRODUCT_TRIBUTES[1] == ("01", "IVA")
    assert set(dian.STANDARD_CODES) == {1, 2, 3, 4}
    assert set(dian.IDENTIFICATION_DOCUMENTS) == set(range(1, 12))
