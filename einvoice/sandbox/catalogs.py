"""The Factus v1 reference tables the simulator validates against and echoes back.

Every table is copied from the Factus v1 docs "Tablas de referencia" and the catalog endpoints, as
FACTUS_API.md §3, §7.1 and §8 reproduce them. Municipalities come from the table shipped with the
product, ``einvoice/data/municipalities.csv`` (its ``factus_id`` is the Factus v1 id; the row without
one is not a Factus municipality and is left out).

Each table maps an id or code to a :class:`CatalogEntry` so that validation ("is it allowed?") and
rendering ("what does the response say about it?") read the same data.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class CatalogEntry:
    """One row of a reference table.

    Attributes:
        id: the Factus id (an int for id tables; for code tables it equals ``int(code)`` when the code
            is numeric, else 0).
        code: the DIAN/Factus code as a string (for example ``"94"`` for the unit "unidad").
        name: the Spanish name Factus returns.
        description: a longer text, only for product tributes (``""`` elsewhere).
    """

    id: int
    code: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class Municipality:
    """A Colombian municipality as Factus v1 knows it (FACTUS_API.md §8.2).

    Attributes:
        id: Factus v1 ``municipality_id``.
        code: 5-digit DANE code.
        name: name as spelled in the shipped table.
        department_id: Factus department id (the department's position in Factus' own ordering,
            which the shipped table follows; e.g. 28 = Santander as in the DOC1 example).
        department_code: 2-digit DANE department code.
        department_name: department name as spelled in the shipped table.
    """

    id: int
    code: str
    name: str
    department_id: int
    department_code: str
    department_name: str


def _by_id(rows: list[CatalogEntry]) -> dict[int, CatalogEntry]:
    return {row.id: row for row in rows}


def _by_code(rows: list[CatalogEntry]) -> dict[str, CatalogEntry]:
    return {row.code: row for row in rows}


# DOC1 "IDs de tipos de documentos de identidad"; 6 is NIT (DV checked), 10 NIT otro país.
IDENTIFICATION_DOCUMENTS = _by_id(
    [
        CatalogEntry(1, "11", "Registro civil"),
        CatalogEntry(2, "12", "Tarjeta de identidad"),
        CatalogEntry(3, "13", "Cédula de ciudadanía"),
        CatalogEntry(4, "21", "Tarjeta de extranjería"),
        CatalogEntry(5, "22", "Cédula de extranjería"),
        CatalogEntry(6, "31", "NIT"),
        CatalogEntry(7, "41", "Pasaporte"),
        CatalogEntry(8, "42", "Documento de identificación extranjero"),
        CatalogEntry(9, "47", "PEP"),
        CatalogEntry(10, "50", "NIT otro país"),
        CatalogEntry(11, "91", "NUIP"),
    ]
)
NIT_DOCUMENT_ID = 6

# DOC1 "IDs de tributos clientes": only 18 and 21 exist in the v1 table.
CUSTOMER_TRIBUTES = _by_id([CatalogEntry(18, "01", "IVA"), CatalogEntry(21, "ZZ", "No aplica")])

# DOC1 "IDs de tipos de organizaciones".
LEGAL_ORGANIZATIONS = _by_id(
    [CatalogEntry(1, "1", "Persona Jurídica"), CatalogEntry(2, "2", "Persona Natural")]
)

# DOC1 /v1/tributes/products example (FACTUS_API.md §8.2), ids 1-17.
PRODUCT_TRIBUTES = _by_id(
    [
        CatalogEntry(1, "01", "IVA", "Impuesto sobre la Ventas"),
        CatalogEntry(2, "02", "IC", "Impuesto al Consumo Departamental Nominal"),
        CatalogEntry(3, "03", "ICA", "Impuesto de Industria, Comercio y Aviso"),
        CatalogEntry(4, "04", "INC", "Impuesto Nacional al Consumo"),
        CatalogEntry(5, "05", "ReteIVA", "Retención sobre el IVA"),
        CatalogEntry(6, "06", "ReteRenta", "Retención sobre renta"),
        CatalogEntry(7, "07", "ReteICA", "Retención sobre el ICA"),
        CatalogEntry(8, "08", "IC Porcentual", "Impuesto al Consumo Departamental Porcentual"),
        CatalogEntry(9, "20", "FtoHorticultura", "Cuota de Fomento Hortifrutícula"),
        CatalogEntry(10, "21", "Timbre", "Impuesto de Timbre"),
        CatalogEntry(11, "22", "INC Bolsas", "Impuesto Nacional al Consumo de Bolsa Plástica"),
        CatalogEntry(12, "23", "INCarbono", "Impuesto Nacional del Carbono"),
        CatalogEntry(13, "24", "INCarbono", "Impuesto Nacional del Carbono"),
        CatalogEntry(14, "24", "INCombustibles", "Impuesto Nacional a los Combustibles"),
        CatalogEntry(15, "25", "Sobretasa Combustibles", "Sobretasa a los combustibles"),
        CatalogEntry(16, "26", "Sordicom", "Contribución minoristas (Combustibles)"),
        CatalogEntry(17, "30", "IC Datos", "Impuesto al Consumo de Datos"),
    ]
)

# Self-withholdings an item may carry (DOC1 items.withholding_taxes: 05, 06, 07).
WITHHOLDING_TAXES = _by_code(
    [
        CatalogEntry(5, "05", "ReteIVA"),
        CatalogEntry(6, "06", "ReteRenta"),
        CatalogEntry(7, "07", "ReteICA"),
    ]
)

# DOC1 /v1/measurement-units example: the five units Factus documents.
UNIT_MEASURES = _by_id(
    [
        CatalogEntry(70, "94", "unidad"),
        CatalogEntry(414, "KGM", "kilogramo"),
        CatalogEntry(449, "LBR", "libra"),
        CatalogEntry(512, "MTR", "metro"),
        CatalogEntry(874, "GLL", "galón"),
    ]
)

# DOC1 "IDs de estándar de identificación del producto".
STANDARD_CODES = _by_id(
    [
        CatalogEntry(1, "999", "Estándar de adopción del contribuyente"),
        CatalogEntry(2, "001", "UNSPSC"),
        CatalogEntry(3, "020", "Partida Arancelaria"),
        CatalogEntry(4, "010", "GTIN"),
    ]
)

# DOC1 "Códigos de métodos de pago" (codes are strings because of ZZZ).
PAYMENT_METHODS = _by_code(
    [
        CatalogEntry(10, "10", "Efectivo"),
        CatalogEntry(42, "42", "Consignación"),
        CatalogEntry(20, "20", "Cheque"),
        CatalogEntry(47, "47", "Transferencia"),
        CatalogEntry(71, "71", "Bonos"),
        CatalogEntry(72, "72", "Vales"),
        CatalogEntry(1, "1", "Medio de pago no definido"),
        CatalogEntry(49, "49", "Tarjeta Débito"),
        CatalogEntry(48, "48", "Tarjeta Crédito"),
        CatalogEntry(0, "ZZZ", "Otro"),
    ]
)

# DOC1 "Códigos de formas de pago".
PAYMENT_FORMS = _by_code(
    [CatalogEntry(1, "1", "Pago de contado"), CatalogEntry(2, "2", "Pago a crédito")]
)
CREDIT_PAYMENT_FORM = "2"

# DOC1 "Códigos de tipos de documentos para la factura".
BILL_DOCUMENTS = _by_code(
    [
        CatalogEntry(1, "01", "Factura electrónica de Venta"),
        CatalogEntry(3, "03", "Instrumento electrónico de transmisión - tipo 03"),
    ]
)
TRANSMISSION_INSTRUMENT = "03"

# DOC1 "Códigos de tipos de operación".
OPERATION_TYPES = _by_code(
    [
        CatalogEntry(10, "10", "Estándar"),
        CatalogEntry(11, "11", "Mandatos"),
        CatalogEntry(12, "12", "Transporte"),
    ]
)
MANDATE_OPERATION = "11"

# DOC1 "Códigos de corrección" (credit notes, FACTUS_API.md §7.1).
CORRECTION_CONCEPTS = _by_id(
    [
        CatalogEntry(
            1, "1", "Devolución parcial de los bienes y/o no aceptación parcial del servicio"
        ),
        CatalogEntry(2, "2", "Anulación de factura electrónica"),
        CatalogEntry(3, "3", "Rebaja o descuento parcial o total"),
        CatalogEntry(4, "4", "Ajuste de precio"),
        CatalogEntry(5, "5", "Descuento comercial por pronto pago"),
        CatalogEntry(6, "6", "Descuento comercial por volumen de ventas"),
    ]
)

# DOC1 "Códigos de tipos de operación (notas crédito)".
CREDIT_NOTE_CUSTOMIZATIONS = _by_id(
    [
        CatalogEntry(20, "20", "Nota Crédito que referencia una factura electrónica."),
        CatalogEntry(22, "22", "Nota Crédito sin referencia a una factura electrónica."),
    ]
)
CUSTOMIZATION_WITH_BILL = 20
CUSTOMIZATION_WITHOUT_BILL = 22

# DOC1 "Códigos de los recargos y descuentos": only 03 is available, 00-02 are "próximamente".
ALLOWANCE_CONCEPTS = _by_code([CatalogEntry(3, "03", "Recargo Condicionado")])

# DOC1 "Códigos de tipos de documento para los rangos de numeración" (FACTUS_API.md §8.1).
RANGE_DOCUMENTS = _by_code(
    [
        CatalogEntry(21, "21", "Factura de Venta"),
        CatalogEntry(22, "22", "Nota Crédito"),
        CatalogEntry(23, "23", "Nota Débito"),
        CatalogEntry(24, "24", "Documento Soporte"),
        CatalogEntry(25, "25", "Nota de Ajuste Documento Soporte"),
        CatalogEntry(26, "26", "Nómina"),
        CatalogEntry(27, "27", "Nota de Ajuste Nómina"),
        CatalogEntry(28, "28", "Nota de eliminación de nómina"),
        CatalogEntry(30, "30", "Factura de talonario y de papel"),
    ]
)
INVOICE_RANGE = "21"
CREDIT_NOTE_RANGE = "22"


def fold(text: str) -> str:
    """Return ``text`` lower-cased and without accents, for Laravel/MySQL-like ``LIKE`` searches.

    Factus' ``?name=`` filters behave like a case- and accent-insensitive substring match (MySQL
    ``utf8mb4_unicode_ci``): inferred, FACTUS_API.md §8.2 shows only the parameter.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


@lru_cache(maxsize=1)
def municipalities() -> dict[int, Municipality]:
    """Load the Factus municipalities from ``einvoice/data/municipalities.csv``, keyed by Factus id.

    Returns:
        ``{factus_id: Municipality}`` in file order (1,122 rows; the row without a ``factus_id`` is
        skipped). Department ids are assigned in order of first appearance, which is Factus' own
        department ordering (the file is sorted by ``factus_id``; see ``docs/reference-data.md``).

    Raises:
        FileNotFoundError: the data file is missing from the installed package.
    """
    source = resources.files("einvoice").joinpath("data", "municipalities.csv")
    table: dict[int, Municipality] = {}
    department_ids: dict[str, int] = {}
    rows = csv.DictReader(io.StringIO(source.read_text(encoding="utf-8"), newline=""))
    for row in rows:
        if not row["factus_id"]:
            continue
        department_id = department_ids.setdefault(row["department_code"], len(department_ids) + 1)
        municipality = Municipality(
            id=int(row["factus_id"]),
            code=row["code"],
            name=row["name"],
            department_id=department_id,
            department_code=row["department_code"],
            department_name=row["department_name"],
        )
        table[municipality.id] = municipality
    return table


# ---------------------------------------------------------------------------------------------
# API v2 tables (Factus v2 docs "Tablas de referencia": tablas, unit-measures, municipios)
#
# v2 sends codes where v1 sent ids. Each v2 entry keeps the v1 id of the same row when v1 has it, so
# that one stored document renders through both versions; rows v1 does not know get an id of their
# own from 1000 up (never sent on the wire by v1 clients, only rendered).

_V2_ONLY_ID_BASE = 1000


def _v2_by_code(rows: list[tuple[str, str]], v1: dict[int, CatalogEntry]) -> dict[str, CatalogEntry]:
    v1_by_code = {entry.code: entry for entry in v1.values()}
    table: dict[str, CatalogEntry] = {}
    for index, (code, name) in enumerate(rows):
        known = v1_by_code.get(code)
        table[code] = CatalogEntry(known.id if known else _V2_ONLY_ID_BASE + index, code, name)
    return table


# "Códigos de tipos de documentos de identidad" (v2 adds 48 PPT).
V2_IDENTIFICATION_DOCUMENTS = _v2_by_code(
    [(e.code, e.name) for e in IDENTIFICATION_DOCUMENTS.values()]
    + [("48", "PPT (Permiso Protección Temporal)")],
    IDENTIFICATION_DOCUMENTS,
)
NIT_DOCUMENT_CODE = "31"

# "Códigos de tributos clientes" and "Código de tipos de organizaciones".
V2_CUSTOMER_TRIBUTES = _v2_by_code([("01", "IVA"), ("ZZ", "No aplica")], CUSTOMER_TRIBUTES)
V2_LEGAL_ORGANIZATIONS = _v2_by_code(
    [("1", "Persona Jurídica"), ("2", "Persona Natural")], LEGAL_ORGANIZATIONS
)

# "Códigos de impuestos": 01 IVA, 04 INC, 35 ultraprocessed food tax (v1 has no row for it).
V2_TAXES = _v2_by_code(
    [("01", "IVA"), ("04", "INC"), ("35", "ICUI")], PRODUCT_TRIBUTES
)
# "Códigos de retenciones": only ReteIVA and ReteRenta in v2 (v1 also had ReteICA 07).
V2_WITHHOLDING_TAXES = {code: WITHHOLDING_TAXES[code] for code in ("05", "06")}

# "Responsabilidades fiscales".
RESPONSIBILITIES = {
    "O-13": "Gran contribuyente",
    "O-15": "Autorretenedor",
    "O-23": "Agente de retención de IVA",
    "O-47": "Régimen simple de tributación",
    "R-99-PN": "No responsable",
}
DEFAULT_RESPONSIBILITY = "R-99-PN"

@lru_cache(maxsize=1)
def v2_unit_measures() -> dict[str, CatalogEntry]:
    """Factus's whole v2 unit-of-measure table, keyed by the code v2 sends (``unit_measure_code``).

    Source: Factus v2 docs "Tablas de referencia / Unidades de medida" (unit-measures), shipped
    as ``einvoice/data/unit_measures.csv`` (its README says when and how it was transcribed). It
    is data, read here as the other side of the wire reads it, not through the client's code.

    Returns:
        ``{code: CatalogEntry}``: 1,089 codes, each with its Factus id (the row's position in the
        table, which is the v1 id wherever v1 documents one: 70 ``94`` unidad, 414 ``KGM``) and
        Factus's spelling. Four codes are listed twice by Factus (``MGM``, ``ONZ``, ``PD``,
        ``SO``); the first row wins, as in the product's loader.

    Raises:
        FileNotFoundError: the data file is missing from the installed package.
    """
    source = resources.files("einvoice").joinpath("data", "unit_measures.csv")
    table: dict[str, CatalogEntry] = {}
    for row in csv.DictReader(io.StringIO(source.read_text(encoding="utf-8"), newline="")):
        table.setdefault(row["code"], CatalogEntry(int(row["factus_id"]), row["code"], row["name"]))
    return table


# Countries (v2 "countries" table): the simulator names Colombia and accepts any ISO 3166-1
# alpha-2 code for the others.
COUNTRIES = {"CO": "Colombia"}
COLOMBIA = "CO"


@lru_cache(maxsize=1)
def municipalities_by_code() -> dict[str, Municipality]:
    """The Factus municipalities keyed by DANE code (v2 ``municipality_code``, e.g. ``"68679"``)."""
    return {m.code: m for m in municipalities().values()}


def _any(*tables: dict[Any, CatalogEntry]) -> dict[int, CatalogEntry]:
    merged: dict[int, CatalogEntry] = {}
    for table in tables:
        for entry in table.values():
            merged.setdefault(entry.id, entry)
    return merged


@lru_cache(maxsize=1)
def _units_by_id() -> dict[int, CatalogEntry]:
    # Merged once: every rendered item line looks its unit up.
    return _any(UNIT_MEASURES, v2_unit_measures())


def unit_measure(unit_id: int) -> CatalogEntry:
    """The unit of measure with that id, from the v1 table or the v2 one (for rendering).

    Raises:
        KeyError: no table has that id.
    """
    return _units_by_id()[unit_id]


def product_tribute(tribute_id: int) -> CatalogEntry:
    """The product tribute with that id, from the v1 table or the v2 tax table (for rendering).

    Raises:
        KeyError: no table has that id.
    """
    return _any(PRODUCT_TRIBUTES, V2_TAXES)[tribute_id]


def identification_document(document_id: int) -> CatalogEntry:
    """The identification document type with that id, v1 or v2 (for rendering).

    Raises:
        KeyError: no table has that id.
    """
    return _any(IDENTIFICATION_DOCUMENTS, V2_IDENTIFICATION_DOCUMENTS)[document_id]


# Range documents that need a DIAN resolution (v2 ``crear-rango``: 21 invoice, 24 support document,
# 30 paper invoice); the others (22, 23, 25) are created without one.
RESOLUTION_RANGE_DOCUMENTS = frozenset({"21", "24", "30"})
V2_RANGE_DOCUMENTS = {code: RANGE_DOCUMENTS[code] for code in ("21", "22", "23", "24", "25", "30")}
