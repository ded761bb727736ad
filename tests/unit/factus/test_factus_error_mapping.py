"""Every Factus failure answer becomes the right typed error (FACTUS_API.md §5, Decision 4),
including the body shapes the simulator does not produce: both 422 shapes, DIAN rules as an
object and as a list, both 409 bodies, HTML error pages."""

from __future__ import annotations

import time

import httpx
import pytest

from einvoice.factus.errors import (
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
    ServerError,
    error_from_response,
)


def _answer(
    status: int, body: object = None, *, text: str | None = None, **headers: str
) -> httpx.Response:
    request = httpx.Request("POST", "https://factus.test/v1/bills/validate")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_flat_laravel_422_is_a_payload_error_with_its_fields() -> None:
    # §5.2, DOC1 bills page
    error = error_from_response(
        _answer(
            422,
            {
                "message": "El campo código de referencia es obligatorio. (and 2 more errors)",
                "errors": {
                    "reference_code": ["El campo código de referencia es obligatorio."],
                    "numbering_range_id": ["El campo id rango de numeración es obligatorio."],
                    "items.0.quantity": ["El campo items.0.quantity es obligatorio."],
                },
            },
        )
    )
    assert isinstance(error, PayloadValidationError)
    assert (error.reason, error.transient, error.status_code) == ("payload_invalid", False, 422)
    assert error.field_errors["items.0.quantity"] == ["El campo items.0.quantity es obligatorio."]
    assert set(error.field_errors) == {"reference_code", "numbering_range_id", "items.0.quantity"}
    assert "POST /v1/bills/validate" in error.message


def test_wrapped_422_is_a_payload_error_too() -> None:
    # §5.2, DOC1 support-document page: {"status":"Validation error", "data":{"errors":{...}}}
    error = error_from_response(
        _answer(
            422,
            {
                "status": "Validation error",
                "message": "Error de validación",
                "data": {
                    "message": "Error de validación",
                    "errors": {"customer.address": ["El campo dirección es obligatorio."]},
                },
            },
        )
    )
    assert isinstance(error, PayloadValidationError)
    assert error.field_errors == {"customer.address": ["El campo dirección es obligatorio."]}


def test_dian_rejection_keyed_by_rule_is_a_dian_rejection() -> None:
    # §5.4, FJS1 v1 shape
    error = error_from_response(
        _answer(
            422,
            {
                "status": "Validation error",
                "message": "El documento contiene errores de validación",
                "data": {
                    "message": "El documento contiene errores de validación",
                    "errors": {"FAK24": "Regla: FAK24, Rechazo: No está informado el DV del NIT"},
                },
            },
        )
    )
    assert isinstance(error, DianRejectionError)
    assert (error.reason, error.transient, error.already_processed) == (
        "dian_rejected",
        False,
        False,
    )
    assert error.rule_codes == ["FAK24"]
    assert "FAK24" in error.message


def test_dian_rejection_as_a_list_with_rule_90_needs_an_operator() -> None:
    # §5.4, ERRUTIL production shape: data.errors is a list of strings
    error = error_from_response(
        _answer(
            422,
            {
                "status": "Validation error",
                "message": "El documento contiene errores de validación",
                "data": {"errors": ["Regla: 90, Rechazo: Documento procesado anteriormente."]},
            },
        )
    )
    assert isinstance(error, DianRejectionError)
    assert error.already_processed
    assert error.reason == "dian_already_processed"
    assert error.rule_codes == ["90"]


def test_dian_rules_with_notifications_keep_both_kinds() -> None:
    error = error_from_response(
        _answer(
            422,
            {
                "errors": [
                    "Regla: FAJ43b, Notificación: Nombre informado No corresponde al RUT",
                    "Regla: FAK24, Rechazo: DV no corresponde al NIT informado",
                ]
            },
        )
    )
    assert isinstance(error, DianRejectionError)
    assert [(r.code, r.kind) for r in error.rules] == [
        ("FAJ43b", "notification"),
        ("FAK24", "rejection"),
    ]
    assert error.rule_codes == ["FAK24"]


@pytest.mark.parametrize(
    "body",
    [
        # §5.3 bills and credit notes
        {
            "status": "Conflict",
            "errors": [
                {
                    "code": 409,
                    "message": "Se encontró una factura pendiente por enviar a la DIAN",
                    "params": [],
                    "detail": "Conflict",
                    "api_version": "v1",
                }
            ],
        },
        # §5.3 support documents: flat body without "pendiente"
        {"status": "Conflict", "message": "Se encontró un documento soporte por enviar a la DIAN"},
        # v2: the same body with "api_version": "v2" (manejo-errores gives only the meaning)
        {
            "status": "Conflict",
            "errors": [
                {
                    "code": 409,
                    "message": "Se encontró una nota crédito pendiente por enviar a la DIAN",
                    "params": [],
                    "detail": "Conflict",
                    "api_version": "v2",
                }
            ],
        },
    ],
)
def test_pending_document_409_is_its_own_transient_error(body: object) -> None:
    error = error_from_response(_answer(409, body))
    assert isinstance(error, PendingDocumentConflict)
    assert (error.reason, error.transient) == ("pending_document", True)
    assert "por enviar a la DIAN" in error.message


def test_other_409_is_a_permanent_conflict() -> None:
    error = error_from_response(
        _answer(
            409,
            {
                "status": "Conflict",
                "message": "Documento con código de referencia 5 se encuentra validado",
            },
        )
    )
    assert isinstance(error, ConflictError)
    assert not isinstance(error, PendingDocumentConflict)
    assert (error.reason, error.transient) == ("conflict", False)


@pytest.mark.parametrize(
    ("status", "body", "cls", "reason", "transient"),
    [
        (401, {"message": "Unauthenticated."}, AuthenticationError, "factus_401", False),
        (
            400,
            {"error": "invalid_grant", "message": "The user credentials were incorrect."},
            AuthenticationError,
            "factus_invalid_grant",
            False,
        ),
        (
            403,
            {
                "status": "Forbidden",
                "message": "La empresa no tiene habilitada la creación de este documento",
            },
            ForbiddenError,
            "factus_403",
            False,
        ),
        (
            404,
            {"status": "Not Found", "message": "No se encontró el documento NC72232"},
            NotFoundError,
            "not_found",
            False,
        ),
        (402, {"message": "Payment required"}, ClientError, "factus_402", False),
        (
            500,
            {"message": "Ha ocurrido un error inesperado, vuelve a intentarlo"},
            ServerError,
            "server_error",
            True,
        ),
        (503, {"message": "Mantenimiento"}, ServerError, "factus_maintenance", True),
    ],
)
def test_status_codes_map_to_their_classes(
    status: int, body: object, cls: type[FactusError], reason: str, transient: bool
) -> None:
    error = error_from_response(_answer(status, body))
    assert type(error) is cls
    assert (error.reason, error.transient, error.status_code) == (reason, transient, status)


def test_503_is_distinguishable_as_maintenance() -> None:
    maintenance = error_from_response(
        _answer(503, text="<html>Down for maintenance</html>", **{"Retry-After": "12"})
    )
    generic = error_from_response(_answer(502, text="<html>Bad gateway</html>"))
    assert isinstance(maintenance, ServerError)
    assert maintenance.maintenance
    assert maintenance.retry_after == 12.0
    assert isinstance(generic, ServerError)
    assert not generic.maintenance
    assert "Bad gateway" in generic.message


def test_429_carries_the_seconds_to_wait() -> None:
    from_retry_after = error_from_response(
        _answer(429, {"message": "Too Many Attempts."}, **{"Retry-After": "17"})
    )
    from_reset_seconds = error_from_response(_answer(429, {}, **{"X-RateLimit-Reset": "9"}))
    from_reset_epoch = error_from_response(
        _answer(429, {}, **{"X-RateLimit-Reset": str(int(time.time()) + 30)})
    )
    without_headers = error_from_response(_answer(429, {}))
    assert isinstance(from_retry_after, RateLimitedError)
    assert from_retry_after.retry_after == 17.0
    assert from_retry_after.transient
    assert isinstance(from_reset_seconds, RateLimitedError)
    assert from_reset_seconds.retry_after == 9.0
    assert isinstance(from_reset_epoch, RateLimitedError)
    assert 25 <= from_reset_epoch.retry_after <= 30
    assert isinstance(without_headers, RateLimitedError)
    assert without_headers.retry_after == 1.0


def test_an_empty_or_broken_body_still_maps_by_status() -> None:
    assert isinstance(error_from_response(_answer(404, text="")), NotFoundError)
    assert isinstance(error_from_response(_answer(422, text="not json")), PayloadValidationError)


def test_errors_survive_pickling_with_their_details() -> None:
    # Errors cross process boundaries (multiprocessing, Celery results)
    import pickle

    from einvoice.factus.schemas import DianRule

    errors: list[FactusError] = [
        RateLimitedError("slow down", retry_after=3.5, status_code=429),
        DianRejectionError("no", rules=[DianRule(code="90", kind="rejection", text="x")]),
        PayloadValidationError("bad", field_errors={"a": ["b"]}, status_code=422),
        ServerError("down", maintenance=True, retry_after=None, status_code=503),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made
        assert type(copy) is type(error)
        assert copy.__dict__ == error.__dict__
        assert str(copy) == str(error)


def test_a_server_error_ignores_the_rate_window_headers() -> None:
    # §9: X-RateLimit-* may come on every answer; they say nothing about when a 500 clears
    error = error_from_response(
        _answer(
            500, {"message": "Server Error"}, **{"X-RateLimit-Reset": str(int(time.time()) + 50)}
        )
    )
    assert isinstance(error, ServerError)
    assert error.retry_after is None
