"""The simulator's bills and credit notes: creating, resending, reading, deleting and e-mailing.

Rules it enforces (FACTUS_API.md; "inferred" where the contract says so):

- Numbers (§11.4): ``prefix + current`` of the chosen range (:mod:`einvoice.sandbox.ranges`);
  ``current`` is incremented by every stored document, rejected ones included.
- Idempotency (§9, §11.3): same ``reference_code`` and a validated document → the same document;
  a pending (DIAN slow) one → validated now; a rejected one → 409 (it blocks, like any status 0).
- The block (§5.3): while an account has a bill (credit note) with status 0, every new bill
  (credit note) gets 409 until that document is deleted.
- DIAN (:mod:`einvoice.sandbox.dian`): a rejection is stored with its rule; a validated document
  carries DIAN's notifications.
- Credit notes (§7.1): ``bill_id`` must be a validated bill of the same account, and the credit
  notes of a bill (rejected ones excluded) can never add up to more than the bill's total.
- E-mail (§6.5): at most two sends per document per Bogotá day.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from stdnum.co import nit as co_nit

from einvoice.sandbox import artifacts, catalogs
from einvoice.sandbox.amounts import DocumentAmounts, document_amounts, money
from einvoice.sandbox.dian import dian_rejection, dian_rejection_body, notifications
from einvoice.sandbox.ranges import (
    NumberingRange,
    bogota_today,
    pick_range,
    range_problem,
    utcnow,
)
from einvoice.sandbox.validation import BillRequest, CreditNoteRequest, CustomerData, ErrorBag

if TYPE_CHECKING:
    from einvoice.sandbox.accounts import Account, Stats

DocumentKind = Literal["bill", "credit_note"]
KINDS: tuple[DocumentKind, ...] = ("bill", "credit_note")

PUBLIC_URL_BASE = "https://app-sandbox.factus.com.co/documents"
MAX_EMAILS_PER_DAY = 2  # FJS1 "max 2 per bill per day" (FACTUS_API.md §6.5)


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


def conflict_pending(kind: DocumentKind, api_version: str = "v1") -> dict[str, Any]:
    """The 409 body Factus answers while a document of ``kind`` waits for DIAN (§5.3)."""
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


def request_amounts(request: BillRequest | CreditNoteRequest) -> DocumentAmounts:
    """A v1 request's amounts, from its tax-included prices (FACTUS_API.md §4.2)."""
    return document_amounts(
        [i.money for i in request.items], [a.money for a in request.allowances]
    )


def created_message(document: SandboxDocument) -> str:
    """The ``message`` of a 201 for a validated document (DOC1 examples)."""
    return f"Documento con el código de referencia {document.reference_code} registrado y validado con éxito"


class DocumentBook:
    """The document part of :class:`einvoice.sandbox.state.SandboxState` (a mixin: the state owns
    the lock, the id counters and the global counters)."""

    lock: threading.RLock
    _next_id: dict[DocumentKind, int]
    global_stats: Stats

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
            return CreateResult(201, existing, message=created_message(existing))
        if not existing.rejected:
            self._validate(account, existing, now)
            return CreateResult(201, existing, message=created_message(existing))
        return CreateResult(409, body=conflict_pending(existing.kind, version))

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
        amounts = amounts or request_amounts(request)
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
        amounts = amounts or request_amounts(request)
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
        now = utcnow()
        version = "v1" if v2 is None else "v2"
        today = now.astimezone(artifacts.BOGOTA).date()
        range_document = catalogs.INVOICE_RANGE if kind == "bill" else catalogs.CREDIT_NOTE_RANGE
        with self.lock:
            bag = ErrorBag()
            chosen = pick_range(
                account, request.numbering_range_id, range_document, bag, today
            )
            if chosen is None:
                return CreateResult(422, body=bag.body())
            existing = account.by_reference[kind].get(request.reference_code)
            if existing is not None:
                return self._resend(account, existing, now, version)
            if account.pending(kind) is not None:
                return CreateResult(409, body=conflict_pending(kind, version))
            problem = range_problem(chosen, today)
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
            rejection = dian_rejection(document, outcome_fault)
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
            document.errors = notifications(document)
            self._validate(account, document, now)
            return CreateResult(
                201,
                document,
                hang=outcome_fault == "timeout_after_store",
                message=created_message(document),
            )

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

