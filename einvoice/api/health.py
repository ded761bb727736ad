"""``/healthz`` (the process answers; no I/O) and ``/readyz`` (PostgreSQL and Redis answer).

No authentication: load balancers and container healthchecks call them.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from einvoice.api.auth import context_of
from einvoice.api.problems import problem_response, responses
from einvoice.api.schemas import HealthOut
from einvoice.db import api_jobs as api_repo
from einvoice.db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="The process is up")
async def healthz() -> HealthOut:
    """Always ``{"status": "ok"}`` while the process serves requests (no I/O)."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, summary="PostgreSQL and Redis answer",
            responses=responses(503))
def readyz(request: Request) -> JSONResponse:
    """``SELECT 1`` on PostgreSQL and ``PING`` on Redis; 503 ``not_ready`` naming what failed."""
    context = context_of(request)
    checks: dict[str, str] = {}
    try:
        with UnitOfWork(context.session_factory) as uow:
            api_repo.ping(uow.session)
        checks["postgresql"] = "ok"
    except SQLAlchemyError as exc:
        log.warning("readyz: PostgreSQL: %s", type(exc).__name__)
        checks["postgresql"] = "unreachable"
    try:
        context.redis().ping()
        checks["redis"] = "ok"
    except (RedisError, OSError) as exc:
        log.warning("readyz: Redis: %s", type(exc).__name__)
        checks["redis"] = "unreachable"
    failed = sorted(name for name, state in checks.items() if state != "ok")
    if failed:
        return problem_response(503, "not_ready", f"unreachable: {', '.join(failed)}",
                                request.url.path, checks=checks)
    return JSONResponse(HealthOut(status="ok", checks=checks).model_dump())
