"""The Factus e-invoicing API client: the only package in ``einvoice`` that talks HTTP.

* :mod:`.client`: :class:`FactusClient` (one account) and :func:`create_factus_clients` (the
  per-process wiring: pooled httpx client, Redis token store, locks and rate limiter);
* :mod:`.schemas`: version-neutral results (:class:`BillResult`, :class:`DianRule`, ...);
* :mod:`.v1`: v1 paths, request bodies (:class:`BillRequest`) and response shapes;
* :mod:`.v2`: v2 paths, list parameters, the range-creation body and response shapes (the client
  speaks the version of each account: ``FactusAccount.api_version``);
* :mod:`.errors`: the typed error tree (transient or permanent, each with a ``reason``);
* :mod:`.tokens`: accounts, token storage and single-flight renewal;
* :mod:`.ratelimit`: the per-account request limit shared through Redis.

The contract is ``FACTUS_API.md`` (its Decisions first).
"""

from einvoice.factus.client import (
    FactusClient,
    FactusClients,
    RetryPolicy,
    Timeouts,
    build_http_client,
    create_factus_clients,
)
from einvoice.factus.errors import (
    ApiVersionNotEnabled,
    AuthenticationError,
    ClientError,
    ConflictError,
    DianRejectionError,
    FactusError,
    ForbiddenError,
    NotFoundError,
    PayloadValidationError,
    PendingDocumentConflict,
    RateLimitedError,
    ResponseDecodingError,
    ServerError,
    TokenUnavailableError,
    TransportError,
    error_from_response,
)
from einvoice.factus.ratelimit import NoRateLimit, RateLimiter, RedisRateLimiter
from einvoice.factus.schemas import (
    BillListItem,
    BillResult,
    Company,
    CreditNoteListItem,
    CreditNoteResult,
    DianNumberingRange,
    DianRule,
    DocumentTotals,
    DownloadedFile,
    MeasurementUnit,
    Municipality,
    NumberingRange,
    Page,
    ProductTribute,
    TokenResponse,
)
from einvoice.factus.tokens import (
    FactusAccount,
    InMemoryTokenStore,
    RedisRenewalLocks,
    RedisTokenStore,
    StoredToken,
    ThreadRenewalLocks,
    TokenManager,
    TokenStore,
)
from einvoice.factus.v1 import BillRequest, CreditNoteRequest

__all__ = [
    "ApiVersionNotEnabled",
    "AuthenticationError",
    "BillListItem",
    "BillRequest",
    "BillResult",
    "ClientError",
    "Company",
    "ConflictError",
    "CreditNoteListItem",
    "CreditNoteRequest",
    "CreditNoteResult",
    "DianNumberingRange",
    "DianRejectionError",
    "DianRule",
    "DocumentTotals",
    "DownloadedFile",
    "FactusAccount",
    "FactusClient",
    "FactusClients",
    "FactusError",
    "ForbiddenError",
    "InMemoryTokenStore",
    "MeasurementUnit",
    "Municipality",
    "NoRateLimit",
    "NotFoundError",
    "NumberingRange",
    "Page",
    "PayloadValidationError",
    "PendingDocumentConflict",
    "ProductTribute",
    "RateLimitedError",
    "RateLimiter",
    "RedisRateLimiter",
    "RedisRenewalLocks",
    "RedisTokenStore",
    "ResponseDecodingError",
    "RetryPolicy",
    "ServerError",
    "StoredToken",
    "ThreadRenewalLocks",
    "Timeouts",
    "TokenManager",
    "TokenResponse",
    "TokenStore",
    "TokenUnavailableError",
    "TransportError",
    "build_http_client",
    "create_factus_clients",
    "error_from_response",
]
