"""The operator console's queries: its accounts and sessions, the overview, the job table.

Every query of the console lives here (STYLE.md "SQL lives in einvoice/db/"); nothing commits.
Every read of jobs, ranges or organizations takes a ``scope``: None for an operator of every
organization, else the one organization id the operator may see, applied in the statement
itself (another organization's job is "not found", as in the HTTP API).

The job table is paged by keyset on ``(created_at, id)`` (never OFFSET: page 20,000 costs what
page 1 costs); migration 0011 adds one index per filter and says what each costs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from einvoice.db.models import (
    NON_FINAL_JOB_STATUSES,
    Customer,
    ElectronicInvoicingJob,
    InvoiceItem,
    InvoiceSale,
    InvoiceSequence,
    OperatorSession,
    OperatorUser,
    Organization,
)
from einvoice.domain.jobs import JobStatus

Job = ElectronicInvoicingJob

# --------------------------------------------------------------------------------------------
# Operator accounts
# --------------------------------------------------------------------------------------------


def user_by_username(session: Session, username: str, *,
                     for_update: bool = False) -> OperatorUser | None:
    """The account ``username`` (already lower case), row-locked with ``for_update``."""
    stmt = select(OperatorUser).where(OperatorUser.username == username)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def insert_user(session: Session, *, username: str, password_hash: str, role: str,
                organization_id: int | None) -> OperatorUser:
    """Add an account (flushed, so its id and ``created_at`` are set)."""
    user = OperatorUser(username=username, password_hash=password_hash, role=role,
                        organization_id=organization_id)
    session.add(user)
    session.flush()
    session.refresh(user)
    return user


def users(session: Session) -> list[OperatorUser]:
    """Every account, by username."""
    return list(session.scalars(select(OperatorUser).order_by(OperatorUser.username)))


def organization_exists(session: Session, organization_id: int) -> bool:
    """Whether ``organizations`` has the row ``organization_id``."""
    return session.scalar(select(Organization.id).where(Organization.id == organization_id)) \
        is not None


def note_failure(session: Session, user: OperatorUser, *, lock_after: int,
                 lock_until: datetime) -> bool:
    """Count one failed sign-in of ``user`` (row-locked by the caller); from the
    ``lock_after``-th failure in a row, lock the account until ``lock_until`` and start the count
    again. Returns True when this failure locked it."""
    user.failed_attempts += 1
    locked = user.failed_attempts >= lock_after
    if locked:
        user.locked_until = lock_until
        user.failed_attempts = 0
    session.flush()
    return locked


def note_success(session: Session, user: OperatorUser, *, password_hash: str | None) -> None:
    """A successful sign-in: failures forgotten, the time noted, and the hash replaced when the
    hasher's parameters changed (``password_hash`` not None)."""
    user.failed_attempts = 0
    user.locked_until = None
    user.last_sign_in_at = func.now()
    if password_hash is not None:
        user.password_hash = password_hash
    session.flush()


def set_password(session: Session, user: OperatorUser, password_hash: str) -> None:
    """Replace ``user``'s password hash, unlock it, and revoke its sessions."""
    user.password_hash = password_hash
    user.failed_attempts = 0
    user.locked_until = None
    revoke_sessions_of(session, user.id)
    session.flush()


def disable(session: Session, user: OperatorUser) -> None:
    """Turn ``user`` off now and revoke every session it has."""
    user.disabled_at = func.now()
    revoke_sessions_of(session, user.id)
    session.flush()


def unlock(session: Session, user: OperatorUser) -> None:
    """Lift a lock-out and forget the failures."""
    user.failed_attempts = 0
    user.locked_until = None
    session.flush()


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------


def insert_session(session: Session, *, token_sha256: str, user_id: int, csrf_token: str,
                   expires_at: datetime) -> None:
    """Store a new browser session (only the SHA-256 of its cookie)."""
    session.add(OperatorSession(token_sha256=token_sha256, user_id=user_id,
                                csrf_token=csrf_token, expires_at=expires_at))
    session.flush()


def live_session(session: Session, token_sha256: str,
                 now: datetime) -> tuple[OperatorSession, OperatorUser] | None:
    """The session of that cookie hash and its user, when the session is neither revoked nor
    expired at ``now`` and the user is not disabled; else None."""
    row = session.execute(
        select(OperatorSession, OperatorUser)
        .join(OperatorUser, OperatorUser.id == OperatorSession.user_id)
        .where(OperatorSession.token_sha256 == token_sha256,
               OperatorSession.revoked_at.is_(None), OperatorSession.expires_at > now,
               OperatorUser.disabled_at.is_(None))).one_or_none()
    return None if row is None else (row[0], row[1])


def touch_session(session: Session, token_sha256: str) -> None:
    """Note that the session was seen now."""
    session.execute(update(OperatorSession).where(OperatorSession.token_sha256 == token_sha256)
                    .values(last_seen_at=func.now()))


def revoke_session(session: Session, token_sha256: str) -> None:
    """End one session (sign-out)."""
    session.execute(update(OperatorSession)
                    .where(OperatorSession.token_sha256 == token_sha256,
                           OperatorSession.revoked_at.is_(None))
                    .values(revoked_at=func.now()))


def revoke_sessions_of(session: Session, user_id: int) -> None:
    """End every session of ``user_id``."""
    session.execute(update(OperatorSession)
                    .where(OperatorSession.user_id == user_id, OperatorSession.revoked_at.is_(None))
                    .values(revoked_at=func.now()))


# --------------------------------------------------------------------------------------------
# The overview
# --------------------------------------------------------------------------------------------


def _scoped(stmt: Any, scope: int | None) -> Any:
    return stmt if scope is None else stmt.where(Job.organization_id == scope)


def counts_by_organization_and_status(session: Session,
                                      scope: int | None) -> list[tuple[int, str, int]]:
    """``(organization_id, status, jobs)`` for every pair that has jobs, in scope."""
    stmt = _scoped(select(Job.organization_id, Job.status, func.count())
                   .group_by(Job.organization_id, Job.status), scope)
    return [(int(org), str(status), int(n)) for org, status, n in session.execute(stmt)]


def accepted_since(session: Session, seconds: int, scope: int | None) -> int:
    """Jobs accepted within the last ``seconds`` (by ``processed_at``, PostgreSQL's clock)."""
    since = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds)
    stmt = _scoped(select(func.count()).where(Job.status == JobStatus.ACCEPTED,
                                              Job.processed_at >= since), scope)
    return int(session.scalar(stmt) or 0)


def oldest_unfinished_age_seconds(session: Session, scope: int | None) -> float | None:
    """Seconds since the oldest job still ``pending``, ``processing`` or ``sent`` was created,
    or None when there is none. One index probe per status (``ix_ei_jobs_status_created``)."""
    oldest: datetime | None = None
    for status in NON_FINAL_JOB_STATUSES:
        stmt = _scoped(select(func.min(Job.created_at)).where(Job.status == status), scope)
        found = session.scalar(stmt)
        if found is not None and (oldest is None or found < oldest):
            oldest = found
    if oldest is None:
        return None
    age = session.scalar(select(func.extract("epoch", func.now() - oldest)))
    return float(age) if age is not None else None


def rejections_by_code(session: Session, scope: int | None,
                       limit: int = 20) -> list[tuple[str | None, int]]:
    """``(error_code, jobs)`` of the jobs ``rejected`` now (not yet retried), most first."""
    stmt = _scoped(select(Job.error_code, func.count().label("n"))
                   .where(Job.status == JobStatus.REJECTED)
                   .group_by(Job.error_code), scope)
    rows = session.execute(stmt.order_by(func.count().desc(), Job.error_code).limit(limit))
    return [(code, int(n)) for code, n in rows]


def numbering_ranges(session: Session, scope: int | None) -> list[InvoiceSequence]:
    """The numbering ranges (``invoice_sequences``) in scope: by organization, active first."""
    stmt = select(InvoiceSequence).order_by(
        InvoiceSequence.organization_id, InvoiceSequence.is_active.desc().nulls_last(),
        InvoiceSequence.document_type, InvoiceSequence.id)
    if scope is not None:
        stmt = stmt.where(InvoiceSequence.organization_id == scope)
    return list(session.scalars(stmt))


def organizations(session: Session, scope: int | None) -> list[tuple[int, str | None]]:
    """``(id, name)`` of the organizations in scope, by id."""
    stmt = select(Organization.id, func.coalesce(Organization.name, Organization.legal_name)) \
        .order_by(Organization.id)
    if scope is not None:
        stmt = stmt.where(Organization.id == scope)
    return [(int(i), name) for i, name in session.execute(stmt)]


# --------------------------------------------------------------------------------------------
# The job table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobFilter:
    """The job table's filters; None means "any".

    Attributes:
        statuses: jobs in one of these statuses (empty: any).
        organization_id: one organization (within the operator's scope).
        document_type: ``invoice``, ``credit_note``...
        created_from / created_to: ``created_from <= created_at < created_to`` (UTC).
        number: the DIAN number (``SETP990000001``) or the job's reference code, exactly (upper
            case).
        customer: the customer's identification number (NIT or cédula), exactly.
        error_code: the rule or reason code (``FAK24``, ``total_mismatch``), exactly.
    """

    statuses: tuple[str, ...] = ()
    organization_id: int | None = None
    document_type: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    number: str | None = None
    customer: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class JobRow:
    """One line of the job table (what the table shows, nothing more)."""

    id: uuid.UUID
    created_at: datetime
    organization_id: int
    document_type: str
    status: str
    document_number: str | None
    reference_code: str
    error_code: str | None
    attempt_count: int
    customer_name: str | None
    customer_identification: str | None
    total: Decimal | None


def _customer_name() -> Any:
    full = func.nullif(func.trim(func.concat_ws(" ", Customer.first_name, Customer.last_name)), "")
    return func.coalesce(Customer.company_name, full)


def job_table_statement(scope: int | None, filters: JobFilter, *,
                        after: tuple[datetime, uuid.UUID] | None, newest_first: bool,
                        limit: int) -> Any:
    """The job table's statement (also what the EXPLAIN test plans): at most ``limit`` rows
    after the keyset ``after`` (the last row of the previous page), in ``(created_at, id)``
    order, descending when ``newest_first``."""
    stmt = (select(Job.id, Job.created_at, Job.organization_id, Job.document_type, Job.status,
                   Job.document_number, Job.reference_code, Job.error_code, Job.attempt_count,
                   _customer_name().label("customer_name"),
                   Customer.identification_number, InvoiceSale.total)
            .select_from(Job)
            .outerjoin(InvoiceSale, InvoiceSale.id == Job.invoice_id)
            .outerjoin(Customer, Customer.id == InvoiceSale.customer_id))
    conditions: list[Any] = []
    if scope is not None:
        conditions.append(Job.organization_id == scope)
    if filters.organization_id is not None:
        conditions.append(Job.organization_id == filters.organization_id)
    if filters.statuses:
        conditions.append(Job.status.in_(list(filters.statuses)))
    if filters.document_type:
        conditions.append(Job.document_type == filters.document_type)
    if filters.created_from is not None:
        conditions.append(Job.created_at >= filters.created_from)
    if filters.created_to is not None:
        conditions.append(Job.created_at < filters.created_to)
    if filters.number:
        conditions.append(or_(Job.document_number == filters.number,
                              Job.reference_code == filters.number))
    if filters.error_code:
        conditions.append(Job.error_code == filters.error_code)
    if filters.customer:
        customers = select(Customer.id).where(Customer.identification_number == filters.customer)
        invoices = select(InvoiceSale.id).where(InvoiceSale.customer_id.in_(customers))
        conditions.append(Job.invoice_id.in_(invoices))
    key = tuple_(Job.created_at, Job.id)
    if after is not None:
        conditions.append(key < tuple_(*after) if newest_first else key > tuple_(*after))
    if conditions:
        stmt = stmt.where(and_(*conditions))
    order = ((Job.created_at.desc(), Job.id.desc()) if newest_first
             else (Job.created_at.asc(), Job.id.asc()))
    return stmt.order_by(*order).limit(limit)


def job_table(session: Session, scope: int | None, filters: JobFilter, *,
              after: tuple[datetime, uuid.UUID] | None = None, newest_first: bool = True,
              limit: int = 50) -> list[JobRow]:
    """A page of the job table (:func:`job_table_statement`)."""
    rows = session.execute(job_table_statement(scope, filters, after=after,
                                               newest_first=newest_first, limit=limit))
    return [JobRow(*row) for row in rows]


def explain(session: Session, stmt: Any, *, analyze: bool = False) -> str:
    """PostgreSQL's plan of ``stmt`` as text: ``EXPLAIN`` (not run), or with ``analyze`` run
    with ``EXPLAIN (ANALYZE, BUFFERS)``. For the tests and the documentation that show each
    filter of the job table uses an index."""
    compiled = stmt.compile(dialect=session.get_bind().dialect,
                            compile_kwargs={"render_postcompile": True})
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN "
    result = session.connection().exec_driver_sql(prefix + str(compiled),
                                                  dict(compiled.params))
    return "\n".join(str(row[0]) for row in result)


def job_in_scope(session: Session, job_id: uuid.UUID, scope: int | None, *,
                 for_update: bool = False) -> Job | None:
    """The job ``job_id`` when it is in scope (row-locked with ``for_update``), else None."""
    stmt = _scoped(select(Job).where(Job.id == job_id), scope)
    if for_update:
        stmt = stmt.with_for_update()
    job: Job | None = session.scalars(stmt).one_or_none()
    return job


@dataclass(frozen=True)
class InvoiceSummary:
    """What the job page shows of the ERP's invoice: its own number, dates, customer, totals
    (COP ``Decimal``) and how many lines it has; None fields are unknown in the ERP's row."""

    invoice_id: uuid.UUID
    erp_number: str | None
    issue_date: datetime | None
    currency: str | None
    subtotal: Decimal | None
    tax_total: Decimal | None
    total: Decimal | None
    status: str | None
    customer_name: str | None
    customer_identification: str | None
    customer_email: str | None
    lines: int
    qr_image: str | None
    related_invoice_id: uuid.UUID | None


def invoice_summary(session: Session, invoice_id: uuid.UUID) -> InvoiceSummary | None:
    """The summary of ``invoice_sales`` row ``invoice_id`` (None when the ERP deleted it)."""
    lines = (select(func.count()).select_from(InvoiceItem)
             .where(InvoiceItem.invoice_id == InvoiceSale.id).scalar_subquery())
    row = session.execute(
        select(InvoiceSale.id, InvoiceSale.number, InvoiceSale.issue_date, InvoiceSale.currency,
               InvoiceSale.subtotal, InvoiceSale.tax_total, InvoiceSale.total,
               InvoiceSale.status, _customer_name(), Customer.identification_number,
               Customer.email, lines, InvoiceSale.qr_image, InvoiceSale.related_invoice_id)
        .select_from(InvoiceSale)
        .outerjoin(Customer, Customer.id == InvoiceSale.customer_id)
        .where(InvoiceSale.id == invoice_id)).one_or_none()
    return None if row is None else InvoiceSummary(*row)
