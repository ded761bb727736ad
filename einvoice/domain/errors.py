"""Errors raised by ``einvoice.domain``.

The domain branch of the tree drawn in :mod:`einvoice.errors`::

    EinvoiceError
    ├── PayloadError            an ERP invoice that cannot become a valid Factus payload.
    │                           ``code`` (= ``reason``) names the rule, ``field`` the ERP column
    │                           (``customers.dv``, ``invoice_items[2].qty``), ``value`` what the
    │                           column held. Permanent: re-sending the same rows fails the same way.
    └── JobError
        └── IllegalTransitionError   a job status change the state machine forbids
                                     (``einvoice.domain.jobs.check_transition``).

A payload is checked rule by rule in a fixed order and the first broken rule is raised: one
precise message is more useful to the person fixing the ERP row than a list, and the order keeps
the error stable between attempts.
"""

from __future__ import annotations

from decimal import Decimal

from einvoice.errors import EinvoiceError, JobError


def show_value(value: object) -> str:
    """Render an ERP value for an error message: ``NULL`` for ``None``, plain text for numbers.

    Input: any column value. Output: a short string; text values are quoted so that blanks and
    trailing spaces stay visible.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Decimal, int, float)):
        return str(value)
    return repr(value)


class PayloadError(EinvoiceError):
    """An invoice that breaks a rule of the Factus v1 payload (FACTUS_API.md §3, §7.1, §8).

    Attributes:
        code: snake_case rule code, also the error ``reason`` (fit for
            ``electronic_invoicing_jobs.error_code``), e.g. ``"invalid_dv"``.
        field: dotted path of the ERP column at fault, e.g. ``"customers.dv"`` or
            ``"invoice_items[2].qty"`` (0-based index in the invoice's item order).
        value: the value that column held (``None`` for SQL NULL).
        detail: the rule in words, without the field and value.

    The message reads ``<field> = <value>: <detail>``.
    """

    reason = "payload_error"

    def __init__(self, code: str, *, field: str, value: object, detail: str) -> None:
        self.code = code
        self.field = field
        self.value = value
        self.detail = detail
        super().__init__(f"{field} = {show_value(value)}: {detail}", reason=code)


class IllegalTransitionError(JobError):
    """A job status change that the state machine of :mod:`einvoice.domain.jobs` forbids.

    Attributes:
        current: the job's status before the change (a ``JobStatus`` value).
        target: the status that was asked for.
    """

    reason = "illegal_transition"

    def __init__(self, current: str, target: str, *, allowed: frozenset[str]) -> None:
        self.current = current
        self.target = target
        allowed_text = ", ".join(sorted(allowed)) or "none (final status)"
        super().__init__(
            f"a job in status {current!r} cannot move to {target!r}; allowed: {allowed_text}"
        )
