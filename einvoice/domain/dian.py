"""DIAN / Factus v1 reference tables and the rules that read them.

Every table names its source. "DOC1 tablas" is the Factus v1 page "Tablas de referencia"
(``developers.factus.com.co/v1/tablas-de-referencia/tablas``, mirrored in ``sbetav/factus-js``
branch ``v1``, ``factus-docs/v1/tablas-de-referencia/tablas.md``); "seed 002" is
``shared/seeds/002_2b9bfbab71eb71ca.txt`` section "Tablas de Referencia DIAN". Where they
disagree, Factus wins (FACTUS_API.md: the contract is the Factus API) and the comment says so.

Municipality ids are not here: there are 1,122 of them, the database holds them
(``einvoice/data/municipalities.csv``) and the payload builder takes the known ids as an argument.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

from stdnum.co import nit as stdnum_nit

# --- Identity documents -------------------------------------------------------------------
# Factus v1 ``identification_document_id`` (DOC1 tablas "IDs de tipos de documentos de
# identidad"; FACTUS_API.md §3.3) and the DIAN code of each (seed 002 "Tipos de Documento de
# Identidad").
IDENTIFICATION_DOCUMENTS: Mapping[int, tuple[str, str]] = MappingProxyType(
    {
        1: ("11", "Registro civil"),
        2: ("12", "Tarjeta de identidad"),
        3: ("13", "Cédula de ciudadanía"),
        4: ("21", "Tarjeta de extranjería"),
        5: ("22", "Cédula de extranjería"),
        6: ("31", "NIT"),
        7: ("41", "Pasaporte"),
        8: ("42", "Documento de identificación extranjero"),
        9: ("47", "PEP"),
        10: ("50", "NIT otro país"),
        11: ("91", "NUIP"),
    }
)
NIT_DOCUMENT_ID = 6


def _normalise(text: str) -> str:
    """Fold case, accents, dots, dashes and underscores so "C.C.", "nit_ext", "Cédula" match."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    plain = plain.replace(".", "")
    plain = re.sub(r"[_\-\s]+", " ", plain)
    return plain.strip()


def _identification_aliases() -> dict[str, int]:
    # What ``customers.identification_type`` may hold. The abbreviations are the seed's
    # ``mapIdentificationType`` (CC, NIT, CE, TI, PP, RC) plus the usual Colombian ones for the
    # other types; then every DIAN code and Factus name of the table above. Factus ids themselves
    # ("3", "6") are NOT accepted: "11" would be ambiguous (DIAN code 11 is registro civil,
    # Factus id 11 is NUIP).
    aliases = {
        "rc": 1,
        "ti": 2,
        "cc": 3,
        "te": 4,
        "ce": 5,
        "nit": 6,
        "pp": 7,
        "die": 8,
        "pep": 9,
        "nit ext": 10,
        "nuip": 11,
        "documento extranjero": 8,
        "nit de otro pais": 10,
    }
    for factus_id, (dian_code, name) in IDENTIFICATION_DOCUMENTS.items():
        aliases[dian_code] = factus_id
        aliases.setdefault(_normalise(name), factus_id)
    return {_normalise(alias): factus_id for alias, factus_id in aliases.items()}


IDENTIFICATION_ALIASES: Mapping[str, int] = MappingProxyType(_identification_aliases())


def identification_document_id(identification_type: str | None) -> int | None:
    """Map ``customers.identification_type`` to the Factus v1 ``identification_document_id``.

    Input: the ERP text, e.g. ``"CC"``, ``" nit "``, ``"13"`` (DIAN code), ``"NIT_EXT"``,
    ``"NIT de otro país"``. Output: the Factus id (1–11), or ``None`` when the text is empty or
    unknown (the caller turns that into ``unknown_identification_type``).
    Source: DOC1 tablas; seed 002 "Tipos de Documento de Identidad".
    """
    if identification_type is None:
        return None
    return IDENTIFICATION_ALIASES.get(_normalise(identification_type))


# --- NIT check digit ----------------------------------------------------------------------


def nit_check_digit(nit: str) -> int:
    """Return the DIAN check digit (DV) of a Colombian NIT, computed by ``python-stdnum``.

    Input: the NIT digits without DV, separators or hyphen, e.g. ``"901724254"``.
    Output: the DV as an int 0–9 (``901724254`` → ``1``, Factus's own NIT, FACTUS_API.md §1).
    Raises ``ValueError`` if ``nit`` is not all digits. Source: DIAN modulo-11 weights as
    implemented by ``stdnum.co.nit.calc_check_digit``.
    """
    if re.fullmatch(r"[0-9]+", nit) is None:
        raise ValueError(f"a NIT is digits only, got {nit!r}")
    return int(stdnum_nit.calc_check_digit(nit))


# --- Customer: legal organization and tribute ---------------------------------------------
# DOC1 tablas "IDs de tipos de organizaciones"; seed 002 "Tipos de Organización Legal".
LEGAL_PERSON = 1
NATURAL_PERSON = 2
LEGAL_ORGANIZATIONS: Mapping[int, str] = MappingProxyType(
    {LEGAL_PERSON: "Persona Jurídica", NATURAL_PERSON: "Persona Natural"}
)

# DOC1 tablas "IDs de tributos clientes": 18 (code 01, IVA) and 21 (code ZZ, No aplica). Seed 002
# also lists 22 (ZA, "IVA e INC"); Factus v1 does not, so 22 is refused.
CUSTOMER_TRIBUTES: Mapping[int, tuple[str, str]] = MappingProxyType(
    {18: ("01", "IVA"), 21: ("ZZ", "No aplica")}
)
# Seed 002 migration: ``customers.tribute_id INTEGER DEFAULT 21``; Factus fills "ZZ" too when a
# customer has no tribute (FACTUS_API.md §3.3, PROBE on v2).
DEFAULT_CUSTOMER_TRIBUTE_ID = 21


def default_legal_organization_id(company_name: str | None) -> int:
    """Legal organization for a customer whose ``legal_organization_id`` is NULL.

    Input: ``customers.company_name``. Output: 1 (persona jurídica) when a company name is
    present, else 2 (persona natural). Inferred: seed 002 defaults the column to 2; a customer
    that carries a razón social is a legal person, and Factus requires ``company`` for those
    (FACTUS_API.md §3.3), so the name is the better witness.
    """
    return LEGAL_PERSON if company_name and company_name.strip() else NATURAL_PERSON


# --- Products ------------------------------------------------------------------------------
# ``GET /v1/tributes/products`` (FACTUS_API.md §8.2, DOC1 ``tributos-de-productos``): id → (code,
# name). Ids 12 and 13 both carry INCarbono in the docs; kept as listed.
PRODUCT_TRIBUTES: Mapping[int, tuple[str, str]] = MappingProxyType(
    {
        1: ("01", "IVA"),
        2: ("02", "IC"),
        3: ("03", "ICA"),
        4: ("04", "INC"),
        5: ("05", "ReteIVA"),
        6: ("06", "ReteRenta"),
        7: ("07", "ReteICA"),
        8: ("08", "IC Porcentual"),
        9: ("20", ""),
        10: ("21", "Timbre"),
        11: ("22", "INC Bolsas"),
        12: ("23", "INCarbono"),
        13: ("24", "INCarbono"),
        14: ("24", "INCombustibles"),
        15: ("25", ""),
        16: ("26", ""),
        17: ("30", "IC Datos"),
    }
)
# Seed 002 migration: ``invoice_items.tribute_id INTEGER DEFAULT 1`` (IVA).
DEFAULT_PRODUCT_TRIBUTE_ID = 1

# ``GET /v1/measurement-units`` example (DOC1 ``unidades-de-medida/obtener-unidades``;
# FACTUS_API.md §8.2). These five are every id Factus v1 publishes. Seed 002's table (71 KGM,
# 72 LTR, 73 MTR, ...) contradicts Factus (KGM is 414, MTR is 512) and is not used. Other units
# exist on Factus; the caller passes the ids it synced from ``/v1/measurement-units`` as
# ``known_unit_measure_ids`` to accept them. (Observed: each id here equals the unit's 1-based
# position in Factus's v2 unit list, e.g. code "94" is 70th; not relied on.)
UNIT_MEASURES: Mapping[int, tuple[str, str]] = MappingProxyType(
    {
        70: ("94", "unidad"),
        414: ("KGM", "kilogramo"),
        449: ("LBR", "libra"),
        512: ("MTR", "metro"),
        874: ("GLL", "galón"),
    }
)
# Seed 002 migration: ``invoice_items.unit_measure_id INTEGER DEFAULT 70`` (unidad).
DEFAULT_UNIT_MEASURE_ID = 70

# DOC1 tablas "IDs de estándar de identificación del producto"; FACTUS_API.md §3.4.
STANDARD_CODES: Mapping[int, str] = MappingProxyType(
    {
        1: "Estándar de adopción del contribuyente",
        2: "UNSPSC",
        3: "Partida Arancelaria",
        4: "GTIN",
    }
)
# Seed 002 migration: ``invoice_items.standard_code_id INTEGER DEFAULT 1``.
DEFAULT_STANDARD_CODE_ID = 1

# --- Withholdings (autorretenciones) --------------------------------------------------------
# FACTUS_API.md §3.4 ``withholding_taxes[].code``: 05 ReteIVA, 06 ReteRenta, 07 ReteICA (DOC1
# factura-avanzada; product tributes 5–7 above). "ReteFuente" is the everyday name of the
# withholding Factus calls ReteRenta (retención en la fuente a título de renta).
WITHHOLDING_TAXES: Mapping[str, str] = MappingProxyType(
    {"05": "ReteIVA", "06": "ReteRenta", "07": "ReteICA"}
)
_WITHHOLDING_ALIASES: dict[str, str] = {
    "05": "05",
    "5": "05",
    "reteiva": "05",
    "rete iva": "05",
    "06": "06",
    "6": "06",
    "reterenta": "06",
    "rete renta": "06",
    "retefuente": "06",
    "rete fuente": "06",
    "07": "07",
    "7": "07",
    "reteica": "07",
    "rete ica": "07",
}


def withholding_tax_code(code: str | int | None) -> str | None:
    """Map an ERP withholding label to the Factus code ``"05"``, ``"06"`` or ``"07"``.

    Input: the ``code`` of one entry of ``invoice_items.withholding_taxes`` (JSONB), e.g.
    ``"06"``, ``6``, ``"ReteFuente"``, ``"rete_ica"``. Output: the two-digit code, or ``None`` if
    unknown. Source: FACTUS_API.md §3.4; DOC1 factura-avanzada example (``"06"``, ``"05"``).
    """
    if code is None:
        return None
    return _WITHHOLDING_ALIASES.get(_normalise(str(code)))


# --- Invoice header -------------------------------------------------------------------------
# DOC1 tablas "Códigos de métodos de pago"; FACTUS_API.md §3.1; seed 002 "Métodos de Pago" (the
# seed omits "1", Factus lists it). Strings, because of "ZZZ".
PAYMENT_METHODS: Mapping[str, str] = MappingProxyType(
    {
        "10": "Efectivo",
        "42": "Consignación",
        "20": "Cheque",
        "47": "Transferencia",
        "71": "Bonos",
        "72": "Vales",
        "1": "Medio de pago no definido",
        "49": "Tarjeta Débito",
        "48": "Tarjeta Crédito",
        "ZZZ": "Otro",
    }
)
DEFAULT_PAYMENT_METHOD_CODE = "10"  # Factus default (FACTUS_API.md §3.1), seed DEFAULT '10'

# DOC1 tablas "Códigos de formas de pago"; seed 002 "Formas de Pago".
PAYMENT_FORM_CASH = "1"
PAYMENT_FORM_CREDIT = "2"
PAYMENT_FORMS: Mapping[str, str] = MappingProxyType(
    {PAYMENT_FORM_CASH: "Pago de contado", PAYMENT_FORM_CREDIT: "Pago a crédito"}
)

# DOC1 tablas "Códigos de tipos de operación"; FACTUS_API.md §3.1.
OPERATION_TYPES: Mapping[str, str] = MappingProxyType(
    {"10": "Estándar", "11": "Mandatos", "12": "Transporte"}
)
DEFAULT_OPERATION_TYPE = "10"
# Type 11 needs ``items[].scheme_id`` (and ``mandate``), which the ERP rows do not carry
# (seed 002 "Campos FALTANTES"), so the builder refuses it rather than send a payload Factus
# would reject.
MANDATE_OPERATION_TYPE = "11"

# DOC1 tablas "Códigos de tipos de documentos para la factura". Only "01" is built: "03" needs
# ``related_documents``, which the ERP does not model.
BILL_DOCUMENT_CODE = "01"

# DOC1 tablas "Códigos de corrección"; FACTUS_API.md §7.1.
CORRECTION_CONCEPTS: Mapping[int, str] = MappingProxyType(
    {
        1: "Devolución parcial de los bienes y/o no aceptación parcial del servicio",
        2: "Anulación de factura electrónica",
        3: "Rebaja o descuento parcial o total",
        4: "Ajuste de precio",
        5: "Descuento comercial por pronto pago",
        6: "Descuento comercial por volumen de ventas",
    }
)

# DOC1 tablas "Códigos de tipos de operación (notas crédito)"; FACTUS_API.md §7.1.
CREDIT_NOTE_WITH_REFERENCE = 20
CREDIT_NOTE_WITHOUT_REFERENCE = 22
CREDIT_NOTE_CUSTOMIZATIONS: Mapping[int, str] = MappingProxyType(
    {
        CREDIT_NOTE_WITH_REFERENCE: "Nota Crédito que referencia una factura electrónica",
        CREDIT_NOTE_WITHOUT_REFERENCE: "Nota Crédito sin referencia a una factura electrónica",
    }
)

# DOC1 tablas "Códigos de los recargos y descuentos": 00–02 are "disponible próximamente";
# only 03 (recargo condicionado) can be sent on v1. FACTUS_API.md §3.5.
ALLOWANCE_CONCEPT_SURCHARGE = "03"
ALLOWANCE_CONCEPTS: Mapping[str, str] = MappingProxyType(
    {ALLOWANCE_CONCEPT_SURCHARGE: "Recargo condicionado"}
)

# DOC1 tablas "Códigos de tipos de documento para los rangos de numeración"; FACTUS_API.md §8.1.
NUMBERING_RANGE_DOCUMENTS: Mapping[str, str] = MappingProxyType(
    {
        "21": "Factura de Venta",
        "22": "Nota Crédito",
        "23": "Nota Débito",
        "24": "Documento Soporte",
        "25": "Nota de Ajuste Documento Soporte",
        "26": "Nómina",
        "27": "Nota de Ajuste Nómina",
        "28": "Nota de eliminación de nómina",
        "30": "Factura de talonario y de papel",
    }
)

# Factus documents ``observation`` as "no más de 250 caracteres" (DOC1 factura-avanzada and
# notas-credito; FACTUS_API.md §3.1, §7.1).
OBSERVATION_MAX_CHARS = 250

# --- Pre-flight limits ---------------------------------------------------------------------
# Tax rates DIAN defines per tribute: DIAN "Anexo Técnico de Factura Electrónica de Venta" v1.9
# (Resolución 000165 de 2023), tables of §13.3.10 "Tablas de tarifas por impuesto", code lists
# ``TarifaImpuestoIVA-2.1`` (0.00 exento, 5.00, 16.00 contratos firmados con el Estado antes de la
# Ley 1819, 19.00 general) and ``TarifaImpuestoINC-2.1`` (2.00, 4.00, 8.00 general, 16.00). Factus
# publishes no rate table (DOC1 tablas, ``tributos-de-productos``): it forwards the rate to DIAN,
# which rejects a rate off its list after the document has consumed a number. Keys are the Factus
# product tribute ids of :data:`PRODUCT_TRIBUTES` (1 IVA, 4 INC); other tributes (ICA, IC, the
# nominal taxes) have municipal or per-unit rates and are not checked here.
TAX_RATES_BY_TRIBUTE: Mapping[int, frozenset[Decimal]] = MappingProxyType(
    {
        1: frozenset(Decimal(rate) for rate in ("0", "5", "16", "19")),
        4: frozenset(Decimal(rate) for rate in ("2", "4", "8", "16")),
    }
)

# Identification formats per Factus identification_document_id (table above). Colombian numbers
# (tarjeta de identidad, cédula de ciudadanía, NIT, NUIP) are digits only once the dots and blanks
# an ERP writes are removed; DIAN's longest NIT has 15 digits, the bound the Factus simulator uses
# for NITs. A passport number is letters and digits; the other foreign or legacy documents
# (registro civil serials, extranjería, PEP, foreign tax ids) may also carry hyphens. The length 20
# for those is chosen (no source documents one): longer than any passport or foreign tax id format
# known to us, short enough to catch a name typed into the number column.
DIGITS_ONLY_DOCUMENTS = frozenset({2, 3, 6, 11})
PASSPORT_DOCUMENT_ID = 7
IDENTIFICATION_DIGITS_MAX = 15
IDENTIFICATION_OTHER_MAX = 20

# Length of the free-text fields Factus does not bound in its docs (names, company, trade name,
# addresses, phone, code_reference, item name and note, surcharge reason). DOC1 documents only
# ``observation`` (250, above). 255 is chosen: it is the default length of a string column in
# Laravel, the framework Factus runs on (FACTUS_API.md §1), so a longer text is either refused or
# cut by Factus; no real name, address or product name needs more.
TEXT_MAX_CHARS = 255
# RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets, so an address
# has at most 254 characters; the local part at most 64 (§4.5.3.1.1).
EMAIL_MAX_CHARS = 254
EMAIL_LOCAL_MAX_CHARS = 64

# Money and quantities: Factus types ``price`` (and the v1 discount and withholding rates) as a
# JSON float with at most 2 decimals (DOC1 factura-avanzada) and does not document the integer
# digits. The bound chosen is 13 integer digits (below 10,000,000,000,000 COP): an IEEE double,
# what a JSON number with decimals becomes in Factus's PHP (inferred), round-trips every decimal
# of at most 15 significant digits (13 integer + 2 decimal), so beyond it the amount Factus reads
# may not be the one sent. It applies to unit prices, quantities, each line (price × quantity),
# surcharges and the document total.
AMOUNT_LIMIT = Decimal(10) ** 13

# Lines per document. Neither Factus (DOC1, DOC2) nor DIAN's annex documents a maximum; the limit
# is chosen: the call is synchronous with DIAN (FACTUS_API.md §9, 3–4 s typical) and its time
# grows with the XML, so a document far beyond any retail or wholesale sale risks the 30 s read
# timeout and an unknown outcome. 500 is a hundred times the longest sale of the sample data and
# more than a retail or wholesale sale needs; an ERP with longer documents splits them.
MAX_ITEMS = 500


# --- Final consumer ------------------------------------------------------------------------
# Resolución DIAN 000042 de 2020, art. 11 num. 3 lit. c (requirements of the electronic sales
# invoice, kept by Resolución 000165 de 2023): a buyer who gives neither NIT nor name and
# identification is written as "consumidor final" with the number 222222222222. Factus v2
# ``facturas/ejemplos/estandar-consumidor-final`` and ``redondeo-medios-pago`` send it as a cédula
# (identification_document_code "13") of a natural person; the first shows 11 twos, the second
# DIAN's 12, which is what is sent.
FINAL_CONSUMER_ID = "222222222222"
FINAL_CONSUMER_NAME = "Consumidor Final"
FINAL_CONSUMER_DOCUMENT_ID = 3  # cédula de ciudadanía, DIAN code 13

# --- API v2 tables (Factus v2 ``tablas-de-referencia/tablas``) -------------------------------
# "Códigos de impuestos": v2 knows three taxes per line.
V2_TAX_CODES: Mapping[str, str] = MappingProxyType(
    {"01": "IVA", "04": "INC", "35": "ICUI (ultraprocesados)"}
)
# "Códigos de retenciones": 05 ReteIVA and 06 ReteRenta (v1's 07 ReteICA is not in v2).
V2_WITHHOLDING_CODES = frozenset({"05", "06"})
# "Códigos de estándar de identificación del producto", by the v1 id of the same standard.
V2_STANDARD_CODES: Mapping[int, str] = MappingProxyType({1: "999", 2: "001", 3: "020", 4: "010"})
# ``cash_rounding_amount``: "El valor máximo permitido es ±500.00" (facturas/crear-y-validar).
CASH_ROUNDING_LIMIT = Decimal("500.00")
# ``observation``: "No debe tener más de 500 caracteres"; ``prepayment_details.*.note`` 5000.
V2_OBSERVATION_MAX_CHARS = 500
PREPAYMENT_NOTE_MAX_CHARS = 5000

_TRIBUTE_BY_CODE: dict[str, int] = {}
for _tribute_id, (_code, _name) in PRODUCT_TRIBUTES.items():
    _TRIBUTE_BY_CODE.setdefault(_code, _tribute_id)


def product_tribute_id(code: str) -> int | None:
    """The Factus v1 product tribute id of a DIAN tax code (``"01"`` → 1, ``"04"`` → 4).

    Input: the code as in :data:`PRODUCT_TRIBUTES` (the first id wins where two ids share one
    code). Output: the id, or ``None`` for a code v1 does not list (``"35"``).
    """
    return _TRIBUTE_BY_CODE.get(code.strip())
