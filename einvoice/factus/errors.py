"""Typed errors of the Factus client: what went wrong, whether trying again can help.

The tree (``transient`` in brackets: T = worth retrying later, P = permanent)::

    EinvoiceError                          einvoice.errors
    └── FactusError                        anything that went wrong talking to Factus
        ├── AuthenticationError       [P]  401 (after one renewal and one retry), or the token
        │                                  endpoint refused the credentials (400 invalid_grant/client)
        ├── ForbiddenError            [P]  403: the account may not do this (e.g. v2-only on v1);
        │   │                              a configuration error, stop sending for the account
        │   └── ApiVersionNotEnabled  [P]  403 saying the account has no access to this API
        │                                  version (``version``: the one refused, "v1" or "v2")
        ├── NotFoundError             [P]  404: no such document / reference code
        ├── PendingDocumentConflict   [T]  409 "pendiente por enviar a la DIAN": another document
        │                                  of this type blocks creates until settled (§5.3)
        ├── ConflictError             [P]  any other 409 (delete a validated document, download
        │                                  one that is not validated)
        ├── PayloadValidationError    [P]  422 with field errors, either body shape (§5.2);
        │                                  ``field_errors: {field: [messages]}``
        ├── DianRejectionError        [P]  422 with DIAN rule codes (§5.4); ``rules``;
        │                                  ``already_processed`` for rule 90 (needs an operator)
        ├── ClientError               [P]  another 4xx (400, 402 payment required, 405, ...)
        ├── RateLimitedError          [T]  429, or our own limiter waited too long;
        │                                  ``retry_after`` seconds
        ├── ServerError               [T]  5xx; ``maintenance`` is True for a 503
        ├── TransportError            [T]  no usable HTTP answer; ``may_have_reached`` says if the
        │                                  request may have arrived (a connect error: no; a read
        │                                  timeout or a dropped connection after sending: yes)
        ├── ResponseDecodingError     [T]  an answer whose body is not the JSON we expect
        └── TokenUnavailableError     [T]  another process held the token-renewal lock too long

Every error has:

* ``reason``: a short code for ``electronic_invoicing_jobs.error_code``, metric tags and events
  (``factus_401``, ``factus_403``, ``factus_version_not_enabled``, ``not_found``, ``pending_document``, ``conflict``,
  ``payload_invalid``, ``dian_rejected``, ``dian_already_processed``, ``factus_4xx``,
  ``rate_limited``, ``rate_limit_wait``, ``server_error``, ``factus_maintenance``,
  ``connect_error``, ``timeout_unknown_outcome``, ``connection_lost``, ``bad_response``,
  ``token_lock_timeout``);
* ``transient``: whether the same request may succeed later;
* ``status_code``: the HTTP status, or ``None`` without an answer;
* ``may_have_reached``: whether the request may have reached Factus. When it is True for a
  create (validate), the job layer must look the document up by reference code before sending
  again (Decision 3) — except for 4xx answers, which say Factus did not create anything (a DIAN
  rejection stores the document, but it is reported as such);
* a message for people that never contains a token, password or client secret.

:func:`error_from_response` maps an ``httpx.Response`` to the right class (§5, Decision 4).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx

from einvoice.errors import EinvoiceError
from einvoice.factus.schemas import (
    ALREADY_PROCESSED_RULE,
    DianRule,
    is_rule_message,
    messages_of,
)

_MAX_MESSAGE = 300


class FactusError(EinvoiceError):
    """Root of the Factus client's errors (see the module docstring for the tree).

    Args:
        message: a one-line explanation without secrets.
        reason: overrides the class's short code.
        status_code: the HTTP status when Factus answered.
        transient: overrides the class default (whether a retry later can help).
        may_have_reached: overrides the class default (True: the request may have arrived).
    """

    reason = "factus_error"
    transient: bool = False
    may_have_reached: bool = True

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        status_code: int | None = None,
        transient: bool | None = None,
        may_have_reached: bool | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.status_code = status_code
        if transient is not None:
            self.transient = transient
        if may_have_reached is not None:
            self.may_have_reached = may_have_reached

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only arguments, which Exception's default pickling drops;
        # errors must survive pickling (multiprocessing, Celery result backends).
        return (_rebuild_error, (type(self), self.message, dict(self.__dict__)))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, status_code={self.status_code!r}, "
            f"transient={self.transient!r}, message={self.message!r})"
        )


def _rebuild_error(cls: type[FactusError], message: str, state: dict[str, Any]) -> FactusError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class AuthenticationError(FactusError):
    """401 from ``/v1`` after one renewal and one retry, or rejected credentials at
    ``/oauth/token`` (bad client, user, password or refresh token). Permanent for the account."""

    reason = "factus_401"


class ForbiddenError(FactusError):
    """403: the account is not allowed this call (a v2-only account on v1, a disabled document
    type: §5.6). A configuration problem: stop sending for the account (Decision 4)."""

    reason = "factus_403"


class ApiVersionNotEnabled(ForbiddenError):
    """403 because the account is not enabled for the API version of the call: an account
    opened for v2 answers 403 to every ``/v1`` route (FACTUS_API.md §10.1, observed on the real
    sandbox, Oct 2026), and a v1-only one to ``/v2``. Permanent for that version; the caller
    may switch the account to the other version (``auto``) instead of failing the job.

    Attributes:
        version: the version refused (``"v1"`` or ``"v2"``), from the message, else the path.
    """

    reason = "factus_version_not_enabled"

    def __init__(self, message: str, *, version: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.version = version


class NotFoundError(FactusError):
    """404: the document, number or reference code does not exist (§5.6)."""

    reason = "not_found"


class PendingDocumentConflict(FactusError):
    """409 "pendiente por enviar a la DIAN": a non-validated document of the same type blocks
    every create until it is validated or deleted (§5.3). Transient: settle it, then retry."""

    reason = "pending_document"
    transient = True


class ConflictError(FactusError):
    """Another 409: deleting a validated document, downloading one not yet validated (§5.3)."""

    reason = "conflict"


class PayloadValidationError(FactusError):
    """422 with field errors (§5.2): our payload is wrong; do not retry (Decision 4).

    Attributes:
        field_errors: ``{"items.0.quantity": ["El campo items.0.quantity es obligatorio."]}``;
            messages not tied to a field are under ``""``.
    """

    reason = "payload_invalid"

    def __init__(self, message: str, *, field_errors: dict[str, list[str]], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field_errors = field_errors


class DianRejectionError(FactusError):
    """422 with DIAN rule codes (§5.4): DIAN refused the document. Permanent.

    Factus keeps the rejected document (status 0), which blocks later creates until deleted
    (Decision 4). Rule 90 ("Documento procesado anteriormente") is the exception: never delete
    or re-send; ``already_processed`` is True and ``reason`` is ``dian_already_processed``.

    Attributes:
        rules: every rule in the answer (rejections and notifications), in order.
        already_processed: True when rule 90 is among the rejections.
    """

    reason = "dian_rejected"

    def __init__(self, message: str, *, rules: list[DianRule], **kwargs: Any) -> None:
        self.rules = rules
        self.already_processed = any(
            rule.is_rejection and rule.code == ALREADY_PROCESSED_RULE for rule in rules
        )
        if self.already_processed and "reason" not in kwargs:
            kwargs["reason"] = "dian_already_processed"
        super().__init__(message, **kwargs)

    @property
    def rejections(self) -> list[DianRule]:
        """Only the "Rechazo" rules."""
        return [rule for rule in self.rules if rule.is_rejection]

    @property
    def rule_codes(self) -> list[str]:
        """The codes of the rejection rules, e.g. ``["FAK24"]``."""
        return [rule.code for rule in self.rejections if rule.code]


class ClientError(FactusError):
    """Another 4xx answer (400, 402 payment required, 405, ...). Permanent."""


class RateLimitedError(FactusError):
    """429 from Factus (§9), or our limiter could not get a slot in time. Transient.

    Attributes:
        retry_after: seconds to wait before the next call (``Retry-After``, else
            ``X-RateLimit-Reset``, else 1 s).
    """

    reason = "rate_limited"
    transient = True

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(FactusError):
    """5xx from Factus (§5.1). Transient. For a create, the outcome is unknown: reconcile by
    reference code before re-sending (Decision 3).

    Attributes:
        maintenance: True for 503 (Factus lists 503 as maintenance: §5.1).
        retry_after: the ``Retry-After`` seconds if Factus sent them, else ``None``.
    """

    reason = "server_error"
    transient = True

    def __init__(
        self,
        message: str,
        *,
        maintenance: bool = False,
        retry_after: float | None = None,
        **kwargs: Any,
    ) -> None:
        if maintenance and "reason" not in kwargs:
            kwargs["reason"] = "factus_maintenance"
        super().__init__(message, **kwargs)
        self.maintenance = maintenance
        self.retry_after = retry_after


class TransportError(FactusError):
    """No usable HTTP answer: connection refused, TLS failure, timeout, dropped connection.

    Attributes:
        may_have_reached: False for a connect error or pool timeout (nothing was sent); True for
            a read timeout or a connection lost after the request was written — the document
            may exist, so a validate must not be re-sent blindly (Decision 3).
    """

    reason = "transport_error"
    transient = True


class ResponseDecodingError(FactusError):
    """Factus answered, but the body is not the JSON shape we expect (HTML error page, cut
    body, missing ``data``). Transient; for a create the outcome is unknown."""

    reason = "bad_response"
    transient = True


class TokenUnavailableError(FactusError):
    """Another process held the account's token-renewal lock longer than we may wait."""

    reason = "token_lock_timeout"
    transient = True
    may_have_reached = False


# --- mapping an HTTP answer -----------------------------------------------------------------

_PENDING = re.compile(r"por\s+enviar\s+a\s+la\s+dian", re.IGNORECASE)
# "Esta cuenta no tiene habilitado el acceso a la API v1": the wording is inferred (the real
# sandbox's 403 body was not captured), so any 403 naming an API version, or saying that
# access to the API is not enabled, counts.
_API_VERSION = re.compile(r"\bAPI\s*(?:versi[oó]n\s*)?(v\d+)\b", re.IGNORECASE)
_NOT_ENABLED = re.compile(r"habilitad[oa]\s+(?:el\s+)?acceso\s+a\s+la\s+API", re.IGNORECASE)
_PATH_VERSION = re.compile(r"^/(v\d+)/")
_TOKEN_CREDENTIAL_ERRORS = {
    "invalid_grant",
    "invalid_client",
    "invalid_request",
    "unauthorized_client",
}


def response_json(response: httpx.Response) -> Any:
    """The body parsed as JSON, or ``None`` when it is empty or not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def factus_message(body: Any, response: httpx.Response | None = None) -> str:
    """The human message of a Factus body: ``message``, else ``data.message``, else the first
    ``errors[].message`` (409 form, §5.3), else ``error_description``; for a non-JSON body, the
    first 120 characters of its text. Returns ``""`` when there is nothing."""
    if isinstance(body, dict):
        for candidate in (
            body.get("message"),
            (body.get("data") or {}).get("message") if isinstance(body.get("data"), dict) else None,
        ):
            if isinstance(candidate, str) and candidate:
                return candidate[:_MAX_MESSAGE]
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text = errors[0].get("message")
            if isinstance(text, str):
                return text[:_MAX_MESSAGE]
        description = body.get("error_description") or body.get("error")
        if isinstance(description, str):
            return description[:_MAX_MESSAGE]
        return ""
    if response is not None and body is None and response.content:
        text = " ".join(response.text[:400].split())
        return text[:120]
    return ""


def retry_after_seconds(
    response: httpx.Response, *, default: float | None, rate_window: bool = True
) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds), else, when ``rate_window``,
    ``X-RateLimit-Reset`` (seconds, or an epoch timestamp when larger than 10^9: §9 says "seconds
    or timestamp"), else ``default``. HTTP-date ``Retry-After`` values are not used by Factus (§9)
    and fall to the next source. The rate window only says when a 429 ends; a 5xx passes
    ``rate_window=False`` because Factus may send the headers on every answer (§9)."""
    raw = response.headers.get("Retry-After")
    if raw is not None:
        try:
            return max(float(raw), 0.0)
        except ValueError:
            pass
    reset = response.headers.get("X-RateLimit-Reset") if rate_window else None
    if reset is not None:
        try:
            value = float(reset)
        except ValueError:
            return default
        if value > 1e9:
            return max(value - time.time(), 0.0)
        return max(value, 0.0)
    return default


def _where(response: httpx.Response) -> str:
    try:
        request = response.request
    except RuntimeError:
        return ""
    return f" on {request.method} {request.url.path}"


def _field_errors(errors: Any) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for key, text in messages_of(errors):
        fields.setdefault(key or "", []).append(text)
    return fields


def _errors_value(body: Any) -> Any:
    """``errors`` at the top (flat Laravel body), else ``data.errors`` (wrapped body): §5.2."""
    if not isinstance(body, dict):
        return None
    if body.get("errors") not in (None, [], {}):
        return body["errors"]
    data = body.get("data")
    if isinstance(data, dict):
        return data.get("errors")
    return body.get("errors")


def _refused_version(message: str, response: httpx.Response) -> str | None:
    """The API version a 403 says the account may not use, or ``None`` for another 403."""
    named = _API_VERSION.search(message)
    if named is None and not _NOT_ENABLED.search(message):
        return None
    if named is not None:
        return named.group(1).lower()
    try:
        path = _PATH_VERSION.match(response.request.url.path)
    except RuntimeError:
        path = None
    return path.group(1) if path else None


def error_from_response(response: httpx.Response) -> FactusError:
    """Return the typed error for a Factus answer that is not a success (status >= 400).

    Input: the ``httpx.Response`` (its body is read). Output: one of the classes in the module
    tree, following FACTUS_API.md §5 and Decision 4:

    * 400 from the token endpoint with an OAuth ``error`` (invalid_grant, invalid_client, ...) and
      401 → :class:`AuthenticationError`; 403 naming an API version the account may not use
      ("... no tiene habilitado el acceso a la API v1") → :class:`ApiVersionNotEnabled`, another
      403 → :class:`ForbiddenError`; 404 → :class:`NotFoundError`;
    * 409 whose body says "por enviar a la DIAN" → :class:`PendingDocumentConflict`, other 409 →
      :class:`ConflictError`;
    * 422 with any ``"Regla: X, Rechazo|Notificación: ..."`` message (in ``data.errors`` or
      ``errors``, object keyed by rule or list of strings: v1 and v2 production shapes, §5.4)
      → :class:`DianRejectionError`; other 422 →
      :class:`PayloadValidationError` with ``field_errors`` from either body shape;
    * 429 → :class:`RateLimitedError`; 5xx → :class:`ServerError`; other 4xx → :class:`ClientError`.
    """
    status = response.status_code
    body = response_json(response)
    text = factus_message(body, response)
    detail = f"Factus {status}{_where(response)}" + (f": {text}" if text else "")

    if status == 401 or (
        status == 400 and isinstance(body, dict) and body.get("error") in _TOKEN_CREDENTIAL_ERRORS
    ):
        reason = "factus_401" if status == 401 else f"factus_{body['error']}"
        return AuthenticationError(detail, reason=reason, status_code=status)
    if status == 403:
        version = _refused_version(text, response)
        if version is not None:
            return ApiVersionNotEnabled(detail, version=version, status_code=status)
        return ForbiddenError(detail, status_code=status)
    if status == 404:
        return NotFoundError(detail, status_code=status)
    if status == 409:
        whole = response.text if body is None else json.dumps(body, ensure_ascii=False)
        if _PENDING.search(whole):
            return PendingDocumentConflict(detail, status_code=status)
        return ConflictError(detail, status_code=status)
    if status == 422:
        errors = _errors_value(body)
        pairs = messages_of(errors)
        if any(is_rule_message(message) for _, message in pairs):
            rules = [DianRule.parse(message, key=key) for key, message in pairs if message.strip()]
            codes = ", ".join(rule.code or "?" for rule in rules if rule.is_rejection)
            return DianRejectionError(
                f"{detail} (DIAN rules: {codes})" if codes else detail,
                rules=rules,
                status_code=status,
            )
        return PayloadValidationError(
            detail, field_errors=_field_errors(errors), status_code=status
        )
    if status == 429:
        wait = retry_after_seconds(response, default=1.0)
        return RateLimitedError(
            detail, retry_after=wait if wait is not None else 1.0, status_code=status
        )
    if status >= 500:
        return ServerError(
            detail,
            maintenance=status == 503,
            retry_after=retry_after_seconds(response, default=None, rate_window=False),
            status_code=status,
        )
    return ClientError(detail, reason=f"factus_{status}", status_code=status)
