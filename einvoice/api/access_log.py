"""One log line per request: method, path, status, duration (ms), organization, key prefix.

A plain ASGI middleware (Starlette's ``BaseHTTPMiddleware`` costs a task and a stream per
request). The organization and prefix come from the request's state, where
:func:`einvoice.api.auth.require_principal` puts the principal; the key itself is never logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("einvoice.api.access")


class AccessLog:
    """ASGI middleware logging every HTTP request at INFO on ``einvoice.api.access``.

    The line reads ``POST /api/invoices/…/jobs 201 3.2ms org=1 key=ab12cd34`` and carries the
    same values as ``extra`` attributes (``http_method``, ``http_path``, ``http_status``,
    ``duration_ms``, ``organization_id``, ``key_prefix``) for structured handlers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, then log it (a request that raised is logged as 500)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            if log.isEnabledFor(logging.INFO):
                self._log(scope, status, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _log(scope: Scope, status: int, duration_ms: float) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        principal = state.get("principal")
        org = principal.organization_id if principal is not None else None
        prefix = principal.prefix if principal is not None else None
        log.info("%s %s %s %.1fms org=%s key=%s", scope["method"], scope["path"], status,
                 duration_ms, org if org is not None else "-", prefix or "-",
                 extra={"http_method": scope["method"], "http_path": scope["path"],
                        "http_status": status, "duration_ms": round(duration_ms, 1),
                        "organization_id": org, "key_prefix": prefix})
