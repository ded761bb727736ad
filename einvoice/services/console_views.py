"""What the operator console shows: the overview, the job table and a job's page.

Every function takes the operator's ``scope`` (None: every organization, else the one
organization the operator sees) and passes it to the repository (:mod:`einvoice.db.console`),
which applies it in the statement: another organization's job is "not found".

Times are UTC here (the pages show them in Bogotá time); money is COP ``Decimal``. The job
table pages by keyset on ``(created_at, id)`` with an opaque cursor, like the HTTP API.
Functions that take a session never commit (the one write is none: these are reads).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from einvoice.db import console as repo
from einvoice.db import followups as followup_repo
from einvoice.db import operator_jobs as operator_repo
from einvoice.db.console import InvoiceSummary, JobFilter, JobRow
from einvoice.db.models import DOCUMENT_TYPES, ElectronicInvoicingEvent, ElectronicInvoicingJob
from einvoice.domain.jobs import ACTIVE_STATUSES, JobStatus, is_ambiguous_ending
from einvoice.errors import JobError

Job = ElectronicInvoicingJob

#: Colombia's clock, for the dates an accountant types and reads (no daylight saving).
BOGOTA = ZoneInfo("America/Bogota")
#: Rows per page of the job table.
PAGE_SIZE = 50
#: A range with fewer numbers left than this, or that expires within this many days, is flagged
#: when the ERP set no ``alert_threshold`` (the range sync's warning window).
DEFAULT_LOW_NUMBERS = 100
EXPIRY_WARNING_DAYS = 30

#: Keys whose values are never shown, at any depth of a payload (compared in lower case, as
#: substrings): credentials and tokens must not reach a page even if a payload carried one.
SECRET_KEY_PARTS = ("password", "secret", "token", "authorization", "api_key", "apikey",
                    "credential", "private")
REDACTED = "••••••"


# --------------------------------------------------------------------------------------------
# The overview
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrganizationCounts:
    """One organization's jobs by status (every status present, 0 when none)."""

    organization_id: int
    name: str | None
    by_status: dict[str, int]

    @property
    def total(self) -> int:
        """All its jobs."""
        return sum(self.by_status.values())


@dataclass(frozen=True)
class RangeLine:
    """A numbering range as the overview shows it.

    Attributes:
        warning: None, ``expired``, ``low`` (fewer numbers left than its threshold) or
            ``expiring`` (within :data:`EXPIRY_WARNING_DAYS` days); only for active ranges.
    """

    organization_id: int | None
    document_type: str | None
    prefix: str | None
    resolution_number: str | None
    remaining: int | None
    valid_until: date | None
    days_to_expiry: int | None
    active: bool
    warning: str | None


@dataclass(frozen=True)
class Overview:
    """The overview's numbers (all in the operator's scope).

    Attributes:
        by_status: jobs per status (every :class:`JobStatus`, 0 when none).
        organizations: per organization, by id.
        accepted_last_hour / accepted_last_day: jobs accepted in the last 60 min / 24 h.
        oldest_unfinished_age_s: age (s) of the oldest pending, processing or sent job.
        rejections: ``(rule code, jobs)`` of the jobs rejected now, most first.
        ranges: the numbering ranges.
        generated_at: when this was read (UTC).
    """

    by_status: dict[str, int]
    organizations: list[OrganizationCounts]
    accepted_last_hour: int
    accepted_last_day: int
    oldest_unfinished_age_s: float | None
    rejections: list[tuple[str | None, int]]
    ranges: list[RangeLine]
    generated_at: datetime

    @property
    def total(self) -> int:
        """All jobs in scope."""
        return sum(self.by_status.values())


def _range_line(seq: Any, today: date) -> RangeLine:
    remaining = (seq.range_end - seq.current_number + 1
                 if seq.range_end is not None and seq.current_number is not None else None)
    days = (seq.valid_until - today).days if seq.valid_until is not None else None
    threshold = seq.alert_threshold if seq.alert_threshold is not None else DEFAULT_LOW_NUMBERS
    warning = None
    if seq.is_active:
        if days is not None and days < 0:
            warning = "expired"
        elif remaining is not None and remaining < threshold:
            warning = "low"
        elif days is not None and days <= EXPIRY_WARNING_DAYS:
            warning = "expiring"
    return RangeLine(organization_id=seq.organization_id, document_type=seq.document_type,
                     prefix=seq.prefix, resolution_number=seq.resolution_number,
                     remaining=remaining, valid_until=seq.valid_until, days_to_expiry=days,
                     active=bool(seq.is_active), warning=warning)


def overview(session: Session, scope: int | None, *, now: datetime | None = None) -> Overview:
    """The overview's numbers in ``scope`` (a handful of index-served statements)."""
    at = now or datetime.now(UTC)
    names = dict(repo.organizations(session, scope))
    by_status = {status.value: 0 for status in JobStatus}
    per_org: dict[int, dict[str, int]] = {}
    for org, status, count in repo.counts_by_organization_and_status(session, scope):
        by_status[status] = by_status.get(status, 0) + count
        per_org.setdefault(org, {s.value: 0 for s in JobStatus})[status] = count
    organizations = [OrganizationCounts(org, names.get(org), counts)
                     for org, counts in sorted(per_org.items())]
    today = at.astimezone(BOGOTA).date()
    return Overview(
        by_status=by_status, organizations=organizations,
        accepted_last_hour=repo.accepted_since(session, 3600, scope),
        accepted_last_day=repo.accepted_since(session, 86400, scope),
        oldest_unfinished_age_s=repo.oldest_unfinished_age_seconds(session, scope),
        rejections=repo.rejections_by_code(session, scope),
        ranges=[_range_line(seq, today) for seq in repo.numbering_ranges(session, scope)],
        generated_at=at)


def organization_choices(session: Session, scope: int | None) -> list[tuple[int, str | None]]:
    """``(id, name)`` of the organizations the operator may pick, by id."""
    return repo.organizations(session, scope)


# --------------------------------------------------------------------------------------------
# The job table
# --------------------------------------------------------------------------------------------


class ConsoleInputError(JobError):
    """A filter or form value the console cannot use (``field`` names it)."""

    reason = "bad_input"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, reason="bad_input")
        self.field = field


@dataclass(frozen=True)
class JobQuery:
    """The job table's request: filters, order and page.

    Attributes:
        statuses: wanted statuses (empty: all).
        date_from / date_to: Bogotá dates, both inclusive.
        newest_first: the order (by creation).
        cursor: where the previous page ended (opaque), None for the first page.
    """

    statuses: tuple[str, ...] = ()
    organization_id: int | None = None
    document_type: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    number: str | None = None
    customer: str | None = None
    error_code: str | None = None
    newest_first: bool = True
    cursor: str | None = None

    def filters(self) -> JobFilter:
        """The repository's filter: Bogotá dates as UTC bounds (``date_to`` through its end)."""
        start = (datetime.combine(self.date_from, time(), BOGOTA).astimezone(UTC)
                 if self.date_from else None)
        end = (datetime.combine(self.date_to + timedelta(days=1), time(), BOGOTA).astimezone(UTC)
               if self.date_to else None)
        return JobFilter(statuses=self.statuses, organization_id=self.organization_id,
                         document_type=self.document_type, created_from=start, created_to=end,
                         number=self.number, customer=self.customer, error_code=self.error_code)

    def params(self, *, cursor: str | None = None) -> dict[str, Any]:
        """The query string of this request (for links), with ``cursor`` instead of its own."""
        params: dict[str, Any] = {
            "status": list(self.statuses), "org": self.organization_id,
            "type": self.document_type, "from": self.date_from, "to": self.date_to,
            "number": self.number, "customer": self.customer, "code": self.error_code,
            "order": None if self.newest_first else "oldest", "cursor": cursor}
        return {k: v for k, v in params.items() if v not in (None, "", [])}


def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = [v.strip() for v in params.get(name, []) if v.strip()]
    return values[-1] if values else None


def _date(params: Mapping[str, list[str]], name: str) -> date | None:
    value = _one(params, name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConsoleInputError(f"{value!r} is not a date (YYYY-MM-DD)", field=name) from None


def parse_job_query(params: Mapping[str, list[str]]) -> JobQuery:
    """The job table's request from a query string (each name to its values).

    Names: ``status`` (repeatable), ``org``, ``type``, ``from``/``to`` (YYYY-MM-DD, Bogotá),
    ``number``, ``customer``, ``code``, ``order`` (``oldest``), ``cursor``.

    Raises:
        ConsoleInputError: an unknown status or document type, a malformed date or
            organization.
    """
    statuses = tuple(dict.fromkeys(v for v in params.get("status", []) if v))
    known = {s.value for s in JobStatus}
    for status in statuses:
        if status not in known:
            raise ConsoleInputError(f"unknown status {status!r}", field="status")
    doc_type = _one(params, "type")
    if doc_type is not None and doc_type not in DOCUMENT_TYPES:
        raise ConsoleInputError(f"unknown document type {doc_type!r}", field="type")
    org = _one(params, "org")
    if org is not None and not org.isdigit():
        raise ConsoleInputError(f"{org!r} is not an organization id", field="org")
    number, customer, code = _one(params, "number"), _one(params, "customer"), _one(params, "code")
    return JobQuery(
        statuses=statuses, organization_id=int(org) if org else None, document_type=doc_type,
        date_from=_date(params, "from"), date_to=_date(params, "to"),
        number=number.upper() if number else None,
        customer=re.sub(r"[\s.]", "", customer) if customer else None,
        error_code=code, newest_first=_one(params, "order") != "oldest",
        cursor=_one(params, "cursor"))


def encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    """The opaque cursor of the row ``(created_at, id)``."""
    raw = json.dumps([created_at.isoformat(), str(job_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The ``(created_at, id)`` of a cursor. Raises ``ConsoleInputError`` for one this
    console did not give out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        return datetime.fromisoformat(created), uuid.UUID(job_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ConsoleInputError("the page link is not valid", field="cursor") from None


@dataclass(frozen=True)
class JobPage:
    """One page of the job table and the cursor of the next (None on the last page)."""

    rows: list[JobRow]
    next_cursor: str | None


def job_page(session: Session, scope: int | None, query: JobQuery, *,
             page_size: int = PAGE_SIZE) -> JobPage:
    """A page of the job table: at most ``page_size`` rows of ``query`` in ``scope``."""
    after = decode_cursor(query.cursor) if query.cursor else None
    rows = repo.job_table(session, scope, query.filters(), after=after,
                          newest_first=query.newest_first, limit=page_size + 1)
    page = rows[:page_size]
    next_cursor = (encode_cursor(page[-1].created_at, page[-1].id)
                   if len(rows) > page_size else None)
    return JobPage(rows=page, next_cursor=next_cursor)


# --------------------------------------------------------------------------------------------
# A job's page
# --------------------------------------------------------------------------------------------


def redact(value: Any) -> Any:
    """``value`` (a JSON document) with every value under a secret-looking key
    (:data:`SECRET_KEY_PARTS`) replaced by :data:`REDACTED`, at any depth."""
    if isinstance(value, dict):
        return {k: (REDACTED if any(p in str(k).lower() for p in SECRET_KEY_PARTS)
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def qr_data_uri(qr_image: str | None, qr_text: str | None) -> str | None:
    """An image of the document's QR for an ``<img src>``: Factus's PNG (v1 ``qr_image``, a
    ``data:image/png;base64,`` URI) when it is one, else an SVG drawn from the QR's text (the
    DIAN lookup URL; v2 sends only that); None when there is neither."""
    if qr_image:
        head, _, data = qr_image.partition(",")
        if head.replace(" ", "") == "data:image/png;base64":
            try:
                png = base64.b64decode(data.strip(), validate=True)
            except (binascii.Error, ValueError):
                png = b""
            if png.startswith(b"\x89PNG\r\n\x1a\n"):
                return "data:image/png;base64," + base64.b64encode(png).decode()
    if qr_text:
        import segno  # noqa: PLC0415 - only for a job page with a QR

        svg: str = segno.make(qr_text, error="m").svg_data_uri(scale=3, border=2)
        return svg
    return None


@dataclass(frozen=True)
class JobActions:
    """Which actions the job's state allows (the role is checked separately)."""

    retry: bool
    cancel: bool
    resend_email: bool
    credit_note: bool


@dataclass
class JobView:
    """Everything a job's page shows.

    Attributes:
        job: the row.
        invoice: the ERP invoice's summary, None when the row is gone.
        payload_json: the payload sent to Factus, secrets redacted, pretty-printed ("" when
            none was built yet).
        events: the timeline, oldest first.
        documents: stored files (kind, file name, size, SHA-256, created).
        followups: archive, e-mail and webhook follow-ups (kind, status, error).
        qr: the QR image as a data URI, or None.
        actions: what the job's state allows.
        ambiguous: the job's last outcome is unknown (its document may exist at Factus).
    """

    job: Job
    invoice: InvoiceSummary | None
    payload_json: str
    events: list[ElectronicInvoicingEvent]
    documents: list[dict[str, Any]]
    followups: list[Any]
    qr: str | None
    actions: JobActions
    ambiguous: bool
    extra: dict[str, Any] = field(default_factory=dict)


def parse_job_id(job_id: str) -> uuid.UUID:
    """``job_id`` as a UUID. Raises ``JobError`` (``job_not_found``): a malformed id is "not
    found" on a page, like an unknown one."""
    try:
        return uuid.UUID(job_id)
    except ValueError:
        raise JobError(f"no job {job_id!r}", reason="job_not_found") from None


def require_job(session: Session, scope: int | None, job_id: uuid.UUID | str, *,
                for_update: bool = False) -> Job:
    """The job in scope. Raises ``JobError`` (``job_not_found``) for an unknown job and for
    another organization's, alike."""
    key = job_id if isinstance(job_id, uuid.UUID) else parse_job_id(job_id)
    job = repo.job_in_scope(session, key, scope, for_update=for_update)
    if job is None:
        raise JobError(f"no job {key}", reason="job_not_found")
    return job


def job_view(session: Session, scope: int | None, job_id: uuid.UUID | str) -> JobView:
    """A job's page in scope. Raises ``JobError`` (``job_not_found``)."""
    job = require_job(session, scope, job_id)
    invoice = repo.invoice_summary(session, job.invoice_id)
    payload = redact(job.request_payload) if job.request_payload else None
    status = JobStatus(job.status)
    accepted = status == JobStatus.ACCEPTED
    actions = JobActions(
        retry=status in (JobStatus.REJECTED, JobStatus.FAILED),
        cancel=status not in (JobStatus.ACCEPTED, JobStatus.CANCELLED, JobStatus.PROCESSING),
        resend_email=accepted and job.document_type in ("invoice", "credit_note"),
        credit_note=accepted and job.document_type == "invoice")
    return JobView(
        job=job, invoice=invoice,
        payload_json=json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)
        if payload is not None else "",
        events=operator_repo.events_for(session, job.id),
        documents=followup_repo.documents_of_job(session, job.id),
        followups=followup_repo.followups_for_job(session, job.id),
        qr=qr_data_uri(invoice.qr_image if invoice else None, job.qr_code) if accepted else None,
        actions=actions,
        ambiguous=status not in ACTIVE_STATUSES
        and is_ambiguous_ending(job.status, job.error_code, bool(job.outcome_unknown)))
