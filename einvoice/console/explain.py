"""The Spanish (or English) explanation of a job's error, from the error catalogue.

:func:`einvoice.domain.catalogue.explain_job` turns a job's ``error_code`` and
``error_message`` into :class:`~einvoice.domain.catalogue.Explanation` items (our code first,
then each DIAN rule the code or message names: what happened, how to fix it, the ERP column,
whether a retry helps, the source); the job page shows them.
"""

from __future__ import annotations

from einvoice.domain.catalogue import Explanation, explain_job


def explanations(error_code: str | None, error_message: str | None,
                 lang: str) -> list[Explanation]:
    """What the catalogue says about a job's error in ``lang`` (``es`` or ``en``); empty when
    the job has no error or the catalogue knows nothing of it."""
    if not error_code and not error_message:
        return []
    return explain_job(error_code, error_message, lang)
