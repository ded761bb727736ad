"""The simulator's memory: accounts, tokens, numbering ranges, documents and counters.

Everything lives in one :class:`SandboxState` guarded by one re-entrant lock; every public method
takes it, does only in-memory work (no I/O, no sleeping) and returns plain results, so the HTTP layer
(:mod:`einvoice.sandbox.app`) can call it from any thread or from the event loop.

Rules it enforces (FACTUS_API.md; "inferred" where the contract says so):

- Accounts are keyed by ``(client_id, username)``; each has its own company, ranges and documents
  and cannot see another's (§1 shared-sandbox caveat aside: here accounts are isolated).
- API versions (§10.1): an account speaks v1, v2 or both (:attr:`AccountSpec.mode`). Documents do not
  belong to a version: what one version created, the other reads when the account has both.
- Numbering ranges (§10.1): an account created with ``ranges_registered=False`` starts with no range;
  the ranges DIAN associated with it are listed by :meth:`SandboxState.dian_ranges` and become usable
  once created with :meth:`SandboxState.create_range` (``POST /v2/numbering-ranges``), as on the real
  v2 platform; credit-note ranges (no resolution) are created the same way.
- Tokens (§2, inferred Passport behaviour): a password grant issues a new pair; a refresh grant
  revokes the used refresh token **and** its access token and issues a new pair; access tokens
  expire after ``token_expires_in`` seconds, refresh tokens after 30 days.
- Numbers (§11.4): ``prefix + current``; ``current`` is incremented by every stored document,
  rejected ones included, and never goes back (not even on reset: as in the shared sandbox, numbers
  jump, and a product database never sees a number twice).
- Idempotency (§9, §11.3): same ``reference_code`` and a validated document → the same document;
  a pending (DIAN slow) one → validated now; a rejected one → 409 (it blocks, like any status 0).
- The block (§5.3): while an account has a bill (credit note) with status 0, every new bill
  (credit note) gets 409 until that document is deleted.
- DIAN: a NIT customer whose ``dv`` is wrong is rejected with rule FAK24 (§5.4) and stored.
- Credit notes (§7.1): ``bill_id`` must be a validated bill of the same account, and the credit
  notes of a bill (rejected ones excluded) can never add up to more than the bill's total.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from stdnum.co import nit as co_nit

from einvoice.sandbox import artifacts, catalogs
from einvoice.sandbox.amounts import DocumentAmounts, document_amounts, money
from einvoice.sandbox.validation import BillRequest, CreditNoteRequest, CustomerData, ErrorBag

DocumentKind = Literal["bill", "credit_note"]
KINDS: tuple[DocumentKind, ...] = ("bill", "credit_note")
REFRESH_TOKEN_LIFETIME = timedelta(days=30)

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"
DEFAULT_USERNAME = "sandbox@einvoice.test"
DEFAULT_PASSWORD = "sandbox-password"

# Range ids every account gets (FACTUS_API.md §8.1: SETP is id 8 for real sandbox users).
INVOICE_RANGE_ID = 8
CREDIT_NOTE_RANGE_ID = 9
DEBIT_NOTE_RANGE_ID = 10
SUPPORT_DOCUMENT_RANGE_ID = 11
EXPIRED_RANGE_ID = 12
EXHAUSTED_RANGE_ID = 13
INACTIVE_RANGE_ID = 14
SANDBOX_TECHNICAL_KEY = "fc8eac422eba16e22ffd8c6f94b3f40a6e38162c"

# DIAN rule texts (FACTUS_API.md §5.4 and §5.4 "Rule codes worth simulating").
FAK24 = "Regla: FAK24, Rechazo: DV no corresponde al NIT informado"
FAD06 = "Regla: FAD06, Rechazo: Valor del CUFE no está calculado correctamente"
FAJ43B = (
    "Regla: FAJ43b, Notificación: Nombre informado No corresponde al registrado en el RUT "
    "con respecto al Nit suministrado."
)
CAK55 = "Regla: CAK55, Notificación: Correo electrónico no informado"
CBF02 = "Regla: CBF02, Notificación: No se informo el numero de la factura referenciada"
PUBLIC_URL_BASE = "https://app-sandbox.factus.com.co/documents"
MAX_EMAILS_PER_DAY = 2  # FJS1 "max 2 per bill per day" (FACTUS_API.md §6.5)


def _now() -> datetime:
    return datetime.now(UTC)


def bogota_today() -> date:
    """Today's date in Bogotá (range expiry and the daily e-mail quota count Colombian days)."""
    return _now().astimezone(artifacts.BOGOTA).date()


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class Company:
    """The issuing company of an account (``GET /v1/company`` and ``data.company`` of documents)."""

    nit: str
    dv: str
    name: str
    municipality_id: int = 980  # San Gil, as in the DOC1 examples
    registration_code: str = "3FJ3253427"
    economic_activity: str = "6201"
    phone: str = "3000000000"
    email: str = "facturacion@einvoice.test"
    address: str = "CARRERA 10 # 9 - 04"
    software_pin: str = "75315"

    @property
    def url_logo(self) -> str:
        """A logo URL shaped like Factus' (the file itself does not exist)."""
        return f"https://api-sandbox.factus.com.co/storage/images/logos/{self.nit}.png"


@dataclass
class NumberingRange:
    """A numbering range (FACTUS_API.md §8.1). ``current`` is the next number to use."""

    id: int
    document: str  # range document code, "21" invoice, "22" credit note, ...
    prefix: str
    start: int
    end: int
    current: int
    resolution_number: str | None
    start_date: date
    end_date: date
    technical_key: str | None
    is_active: bool = True
    created_at: datetime = field(default_factory=lambda: datetime(2023, 6, 1, 8, 0, 38, tzinfo=UTC))
    updated_at: datetime = field(default_factory=_now)

    def is_expired(self, today: date) -> bool:
        """True once ``today`` (Bogotá) is past ``end_date``."""
        return today > self.end_date

    def is_exhausted(self) -> bool:
        """True when every number from ``start`` to ``end`` has been used."""
        return self.current > self.end

    def usable(self, today: date) -> bool:
        """Active, not expired and not exhausted: a range a new document can take a number from."""
        return self.is_active and not self.is_expired(today) and not self.is_exhausted()

    @property
    def months(self) -> int:
        """Validity in whole months (``numbering_range.months`` of a bill, e.g. 132)."""
        return (
            (self.end_date.year - self.start_date.year) * 12
            + self.end_date.month
            - self.start_date.month
        )


@dataclass
class AccountSpec:
    """How to create an account (CLI ``--account``, ``POST /__sandbox/accounts`` or the default).

    ``company_nit`` must be digits only; its DV is computed (DIAN modulo 11). Passwords and secrets
    are kept in memory only and never returned by any endpoint. ``v1_enabled`` / ``v2_enabled``
    choose the API versions (at least one); ``ranges_registered=False`` makes the account start
    without ranges, to be created through ``POST /v2/numbering-ranges``.
    """

    client_id: str
    client_secret: str
    username: str
    password: str
    company_name: str = "EMPRESA SANDBOX S.A.S."
    company_nit: str = "900123456"
    v1_enabled: bool = True
    test_ranges: bool = True
    v2_enabled: bool = True
    ranges_registered: bool = True

    @property
    def mode(self) -> str:
        """``"both"``, ``"v1"`` (v2 routes answer 403) or ``"v2"`` (v1 routes answer 403)."""
        if self.v1_enabled and self.v2_enabled:
            return "both"
        return "v1" if self.v1_enabled else "v2"

    def allows(self, version: str) -> bool:
        """True when the account may call routes of API ``version`` (``"v1"`` or ``"v2"``)."""
        return self.v1_enabled if version == "v1" else self.v2_enabled

    @property
    def key(self) -> str:
        """The account key used in stats: ``"<client_id>/<username>"``."""
        return f"{self.client_id}/{self.username}"


DEFAULT_ACCOUNT = AccountSpec(
    client_id=DEFAULT_CLIENT_ID,
    client_secret=DEFAULT_CLIENT_SECRET,
    username=DEFAULT_USERNAME,
    password=DEFAULT_PASSWORD,
    # The Factus sandbox issues every document as FACTUS S.A.S. (FACTUS_API.md §1).
    company_name="FACTUS S.A.S.",
    company_nit="901724254",
)


@dataclass
class SandboxDocument:
    """The simulator's record of a bill or credit note, with everything its responses need.

    ``status`` is 1 (validated) or 0 (not validated); ``rejected`` tells a DIAN rejection from a
    pending (DIAN slow) document; ``errors`` holds DIAN notifications or the rejection rule.
    """

    kind: DocumentKind
    id: int
    number: str
    reference_code: str
    range: NumberingRange
    request: BillRequest | CreditNoteRequest
    customer: CustomerData
    customer_dv: str | None
    amounts: DocumentAmounts
    cufe: str
    created_at: datetime
    api_client_name: str
    status: int = 0
    rejected: bool = False
    errors: list[str] = field(default_factory=list)
    validated_at: datetime | None = None
    bill: SandboxDocument | None = None
    credit_notes: list[SandboxDocument] = field(default_factory=list)
    emails_sent: dict[date, int] = field(default_factory=dict)
    api_version: str = "v1"
    v2: Any = None  # the v2 request (einvoice.sandbox.v2_validation) when created through /v2
    _qr_image: str | None = None

    def qr_image(self) -> str:
        """The QR data URI, made on first use and kept (one PNG per CUFE)."""
        if self._qr_image is None:
            self._qr_image = artifacts.qr_image(self.cufe)
        return self._qr_image

    @property
    def pending(self) -> bool:
        """True while the document is not validated (it blocks new documents of its kind)."""
        return self.status == 0

    @property
    def public_url(self) -> str:
        """The document's page on Factus's public portal (``bill.public_url`` in v1 since 2025,
        ``links.public_url`` in v2). The path shape follows the v2 docs' example
        (``https://app-sandbox.factus.com.co/documents/bills/...``); the key is inferred."""
        folder = "bills" if self.kind == "bill" else "credit-notes"
        return f"{PUBLIC_URL_BASE}/{folder}/{self.cufe[:40]}"


@dataclass
class Stats:
    """Counters of one account (or of all): see :meth:`as_dict` for the JSON shape."""

    requests: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    validate_posts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    documents_stored: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    documents_deleted: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    validations_by_reference: dict[str, dict[str, int]] = field(
        default_factory=lambda: {k: defaultdict(int) for k in KINDS}
    )

    def as_dict(self) -> dict[str, Any]:
        """``{"requests": {"POST /v1/bills/validate": {"201": n}}, "validate_posts": {"bill": n,
        "credit_note": n}, "documents_stored": {...}, "documents_deleted": {...},
        "validations_by_reference": {"bill": {ref: times validated}, "credit_note": {...}}}``."""
        return {
            "requests": {endpoint: dict(codes) for endpoint, codes in self.requests.items()},
            "validate_posts": dict(self.validate_posts),
            "documents_stored": dict(self.documents_stored),
            "documents_deleted": dict(self.documents_deleted),
            "validations_by_reference": {
                k: dict(v) for k, v in self.validations_by_reference.items()
            },
        }


@dataclass
class Account:
    """One Factus account: credentials, company, ranges, documents and counters."""

    spec: AccountSpec
    user_id: int
    company: Company
    ranges: dict[int, NumberingRange]
    added_at_runtime: bool
    dian_ranges: list[NumberingRange] = field(default_factory=list)
    documents: dict[DocumentKind, dict[str, SandboxDocument]] = field(
        default_factory=lambda: {k: {} for k in KINDS}
    )  # by number
    by_reference: dict[DocumentKind, dict[str, SandboxDocument]] = field(
        default_factory=lambda: {k: {} for k in KINDS}
    )
    by_id: dict[DocumentKind, dict[int, SandboxDocument]] = field(
        default_factory=lambda: {k: {} for k in KINDS}
    )
    stats: Stats = field(default_factory=Stats)
    # Documents stored and maybe not validated yet, oldest first; :meth:`pending` drops the ones
    # validated or deleted since, so it does not scan every document of the account.
    unvalidated: dict[DocumentKind, dict[str, SandboxDocument]] = field(
        default_factory=lambda: {k: {} for k in KINDS}
    )

    @property
    def key(self) -> str:
        """``"<client_id>/<username>"``."""
        return self.spec.key

    def pending(self, kind: DocumentKind) -> SandboxDocument | None:
        """The account's first not-validated document of ``kind``, if any (it causes 409s)."""
        candidates = self.unvalidated[kind]
        stored = self.documents[kind]
        for number, document in list(candidates.items()):
            if document.pending and stored.get(number) is document:
                return document
            del candidates[number]
        return None

    def summary(self) -> dict[str, Any]:
        """What the control API says about the account (never the password or the secret)."""
        return {
            "key": self.key,
            "client_id": self.spec.client_id,
            "username": self.spec.username,
            "company": self.company.name,
            "nit": self.company.nit,
            "dv": self.company.dv,
            "v1_enabled": self.spec.v1_enabled,
            "v2_enabled": self.spec.v2_enabled,
            "mode": self.spec.mode,
            "ranges_registered": self.spec.ranges_registered,
            "added_at_runtime": self.added_at_runtime,
            "range_ids": sorted(self.ranges),
        }


@dataclass
class _AccessToken:
    account: Account
    expires_at: float  # time.time()
    refresh_token: str


@dataclass
class _RefreshToken:
    account: Account
    access_token: str
    expires_at: float


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class TokenResult:
    """Outcome of ``POST /oauth/token``: HTTP status, JSON body, and the account if identified."""

    status: int
    body: dict[str, Any]
    account: Account | None


@dataclass(frozen=True)
class CreateResult:
    """Outcome of a validate POST.

    ``status`` is the HTTP status; ``document`` is set for 201 and for a DIAN rejection (422);
    ``body`` holds any other error body; ``hang`` means: answer nothing, hang and drop the connection.
    ``message`` is the 201 message.
    """

    status: int
    document: SandboxDocument | None = None
    body: dict[str, Any] | None = None
    hang: bool = False
    message: str = ""


class SandboxError(Exception):
    """A control-API request that cannot be honoured (duplicate account, bad spec)."""


# ---------------------------------------------------------------------------------------------
# State


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _ranges(test_ranges: bool) -> dict[int, NumberingRange]:
    """The ranges every account starts with, shaped like the Factus sandbox's (§1, §8.1)."""
    start, end = date(2019, 1, 19), date(2030, 1, 19)
    ranges = [
        NumberingRange(
            INVOICE_RANGE_ID,
            catalogs.INVOICE_RANGE,
            "SETP",
            990000000,
            995000000,
            990000000,
            "18760000001",
            start,
            end,
            SANDBOX_TECHNICAL_KEY,
        ),
        NumberingRange(
            CREDIT_NOTE_RANGE_ID,
            catalogs.CREDIT_NOTE_RANGE,
            "NC",
            1,
            99999999,
            1,
            None,
            start,
            end,
            None,
        ),
        NumberingRange(DEBIT_NOTE_RANGE_ID, "23", "ND", 1, 99999999, 1, None, start, end, None),
        NumberingRange(
            SUPPORT_DOCUMENT_RANGE_ID,
            "24",
            "SEDS",
            984000000,
            985000000,
            984000000,
            "18760000001",
            start,
            end,
            None,
        ),
    ]
    if test_ranges:
        ranges += [
            NumberingRange(
                EXPIRED_RANGE_ID,
                catalogs.INVOICE_RANGE,
                "SETV",
                1,
                1000000,
                1,
                "18760000002",
                date(2019, 1, 19),
                date(2020, 1, 19),
                SANDBOX_TECHNICAL_KEY,
            ),
            NumberingRange(
                EXHAUSTED_RANGE_ID,
                catalogs.INVOICE_RANGE,
                "SETX",
                1,
                10,
                11,
                "18760000003",
                start,
                end,
                SANDBOX_TECHNICAL_KEY,
            ),
            NumberingRange(
                INACTIVE_RANGE_ID,
                catalogs.INVOICE_RANGE,
                "SETI",
                1,
                1000000,
                1,
                "18760000004",
                start,
                end,
                SANDBOX_TECHNICAL_KEY,
                is_active=False,
            ),
        ]
    return {r.id: r for r in ranges}


def _conflict_pending(kind: DocumentKind, api_version: str = "v1") -> dict[str, Any]:
    noun = "una factura" if kind == "bill" else "una nota crédito"
    return {
        "status": "Conflict",
        "errors": [
            {
                "code": 409,
                "message": f"Se encontró {noun} pendiente por enviar a la DIAN",
                "params": [],
                "detail": "Conflict",
                "api_version": api_version,
            }
        ],
    }


def dian_rejection_body(errors: list[str]) -> dict[str, Any]:
    """The 422 body of a DIAN rejection (FACTUS_API.md §5.4): ``data.errors`` keyed by rule code."""
    keyed = {message.split(",")[0].removeprefix("Regla: ").strip(): message for message in errors}
    return {
        "status": "Validation error",
        "message": "El documento contiene errores de validación",
        "data": {"message": "El documento contiene errores de validación", "errors": keyed},
    }


class SandboxState:
    """All accounts and their data, behind one lock. See the module docstring for the rules."""

    def __init__(self, accounts: list[AccountSpec] | None = None) -> None:
        """Create the state with the default account plus ``accounts`` (startup accounts).

        Raises:
            SandboxError: two specs share a key, or a client id with two different secrets.
        """
        self.lock = threading.RLock()
        self._startup_specs = [DEFAULT_ACCOUNT, *(accounts or [])]
        self._accounts: dict[tuple[str, str], Account] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._next_id: dict[DocumentKind, int] = {"bill": 10001, "credit_note": 501}
        self._next_user = 1
        self.global_stats = Stats()
        self.unauthenticated_stats = Stats()
        self._range_counters: dict[str, dict[int, int]] = {}
        # Ids of ranges created through the API: never reused, even after a reset.
        self._created_range_ids: set[int] = set()
        for spec in self._startup_specs:
            self.add_account(spec, at_runtime=False)

    # -- accounts ---------------------------------------------------------------------------

    def add_account(self, spec: AccountSpec, *, at_runtime: bool = True) -> Account:
        """Register an account with fresh ranges and no documents.

        Raises:
            SandboxError: the ``(client_id, username)`` pair exists, the client id is known with a
                different secret, or the NIT is not 1-15 digits.
        """
        if not spec.company_nit.isdigit() or len(spec.company_nit) > 15:
            raise SandboxError("company_nit must be 1 to 15 digits")
        if not all((spec.client_id, spec.client_secret, spec.username, spec.password)):
            raise SandboxError("client_id, client_secret, username and password are required")
        if not (spec.v1_enabled or spec.v2_enabled):
            raise SandboxError("an account needs v1_enabled or v2_enabled")
        with self.lock:
            if (spec.client_id, spec.username) in self._accounts:
                raise SandboxError(f"account {spec.key} already exists")
            for other in self._accounts.values():
                if (
                    other.spec.client_id == spec.client_id
                    and other.spec.client_secret != spec.client_secret
                ):
                    raise SandboxError(
                        f"client {spec.client_id} already exists with another secret"
                    )
            ranges = _ranges(spec.test_ranges)
            # What DIAN associated with the company: the ranges with a resolution (§10.1).
            dian = [
                r
                for r in _ranges(test_ranges=False).values()
                if r.resolution_number is not None
            ]
            if not spec.ranges_registered:
                ranges = {}
            # Numbers never go back, even when an account is re-created after a reset.
            for range_id, current in self._range_counters.get(spec.key, {}).items():
                if range_id in ranges:
                    ranges[range_id].current = current
            account = Account(
                spec=spec,
                user_id=self._next_user,
                company=Company(
                    nit=spec.company_nit,
                    dv=co_nit.calc_check_digit(spec.company_nit),
                    name=spec.company_name,
                ),
                ranges=ranges,
                added_at_runtime=at_runtime,
                dian_ranges=dian,
            )
            self._next_user += 1
            self._accounts[(spec.client_id, spec.username)] = account
            return account

    def accounts(self) -> list[Account]:
        """All accounts, in creation order."""
        with self.lock:
            return list(self._accounts.values())

    def reset(self, *, revoke_tokens: bool = False, drop_added_accounts: bool = False) -> None:
        """Forget every document and counter; ranges restart unused except for their ``current``.

        Args:
            revoke_tokens: also forget every access and refresh token.
            drop_added_accounts: also remove accounts added at run time (startup ones stay).
        """
        with self.lock:
            for account in self._accounts.values():
                self._range_counters[account.key] = {
                    rid: r.current for rid, r in account.ranges.items()
                }
            specs = [
                (a.spec, a.added_at_runtime)
                for a in self._accounts.values()
                if not (drop_added_accounts and a.added_at_runtime)
            ]
            old = {a.key: a for a in self._accounts.values()}
            self._accounts = {}
            for spec, at_runtime in specs:
                account = self.add_account(spec, at_runtime=at_runtime)
                account.user_id = old[spec.key].user_id
            if revoke_tokens:
                self._access.clear()
                self._refresh.clear()
            else:
                # Tokens follow their account to its fresh incarnation; a dropped account's die.
                self._access = {v: t for v, t in self._access.items() if self._rebind(t)}
                self._refresh = {v: t for v, t in self._refresh.items() if self._rebind(t)}
            self.global_stats = Stats()
            self.unauthenticated_stats = Stats()

    def _rebind(self, token: _AccessToken | _RefreshToken) -> bool:
        """Point ``token`` at the current account with its key; False if that account is gone."""
        fresh = self._accounts.get((token.account.spec.client_id, token.account.spec.username))
        if fresh is not None:
            token.account = fresh
        return fresh is not None

    # -- tokens -----------------------------------------------------------------------------

    def token(self, form: dict[str, str], *, expires_in: int) -> TokenResult:
        """Run ``POST /oauth/token`` (FACTUS_API.md §2) on an already-parsed form.

        Args:
            form: the form fields (``grant_type``, ``client_id``, ``client_secret``, and
                ``username``/``password`` or ``refresh_token``).
            expires_in: lifetime of the new access token, in seconds.

        Returns:
            200 with the token pair, or a Passport-style error: 400 ``unsupported_grant_type`` /
            ``invalid_request``, 401 ``invalid_client``, 400 ``invalid_grant``.
        """
        grant = form.get("grant_type", "")
        if grant not in ("password", "refresh_token"):
            return TokenResult(
                400,
                _oauth_error(
                    "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.",
                    "Check that all required parameters have been provided",
                ),
                None,
            )
        needed = ["client_id", "client_secret"] + (
            ["username", "password"] if grant == "password" else ["refresh_token"]
        )
        for name in needed:
            if not form.get(name):
                return TokenResult(
                    400,
                    _oauth_error(
                        "invalid_request",
                        "The request is missing a required parameter, includes an invalid parameter value, "
                        "includes a parameter more than once, or is otherwise malformed.",
                        f"Check the `{name}` parameter",
                    ),
                    None,
                )
        with self.lock:
            client_ok = any(
                a.spec.client_id == form["client_id"]
                and secrets.compare_digest(a.spec.client_secret, form["client_secret"])
                for a in self._accounts.values()
            )
            if not client_ok:
                return TokenResult(
                    401, _oauth_error("invalid_client", "Client authentication failed"), None
                )
            if grant == "password":
                account = self._accounts.get((form["client_id"], form["username"]))
                if account is None or not secrets.compare_digest(
                    account.spec.password, form["password"]
                ):
                    return TokenResult(
                        400,
                        _oauth_error("invalid_grant", "The user credentials were incorrect."),
                        account,
                    )
            else:
                stored = self._refresh.get(form["refresh_token"])
                if (
                    stored is None
                    or stored.expires_at <= time.time()
                    or stored.account.spec.client_id != form["client_id"]
                ):
                    return TokenResult(
                        400,
                        _oauth_error(
                            "invalid_grant",
                            "The refresh token is invalid.",
                            "Token has been revoked",
                        ),
                        None,
                    )
                account = stored.account
                del self._refresh[form["refresh_token"]]
                self._access.pop(stored.access_token, None)
            return TokenResult(200, self._issue(account, expires_in), account)

    def _issue(self, account: Account, expires_in: int) -> dict[str, Any]:
        now = int(time.time())
        header = _b64url(json.dumps({"typ": "JWT", "alg": "RS256"}).encode())
        claims = {
            "aud": account.spec.client_id,
            "jti": secrets.token_hex(40),
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "sub": str(account.user_id),
            "scopes": [],
        }
        access = (
            f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(secrets.token_bytes(256))}"
        )
        refresh = "def50200" + secrets.token_hex(160)
        self._access[access] = _AccessToken(account, now + expires_in, refresh)
        self._refresh[refresh] = _RefreshToken(
            account, access, now + REFRESH_TOKEN_LIFETIME.total_seconds()
        )
        return {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "access_token": access,
            "refresh_token": refresh,
        }

    def authenticate(self, bearer: str | None) -> Account | None:
        """Return the account of a live access token, or None (missing, unknown, revoked, expired)."""
        if not bearer:
            return None
        with self.lock:
            token = self._access.get(bearer)
            if token is None or token.expires_at <= time.time():
                return None
            return token.account

    def refresh_token_account(self, refresh_token: str) -> Account | None:
        """The account a live refresh token belongs to, or None."""
        with self.lock:
            stored = self._refresh.get(refresh_token)
            return (
                stored.account if stored is not None and stored.expires_at > time.time() else None
            )

    def expire_token(self, bearer: str) -> None:
        """Make an access token expire now (the ``expired_token`` fault); its refresh token lives on."""
        with self.lock:
            token = self._access.get(bearer)
            if token is not None:
                token.expires_at = time.time()

    # -- documents: create --------------------------------------------------------------------

    def _pick_range(
        self, account: Account, range_id: int | None, document: str, bag: ErrorBag, today: date
    ) -> NumberingRange | None:
        if range_id is None:
            usable = [
                r for r in account.ranges.values() if r.document == document and r.usable(today)
            ]
            if len(usable) == 1:
                return usable[0]
            bag.add("numbering_range_id", "El campo id rango de numeración es obligatorio.")
            return None
        chosen = account.ranges.get(range_id)
        if chosen is None or chosen.document != document:
            bag.add("numbering_range_id", "El campo id rango de numeración es inválido.")
            return None
        return chosen

    @staticmethod
    def _range_problem(chosen: NumberingRange, today: date) -> str | None:
        if not chosen.is_active:
            return "El rango de numeración seleccionado no está activo."
        if chosen.is_expired(today):
            return "El rango de numeración seleccionado se encuentra vencido."
        if chosen.is_exhausted():
            return "El rango de numeración seleccionado no tiene consecutivos disponibles."
        return None

    def _validate(self, account: Account, document: SandboxDocument, when: datetime) -> None:
        document.status = 1
        document.validated_at = when
        for stats in (account.stats, self.global_stats):
            stats.validations_by_reference[document.kind][document.reference_code] += 1

    def _resend(
        self, account: Account, existing: SandboxDocument, now: datetime, version: str = "v1"
    ) -> CreateResult:
        """Same reference again (§9): validated → same doc; pending → validate; rejected → 409."""
        if existing.status == 1:
            return CreateResult(201, existing, message=_created_message(existing))
        if not existing.rejected:
            self._validate(account, existing, now)
            return CreateResult(201, existing, message=_created_message(existing))
        return CreateResult(409, body=_conflict_pending(existing.kind, version))

    def create_bill(
        self,
        account: Account,
        request: BillRequest,
        outcome_fault: str | None,
        *,
        amounts: DocumentAmounts | None = None,
        v2: Any = None,
    ) -> CreateResult:
        """Create and validate a bill (``POST /v1/bills/validate``), see the module docstring.

        Args:
            account: the caller's account.
            request: the validated payload.
            outcome_fault: a name from :data:`einvoice.sandbox.faults.OUTCOME_FAULTS` or None; applies
                only when a new document is created.
            amounts: the amounts when computed by the caller (v2: net prices); else from ``request``.
            v2: the v2 request when the bill comes through ``/v2`` (kept for v2 rendering).

        Returns:
            201 (new, resent or now-validated document), 409 (pending block), 422 (range problem, or
            DIAN rejection with ``document`` set), or ``hang`` for ``timeout_after_store``.
        """
        amounts = amounts or _request_amounts(request)
        return self._create(
            account, "bill", request, request.customer, amounts, None, outcome_fault, v2
        )

    def create_credit_note(
        self,
        account: Account,
        request: CreditNoteRequest,
        outcome_fault: str | None,
        *,
        amounts: DocumentAmounts | None = None,
        v2: Any = None,
    ) -> CreateResult:
        """Create and validate a credit note (``POST /v1/credit-notes/validate``, FACTUS_API.md §7.1).

        Besides the bill rules: ``bill_id`` must be a validated bill of this account (422
        "La factura seleccionada no existe." otherwise) and the bill's credit notes may not exceed
        its total (422 on ``bill_id``). ``amounts`` and ``v2`` as in :meth:`create_bill`. Returns as
        :meth:`create_bill`.
        """
        amounts = amounts or _request_amounts(request)
        with self.lock:
            bill = None
            if request.bill_id is not None:
                bill = account.by_id["bill"].get(request.bill_id)
                if bill is None or bill.status != 1:
                    bag = ErrorBag()
                    bag.add("bill_id", "La factura seleccionada no existe.")
                    return CreateResult(422, body=bag.body())
            customer = request.customer or (bill.customer if bill is not None else None)
            assert customer is not None  # validation requires a customer when there is no bill
            return self._create(
                account, "credit_note", request, customer, amounts, bill, outcome_fault, v2
            )

    def count_validate_post(self, account: Account, kind: DocumentKind) -> None:
        """Count one ``POST .../validate`` of ``kind`` (every one, whatever its outcome)."""
        with self.lock:
            account.stats.validate_posts[kind] += 1
            self.global_stats.validate_posts[kind] += 1

    def _create(
        self,
        account: Account,
        kind: DocumentKind,
        request: BillRequest | CreditNoteRequest,
        customer: CustomerData,
        amounts: DocumentAmounts,
        bill: SandboxDocument | None,
        outcome_fault: str | None,
        v2: Any = None,
    ) -> CreateResult:
        now = _now()
        version = "v1" if v2 is None else "v2"
        today = now.astimezone(artifacts.BOGOTA).date()
        range_document = catalogs.INVOICE_RANGE if kind == "bill" else catalogs.CREDIT_NOTE_RANGE
        with self.lock:
            bag = ErrorBag()
            chosen = self._pick_range(
                account, request.numbering_range_id, range_document, bag, today
            )
            if chosen is None:
                return CreateResult(422, body=bag.body())
            existing = account.by_reference[kind].get(request.reference_code)
            if existing is not None:
                return self._resend(account, existing, now, version)
            if account.pending(kind) is not None:
                return CreateResult(409, body=_conflict_pending(kind, version))
            problem = self._range_problem(chosen, today)
            if problem is not None:
                bag.add("numbering_range_id", problem)
                return CreateResult(422, body=bag.body())
            if bill is not None:
                credited = sum(
                    (cn.amounts.total for cn in bill.credit_notes if not cn.rejected), Decimal(0)
                )
                if credited + amounts.total > bill.amounts.total:
                    bag.add(
                        "bill_id",
                        (
                            f"El valor total de las notas crédito ({money(credited + amounts.total)}) supera "
                            f"el valor total de la factura {bill.number} ({money(bill.amounts.total)})."
                        ),
                    )
                    return CreateResult(422, body=bag.body())
            document = self._store(account, kind, request, customer, amounts, chosen, bill, now)
            if v2 is not None:
                document.api_version, document.v2 = "v2", v2
            rejection = self._dian_rejection(document, outcome_fault)
            if rejection is not None:
                document.rejected = True
                document.errors = [rejection]
                return CreateResult(422, document, body=dian_rejection_body(document.errors))
            if outcome_fault == "dian_slow":
                return CreateResult(
                    201,
                    document,
                    message=(
                        f"Documento con el código de referencia {document.reference_code} registrado; "
                        "pendiente de validación por la DIAN"
                    ),
                )
            document.errors = _notifications(document)
            self._validate(account, document, now)
            return CreateResult(
                201,
                document,
                hang=outcome_fault == "timeout_after_store",
                message=_created_message(document),
            )

    @staticmethod
    def _dian_rejection(document: SandboxDocument, outcome_fault: str | None) -> str | None:
        customer = document.customer
        if (
            customer.identification_document_id == catalogs.NIT_DOCUMENT_ID
            and customer.dv is not None
            and customer.dv != co_nit.calc_check_digit(customer.identification)
        ):
            return FAK24
        if outcome_fault == "dian_rejection":
            return FAD06
        return None

    def _store(
        self,
        account: Account,
        kind: DocumentKind,
        request: BillRequest | CreditNoteRequest,
        customer: CustomerData,
        amounts: DocumentAmounts,
        chosen: NumberingRange,
        bill: SandboxDocument | None,
        now: datetime,
    ) -> SandboxDocument:
        number = f"{chosen.prefix}{chosen.current}"
        chosen.current += 1
        chosen.updated_at = now
        internal_id = self._next_id[kind]
        self._next_id[kind] += 1
        key = chosen.technical_key if kind == "bill" else account.company.software_pin
        customer_dv = None
        if customer.identification_document_id == catalogs.NIT_DOCUMENT_ID:
            customer_dv = customer.dv or co_nit.calc_check_digit(customer.identification)
        document = SandboxDocument(
            kind=kind,
            id=internal_id,
            number=number,
            reference_code=request.reference_code,
            range=chosen,
            request=request,
            customer=customer,
            customer_dv=customer_dv,
            amounts=amounts,
            cufe=artifacts.cufe(
                number=number,
                issued_at=now,
                taxable_amount=amounts.taxable_amount,
                tax_by_tribute=amounts.tax_by_tribute,
                total=amounts.total,
                issuer_nit=account.company.nit,
                customer_identification=customer.identification,
                key=key or "",
            ),
            created_at=now,
            api_client_name=account.spec.username,
            bill=bill,
        )
        account.documents[kind][number] = document
        account.unvalidated[kind][number] = document
        account.by_reference[kind][document.reference_code] = document
        account.by_id[kind][internal_id] = document
        if bill is not None:
            bill.credit_notes.append(document)
        for stats in (account.stats, self.global_stats):
            stats.documents_stored[kind] += 1
        return document

    # -- documents: read, delete, e-mail ----------------------------------------------------------

    def find(self, account: Account, kind: DocumentKind, number: str) -> SandboxDocument | None:
        """The account's document of ``kind`` with that number, or None."""
        with self.lock:
            return account.documents[kind].get(number)

    def list_documents(self, account: Account, kind: DocumentKind) -> list[SandboxDocument]:
        """The account's documents of ``kind``, newest first (as Factus lists them, §6.1)."""
        with self.lock:
            return sorted(account.documents[kind].values(), key=lambda d: d.id, reverse=True)

    # -- numbering ranges (v2) ------------------------------------------------------------------

    def dian_ranges(self, account: Account) -> list[NumberingRange]:
        """The ranges DIAN associated with the account's company (``GET /v2/numbering-ranges/dian``)."""
        with self.lock:
            return list(account.dian_ranges)

    def create_range(
        self,
        account: Account,
        document: str,
        prefix: str,
        current: int,
        resolution_number: str | None,
    ) -> tuple[NumberingRange | None, ErrorBag]:
        """Create a numbering range (``POST /v2/numbering-ranges``, v2 ``crear-rango``).

        Documents 21 (invoice), 24 (support document) and 30 (paper) need ``resolution_number`` of a
        range DIAN associated with the company (:meth:`dian_ranges`) whose prefix matches; the new
        range takes its limits, dates and technical key. Other documents (22 credit note, 23 debit
        note, 25 adjustment note) have no resolution: numbers 1 to 99,999,999, valid ten years from
        today (inferred). ``current`` is the next number to use.

        Args:
            account: the caller's account.
            document: range document code (validated by the caller against the v2 table).
            prefix: 1-4 alphanumeric characters (validated by the caller).
            current: the next number, within the range.
            resolution_number: the DIAN resolution, when the document needs one.

        Returns:
            ``(range, bag)``: the new range with an empty bag, or ``(None, bag)`` with 422 errors
            (unknown resolution or prefix, ``current`` outside the range, prefix already in use).
        """
        bag = ErrorBag()
        today = bogota_today()
        with self.lock:
            if any(r.document == document and r.prefix == prefix for r in account.ranges.values()):
                bag.add("prefix", "El prefijo ya está registrado para este tipo de documento.")
                return None, bag
            if document in catalogs.RESOLUTION_RANGE_DOCUMENTS:
                source = next(
                    (
                        r
                        for r in account.dian_ranges
                        if r.resolution_number == resolution_number and r.prefix == prefix
                    ),
                    None,
                )
                if source is None:
                    bag.add(
                        "resolution_number",
                        "La resolución no está asociada al software con ese prefijo en la DIAN.",
                    )
                    return None, bag
                start, end = source.start, source.end
                start_date, end_date = source.start_date, source.end_date
                technical_key = source.technical_key if document == catalogs.INVOICE_RANGE else None
            else:
                resolution_number = None
                start, end = 1, 99999999
                start_date, end_date = today, today.replace(year=today.year + 10)
                technical_key = None
            if not start <= current <= end:
                bag.add("current", f"El campo current debe estar entre {start} y {end}.")
                return None, bag
            range_id = max([INACTIVE_RANGE_ID, *account.ranges, *self._created_range_ids]) + 1
            self._created_range_ids.add(range_id)
            created = NumberingRange(
                range_id,
                document,
                prefix,
                start,
                end,
                current,
                resolution_number,
                start_date,
                end_date,
                technical_key,
                created_at=_now(),
            )
            account.ranges[range_id] = created
            return created, bag

    def delete(
        self, account: Account, kind: DocumentKind, reference_code: str
    ) -> tuple[int, dict[str, Any]]:
        """Delete a not-validated document by reference (§6.6): 200, 404 unknown, 409 validated."""
        with self.lock:
            document = account.by_reference[kind].get(reference_code)
            if document is None:
                return 404, {
                    "status": "Not Found",
                    "message": f"No se encontró el documento con código de referencia {reference_code}",
                }
            if document.status == 1:
                return 409, {
                    "status": "Conflict",
                    "message": f"Documento con código de referencia {reference_code} se encuentra validado",
                }
            del account.documents[kind][document.number]
            del account.by_reference[kind][reference_code]
            del account.by_id[kind][document.id]
            if document.bill is not None:
                document.bill.credit_notes.remove(document)
            for stats in (account.stats, self.global_stats):
                stats.documents_deleted[kind] += 1
            return 200, {
                "status": "OK",
                "message": f"Documento con código de referencia {reference_code} eliminado con éxito",
            }

    def record_email(self, document: SandboxDocument) -> bool:
        """Count one e-mail of ``document`` today (Bogotá); False once the daily quota (2) is used."""
        today = bogota_today()
        with self.lock:
            sent = document.emails_sent.get(today, 0)
            if sent >= MAX_EMAILS_PER_DAY:
                return False
            document.emails_sent[today] = sent + 1
            return True

    # -- stats --------------------------------------------------------------------------------

    def record_request(self, account: Account | None, endpoint: str, status: int | str) -> None:
        """Count one answered request under ``endpoint`` (``"GET /v1/bills"``) and its status."""
        with self.lock:
            targets = [
                self.global_stats,
                account.stats if account is not None else self.unauthenticated_stats,
            ]
            for stats in targets:
                stats.requests[endpoint][str(status)] += 1

    def stats(self) -> dict[str, Any]:
        """``GET /__sandbox/stats``: ``{"global": {...}, "unauthenticated": {...}, "accounts":
        {"<client_id>/<username>": {...}}}``, each shaped as :meth:`Stats.as_dict`."""
        with self.lock:
            return {
                "global": self.global_stats.as_dict(),
                "unauthenticated": self.unauthenticated_stats.as_dict(),
                "accounts": {a.key: a.stats.as_dict() for a in self._accounts.values()},
            }


def _oauth_error(error: str, description: str, hint: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error, "error_description": description}
    if hint:
        body["hint"] = hint
    body["message"] = description
    return body


def _request_amounts(request: BillRequest | CreditNoteRequest) -> DocumentAmounts:
    """A v1 request's amounts, from its tax-included prices (FACTUS_API.md §4.2)."""
    return document_amounts(
        [i.money for i in request.items], [a.money for a in request.allowances]
    )


def _created_message(document: SandboxDocument) -> str:
    return f"Documento con el código de referencia {document.reference_code} registrado y validado con éxito"


def _notifications(document: SandboxDocument) -> list[str]:
    """DIAN notifications (not rejections) a validated document carries (§5.4, DOC1 examples).

    FAJ43b for NIT customers (the sandbox name never matches the RUT); for credit notes CBF02 when no
    bill is referenced and CAK55 when the customer has no e-mail.
    """
    notes: list[str] = []
    if document.customer.identification_document_id == catalogs.NIT_DOCUMENT_ID:
        notes.append(FAJ43B)
    if document.kind == "credit_note":
        if document.bill is None:
            notes.append(CBF02)
        if not document.customer.email:
            notes.append(CAK55)
    return notes
