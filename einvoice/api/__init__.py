"""The HTTP API for ERPs in any language (FastAPI): ``einvoice api serve``.

Layout: :mod:`einvoice.api.app` (the factory), :mod:`~einvoice.api.routes` and
:mod:`~einvoice.api.health` (thin routes over :mod:`einvoice.services`),
:mod:`~einvoice.api.schemas` (pydantic request and response models),
:mod:`~einvoice.api.auth` (bearer API keys), :mod:`~einvoice.api.idempotency`,
:mod:`~einvoice.api.problems` (RFC 9457 errors) and :mod:`~einvoice.api.access_log`.
The guide for ERP developers is docs/api.md.
"""

from einvoice.api.app import create_app

__all__ = ["create_app"]
