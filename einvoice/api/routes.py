"""The routes under ``/api``: thin adapters over :mod:`einvoice.services`.

Every route is scoped to the key's organization (another organization's job or invoice is 404)
and is ``async``, handing its blocking work (the database driver is synchronous) to the
process's executor (:meth:`einvoice.api.context.ApiContext.run`); each request is one unit of
work on the process's engine. Every POST honours ``Idempotency-Key``
(:mod:`einvoice.api.idempotency`).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from einvoice.api.auth import Auth, context_of
from einvoice.api.context import LazyClients
from einvoice.api.idempotency import Answer, run_atomic, run_in_steps
from einvoice.api.problems import ApiProblem, responses
from einvoice.api.schemas import (
    ActionOut,
    CreditNoteIn,
    CreditNoteOut,
    DocumentType,
    EnqueueOut,
    EnqueueRequest,
    EventOut,
    ExplanationOut,
    InvoiceCreatedOut,
    InvoiceIn,
    JobDetailOut,
    JobOut,
    JobPage,
    NumberingRangeOut,
    NumberingRangesOut,
    StatsOut,
)
from einvoice.db import api_jobs as api_repo
from einvoice.db.uow import UnitOfWork
from einvoice.domain.catalogue import explain_job, language_of
from einvoice.domain.jobs import ACTIVE_STATUSES, JobStatus
from einvoice.services import api_invoices as service
from einvoice.services.api_keys import Principal
from einvoice.services.operator import cancel_job

router = APIRouter(prefix="/api")

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
    description="Any unique string (a UUID): the same request sent again with the same key "
    "gets the first answer instead of acting twice.")]


def _actor(principal: Principal) -> str:
    return f"api:{principal.prefix}"


def _path(request: Request) -> str:
    return str(request.scope["path"])


def _enqueued(result: service.EnqueueResult, **extra: Any) -> Answer:
    body = {"job": JobOut.of(result.job).model_dump(mode="json"), "created": result.created,
            "already_accepted": result.already_accepted, **extra}
    return (201 if result.created else 200), body


# --------------------------------------------------------------------------------------------
# Ways in: enqueue an invoice of ours, or submit a whole invoice
# --------------------------------------------------------------------------------------------


@router.post(
    "/invoices/{invoice_id}/jobs", status_code=201, response_model=EnqueueOut,
    tags=["jobs"], summary="Validate an invoice already in the tables",
    responses={200: {"model": EnqueueOut, "description": "The invoice's existing job: in "
                     "flight, or accepted already (already_accepted true)."},
               **responses(401, 404, 409, 422, 503)})
async def enqueue_invoice(
    request: Request, invoice_id: uuid.UUID, principal: Auth,
    idempotency_key: IdempotencyKey = None,
    body: Annotated[EnqueueRequest | None, Body()] = None,
) -> JSONResponse:
    """Create the job that gets ``invoice_id`` validated by DIAN (201), or return the invoice's
    job in flight or its accepted job (200, ``already_accepted``) as
    :func:`einvoice.services.enqueue.enqueue_invoice` does. 404 ``invoice_not_found`` for an
    unknown invoice or another organization's."""
    document_type = (body or EnqueueRequest()).document_type

    def work(session: Session) -> Answer:
        return _enqueued(service.enqueue_for_organization(
            session, principal.organization_id, invoice_id, document_type.value))

    return await context_of(request).run(
        run_atomic, context_of(request), principal, key=idempotency_key, method="POST",
        path=_path(request), body={"document_type": document_type.value}, work=work)


def _new_invoice(payload: InvoiceIn) -> service.NewInvoice:
    invoice = payload.model_dump(exclude={"customer", "customer_id", "lines", "payments"},
                                 exclude_none=True)
    if "due_date" in invoice:
        invoice["due_date"] = datetime.combine(invoice["due_date"], time(), UTC)
    lines = []
    for line in payload.lines:
        columns = line.model_dump(exclude={"sku", "withholding_taxes"}, exclude_none=True)
        columns["is_excluded"] = int(line.is_excluded)
        columns["withholding_taxes"] = [w.model_dump(mode="json") for w in line.withholding_taxes]
        lines.append(service.NewLine(columns=columns, sku=line.sku))
    return service.NewInvoice(
        invoice=invoice, lines=lines,
        customer=payload.customer.model_dump(exclude_none=True) if payload.customer else None,
        customer_id=payload.customer_id,
        payments=[p.model_dump(exclude_none=True) for p in payload.payments])


@router.post(
    "/invoices", status_code=201, response_model=InvoiceCreatedOut, tags=["invoices"],
    summary="Submit a whole invoice and validate it",
    responses=responses(401, 409, 422, 503))
async def create_invoice(request: Request, payload: InvoiceIn, principal: Auth,
                   idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Store a whole invoice (customer, lines, payments) in the ERP tables and enqueue its job,
    in one transaction. The data rules that need DIAN's tables run in the worker: a bad value
    ends the job ``rejected`` with a reason code (docs/erp-contract.md)."""
    new = _new_invoice(payload)

    def work(session: Session) -> Answer:
        invoice_id, result = service.create_invoice(session, principal.organization_id, new)
        return _enqueued(result, invoice_id=str(invoice_id))

    return await context_of(request).run(
        run_atomic, context_of(request), principal, key=idempotency_key, method="POST",
        path=_path(request), body=payload.model_dump(mode="json"), work=work)


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------


def _encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(job_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        return datetime.fromisoformat(created), uuid.UUID(job_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiProblem(422, "invalid_cursor", "cursor is not one this API gave out",
                         field="cursor") from exc


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


_LIST_PARAMETERS = frozenset({"status", "document_type", "invoice_id", "created_from",
                              "created_to", "limit", "cursor"})


@router.get("/jobs", response_model=JobPage, tags=["jobs"], summary="List jobs",
            responses=responses(401, 422, 503))
async def list_jobs(
    request: Request, principal: Auth, *,
    status: Annotated[list[JobStatus] | None, Query(description="Repeatable.")] = None,
    document_type: DocumentType | None = None,
    invoice_id: uuid.UUID | None = None,
    created_from: Annotated[datetime | None, Query(description="Inclusive, UTC.")] = None,
    created_to: Annotated[datetime | None, Query(description="Exclusive, UTC.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    """The organization's jobs, newest first, a page at a time: pass the answer's
    ``next_cursor`` as ``cursor`` (with the same filters) for the next page. An unknown query
    parameter is a 422 (a misspelt filter must not silently list everything)."""
    unknown = sorted(set(request.query_params) - _LIST_PARAMETERS)
    if unknown:
        raise ApiProblem(422, "validation_error", f"{unknown[0] or '(empty)'}: unknown query "
                         "parameter", field=unknown[0])
    after = _decode_cursor(cursor) if cursor else None
    context = context_of(request)

    def read() -> JSONResponse:
        with UnitOfWork(context.session_factory) as uow:
            jobs = api_repo.list_jobs(
                uow.session, principal.organization_id,
                statuses=[s.value for s in status or ()],
                document_type=document_type.value if document_type else None,
                invoice_id=invoice_id, created_from=_utc(created_from),
                created_to=_utc(created_to), after=after, limit=limit + 1)
            page = jobs[:limit]
            next_cursor = (_encode_cursor(page[-1].created_at, page[-1].id)
                           if len(jobs) > limit else None)
            body = JobPage(items=[JobOut.of(j) for j in page],
                           next_cursor=next_cursor).model_dump(mode="json")
        return JSONResponse(body)

    return await context.run(read)


@router.get("/jobs/{job_id}", response_model=JobDetailOut, tags=["jobs"],
            summary="A job with its event timeline", responses=responses(401, 404, 422, 503))
async def get_job(request: Request, job_id: uuid.UUID, principal: Auth) -> JSONResponse:
    """The job and its events, oldest first (``enqueued``, ``claimed``, ``accepted``...), and
    its error explained (``explanation``; ``Accept-Language: en`` for English)."""
    lang = language_of(request.headers.get("accept-language"))
    context = context_of(request)

    def read() -> JSONResponse:
        with UnitOfWork(context.session_factory) as uow:
            job = service.require_job(uow.session, principal.organization_id, job_id)
            events = [EventOut.of(e) for e in service.job_events(uow.session, job)]
            explained = [ExplanationOut.of(e)
                         for e in explain_job(job.error_code, job.error_message, lang)]
            detail = JobDetailOut(**JobOut.of(job).model_dump(), events=events,
                                  explanation=explained)
        return JSONResponse(detail.model_dump(mode="json"))

    return await context.run(read)


def _document(request: Request, principal: Principal, job_id: uuid.UUID, kind: str,
              media_type: str) -> Response:
    context = context_of(request)
    name, content = service.fetch_document(
        context.session_factory, context.factus_clients, context.settings,
        principal.organization_id, job_id, kind)
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/jobs/{job_id}/pdf", response_class=Response, tags=["documents"],
            summary="The accepted document's PDF",
            responses={200: {"description": "The PDF (graphic representation).",
                             "content": {"application/pdf": {"schema": {
                                 "type": "string", "format": "binary"}}}},
                       **responses(401, 404, 409, 422, 502, 503)})
async def get_pdf(request: Request, job_id: uuid.UUID, principal: Auth) -> Response:
    """The PDF of an accepted job: from the archive, or downloaded once from Factus and
    archived. 409 ``not_accepted`` for a job that is not accepted."""
    return await context_of(request).run(_document, request, principal, job_id, "pdf",
                                         "application/pdf")


@router.get("/jobs/{job_id}/xml", response_class=Response, tags=["documents"],
            summary="The accepted document's XML",
            responses={200: {"description": "DIAN's signed XML (AttachedDocument).",
                             "content": {"application/xml": {"schema": {"type": "string"}}}},
                       **responses(401, 404, 409, 422, 502, 503)})
async def get_xml(request: Request, job_id: uuid.UUID, principal: Auth) -> Response:
    """The XML of an accepted job (as the PDF)."""
    return await context_of(request).run(_document, request, principal, job_id, "xml",
                                         "application/xml")


@router.post("/jobs/{job_id}/retry", response_model=ActionOut, tags=["jobs"],
             summary="Re-queue a failed or rejected job",
             responses=responses(401, 404, 409, 422, 503))
async def retry(request: Request, job_id: uuid.UUID, principal: Auth,
          idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Re-queue a ``failed`` or ``rejected`` job after its data was fixed (same reference code,
    history kept; :func:`einvoice.services.operator.retry_job`). 409 ``not_retryable``,
    ``active_job_exists`` or ``already_accepted`` otherwise."""
    def work(session: Session) -> Answer:
        job = service.retry_for_organization(session, principal.organization_id, job_id,
                                             actor=_actor(principal))
        return 200, ActionOut(job=JobOut.of(job),
                              message=f"job {job.id} re-queued").model_dump(mode="json")

    return await context_of(request).run(
        run_atomic, context_of(request), principal, key=idempotency_key, method="POST",
        path=_path(request), body=None, work=work)


@router.post("/jobs/{job_id}/cancel", response_model=ActionOut, tags=["jobs"],
             summary="Cancel a job not yet accepted",
             responses=responses(401, 404, 409, 422, 502, 503))
async def cancel(request: Request, job_id: uuid.UUID, principal: Auth,
           idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Cancel a job that is not accepted, deleting its unvalidated document at Factus when one
    may exist (:func:`einvoice.services.operator.cancel_job`). 409 ``cannot_cancel_accepted``
    (issue a credit note instead), ``already_cancelled``, ``in_flight``."""
    context = context_of(request)

    def work() -> Answer:
        with UnitOfWork(context.session_factory) as uow:  # a read: the tenancy check
            service.require_job(uow.session, principal.organization_id, job_id)
        message = cancel_job(context.session_factory, LazyClients(context), context.settings,
                             job_id, actor=_actor(principal))
        with UnitOfWork(context.session_factory) as uow:
            job = service.require_job(uow.session, principal.organization_id, job_id)
            return 200, ActionOut(job=JobOut.of(job), message=message).model_dump(mode="json")

    return await context.run(run_in_steps, context, principal, key=idempotency_key,
                             method="POST", path=_path(request), body=None, work=work)


@router.post("/jobs/{job_id}/credit-note", status_code=201, response_model=CreditNoteOut,
             tags=["jobs"], summary="Issue a credit note for an accepted invoice",
             responses={200: {"model": CreditNoteOut,
                              "description": "The credit note's existing job."},
                        **responses(401, 404, 409, 422, 503)})
async def credit_note(request: Request, job_id: uuid.UUID, payload: CreditNoteIn, principal: Auth,
                idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Create the credit note of an accepted invoice job (full without ``lines``, partial with
    them) and enqueue it. 409 ``not_accepted`` for a job that is not an accepted invoice."""
    lines = None if payload.lines is None else [
        service.CreditLine(item_id=line.item_id, quantity=line.quantity, amount=line.amount)
        for line in payload.lines]

    def work(session: Session) -> Answer:
        note_id, result = service.create_credit_note(
            session, principal.organization_id, job_id, concept_code=payload.concept_code,
            lines=lines, notes=payload.notes)
        return _enqueued(result, credit_note_id=str(note_id))

    return await context_of(request).run(
        run_atomic, context_of(request), principal, key=idempotency_key, method="POST",
        path=_path(request), body=payload.model_dump(mode="json"), work=work)


# --------------------------------------------------------------------------------------------
# Ranges and counts
# --------------------------------------------------------------------------------------------


@router.get("/numbering-ranges", response_model=NumberingRangesOut, tags=["organization"],
            summary="The organization's numbering ranges", responses=responses(401, 503))
async def numbering_ranges(request: Request, principal: Auth) -> JSONResponse:
    """Every DIAN numbering range of the organization, with the numbers left."""
    context = context_of(request)

    def read() -> JSONResponse:
        with UnitOfWork(context.session_factory) as uow:
            rows = api_repo.numbering_ranges(uow.session, principal.organization_id)
            out = NumberingRangesOut(items=[NumberingRangeOut.of(r) for r in rows])
        return JSONResponse(out.model_dump(mode="json"))

    return await context.run(read)


@router.get("/stats", response_model=StatsOut, tags=["organization"],
            summary="Job counts by status", responses=responses(401, 503))
async def stats(request: Request, principal: Auth) -> JSONResponse:
    """The organization's job counts by status (every status listed, 0 when none) and the age
    of its oldest unfinished job."""
    context = context_of(request)

    def read() -> tuple[dict[str, int], float | None]:
        with UnitOfWork(context.session_factory) as uow:
            return (api_repo.counts_by_status(uow.session, principal.organization_id),
                    api_repo.oldest_active_age_seconds(
                        uow.session, principal.organization_id,
                        [s.value for s in ACTIVE_STATUSES]))

    counts, oldest = await context.run(read)
    by_status = {s.value: counts.get(s.value, 0) for s in JobStatus}
    return JSONResponse(StatsOut(by_status=by_status, total=sum(by_status.values()),
                                 oldest_unfinished_age_s=oldest).model_dump(mode="json"))
