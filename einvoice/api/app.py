"""The FastAPI application: :func:`create_app` builds it from settings.

One engine per process (pool sized for the thread pool that runs the routes), the API-key
cache, the problem handlers, the access log, and the routers. OpenAPI at ``/openapi.json``,
its pages at ``/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from einvoice.api import health, problems, routes
from einvoice.api.access_log import AccessLog
from einvoice.api.context import ApiContext
from einvoice.db.engine import make_engine, make_session_factory
from einvoice.services.api_keys import KeyCache
from einvoice.settings import Settings

DESCRIPTION = """\
Get invoices validated by DIAN through Factus, from an ERP in any language.

Authenticate with `Authorization: Bearer ei_<prefix>_<secret>` (keys: `einvoice api-keys
create --org N`). Every error is `application/problem+json` (RFC 9457) with a `code`. Every
POST accepts an `Idempotency-Key`. See docs/api.md.
"""


def create_app(settings: Settings, *, key_cache_seconds: float = 30.0,
               pool_size: int = 20, max_overflow: int = 20) -> FastAPI:
    """Build the API application.

    Args:
        settings: the process's settings (``DATABASE_URL`` required; ``REDIS_URL`` for
            ``/readyz``; the ``FACTUS_*`` account and ``EINVOICE_SECRET_KEY`` for document
            downloads and cancels that reach Factus).
        key_cache_seconds: how long an API key's answer is reused (the longest a revoked key
            keeps working in this process).
        pool_size / max_overflow: database connections (the routes run in a thread pool of 40).
    Returns:
        The FastAPI app; its engine is disposed at shutdown.
    Raises:
        ConfigError: ``DATABASE_URL`` is not set.
    """
    # No ping per checkout (a round trip per request): after a PostgreSQL restart the first
    # request on each dead connection answers 503, and SQLAlchemy replaces the whole pool.
    engine = make_engine(settings.require_database_url(), pool_size=pool_size,
                         max_overflow=max_overflow, pre_ping=False)
    context = ApiContext(settings=settings, engine=engine,
                         session_factory=make_session_factory(engine),
                         keys=KeyCache(ttl_seconds=key_cache_seconds))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        context.close()

    # FastAPI's built-in OpenTelemetry spans and metrics cost CPU on every request and have no
    # exporter here: the access log (einvoice.api.access) is the record of each call.
    app = FastAPI(title="einvoice API", version="1", description=DESCRIPTION,
                  lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False,
                             "operation_spans": False})
    app.state.context = context
    problems.install(app)
    app.add_middleware(AccessLog)
    app.include_router(health.router)
    from einvoice.api.metrics import router as metrics_router  # noqa: PLC0415 - /metrics

    app.include_router(metrics_router)  # Prometheus, behind EINVOICE_METRICS_TOKEN
    app.include_router(routes.router)
    from einvoice.console import create_console  # noqa: PLC0415 - the console's own app

    app.mount("/console", create_console(context))  # HTML pages with their own error pages
    return app
