"""``GET /metrics``: Prometheus' scrape, behind a token of its own (docs/metrics.md).

``Authorization: Bearer <EINVOICE_METRICS_TOKEN>``, compared in constant time. Not an API key:
Prometheus is no organization, and the metrics cover every organization. Answers:

* 200, Prometheus text format: :func:`einvoice.services.metrics.render`;
* 401 ``unauthorized`` (problem+json): no bearer token, or another one;
* 404 ``metrics_disabled``: ``EINVOICE_METRICS_TOKEN`` is not set, so the endpoint does not
  exist in this process (nothing to scrape, nothing to guess).

Left out of the OpenAPI document: it is for Prometheus, not for ERPs.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from einvoice.api.auth import context_of
from einvoice.api.problems import ApiProblem
from einvoice.services.metrics import render

router = APIRouter(include_in_schema=False)

#: The classic text format, what ``generate_latest`` writes and every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header ('' when there is none)."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """The metrics in Prometheus' text format (a sync route: the scrape's queries run in the
    thread pool).

    Raises:
        ApiProblem: 404 ``metrics_disabled`` without ``EINVOICE_METRICS_TOKEN``; 401
            ``unauthorized`` for a missing or wrong token.
    """
    context = context_of(request)
    expected = context.settings.einvoice_metrics_token
    if expected is None:
        raise ApiProblem(404, "metrics_disabled", "GET /metrics is off in this process: set "
                         "EINVOICE_METRICS_TOKEN to turn it on (docs/metrics.md)")
    given = _bearer(request.headers.get("authorization")).encode()
    if not hmac.compare_digest(given, expected.get_secret_value().encode()):
        raise ApiProblem(401, "unauthorized", "GET /metrics needs Authorization: Bearer "
                         "<EINVOICE_METRICS_TOKEN>")
    body = render(context.settings, context.session_factory, context.redis())
    return Response(body, media_type=CONTENT_TYPE)
