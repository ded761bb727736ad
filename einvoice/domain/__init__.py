"""The domain layer: pure rules, no I/O (no SQLAlchemy, httpx, redis or Celery; STYLE.md walls).

* :mod:`~einvoice.domain.invoices` — the ERP rows a payload is built from (frozen dataclasses).
* :mod:`~einvoice.domain.dian` — DIAN / Factus v1 reference tables, identification mapping, NIT DV.
* :mod:`~einvoice.domain.payload` — ERP invoice → Factus v1 bill / credit-note payload, or a
  :class:`~einvoice.domain.errors.PayloadError`.
* :mod:`~einvoice.domain.jobs` — job statuses, the state machine, event names, retry policy.
* :mod:`~einvoice.domain.errors` — ``PayloadError`` and ``IllegalTransitionError``.
"""
