"""One log line per request: method, path, status, duration (ms), organization, key prefix.

A plain ASGI middleware (Starlette's ``BaseHTTPMiddleware`` costs a task and a stream per
request). The organization and prefix come from the request's state, where
:func:`einvoice.api.auth.require_principal` puts the principal; the key itself is never logged.

Every request has an id: the caller's ``X-Request-ID`` when it is a short token (letters,
digits, ``.``, ``_``, ``:``, ``-``; at most 128), else a new one. It is echoed in the response's
``X-Request-ID`` and is the ``request_id`` of every line logged while the request runs
(:func:`einvoice.logs.log_context`), the access line included.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from einvoice.logs import log_context

log = logging.getLogger("einvoice.api.access")

#: The request-id header (lower case, as ASGI gives headers).
REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def request_id_of(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` when it is a short token, else a new random one (32 hex)."""
    for name, value in scope.get("headers") or ():
        if name == REQUEST_ID_HEADER and _REQUEST_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


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
        request_id = request_id_of(scope)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (REQUEST_ID_HEADER, request_id.encode())]}
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_and_note)
            finally:
                if log.isEnabledFor(logging.INFO):
                    self._log(scope, status, (time.perf_counter() - started) * 1000, request_id)

    @staticmethod
    def _log(scope: Scope, status: int, duration_ms: float, request_id: str) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        principal = state.get("principal")
        org = principal.organization_id if principal is not None else None
        prefix = principal.prefix if principal is not None else None
        log.info("%s %s %s %.1fms org=%s key=%s", scope["method"], scope["path"], status,
                 duration_ms, org if org is not None else "-", prefix or "-",
                 extra={"http_method": scope["method"], "http_path": scope["path"],
                        "http_status": status, "duration_ms": round(duration_ms, 1),
                        "organization_id": org, "key_prefix": prefix,
                        "request_id": request_id})
