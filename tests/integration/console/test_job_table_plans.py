"""The console's job table stays fast with a million jobs: every filter's first page, and a
page deep in the table, is planned on an index (migration 0011) and reads few buffers.

One database for the module with 1,000,000 jobs (``CONSOLE_PLAN_ROWS`` to change it), in the
shape of benchmark B6: 50 organizations, 97 % accepted, 1 % rejected, 1 % failed, the rest
in flight; 0.5 % credit notes; 20,000 invoices with 5,000 customers behind the newest jobs.
Each query runs under ``EXPLAIN (ANALYZE, BUFFERS)``: the plan must name the index its filter
needs, never scan the job table sequentially nor sort it whole, and read at most
:data:`MAX_BUFFERS` pages (a page of 50 rows; the table itself has tens of thousands).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.db.console import JobFilter, explain, job_table_statement
from einvoice.db.engine import make_engine, make_session_factory
from einvoice.devservices import DevServices
from tests.fixtures.services import create_database, drop_database

pytestmark = pytest.mark.slow

ROWS = int(os.environ.get("CONSOLE_PLAN_ROWS", "1000000"))
#: Buffers (8 KiB pages, hit or read) one page of the table may touch.
MAX_BUFFERS = 3000
CUSTOMER = "900100"  # the identification number of one of the 5,000 customers

FILL_JOBS = """
INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, document_type, provider,
    status, attempt_count, error_code, document_number, created_at, updated_at, processed_at,
    next_retry_at)
SELECT 1 + g % 50,
       CASE WHEN g > :rows - 20000 THEN ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid
            ELSE gen_random_uuid() END,
       CASE WHEN g % 200 = 0 THEN 'credit_note' ELSE 'invoice' END, 'factus', s.status, 1,
       CASE s.status WHEN 'rejected' THEN (ARRAY['FAK24', 'invalid_dv', 'total_mismatch'])[1 + g % 3]
                     WHEN 'failed' THEN 'factus_401' END,
       CASE WHEN s.status = 'accepted' THEN 'SETP' || (990000000 + g) END,
       t, t, CASE WHEN s.status IN ('accepted', 'rejected', 'failed') THEN t END, t
  FROM generate_series(1, :rows) g,
       LATERAL (SELECT now() - make_interval(secs => (:rows - g) * 3) AS t) tt,
       LATERAL (SELECT CASE WHEN g % 100 = 1 THEN 'rejected' WHEN g % 100 = 2 THEN 'failed'
                            WHEN g % 100 = 3 THEN 'pending' WHEN g % 1000 = 4 THEN 'sent'
                            ELSE 'accepted' END AS status) s
"""
FILL_CUSTOMERS = """
INSERT INTO customers (id, organization_id, identification_type, identification_number,
                       first_name, last_name)
SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(c), 12, '0'))::uuid, 1 + (c - 1) % 50, 'CC',
       (900000 + c)::text, 'Cliente', c::text
  FROM generate_series(1, 5000) c
"""
FILL_INVOICES = """
INSERT INTO invoice_sales (id, organization_id, customer_id, total, document_type)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 1 + g % 50,
       ('00000000-0000-4000-9000-' || lpad(to_hex(1 + g % 5000), 12, '0'))::uuid, 119000,
       'invoice'
  FROM generate_series(:rows - 19999, :rows) g
"""


@pytest.fixture(scope="module")
def big(services: DevServices, template_db: str) -> Iterator[sessionmaker[Session]]:
    """A database with ROWS jobs (analyzed), for the module."""
    name, url = create_database(services, template_db)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as session:
        # The ERP's rows arrive before their tenant keys are checked (deferred constraints).
        session.execute(text(FILL_CUSTOMERS))
        session.execute(text(FILL_INVOICES), {"rows": ROWS})
        session.execute(text(FILL_JOBS), {"rows": ROWS})
        session.commit()
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE electronic_invoicing_jobs, invoice_sales, customers"))
    yield factory
    engine.dispose()
    drop_database(services, name)


def _plan(factory: sessionmaker[Session], filters: JobFilter, *, scope: int | None = None,
          after: tuple[datetime, uuid.UUID] | None = None, newest_first: bool = True) -> str:
    with factory() as session:
        return explain(session, job_table_statement(scope, filters, after=after,
                                                    newest_first=newest_first, limit=51),
                       analyze=True)


def _buffers(plan: str) -> int:
    top = next(line for line in plan.splitlines() if "Buffers:" in line)
    return sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", top))


NOW = datetime.now(UTC)

CASES = {
    "no filter": (JobFilter(), None, "ix_ei_jobs_created"),
    "status rejected": (JobFilter(statuses=("rejected",)), None, "ix_ei_jobs_status_created"),
    # Several statuses: no index gives their union in creation order, so PostgreSQL walks
    # ix_ei_jobs_created and filters (cheap while those statuses are not rare) or reads each
    # status's range of ix_ei_jobs_status_created and sorts those rows (cheap when they are).
    "status in flight": (JobFilter(statuses=("pending", "sent")), None, "ix_ei_jobs_"),
    "rejected or failed": (JobFilter(statuses=("rejected", "failed")), None, "ix_ei_jobs_"),
    "organization": (JobFilter(organization_id=7), None, "ix_ei_jobs_org_created"),
    "scoped operator, rejected": (JobFilter(statuses=("rejected",)), 2, "ix_ei_jobs_"),
    "rule code": (JobFilter(error_code="FAK24"), None, "ix_ei_jobs_error_created"),
    "invoice number": (JobFilter(number=f"SETP{990000000 + ROWS - 10}"), None,
                       "ix_ei_jobs_document_number"),
    "reference code": (JobFilter(number="EI0123456789ABCDEF01"), None,
                       "ix_ei_jobs_reference_code"),
    "customer": (JobFilter(customer=CUSTOMER), None, "ix_customers_identification"),
    "last week": (JobFilter(created_from=NOW - timedelta(days=7), created_to=NOW), None,
                  "ix_ei_jobs_created"),
    "credit notes": (JobFilter(document_type="credit_note"), None, "ix_ei_jobs_created"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_filter_of_the_job_table_uses_an_index_and_reads_few_pages(
        big: sessionmaker[Session], case: str) -> None:
    # Given a million jobs, when the table's first page is asked with this filter
    filters, scope, index = CASES[case]
    plan = _plan(big, filters, scope=scope)

    # Then the plan uses the filter's index, never a sequential scan or a sort of the table,
    # and touches few pages
    assert index in plan, plan
    assert "Seq Scan on electronic_invoicing_jobs" not in plan, plan
    assert not re.search(r"Sort Method: external", plan), plan
    assert _buffers(plan) <= MAX_BUFFERS, plan


def test_a_page_deep_in_the_table_costs_what_the_first_costs(big: sessionmaker[Session]) -> None:
    # Given the keyset of a row 900,000 places down (what page 18,000's link carries)
    with big() as session:
        created, job_id = session.execute(text(
            "SELECT created_at, id FROM electronic_invoicing_jobs "
            "ORDER BY created_at DESC, id DESC OFFSET :n LIMIT 1"),
            {"n": int(ROWS * 0.9)}).one()

    # When the next page is asked, newest first and oldest first
    deep = _plan(big, JobFilter(), after=(created, job_id))
    oldest = _plan(big, JobFilter(statuses=("rejected",)), after=(created, job_id),
                   newest_first=False)

    # Then it starts at the keyset in the index instead of walking there
    for plan in (deep, oldest):
        assert "Seq Scan on electronic_invoicing_jobs" not in plan, plan
        assert _buffers(plan) <= MAX_BUFFERS, plan
    assert "ix_ei_jobs_created" in deep
