"""The sample ERP dataset: a realistic, seeded set of issuers, customers, invoices and credit notes.

See :mod:`einvoice.sample.generator` for what is generated and how it stays deterministic, and
:mod:`einvoice.sample.catalog` for the static material (issuers, products, places, names).
"""

from einvoice.sample.generator import (
    WRONG_KINDS,
    LineAmounts,
    SampleSummary,
    WrongInvoice,
    generate_sample,
    line_amounts,
    make_invoice,
    sample_organization,
)

__all__ = [
    "WRONG_KINDS",
    "LineAmounts",
    "SampleSummary",
    "WrongInvoice",
    "generate_sample",
    "line_amounts",
    "make_invoice",
    "sample_organization",
]
