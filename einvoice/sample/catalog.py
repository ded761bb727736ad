"""Static material of the sample ERP dataset: issuers, branches, products, places and names.

Everything here is plain data; :mod:`einvoice.sample.generator` combines it with a seeded random
generator into rows. Sources:

* Municipality ids are Factus v1 ``municipality_id`` values, each checked against
  ``einvoice/data/municipalities.csv`` (columns ``factus_id`` and DANE ``code``; FACTUS_API.md
  §8.2: 980 San Gil 68679, 169 Bogotá 11001).
* Unit ids are the five Factus v1 units (FACTUS_API.md §8.2: 70 unidad, 414 kilogramo,
  512 metro, 874 galón).
* IVA rates 19 %, 5 %, 0 % (exento) and excluded goods follow the Colombian Estatuto Tributario
  categories; which product sits in which category is plausible, not a tax opinion.
* Withholding rates are typical Colombian ones (retención en la fuente 2.5 % on goods, 4 % on
  services, ReteIVA 15 % of the IVA, ReteICA per municipality), kept to 2 decimals because
  Factus accepts no more (FACTUS_API.md §3.4).
* Organization NITs are made up; their check digits are computed, never stored here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Place:
    """A Colombian municipality: Factus ``municipality_id``, DANE code, name, landline prefix.

    ``area_code`` is the 3-digit landline prefix (``60`` + department indicative) used to make
    plausible 10-digit phone numbers.
    """

    factus_id: int
    dane_code: str
    name: str
    area_code: str


SAN_GIL = Place(980, "68679", "San Gil", "607")
SOCORRO = Place(988, "68755", "Socorro", "607")
BUCARAMANGA = Place(919, "68001", "Bucaramanga", "607")
FLORIDABLANCA = Place(943, "68276", "Floridablanca", "607")
PIEDECUESTA = Place(971, "68547", "Piedecuesta", "607")
BARRANCABERMEJA = Place(916, "68081", "Barrancabermeja", "607")
BOGOTA = Place(169, "11001", "Bogotá, D.C.", "601")
MEDELLIN = Place(80, "05001", "Medellín", "604")
ENVIGADO = Place(57, "05266", "Envigado", "604")
ITAGUI = Place(69, "05360", "Itagüí", "604")
BELLO = Place(27, "05088", "Bello", "604")
RIONEGRO = Place(96, "05615", "Rionegro", "604")
CALI = Place(1079, "76001", "Cali", "602")
PALMIRA = Place(1097, "76520", "Palmira", "602")
JAMUNDI = Place(1092, "76364", "Jamundí", "602")
TULUA = Place(1106, "76834", "Tuluá", "602")

#: Every place the sample uses, for the test that checks them against the municipalities table.
PLACES: tuple[Place, ...] = (
    SAN_GIL, SOCORRO, BUCARAMANGA, FLORIDABLANCA, PIEDECUESTA, BARRANCABERMEJA, BOGOTA,
    MEDELLIN, ENVIGADO, ITAGUI, BELLO, RIONEGRO, CALI, PALMIRA, JAMUNDI, TULUA,
)

# Factus v1 unit ids (FACTUS_API.md §8.2).
UNIT = 70
KILOGRAM = 414
METRE = 512
GALLON = 874


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """One catalogue product.

    Attributes:
        sku: the ERP's code, sent as ``code_reference``.
        name: the item description.
        net_price: list price in COP before IVA.
        tax_rate: IVA in percent (19, 5 or 0).
        is_excluded: excluded from IVA (``invoice_items.is_excluded`` 1); implies rate 0.
        unit_measure_id: Factus unit id.
        is_service: a service (4 % retención en la fuente instead of 2.5 %).
        max_qty: the largest whole quantity a company buys in one line.
        sold_by_weight: priced per kilogram; the ERP may try to bill a fraction of it.
    """

    sku: str
    name: str
    net_price: Decimal
    tax_rate: Decimal
    is_excluded: bool = False
    unit_measure_id: int = UNIT
    is_service: bool = False
    max_qty: int = 12
    sold_by_weight: bool = False


def _p(sku: str, name: str, net: int, rate: int, **extra: object) -> ProductSpec:
    return ProductSpec(sku, name, Decimal(net), Decimal(rate), **extra)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class BranchSpec:
    """One establishment (``branches`` row)."""

    name: str
    address: str
    place: Place
    phone: str
    email: str


@dataclass(frozen=True, slots=True)
class OrganizationSpec:
    """An issuer with everything the sample gives it.

    Attributes:
        name / legal_name: trade name and razón social.
        nit: 9 digits without check digit (the DV is computed with python-stdnum).
        place: the head office's municipality.
        economic_activity: CIIU code; registration_code: matrícula mercantil.
        fiscal_responsibilities: DIAN codes (O-13 gran contribuyente, O-15 autorretenedor,
            O-47 régimen simple, R-99-PN no aplica).
        branches: its establishments (may be empty: invoices then carry no establishment).
        expired_branch: an establishment whose own numbering resolution has expired, or None.
        customer_places: where its customers live.
        cc_prefixes: leading digits of cédulas issued in its region (10-digit numbers start with
            "10"/"11", 8-digit ones with two digits).
        reteica_rate: the ReteICA rate of its municipality, percent.
        products: its catalogue; it has at least one 19 %, 5 %, 0 % exento, excluded and
            sold-by-weight product.
        invoice_weight: relative share of the dataset's invoices.
    """

    name: str
    legal_name: str
    nit: str
    address: str
    place: Place
    phone: str
    email: str
    economic_activity: str
    registration_code: str
    fiscal_responsibilities: tuple[str, ...]
    branches: tuple[BranchSpec, ...]
    expired_branch: BranchSpec | None
    customer_places: tuple[Place, ...]
    cc_prefixes: tuple[str, ...]
    reteica_rate: Decimal
    products: tuple[ProductSpec, ...]
    invoice_weight: int


ORGANIZATIONS: tuple[OrganizationSpec, ...] = (
    OrganizationSpec(
        name="Agrocomercial del Fonce",
        legal_name="Agrocomercial del Fonce S.A.S.",
        nit="900871346",
        address="Carrera 10 # 12-45, Centro",
        place=SAN_GIL,
        phone="6077245810",
        email="facturacion@agrofonce.com.co",
        economic_activity="4631",
        registration_code="05-042318-16",
        fiscal_responsibilities=("O-15",),
        branches=(
            BranchSpec("Sede principal San Gil", "Carrera 10 # 12-45, Centro", SAN_GIL,
                       "6077245810", "sangil@agrofonce.com.co"),
            BranchSpec("Sucursal Bucaramanga", "Calle 36 # 19-28, Centro", BUCARAMANGA,
                       "6076349012", "bucaramanga@agrofonce.com.co"),
            BranchSpec("Sucursal Bogotá", "Avenida Carrera 68 # 13-40, Bodega 7", BOGOTA,
                       "6014870352", "bogota@agrofonce.com.co"),
        ),
        expired_branch=BranchSpec(
            "Punto de venta Barrancabermeja", "Calle 49 # 8-15, Barrio Colombia",
            BARRANCABERMEJA, "6076215533", "barranca@agrofonce.com.co",
        ),
        customer_places=(SAN_GIL, SAN_GIL, SOCORRO, BUCARAMANGA, FLORIDABLANCA, PIEDECUESTA,
                         BARRANCABERMEJA, BOGOTA),
        cc_prefixes=("1098", "1099", "1100", "1101", "91", "37", "63"),
        reteica_rate=Decimal("0.70"),
        products=(
            _p("AGF-ARR-05", "Arroz blanco premium 5 kg", 21500, 0, is_excluded=True, max_qty=20),
            _p("AGF-PAN-01", "Panela redonda 1 kg", 4200, 0, is_excluded=True, max_qty=30),
            _p("AGF-HUE-30", "Huevos AA bandeja x 30", 16800, 0, max_qty=15),
            _p("AGF-LEC-11", "Leche entera UHT 1,1 L", 3900, 0, max_qty=48),
            _p("AGF-CAF-50", "Café tostado molido 500 g", 15900, 5, max_qty=24),
            _p("AGF-AZU-25", "Azúcar blanca 2,5 kg", 10400, 5, max_qty=20),
            _p("AGF-CON-40", "Concentrado para ganado 40 kg", 98000, 5, max_qty=10),
            _p("AGF-FER-50", "Fertilizante triple 15, bulto 50 kg", 156000, 5, max_qty=8),
            _p("AGF-QUE-KG", "Queso campesino", 19500, 5, unit_measure_id=KILOGRAM, max_qty=10,
               sold_by_weight=True),
            _p("AGF-ACE-3L", "Aceite de girasol 3 L", 24900, 19, max_qty=12),
            _p("AGF-MAC-22", "Machete 22 pulgadas", 23900, 19, max_qty=6),
            _p("AGF-DET-3K", "Detergente en polvo 3 kg", 21900, 19, max_qty=12),
            _p("AGF-FUM-01", "Servicio de fumigación de bodega", 180000, 19, is_service=True,
               max_qty=2),
        ),
        invoice_weight=5,
    ),
    OrganizationSpec(
        name="Ferretería Industrial Antioquia",
        legal_name="Ferretería Industrial Antioquia S.A.S.",
        nit="811042517",
        address="Carrera 52 # 45-20, Guayaquil",
        place=MEDELLIN,
        phone="6045113478",
        email="facturacion@ferreindustrial.com.co",
        economic_activity="4752",
        registration_code="21-187342-12",
        fiscal_responsibilities=("O-13", "O-15"),
        branches=(),
        expired_branch=None,
        customer_places=(MEDELLIN, MEDELLIN, ENVIGADO, ITAGUI, BELLO, RIONEGRO),
        cc_prefixes=("1017", "1036", "1037", "1152", "71", "43"),
        reteica_rate=Decimal("0.50"),
        products=(
            _p("FIA-CEM-50", "Cemento gris uso general 50 kg", 31500, 19, max_qty=40),
            _p("FIA-VAR-12", "Varilla corrugada 1/2 pulgada x 6 m", 27800, 19, max_qty=30),
            _p("FIA-CAB-12", "Cable eléctrico THHN 12 AWG", 3200, 19, unit_measure_id=METRE,
               max_qty=100),
            _p("FIA-PIN-GL", "Pintura vinilo tipo 1 blanca", 68900, 19, unit_measure_id=GALLON,
               max_qty=10),
            _p("FIA-TAL-13", "Taladro percutor 13 mm 650 W", 245000, 19, max_qty=3),
            _p("FIA-PVC-12", "Tubo PVC presión 1/2 pulgada x 6 m", 14500, 19, max_qty=25),
            _p("FIA-CLA-KG", "Clavo de acero 2 pulgadas", 9800, 19, unit_measure_id=KILOGRAM,
               max_qty=15, sold_by_weight=True),
            _p("FIA-GOT-10", "Manguera de riego por goteo, rollo 100 m", 185000, 5, max_qty=6),
            _p("FIA-MAN-EL", "Manual de instalaciones eléctricas (libro)", 58000, 0, max_qty=5),
            _p("FIA-PC-14", "Computador portátil 14 pulgadas", 1450000, 0, is_excluded=True,
               max_qty=2),
            _p("FIA-INS-01", "Servicio de instalación eléctrica", 350000, 19, is_service=True,
               max_qty=2),
        ),
        invoice_weight=3,
    ),
    OrganizationSpec(
        name="Tostadora Valle Alto",
        legal_name="Tostadora de Café Valle Alto S.A.S.",
        nit="901356208",
        address="Calle 5 # 38-25, San Fernando",
        place=CALI,
        phone="6025146620",
        email="facturas@cafevallealto.com.co",
        economic_activity="1061",
        registration_code="76-901245-16",
        fiscal_responsibilities=("O-47",),
        branches=(),
        expired_branch=None,
        customer_places=(CALI, CALI, PALMIRA, JAMUNDI, TULUA, BOGOTA),
        cc_prefixes=("1107", "1143", "1144", "16", "31", "66", "94"),
        reteica_rate=Decimal("0.66"),
        products=(
            _p("TVA-GRA-50", "Café especial tostado en grano 500 g", 28000, 5, max_qty=24),
            _p("TVA-MOL-25", "Café especial molido 250 g", 15500, 5, max_qty=24),
            _p("TVA-CHO-50", "Chocolate de mesa 500 g", 9800, 5, max_qty=20),
            _p("TVA-VER-KG", "Café verde excelso", 24000, 0, is_excluded=True,
               unit_measure_id=KILOGRAM, max_qty=50, sold_by_weight=True),
            _p("TVA-PAN-50", "Panela orgánica pulverizada 500 g", 6200, 0, is_excluded=True,
               max_qty=20),
            _p("TVA-LEC-1L", "Leche entera 1 L", 4100, 0, max_qty=24),
            _p("TVA-TAZ-12", "Taza de cerámica 12 oz", 18500, 19, max_qty=12),
            _p("TVA-PRE-60", "Prensa francesa 600 ml", 64900, 19, max_qty=6),
            _p("TVA-MOLINO", "Molino manual de café", 119000, 19, max_qty=4),
            _p("TVA-CUR-BA", "Curso de barismo básico (8 horas)", 290000, 0, is_excluded=True,
               is_service=True, max_qty=2),
        ),
        invoice_weight=2,
    ),
)

# --- Numbering ranges (FACTUS_API.md §8.1, sandbox ranges) ------------------------------------
#: The sandbox's invoice range: prefix SETP, 990000000–995000000, resolution 18760000001,
#: Factus id 8 for real sandbox users (FACTUS_API.md §8.1, TUT and FJS1).
INVOICE_RANGE_FACTUS_ID = 8
INVOICE_PREFIX = "SETP"
INVOICE_RANGE_START = 990000000
INVOICE_RANGE_END = 995000000
INVOICE_RESOLUTION = "18760000001"
#: The DIAN sandbox technical key of the SETP range (FACTUS_API.md §8.1).
SANDBOX_TECHNICAL_KEY = "fc8eac422eba16e22ffd8c6f94b3f40a6e38162c"
#: Credit-note range: prefix NC. Range ids differ per Factus account (FACTUS_API.md §8.1: the
#: docs' example says 5, real sandbox users' SETP is 8); the sample mirrors the simulator's
#: account (SETP 8, NC 9). Against a real account, `einvoice sync ranges` records the real ids.
CREDIT_NOTE_RANGE_FACTUS_ID = 9
CREDIT_NOTE_PREFIX = "NC"
#: An old resolution of one branch, expired: prefix SETV, Factus id 12, resolution 18760000002.
EXPIRED_RANGE_FACTUS_ID = 12
EXPIRED_PREFIX = "SETV"
EXPIRED_RESOLUTION = "18760000002"

# --- People ----------------------------------------------------------------------------------
FEMALE_NAMES = (
    "María Fernanda", "Laura", "Ana María", "Daniela", "Valentina", "Paola Andrea", "Luz Marina",
    "Claudia Patricia", "Diana Carolina", "Sandra Milena", "Juliana", "Natalia", "Carolina",
    "Gloria Inés", "Martha Lucía", "Yolanda", "Adriana", "Camila", "Leidy Johana", "Sofía",
)
MALE_NAMES = (
    "Juan Carlos", "Andrés Felipe", "Carlos Alberto", "Jorge Enrique", "Luis Fernando", "Diego",
    "Sebastián", "Santiago", "Jhon Jairo", "José Manuel", "Óscar Iván", "Hernán", "Camilo",
    "Julián David", "Mauricio", "Fabio", "Édgar", "Alejandro", "Wilson", "Germán",
)
SURNAMES = (
    "Rodríguez", "Gómez", "González", "Martínez", "García", "López", "Hernández", "Sánchez",
    "Ramírez", "Pérez", "Díaz", "Muñoz", "Rojas", "Moreno", "Jiménez", "Vargas", "Castro",
    "Ortiz", "Rueda", "Serrano", "Ardila", "Sarmiento", "Quintero", "Restrepo", "Zapata",
    "Londoño", "Osorio", "Cárdenas", "Valencia", "Mejía", "Arango", "Becerra", "Parra",
    "Gutiérrez", "Camacho", "Rincón", "Pinzón", "Suárez", "Villamizar", "Ospina",
)
MAIL_DOMAINS = ("gmail.com", "gmail.com", "hotmail.com", "outlook.com", "yahoo.com")
MOBILE_PREFIXES = ("300", "301", "302", "304", "310", "311", "312", "313", "314", "315", "316",
                   "317", "318", "320", "321", "322", "323", "350")

# A foreign tourist paying with a passport, and a Venezuelan resident with a cédula de
# extranjería: the two foreign identity documents a Colombian shop sees most.
FOREIGN_PASSPORT_PERSON = ("Emily", "Johnson", "1200 SW Pine Street, Portland, OR 97205",
                           "Portland")
FOREIGN_RESIDENT_NAMES = (("Yorman José", "Briceño Pacheco"), ("Yuleidy", "Marcano Rivas"))

# --- Companies -------------------------------------------------------------------------------
COMPANY_KINDS = (
    "Supermercado", "Restaurante", "Hotel", "Constructora", "Distribuidora", "Panadería",
    "Droguería", "Comercializadora", "Transportes", "Inversiones", "Minimercado", "Cafetería",
)
COMPANY_NAMES = (
    "La Economía", "El Fogón", "Horizonte Andino", "Los Andes", "Santa Lucía", "El Portal",
    "La Esperanza", "San Rafael", "Del Llano", "La Montaña", "El Prado", "Buena Vista",
    "Guane", "Chicamocha", "La Fortuna", "El Roble", "Los Almendros", "La Ceiba",
)
COMPANY_SUFFIXES = ("S.A.S.", "S.A.S.", "S.A.S.", "Ltda.", "S.A.")
# Leading digits of NITs of legal persons (800/811/830/860/890 older companies, 900/901 newer).
NIT_PREFIXES = ("800", "811", "830", "860", "890", "900", "900", "901", "901")
COMPANY_RESPONSIBILITIES = (("O-13",), ("O-15",), ("O-47",), ("R-99-PN",), ("O-13", "O-15"))
COMPANY_MAIL_USERS = ("facturacion", "contabilidad", "facturaelectronica", "compras")

# --- Streets ---------------------------------------------------------------------------------
STREET_KINDS = ("Calle", "Carrera", "Transversal", "Diagonal", "Avenida Calle", "Avenida Carrera")
ADDRESS_SUFFIXES = ("", "", "", " Apto 302", " Apto 501", " Local 2", " Casa 14", " Bodega 3",
                    " Piso 2")

# --- Invoice texts ---------------------------------------------------------------------------
PAYMENT_METHODS_CASH = (("10", "Efectivo"), ("10", "Efectivo"), ("49", "Tarjeta débito"),
                        ("48", "Tarjeta crédito"), ("47", "Transferencia"))
PAYMENT_METHODS_CREDIT = (("47", "Transferencia"), ("42", "Consignación"), ("20", "Cheque"),
                          ("1", "Por definir"))
CREDIT_TERMS_DAYS = (30, 30, 45, 60)
INVOICE_NOTES = (
    None, None, None, "Entrega en bodega del cliente.", "Pedido telefónico.",
    "Orden de compra del cliente adjunta.", "Despacho parcial, saldo la próxima semana.",
)
SURCHARGE_REASONS = ("Flete de entrega", "Recargo por entrega urgente")
