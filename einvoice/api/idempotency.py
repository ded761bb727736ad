"""``Idempotency-Key`` on every POST: the first answer is stored and replayed.

Same key, same method, path and body: the stored answer (same status and body, header
``Idempotent-Replayed: true``). Same key, anything else different: 422 ``idempotency_key_reused``.
Same key while its first request is still being answered: 409 ``idempotency_in_progress``.

For an action done in one transaction (enqueue, create an invoice, a credit note, retry) the
key's row is inserted in that transaction (:func:`einvoice.db.idempotency.claim`), so the
answer and the effect commit together or not at all. An action that spans several
transactions and a Factus call (cancel) commits its claim first and stores the answer after; if
it fails, the claim is dropped. An error answer is never stored: a retry with the key runs
again (nothing was done).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from einvoice.api.context import ApiContext
from einvoice.api.problems import ApiProblem
from einvoice.db import idempotency as idem_repo
from einvoice.db.models import ApiIdempotencyKey
from einvoice.db.uow import UnitOfWork
from einvoice.services.api_keys import Principal

#: What a unit of work returns: (HTTP status, JSON body).
Answer = tuple[int, Any]
REPLAYED_HEADER = "Idempotent-Replayed"


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """Hex SHA-256 of the method, the path and the parsed body in canonical JSON (key order and
    whitespace do not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def _stored_answer(row: ApiIdempotencyKey | None, fingerprint: str) -> JSONResponse:
    if row is None or row.response_status is None:
        raise ApiProblem(409, "idempotency_in_progress", "a request with this Idempotency-Key "
                         "is still being answered; retry in a moment")
    if row.request_sha256 != fingerprint:
        raise ApiProblem(422, "idempotency_key_reused", "this Idempotency-Key was used for "
                         f"another request ({row.method} {row.path} with another body); use a "
                         "new key for a new request")
    return JSONResponse(row.response_body, status_code=row.response_status,
                        headers={REPLAYED_HEADER: "true"})


def _claim(context: ApiContext, session: Session, principal: Principal, key: str, method: str,
           path: str, fingerprint: str) -> JSONResponse | None:
    """Claim ``key``; the stored answer (or a problem) when an earlier request owns it."""
    claim = idem_repo.claim(session, organization_id=principal.organization_id,
                            idempotency_key=key, method=method, path=path,
                            request_sha256=fingerprint,
                            stale_after_seconds=context.idempotency_stale_seconds)
    if not claim.locked:
        raise ApiProblem(409, "idempotency_in_progress", "a request with this Idempotency-Key "
                         "is still being answered; retry in a moment")
    if claim.claimed:
        return None
    return _stored_answer(idem_repo.stored(session, principal.organization_id, key), fingerprint)


def run_atomic(context: ApiContext, principal: Principal, *, key: str | None, method: str,
               path: str, body: Any, work: Callable[[Session], Answer]) -> JSONResponse:
    """Run ``work(session)`` in one transaction, with the key's claim and answer in it.

    Args:
        key: the ``Idempotency-Key`` header, or None.
        body: the parsed request body (JSON-able), part of the fingerprint.
        work: does the action and returns (status, JSON body); raises to answer a problem.
    """
    with UnitOfWork(context.session_factory) as uow:
        if key is not None:
            fingerprint = request_fingerprint(method, path, body)
            stored = _claim(context, uow.session, principal, key, method, path, fingerprint)
            if stored is not None:
                return stored
        status, answer = work(uow.session)
        if key is not None:
            idem_repo.complete(uow.session, principal.organization_id, key, status=status,
                               body=answer)
        uow.commit()
    return JSONResponse(answer, status_code=status)


def run_in_steps(context: ApiContext, principal: Principal, *, key: str | None, method: str,
                 path: str, body: Any, work: Callable[[], Answer]) -> JSONResponse:
    """Run ``work()``, which opens its own transactions, between a committed claim of the key
    and the stored answer; a failure drops the claim (the error propagates)."""
    if key is None:
        status, answer = work()
        return JSONResponse(answer, status_code=status)
    fingerprint = request_fingerprint(method, path, body)
    with UnitOfWork(context.session_factory) as uow:
        stored = _claim(context, uow.session, principal, key, method, path, fingerprint)
        if stored is not None:
            return stored
        uow.commit()
    try:
        status, answer = work()
    except BaseException:
        with UnitOfWork(context.session_factory) as uow:
            idem_repo.release(uow.session, principal.organization_id, key)
            uow.commit()
        raise
    with UnitOfWork(context.session_factory) as uow:
        idem_repo.complete(uow.session, principal.organization_id, key, status=status,
                           body=answer)
        uow.commit()
    return JSONResponse(answer, status_code=status)
