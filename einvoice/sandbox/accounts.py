"""The simulator's accounts: credentials, company, ranges, documents and counters of each.

Accounts are keyed by ``(client_id, username)``; each has its own company, ranges and documents
and cannot see another's (FACTUS_API.md §1 shared-sandbox caveat aside: here accounts are
isolated). An account speaks API v1, v2 or both (§10.1, :attr:`AccountSpec.mode`); documents do
not belong to a version: what one version created, the other reads when the account has both.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from einvoice.sandbox.documents import KINDS, DocumentKind, SandboxDocument
from einvoice.sandbox.ranges import NumberingRange

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - the simulator's public test account
DEFAULT_USERNAME = "sandbox@einvoice.test"
DEFAULT_PASSWORD = "sandbox-password"  # noqa: S105 - the simulator's public test account


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
class Stats:
    """Counters of one account (or of all): see :meth:`as_dict` for the JSON shape."""

    requests: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    validate_posts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    documents_stored: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    documents_deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
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


class SandboxError(Exception):
    """A control-API request that cannot be honoured (duplicate account, bad spec)."""

