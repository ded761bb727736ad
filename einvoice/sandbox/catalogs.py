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
        department ordering (the file is sorted by ``factus_id``; see ``MUNICIPALITIES.md``).

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
