"""Outcome webhooks: signed Standard Webhooks messages to the ERP's HTTP endpoints.

* :mod:`einvoice.webhooks.sender`: the wire (sign, POST, classify the answer); the only module
  outside :mod:`einvoice.factus` that talks HTTP.
* :mod:`einvoice.services.webhooks`: endpoints, deliveries, the follow-up run and its dispatcher.
* :mod:`einvoice.db.webhooks`: their SQL.

Errors::

    EinvoiceError
    └── WebhookError          an endpoint or delivery operation refused (unknown id, bad URL,
                              unknown event type, disabled endpoint); ``reason`` says which
"""

from __future__ import annotations

from einvoice.errors import EinvoiceError

#: Event types of the outcome trigger (migration 0010, ``einvoice_job_outcome``), plus the
#: operator's test message.
OUTCOME_EVENT_TYPES = ("job.accepted", "job.rejected", "job.failed", "job.cancelled",
                       "credit_note.accepted")
TEST_EVENT_TYPE = "webhook.test"
EVENT_TYPES = (*OUTCOME_EVENT_TYPES, TEST_EVENT_TYPE)


class WebhookError(EinvoiceError):
    """An endpoint or delivery operation that cannot be done; ``reason`` is one of
    ``bad_webhook_url``, ``unknown_event_type``, ``unknown_organization``,
    ``unknown_endpoint``, ``endpoint_disabled``, ``unknown_delivery``, ``delivery_in_flight``,
    ``no_job_for_test``."""

    reason = "webhook_error"
