"""The synchronous Factus client: every HTTP call ``einvoice`` makes to Factus goes through here.

One :class:`FactusClient` per account, all sharing one pooled ``httpx.Client``, one rate limiter
and one token store per process. Workers build a :class:`FactusClients` once per process with
:func:`create_factus_clients` (on ``worker_process_init``, never at import time) and ask it for
the client of the job's account. Each account speaks one Factus API version
(``FactusAccount.api_version``, ``"v1"`` or ``"v2"``); the client sends every document call to
that version's paths and parses its answers into the same typed results (FACTUS_API.md
Decision 1, §10).

What each call does (FACTUS_API.md §1, Decisions 2–6):

1. takes a slot from the account's rate limiter (every call, token calls and retries included);
2. sends with ``Accept: application/json``, the Bearer token, a JSON or form body, and a timeout:
   ``factus_validate_timeout`` (≥ 30 s) for validate, ``factus_read_timeout`` for everything
   else, ``factus_connect_timeout`` to connect;
3. logs method, path, status, latency and Factus' message on logger ``einvoice.factus`` (never a
   header, token, password or secret);
4. on 401 renews the token once and repeats the call once (``/v1`` and ``/v2`` alike);
5. maps any failure to a typed :mod:`einvoice.factus.errors` error;
6. retries with tenacity (exponential backoff with full jitter, ``Retry-After`` honoured), but
   only where repeating is harmless: reads (GET, password grant) on any transient error; creates
   and other writes (validate, delete, send e-mail, refresh grant) only when the request certainly
   did not reach Factus (a connect error) or was refused unprocessed (429). A validate whose
   outcome is unknown (read timeout, 5xx, dropped connection, unreadable body) is never re-sent
   here: the error is raised and the job layer reconciles by reference code (Decision 3);
7. never sleeps (backoff, ``Retry-After``) past the submission attempt's deadline
   (:mod:`einvoice.factus.deadline`): the error is raised instead;
8. runs a write's ``fence`` callback, if given, right before the request goes out (the job layer
   confirms there that it still holds the job's lease; whatever it raises stops the request).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

import httpx
import redis
from pydantic import BaseModel
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_random_exponential

from einvoice import metrics
from einvoice.crypto import SecretBox
from einvoice.factus import deadline, v1, v2
from einvoice.factus.errors import (
    FactusError,
    NotFoundError,
    PendingDocumentConflict,
    RateLimitedError,
    ResponseDecodingError,
    ServerError,
    TransportError,
    error_from_response,
    factus_message,
    response_json,
)
from einvoice.factus.ratelimit import RateLimiter, RedisRateLimiter
from einvoice.factus.schemas import (
    BillListItem,
    BillResult,
    Company,
    CreditNoteListItem,
    CreditNoteResult,
    DianNumberingRange,
    DownloadedFile,
    MeasurementUnit,
    Municipality,
    NumberingRange,
    Page,
    ProductTribute,
    TokenResponse,
)
from einvoice.factus.tokens import (
    FactusAccount,
    InMemoryTokenStore,
    RedisRenewalLocks,
    RedisTokenStore,
    RenewalLocks,
    ThreadRenewalLocks,
    TokenManager,
    TokenStore,
)
from einvoice.settings import Settings

logger = logging.getLogger("einvoice.factus")

Payload = BaseModel | Mapping[str, Any]
#: A check run just before a write goes out; it raises to stop the write (see validate_bill).
BeforeSend = Callable[[], None]
#: A write that waited at least this long for its rate-limit slot runs its ``before_send``
#: check: the world may have changed while it queued (with the pace, a request can queue for
#: seconds behind its account's others, and meanwhile one of them may have left a document
#: pending at DIAN, which makes this one a certain 409).
RECHECK_AFTER_WAIT_SECONDS = 0.05

# Lookups by reference walk every partial match (the list filter is a LIKE, inferred): ask for
# big pages so a short reference among thousands of documents costs a few calls, not hundreds.
LOOKUP_PAGE_SIZE = 100
ItemT = TypeVar("ItemT", bound=BaseModel)


class WireFormat(Protocol):
    """What :class:`FactusClient` needs of a Factus API version: the modules
    :mod:`einvoice.factus.v1` and :mod:`einvoice.factus.v2` each provide these names (paths,
    list filters, body encoding, response parsers), so the client never branches on the
    version."""

    BILLS_PATH: str
    BILLS_VALIDATE_PATH: str
    BILL_FILTERS: frozenset[str]
    COMPANY_PATH: str
    CREDIT_NOTES_PATH: str
    CREDIT_NOTES_VALIDATE_PATH: str
    CREDIT_NOTE_FILTERS: frozenset[str]
    NUMBERING_RANGES_PATH: str
    NUMBERING_RANGE_FILTERS: frozenset[str]

    def bill_show_path(self, number: str) -> str: ...
    def bill_pdf_path(self, number: str) -> str: ...
    def bill_xml_path(self, number: str) -> str: ...
    def bill_delete_path(self, reference_code: str) -> str: ...
    def bill_send_email_path(self, number: str) -> str: ...
    def credit_note_show_path(self, number: str) -> str: ...
    def credit_note_pdf_path(self, number: str) -> str: ...
    def credit_note_xml_path(self, number: str) -> str: ...
    def credit_note_delete_path(self, reference_code: str) -> str: ...
    def credit_note_send_email_path(self, number: str) -> str: ...
    def encode_body(self, payload: BaseModel | Mapping[str, Any]) -> bytes: ...
    def send_email_body(self, email: str) -> dict[str, str]: ...
    def list_params(self, filters: Mapping[str, Any], allowed: frozenset[str], *,
                    page: int | None = None, per_page: int | None = None) -> dict[str, str]: ...
    def parse_bill(self, body: Any) -> BillResult: ...
    def parse_credit_note(self, body: Any) -> CreditNoteResult: ...
    def parse_bill_page(self, body: Any) -> Page[BillListItem]: ...
    def parse_credit_note_page(self, body: Any) -> Page[CreditNoteListItem]: ...
    def parse_numbering_range_page(self, body: Any) -> Page[NumberingRange]: ...
    def parse_company(self, body: Any) -> Company: ...
    def parse_download(self, body: Any, kind: Literal["pdf", "xml"]) -> DownloadedFile: ...


@dataclass(frozen=True)
class Timeouts:
    """Per-call timeouts in seconds (Decision 6; settings ``factus_*_timeout``).

    Attributes:
        connect: to open a connection (and to wait for a pooled one).
        read: read/write of every call but validate.
        validate: read/write of ``POST .../validate``, synchronous with DIAN (≥ 30 s).
    """

    connect: float = 5.0
    read: float = 15.0
    validate: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Timeouts:
        """From ``FACTUS_CONNECT_TIMEOUT``, ``FACTUS_READ_TIMEOUT``, ``FACTUS_VALIDATE_TIMEOUT``."""
        return cls(
            connect=settings.factus_connect_timeout,
            read=settings.factus_read_timeout,
            validate=settings.factus_validate_timeout,
        )

    def for_read(self) -> httpx.Timeout:
        """The ``httpx.Timeout`` of ordinary calls."""
        return httpx.Timeout(self.read, connect=self.connect, pool=self.connect)

    def for_validate(self) -> httpx.Timeout:
        """The ``httpx.Timeout`` of validate calls."""
        return httpx.Timeout(self.validate, connect=self.connect, pool=self.connect)


@dataclass(frozen=True)
class RetryPolicy:
    """How often the client itself repeats a call (small: the job layer has its own retries).

    Attributes:
        attempts: total tries of a call (1 = never repeat).
        backoff_initial: seconds; the n-th wait is random in ``[0, min(backoff_max,
            backoff_initial * 2**n)]`` ("full jitter").
        backoff_max: cap of one backoff wait, seconds.
        max_retry_after: the longest ``Retry-After`` the client sleeps through; a longer one is
            raised at once so the job is rescheduled instead of holding a worker.
    """

    attempts: int = 3
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 30.0


class _FactusWait(wait_base):
    """Wait ``retry_after`` when the error carries one (429, 503 + Retry-After), else backoff."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = wait_random_exponential(
            multiplier=policy.backoff_initial, max=policy.backoff_max
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = getattr(error, "retry_after", None)
        if isinstance(hinted, (int, float)) and hinted > 0:
            return float(hinted)
        return float(self._backoff(retry_state))


def _transport_error(method: str, path: str, exc: httpx.TransportError) -> TransportError:
    where = f"{method} {path}"
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return TransportError(
            f"could not connect to Factus for {where}: {type(exc).__name__}",
            reason="connect_error",
            may_have_reached=False,
        )
    if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout)):
        return TransportError(
            f"Factus did not answer {where} in time; the request may have been processed",
            reason="timeout_unknown_outcome",
            may_have_reached=True,
        )
    if isinstance(
        exc, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.CloseError)
    ):
        return TransportError(
            f"the connection to Factus broke during {where} ({type(exc).__name__}); "
            "the request may have been processed",
            reason="connection_lost",
            may_have_reached=True,
        )
    # Proxy, unsupported protocol, local protocol errors: failed before anything was sent.
    return TransportError(
        f"could not send {where} to Factus: {type(exc).__name__}",
        reason="connect_error",
        may_have_reached=False,
    )


class FactusClient:
    """Calls Factus for one account, in the account's API version. Thread-safe; share one per
    account within a process.

    Every document method exists once and is sent to ``/v1`` or ``/v2`` by
    ``account.api_version`` (:mod:`einvoice.factus.v1` or :mod:`einvoice.factus.v2` give the
    paths, list parameters and parsers); the results are the same typed models either way. An
    operation only one version has always uses that version's path (the v1 catalogs; the v2
    AttachedDocument, DIAN ranges and range creation), and an account without it answers
    :class:`~einvoice.factus.errors.ApiVersionNotEnabled`. The token, its renewal lock and the
    rate limit are the account's, shared by both versions.

    Args:
        account: whose credentials, base URL, token, lock and rate limit to use.
        http: the process's pooled ``httpx.Client`` (the client does not close it).
        limiter: the shared :class:`RateLimiter` (``NoRateLimit`` only in tests and benchmarks).
        token_store: where tokens live (Redis in workers; in memory by default).
        renewal_locks: single-flight token renewal (Redis in workers; threads by default).
        timeouts: per-call timeouts.
        retry: the client's own retry policy.
        token_margin_seconds: renew this long before the token expires (Decision 2).
        sleep: injectable ``time.sleep`` for retry waits.

    Every method raises :class:`~einvoice.factus.errors.FactusError` subclasses only (plus
    ``redis.RedisError`` if Redis, which holds tokens and the rate limit, is down).
    """

    def __init__(
        self,
        account: FactusAccount,
        *,
        http: httpx.Client,
        limiter: RateLimiter,
        token_store: TokenStore | None = None,
        renewal_locks: RenewalLocks | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        token_margin_seconds: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.account = account
        # The wire module of the account's version: paths, list parameters, body encoding and
        # response parsers under the same names.
        self._wire: WireFormat = v2 if account.api_version == "v2" else v1
        self._http = http
        self._limiter = limiter
        self._timeouts = timeouts or Timeouts()
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._wait = _FactusWait(self._retry)
        self.tokens = TokenManager(
            account.token_key,  # per account identity, not per "default"/row id
            grants=self,
            store=token_store if token_store is not None else InMemoryTokenStore(),
            locks=renewal_locks if renewal_locks is not None else ThreadRenewalLocks(),
            margin_seconds=token_margin_seconds,
        )

    def __repr__(self) -> str:
        return (f"FactusClient(account={self.account.key!r}, base_url={self.account.base_url!r}, "
                f"api_version={self.account.api_version!r})")

    # --- OAuth (§2) ------------------------------------------------------------------------

    def password_grant(self) -> TokenResponse:
        """``POST /oauth/token`` with the password grant (form-urlencoded, §2).

        Returns the new token pair. Used by the token manager; callers normally never need it.

        Raises:
            AuthenticationError: bad client id/secret, user or password.
            FactusError: transient errors after the client's retries.
        """
        form = v1.password_grant_form(
            self.account.client_id,
            self.account.client_secret.get_secret_value(),
            self.account.username,
            self.account.password.get_secret_value(),
        )
        return v1.parse_token(self._token_call(form, resend_safe=True))

    def refresh_grant(self, refresh_token: str) -> TokenResponse:
        """``POST /oauth/token`` with the refresh grant (§2); Factus rotates the refresh token.

        Not re-sent after an unknown outcome: the first try may already have spent the refresh
        token, and the token manager falls back to the password grant anyway.

        Raises:
            AuthenticationError: the refresh token is invalid, revoked or expired.
            FactusError: transient errors.
        """
        form = v1.refresh_grant_form(
            self.account.client_id, self.account.client_secret.get_secret_value(), refresh_token
        )
        return v1.parse_token(self._token_call(form, resend_safe=False))

    # --- bills (§3, §4, §6; v2 facturas/*) --------------------------------------------------

    def validate_bill(self, payload: Payload, *, before_send: BeforeSend | None = None,
                      fence: BeforeSend | None = None) -> BillResult:
        """Create the bill and have DIAN validate it: ``POST /v1/bills/validate`` (§3, §4) or
        ``POST /v2/bills/validate`` (v2 ``facturas/crear-y-validar``), per the account's version.

        Input: the body of the account's version: on v1 a :class:`einvoice.factus.v1.BillRequest`
        or a mapping shaped like the v1 body; on v2 a mapping shaped like the v2 body (``Decimal``
        amounts are sent as exact strings). Output: the bill; ``is_validated`` (status 1 / v2
        ``is_validated``, CUFE present) or ``is_pending`` (not validated without a rejection:
        DIAN is slow, re-send the same payload later).
        ``before_send``: called when the request had to wait for its rate-limit slot (at least
        :data:`RECHECK_AFTER_WAIT_SECONDS`), just before it goes out; whatever it raises stops
        the request, unsent (the caller's "does this still make sense?" check).
        ``fence``: called right before every send of the request (after its rate-limit slot and
        ``before_send``; again before the repeat after a 401 or a 429), whether or not it
        waited; whatever it raises stops the request, unsent (the caller's "do I still hold
        this job?" check).

        Raises:
            PayloadValidationError, DianRejectionError, PendingDocumentConflict,
            AuthenticationError, ForbiddenError (ApiVersionNotEnabled when the account does not
            have this version): see Decision 4.
            TransportError / ServerError / ResponseDecodingError with ``may_have_reached``:
                outcome unknown, reconcile with :meth:`find_bill_by_reference` first.
            RateLimitedError: 429 with a long ``Retry-After`` (or after the retries).
        """
        wire = self._wire
        body = self._call(
            "POST", wire.BILLS_VALIDATE_PATH, payload=payload, validate=True, resend_safe=False,
            before_send=before_send, fence=fence,
        )
        return wire.parse_bill(body)

    def bills_page(
        self, page: int = 1, *, per_page: int | None = None, **filters: Any
    ) -> Page[BillListItem]:
        """One page of ``GET /v1/bills`` (§6.1) or ``GET /v2/bills``, 10 rows unless ``per_page``
        is honoured (v1 ``per_page``, v2 ``filter[per_page]``).

        Filters (``filter[...]``): ``identification``, ``names``, ``number``, ``prefix``,
        ``reference_code`` (a partial match on Factus, inferred), ``status`` (1 validated,
        0 pending); on v2 also ``created_from`` / ``created_to`` (dates, for
        ``filter[created_at][start_date|end_date]``). Raises ``ValueError`` for another name,
        FactusError on failure.
        """
        wire = self._wire
        params = wire.list_params(filters, wire.BILL_FILTERS, page=page, per_page=per_page)
        return wire.parse_bill_page(self._call("GET", wire.BILLS_PATH, params=params))

    def iter_bills(self, *, per_page: int | None = None, **filters: Any) -> Iterator[BillListItem]:
        """Every row of the bill list matching ``filters``, fetching page after page lazily.

        Filters as :meth:`bills_page`. Raises FactusError on failure.
        """
        return self._iter_pages(lambda page: self.bills_page(page, per_page=per_page, **filters))

    def list_bills(self, **filters: Any) -> list[BillListItem]:
        """All rows of the bill list matching ``filters`` (every page). See :meth:`bills_page`."""
        return list(self.iter_bills(**filters))

    def show_bill(self, number: str) -> BillResult:
        """``GET /v1/bills/show/{number}`` (§6.2) or ``GET /v2/bills/{number}``: the bill with
        CUFE, QR and status.

        Raises:
            NotFoundError: no bill with that number. FactusError otherwise.
        """
        wire = self._wire
        return wire.parse_bill(self._call("GET", wire.bill_show_path(number)))

    def find_bill_by_reference(self, reference_code: str) -> BillResult | None:
        """The bill created with ``reference_code``, or ``None`` if Factus has none (Decision 3).

        Lists with ``filter[reference_code]=`` (rows carry the number but no CUFE, on both
        versions), then shows the bill by number (§6.3; v2: FACTUS_API.md §10.1). Only rows
        whose reference equals ``reference_code`` exactly count, because the list filter may
        match partially (``INV-1`` would also find ``INV-10``; inferred from the Laravel query
        builder behind Factus). If several match, the newest (highest id, else latest
        ``created_at``: v2 rows may have no id) wins.

        Raises:
            FactusError: when a call fails (a transient error means "unknown", not "absent").
        """
        rows = self.iter_bills(reference_code=reference_code, per_page=LOOKUP_PAGE_SIZE)
        number = _newest_exact_match(rows, reference_code)
        if number is None:
            return None
        try:
            return self.show_bill(number)
        except NotFoundError:
            return None  # deleted between the list and the show

    def download_bill_pdf(self, number: str) -> DownloadedFile:
        """``GET /v1/bills/download-pdf/{number}`` (§6.4) or ``GET /v2/bills/{number}/download-pdf``:
        the PDF bytes and DIAN file name.

        Raises:
            NotFoundError: unknown number. ConflictError: bill not validated (§5.3, inferred for
            bills). FactusError otherwise.
        """
        wire = self._wire
        return wire.parse_download(self._call("GET", wire.bill_pdf_path(number)), "pdf")

    def download_bill_xml(self, number: str) -> DownloadedFile:
        """``GET /v1/bills/download-xml/{number}`` (§6.4) or ``GET /v2/bills/{number}/download-xml``:
        the XML bytes. Errors as the PDF."""
        wire = self._wire
        return wire.parse_download(self._call("GET", wire.bill_xml_path(number)), "xml")

    def download_bill_attached_xml(self, number: str) -> DownloadedFile:
        """``GET /v2/bills/{number}/download-attached-document-xml``: DIAN's AttachedDocument
        (the XML sent to the customer). v2 only: the v2 path is used whatever the account's
        version, and an account without v2 answers :class:`ApiVersionNotEnabled`.

        Raises:
            NotFoundError, ConflictError (not validated), ApiVersionNotEnabled, FactusError.
        """
        return v2.parse_download(self._call("GET", v2.bill_attached_xml_path(number)), "xml")

    def delete_bill(self, reference_code: str) -> str:
        """``DELETE /v1|v2/bills/destroy/reference/{reference_code}`` (§6.6, v2
        ``facturas/eliminar``): remove a bill that DIAN did not validate (a rejected one blocks
        every later create: Decision 4).

        Returns Factus' confirmation message.

        Raises:
            NotFoundError: no document with that reference. ConflictError: it is validated.
            FactusError otherwise.
        """
        body = self._call("DELETE", self._wire.bill_delete_path(reference_code),
                          resend_safe=False)
        return factus_message(body)

    def send_bill_email(self, number: str, email: str) -> str:
        """``POST /v1/bills/send-email/{number}`` (§6.5) or ``POST /v2/bills/{number}/send-email``:
        e-mail the bill to ``email`` (required by Factus). Returns Factus' message. Not repeated
        on an unknown outcome (Factus limits e-mails per bill per day, per an SDK comment).

        Raises:
            NotFoundError, FactusError.
        """
        wire = self._wire
        body = self._call(
            "POST",
            wire.bill_send_email_path(number),
            payload=wire.send_email_body(email),
            resend_safe=False,
        )
        return factus_message(body)

    def send_credit_note_email(self, number: str, email: str) -> str:
        """``POST /v1/credit-notes/send-email/{number}`` (§7.1) or
        ``POST /v2/credit-notes/{number}/send-email``: as :meth:`send_bill_email`, for a credit
        note. Returns Factus' message; not repeated on an unknown outcome.

        Raises:
            NotFoundError, FactusError.
        """
        wire = self._wire
        body = self._call(
            "POST",
            wire.credit_note_send_email_path(number),
            payload=wire.send_email_body(email),
            resend_safe=False,
        )
        return factus_message(body)

    # --- credit notes (§7.1; v2 notas-credito/*) ---------------------------------------------

    def validate_credit_note(self, payload: Payload, *, before_send: BeforeSend | None = None,
                             fence: BeforeSend | None = None) -> CreditNoteResult:
        """``POST /v1/credit-notes/validate`` (§7.1) or ``POST /v2/credit-notes/validate``.

        Input: the account's version's body (v1: a :class:`einvoice.factus.v1.CreditNoteRequest`
        or a v1-shaped mapping naming the bill by ``bill_id``; v2: a v2-shaped mapping naming it
        by ``bill_number``). Output, errors and ``before_send`` and ``fence`` as
        :meth:`validate_bill` (the note's code is ``cude``)."""
        wire = self._wire
        body = self._call(
            "POST", wire.CREDIT_NOTES_VALIDATE_PATH, payload=payload, validate=True,
            resend_safe=False, before_send=before_send, fence=fence,
        )
        return wire.parse_credit_note(body)

    def credit_notes_page(
        self, page: int = 1, *, per_page: int | None = None, **filters: Any
    ) -> Page[CreditNoteListItem]:
        """One page of ``GET /v1|v2/credit-notes``; filters as :meth:`bills_page` (§7.1)."""
        wire = self._wire
        params = wire.list_params(filters, wire.CREDIT_NOTE_FILTERS, page=page, per_page=per_page)
        return wire.parse_credit_note_page(
            self._call("GET", wire.CREDIT_NOTES_PATH, params=params)
        )

    def list_credit_notes(self, **filters: Any) -> list[CreditNoteListItem]:
        """All rows of the credit-note list matching ``filters`` (every page)."""
        return list(self._iter_pages(lambda page: self.credit_notes_page(page, **filters)))

    def show_credit_note(self, number: str) -> CreditNoteResult:
        """``GET /v1|v2/credit-notes/{number}`` (§7.1). Raises NotFoundError, FactusError."""
        wire = self._wire
        return wire.parse_credit_note(self._call("GET", wire.credit_note_show_path(number)))

    def find_credit_note_by_reference(self, reference_code: str) -> CreditNoteResult | None:
        """The credit note created with ``reference_code``, or ``None``; same method and exact
        matching as :meth:`find_bill_by_reference`."""
        rows = self._iter_pages(
            lambda page: self.credit_notes_page(
                page, per_page=LOOKUP_PAGE_SIZE, reference_code=reference_code
            )
        )
        number = _newest_exact_match(rows, reference_code)
        if number is None:
            return None
        try:
            return self.show_credit_note(number)
        except NotFoundError:
            return None

    def delete_credit_note(self, reference_code: str) -> str:
        """``DELETE /v1|v2/credit-notes/reference/{reference_code}`` (§7.1, v2
        ``notas-credito/eliminar``). Returns the message.
        Raises NotFoundError, ConflictError (validated), FactusError."""
        body = self._call("DELETE", self._wire.credit_note_delete_path(reference_code),
                          resend_safe=False)
        return factus_message(body)

    def download_credit_note_pdf(self, number: str) -> DownloadedFile:
        """``GET /v1/credit-notes/download-pdf/{number}`` (§7.1) or
        ``GET /v2/credit-notes/{number}/download-pdf``. Raises NotFoundError,
        ConflictError (not validated: "El documento NC82 no ha sido validado"), FactusError."""
        wire = self._wire
        return wire.parse_download(self._call("GET", wire.credit_note_pdf_path(number)), "pdf")

    def download_credit_note_xml(self, number: str) -> DownloadedFile:
        """``GET /v1/credit-notes/download-xml/{number}`` (§7.1) or
        ``GET /v2/credit-notes/{number}/download-xml``. Errors as the PDF."""
        wire = self._wire
        return wire.parse_download(self._call("GET", wire.credit_note_xml_path(number)), "xml")

    def download_credit_note_attached_xml(self, number: str) -> DownloadedFile:
        """``GET /v2/credit-notes/{number}/download-attached-document-xml`` (v2 only, as
        :meth:`download_bill_attached_xml`)."""
        return v2.parse_download(
            self._call("GET", v2.credit_note_attached_xml_path(number)), "xml"
        )

    # --- numbering ranges (§8.1; v2 rangos-de-numeracion/*) ----------------------------------

    def numbering_ranges_page(self, page: int = 1, **filters: Any) -> Page[NumberingRange]:
        """One page of ``GET /v1|v2/numbering-ranges`` (§8.1). Filters: ``id``, ``document``
        (code, e.g. 21 invoice, 22 credit note), ``resolution_number``, ``technical_key``,
        ``is_active`` (bool or 1/0). Raises ``ValueError`` for another name, FactusError."""
        wire = self._wire
        body = self._call(
            "GET",
            wire.NUMBERING_RANGES_PATH,
            params=wire.list_params(filters, wire.NUMBERING_RANGE_FILTERS, page=page),
        )
        return wire.parse_numbering_range_page(body)

    def list_numbering_ranges(self, **filters: Any) -> list[NumberingRange]:
        """All numbering ranges matching ``filters`` (every page). See :meth:`numbering_ranges_page`."""
        return list(self._iter_pages(lambda page: self.numbering_ranges_page(page, **filters)))

    def dian_numbering_ranges(self) -> list[DianNumberingRange]:
        """``GET /v2/numbering-ranges/dian``: the ranges DIAN has associated with the company's
        software (v2 ``rangos-de-numeracion/rangos-asociados-al-software``). Factus uses none of
        them until it is created with :meth:`create_numbering_range` (FACTUS_API.md §10.1).

        v2 only: the v2 path is used whatever the account's version.

        Raises:
            ApiVersionNotEnabled: the account has no v2. FactusError otherwise.
        """
        return v2.parse_dian_numbering_ranges(self._call("GET", v2.DIAN_NUMBERING_RANGES_PATH))

    def create_numbering_range(
        self,
        *,
        from_dian: DianNumberingRange | None = None,
        document: str | None = None,
        prefix: str | None = None,
        current: int | None = None,
        resolution_number: str | None = None,
    ) -> NumberingRange:
        """``POST /v2/numbering-ranges`` (v2 ``rangos-de-numeracion/crear-rango``): make a range
        usable in Factus. Returns the created range (its ``id`` is what a document's
        ``numbering_range_id`` takes).

        Two uses:

        * ``from_dian``: a range of :meth:`dian_numbering_ranges`, created as an invoice range
          (document ``"21"`` unless ``document`` says otherwise) with its prefix and resolution;
          ``current`` defaults to the range's first number (``from``);
        * without it, ``document``, ``prefix`` and ``current`` (and ``resolution_number`` where
          DIAN issued one), e.g. a credit-note range, which has no resolution:
          ``document="22", prefix="NC", current=1``.

        Not repeated on an unknown outcome (a create). v2 only: the v2 path is used whatever
        the account's version.

        Raises:
            ValueError: a missing or malformed field (see
                :func:`einvoice.factus.v2.numbering_range_body`), before any call.
            PayloadValidationError: Factus refused the range (a resolution DIAN does not know, a
                prefix already used). ApiVersionNotEnabled: the account has no v2. FactusError.
        """
        if from_dian is not None:
            document = document or v2.INVOICE_RANGE_DOCUMENT
            prefix = prefix or from_dian.prefix
            resolution_number = resolution_number or from_dian.resolution_number
            current = current if current is not None else from_dian.from_
        if document is None or prefix is None or current is None:
            raise ValueError("a numbering range needs document, prefix and current "
                             "(or from_dian)")
        body = v2.numbering_range_body(document=document, prefix=prefix, current=current,
                                       resolution_number=resolution_number)
        return v2.parse_numbering_range(
            self._call("POST", v2.NUMBERING_RANGES_PATH, payload=body, resend_safe=False)
        )

    # --- reference data (§8.2) ---------------------------------------------------------------
    # v2 has no catalog endpoints: Factus publishes the tables instead (v2 cambios-v2-v1,
    # tablas-de-referencia). These stay v1 calls whatever the account's version; an account
    # without v1 answers ApiVersionNotEnabled.

    def municipalities(self, name: str | None = None) -> list[Municipality]:
        """``GET /v1/municipalities[?name=]`` (§8.2; not paginated; v1 only).
        Raises ApiVersionNotEnabled (no v1), FactusError."""
        return v1.parse_municipalities(
            self._call("GET", v1.MUNICIPALITIES_PATH, params=_name(name))
        )

    def measurement_units(self, name: str | None = None) -> list[MeasurementUnit]:
        """``GET /v1/measurement-units[?name=]`` (§8.2; v1 only).
        Raises ApiVersionNotEnabled (no v1), FactusError."""
        return v1.parse_measurement_units(
            self._call("GET", v1.MEASUREMENT_UNITS_PATH, params=_name(name))
        )

    def product_tributes(self, name: str | None = None) -> list[ProductTribute]:
        """``GET /v1/tributes/products[?name=]`` (§8.2; v1 only).
        Raises ApiVersionNotEnabled (no v1), FactusError."""
        return v1.parse_product_tributes(
            self._call("GET", v1.PRODUCT_TRIBUTES_PATH, params=_name(name))
        )

    def company(self) -> Company:
        """The issuing company of the account: ``GET /v1/company`` (§8.2) or
        ``GET /v2/companies`` (v2 ``empresas/ver``, whose answer is undocumented: read as v1's,
        inferred). Raises FactusError."""
        wire = self._wire
        return wire.parse_company(self._call("GET", wire.COMPANY_PATH))

    # --- plumbing --------------------------------------------------------------------------

    @staticmethod
    def _iter_pages(fetch: Callable[[int], Page[ItemT]]) -> Iterator[ItemT]:
        page_number = 1
        while True:
            page = fetch(page_number)
            yield from page.items
            if not page.items or page_number >= page.last_page:
                return
            page_number += 1

    def _token_call(self, form: dict[str, str], *, resend_safe: bool) -> Any:
        def attempt() -> Any:
            response, body = self._send(
                "POST", v1.TOKEN_PATH, timeout=self._timeouts.for_read(), form=form
            )
            return self._body_or_raise(response, body)

        return self._retrying(resend_safe)(attempt)

    def _call(
        self,
        method: Literal["GET", "POST", "DELETE"],
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        payload: Payload | None = None,
        validate: bool = False,
        resend_safe: bool = True,
        before_send: BeforeSend | None = None,
        fence: BeforeSend | None = None,
    ) -> Any:
        content = self._wire.encode_body(payload) if payload is not None else None
        timeout = self._timeouts.for_validate() if validate else self._timeouts.for_read()

        def attempt() -> Any:
            token = self.tokens.access_token()
            response, body = self._send(
                method, path, timeout=timeout, token=token, params=params, content=content,
                before_send=before_send, fence=fence,
            )
            if response.status_code == 401:
                # Decision 2: renew once and retry once; a second 401 is an AuthenticationError.
                token = self.tokens.renew_after_rejection(token)
                response, body = self._send(
                    method, path, timeout=timeout, token=token, params=params, content=content,
                    before_send=before_send, fence=fence,
                )
            return self._body_or_raise(response, body)

        return self._retrying(resend_safe)(attempt)

    @staticmethod
    def _body_or_raise(response: httpx.Response, body: Any) -> Any:
        if response.status_code >= 400:
            raise error_from_response(response)
        if not isinstance(body, (dict, list)):
            raise ResponseDecodingError(
                f"Factus {response.status_code} on {response.request.method} "
                f"{response.request.url.path}: the body is not JSON",
                status_code=response.status_code,
            )
        return body

    def _retrying(self, resend_safe: bool) -> Retrying:
        policy = self._retry

        def should_retry(error: BaseException) -> bool:
            if not isinstance(error, FactusError) or not error.transient:
                return False
            if isinstance(error, PendingDocumentConflict) or error.reason in {
                "rate_limit_wait",
                "token_lock_timeout",
            }:
                return False  # repeating at once cannot help; the job layer settles these
            hinted = getattr(error, "retry_after", None)
            if isinstance(hinted, (int, float)) and hinted > policy.max_retry_after:
                return False
            if resend_safe:
                return isinstance(
                    error, (TransportError, ServerError, RateLimitedError, ResponseDecodingError)
                )
            # A write is repeated only when Factus certainly did not process it.
            return isinstance(error, RateLimitedError) or (
                isinstance(error, TransportError) and not error.may_have_reached
            )

        return Retrying(
            stop=stop_after_attempt(max(policy.attempts, 1)),
            wait=self._wait,
            retry=retry_if_exception(should_retry),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        left = deadline.remaining()
        if error is not None and left is not None and wait > left:
            # A backoff or Retry-After that ends past the attempt's deadline is not slept
            # through: the job layer reschedules the job and frees the thread and the lease.
            logger.warning(
                "factus retry %d for account %s after %s skipped: the %.2f s wait ends past the "
                "attempt's deadline (%.2f s left)", state.attempt_number, self.account.key,
                getattr(error, "reason", type(error).__name__), wait, left)
            raise error
        logger.warning(
            "factus retry %d for account %s after %s; waiting %.2f s",
            state.attempt_number,
            self.account.key,
            getattr(error, "reason", type(error).__name__),
            wait,
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        timeout: httpx.Timeout,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        form: dict[str, str] | None = None,
        before_send: BeforeSend | None = None,
        fence: BeforeSend | None = None,
    ) -> tuple[httpx.Response, Any]:
        waited = self._limiter.acquire(self.account.key)
        if before_send is not None and waited >= RECHECK_AFTER_WAIT_SECONDS:
            before_send()
        if fence is not None:
            fence()
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if content is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            response = self._http.request(
                method,
                self.account.base_url + path,
                params=params,
                content=content,
                data=form,
                headers=headers,
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            error = _transport_error(method, path, exc)
            metrics.observe_factus(method, path, error.reason, time.perf_counter() - started)
            logger.warning(
                "factus %s %s -> %s after %.0f ms (account %s)",
                method,
                path,
                error.reason,
                (time.perf_counter() - started) * 1000,
                self.account.key,
                extra={"factus_account": self.account.key, "factus_reason": error.reason},
            )
            raise error from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        metrics.observe_factus(method, path, response.status_code, elapsed_ms / 1000)
        body = response_json(response)
        message = (
            "" if path == v1.TOKEN_PATH and response.is_success else factus_message(body, response)
        )
        logger.log(
            logging.INFO if response.is_success else logging.WARNING,
            "factus %s %s -> %d in %.0f ms (account %s)%s",
            method,
            path,
            response.status_code,
            elapsed_ms,
            self.account.key,
            f": {message}" if message else "",
            extra={
                "factus_account": self.account.key,
                "factus_method": method,
                "factus_path": path,
                "factus_status": response.status_code,
                "factus_latency_ms": round(elapsed_ms, 1),
            },
        )
        return response, body


def _name(name: str | None) -> dict[str, str] | None:
    return {v1.CATALOG_NAME_PARAM: name} if name else None


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _newest_exact_match(
    rows: Iterable[BillListItem | CreditNoteListItem], reference_code: str
) -> str | None:
    """The number of the newest row whose reference is exactly ``reference_code`` (the list
    filter matches partially), by id, then ``created_at`` (v2 rows may carry no id)."""
    matches = [row for row in rows if row.reference_code == reference_code and row.number]
    if not matches:
        return None
    newest = max(matches, key=lambda row: (row.id or 0, row.created_at or _EPOCH))
    return newest.number


# --- per-process wiring ------------------------------------------------------------------------


def build_http_client(settings: Settings) -> httpx.Client:
    """The process's pooled ``httpx.Client`` for Factus.

    ``factus_max_connections`` connections (all kept alive, so a thread pool of that size never
    reconnects), a default timeout from the settings (every call passes its own anyway), and
    ``Accept: application/json``. Call once per process (after fork), never at import time.
    """
    timeouts = Timeouts.from_settings(settings)
    size = settings.factus_max_connections
    return httpx.Client(
        timeout=timeouts.for_read(),
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
        headers={"Accept": "application/json", "User-Agent": "einvoice-factus/1"},
    )


class FactusClients:
    """The Factus resources of one process: one ``httpx.Client``, one limiter, one token store
    and lock set, and one :class:`FactusClient` per account, made on first use.

    Build it with :func:`create_factus_clients`; close it when the process ends.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.Client,
        limiter: RateLimiter,
        token_store: TokenStore,
        renewal_locks: RenewalLocks,
        retry: RetryPolicy | None = None,
        owns_http: bool = True,
    ) -> None:
        self.settings = settings
        self.http = http
        self.limiter = limiter
        self.token_store = token_store
        self.renewal_locks = renewal_locks
        self._retry = retry
        self._owns_http = owns_http
        self._clients: dict[FactusAccount, FactusClient] = {}
        self._guard = threading.Lock()

    def for_account(self, account: FactusAccount) -> FactusClient:
        """The client of ``account`` (the same object for equal accounts)."""
        with self._guard:
            client = self._clients.get(account)
            if client is None:
                client = FactusClient(
                    account,
                    http=self.http,
                    limiter=self.limiter,
                    token_store=self.token_store,
                    renewal_locks=self.renewal_locks,
                    timeouts=Timeouts.from_settings(self.settings),
                    retry=self._retry,
                    token_margin_seconds=self.settings.factus_token_margin_seconds,
                )
                self._clients[account] = client
            return client

    def default(self) -> FactusClient:
        """The client of the ``FACTUS_*`` account. Raises ``ConfigError`` if it is not set."""
        return self.for_account(FactusAccount.from_settings(self.settings))

    def close(self) -> None:
        """Close the HTTP pool (if this object created it)."""
        if self._owns_http:
            self.http.close()


def create_factus_clients(
    settings: Settings,
    *,
    redis_client: redis.Redis | None = None,
    http: httpx.Client | None = None,
    limiter: RateLimiter | None = None,
    token_store: TokenStore | None = None,
    renewal_locks: RenewalLocks | None = None,
    retry: RetryPolicy | None = None,
) -> FactusClients:
    """Build the process's :class:`FactusClients` (call once per worker process).

    Defaults: Redis from ``REDIS_URL``; tokens in Redis encrypted with ``EINVOICE_SECRET_KEY``;
    Redis renewal locks; a Redis moving-window limiter of ``factus_rate_limit_per_minute`` per
    account; a pooled ``httpx.Client`` from :func:`build_http_client`. Each can be passed in.

    Raises:
        ConfigError: ``EINVOICE_SECRET_KEY`` unset or malformed when the Redis token store is built.
    """
    needs_redis = token_store is None or renewal_locks is None or limiter is None
    if redis_client is None and needs_redis:
        redis_client = redis.Redis.from_url(settings.redis_url)
    if token_store is None:
        assert redis_client is not None
        token_store = RedisTokenStore(redis_client, SecretBox.from_settings(settings))
    if renewal_locks is None:
        assert redis_client is not None
        # One renewal: a rate-limit wait and two token calls (refresh, then password grant). A
        # live holder keeps the lock that long at most; a dead one, its 10 s lease.
        renewal = (settings.factus_rate_limit_max_wait_seconds
                   + 2 * (settings.factus_connect_timeout + settings.factus_read_timeout) + 10)
        renewal_locks = RedisRenewalLocks(redis_client, timeout=renewal,
                                          blocking_timeout=min(renewal, 30.0))
    if limiter is None:
        assert redis_client is not None
        limiter = RedisRateLimiter.per_minute(
            redis_client, settings.factus_rate_limit_per_minute,
            max_wait_seconds=settings.factus_rate_limit_max_wait_seconds,
            per_second=settings.factus_pace_per_second,
        )
    return FactusClients(
        settings,
        http=http if http is not None else build_http_client(settings),
        limiter=limiter,
        token_store=token_store,
        renewal_locks=renewal_locks,
        retry=retry,
        owns_http=http is None,
    )
