"""The root of every error ``einvoice`` raises on purpose.

The tree (each package adds its own branch below ``EinvoiceError``)::

    EinvoiceError                      reason: short machine code, used as error_code / event code
    ├── ConfigError                    a missing or malformed setting (names the variable)
    ├── PayloadError                   einvoice.domain: an invoice that cannot become a valid
    │                                  Factus payload (rule code, field, value); permanent
    ├── FactusError                    einvoice.factus.errors: everything that goes wrong talking
    │   └── ...                        to Factus; each says transient or permanent
    └── JobError                       einvoice.services: a job that cannot be acted on
                                       (unknown id, wrong state for an operator action)

Callers branch on the class or on ``reason``; messages are for people and never hold a secret.
"""

from __future__ import annotations


class EinvoiceError(Exception):
    """Base class of the errors ``einvoice`` raises on purpose.

    Attributes:
        reason: a short, stable, snake_case code (for example ``"config_missing"``) fit for
            ``electronic_invoicing_jobs.error_code``, an event code or a metric tag.
        message: a one-line human explanation, free of secrets.
    """

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:
        return self.message


class ConfigError(EinvoiceError):
    """A setting is missing or malformed. The message names the environment variable."""

    reason = "config_error"


class JobError(EinvoiceError):
    """An operation on a job cannot be done (unknown job, or a state that forbids it)."""

    reason = "job_error"
