"""Pipeline fixtures: ERP rows, a real worker wired to the test database, Redis and simulator."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from einvoice.db.models import ElectronicInvoicingJob
from tests.fixtures.worker import CeleryLauncher, pipeline_environment

FINAL = ("accepted", "rejected", "failed", "cancelled")


def seed_organization(session: Session, org_id: int = 1, *, range_id: int = 8) -> None:
    """An issuing organization (Factus's sandbox NIT) with an active SETP invoice range."""
    session.execute(text(
        "INSERT INTO organizations (id, name, legal_name, nit, dv, email, municipality_id) "
        "OVERRIDING SYSTEM VALUE VALUES (:id, :name, :legal, '901724254', 1, 'f@tienda.co', 980)"),
        {"id": org_id, "name": f"Tienda {org_id}", "legal": f"Tienda {org_id} SAS"})
    session.execute(text(
        "INSERT INTO invoice_sequences (organization_id, document_type, prefix, range_start, "
        "range_end, current_number, valid_from, valid_until, is_active, factus_numbering_range_id, "
        "resolution_number) VALUES (:org, 'invoice', 'SETP', 990000000, 995000000, 990000000, "
        "'2019-01-19', '2030-01-19', true, :rid, '18760000001')"), {"org": org_id, "rid": range_id})


def seed_invoice(
    session: Session,
    org_id: int = 1,
    *,
    identification_type: str = "CC",
    identification_number: str = "1020304050",
    dv: int | None = None,
    company_name: str | None = None,
    items: Iterable[tuple[str, Decimal, Decimal, Decimal]] = (("Café 500 g", Decimal(2),
                                                               Decimal(23800), Decimal(19)),),
) -> uuid.UUID:
    """One tax-included cash invoice with its customer; returns ``invoice_sales.id``."""
    customer_id, invoice_id = uuid.uuid4(), uuid.uuid4()
    session.execute(text(
        "INSERT INTO customers (id, organization_id, first_name, last_name, company_name, "
        "identification_type, identification_number, dv, legal_organization_id, email, "
        "municipality_id) VALUES (:id, :org, 'María', 'Gómez', :company, :itype, :inum, :dv, "
        ":legal, 'maria@example.com', 980)"),
        {"id": customer_id, "org": org_id, "company": company_name, "itype": identification_type,
         "inum": identification_number, "dv": dv, "legal": 1 if company_name else 2})
    rows = list(items)
    total = sum((qty * price for _, qty, price, _ in rows), Decimal(0))
    session.execute(text(
        "INSERT INTO invoice_sales (id, organization_id, customer_id, issue_date, total, "
        "tax_included, payment_form, payment_method_code, document_type) VALUES "
        "(:id, :org, :cust, now(), :total, true, '1', '10', 'invoice')"),
        {"id": invoice_id, "org": org_id, "cust": customer_id, "total": total})
    for index, (name, qty, price, rate) in enumerate(rows):
        session.execute(text(
            "INSERT INTO invoice_items (invoice_id, description, qty, unit_price, tax_rate, "
            "code_reference, tax_included) VALUES (:inv, :name, :qty, :price, :rate, :code, true)"),
            {"inv": invoice_id, "name": name, "qty": qty, "price": price, "rate": rate,
             "code": f"SKU-{index}"})
    return invoice_id


def insert_job_sql(session: Session, invoice_id: uuid.UUID, org_id: int = 1) -> uuid.UUID:
    """What an ERP in any language does: a plain INSERT with four columns."""
    job_id = session.execute(text(
        "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, document_type, "
        "provider) VALUES (:org, :inv, 'invoice', 'factus') RETURNING id"),
        {"org": org_id, "inv": invoice_id}).scalar_one()
    session.commit()
    return job_id


def wait_for_jobs(
    factory: sessionmaker[Session], job_ids: list[uuid.UUID], statuses: tuple[str, ...] = FINAL,
    timeout: float = 60.0,
) -> list[ElectronicInvoicingJob]:
    """Poll until every job is in one of ``statuses``; return them (fail with their states)."""
    deadline = time.monotonic() + timeout
    while True:
        with factory() as session:
            jobs = [session.get(ElectronicInvoicingJob, j) for j in job_ids]
        if all(j is not None and j.status in statuses for j in jobs):
            return jobs  # type: ignore[return-value]
        if time.monotonic() > deadline:
            states = [(j.status, j.error_code, j.attempt_count) for j in jobs if j]
            raise AssertionError(f"jobs not in {statuses} after {timeout} s: {states}")
        time.sleep(0.2)


#: The simulator's name of each Factus endpoint a scenario counts (the ``"METHOD /path"`` keys of
#: its ``requests`` stats), per API version: v2 puts the number before the action
#: (``/v2/bills/{number}/download-pdf``) and shows a bill at ``/v2/bills/{number}``.
ENDPOINTS: dict[str, dict[str, str]] = {
    "validate_bill": {"v1": "POST /v1/bills/validate", "v2": "POST /v2/bills/validate"},
    "list_bills": {"v1": "GET /v1/bills", "v2": "GET /v2/bills"},
    "bill_pdf": {"v1": "GET /v1/bills/download-pdf/{number}",
                 "v2": "GET /v2/bills/{number}/download-pdf"},
    "bill_xml": {"v1": "GET /v1/bills/download-xml/{number}",
                 "v2": "GET /v2/bills/{number}/download-xml"},
    "send_bill_email": {"v1": "POST /v1/bills/send-email/{number}",
                        "v2": "POST /v2/bills/{number}/send-email"},
    "send_credit_note_email": {"v1": "POST /v1/credit-notes/send-email/{number}",
                               "v2": "POST /v2/credit-notes/{number}/send-email"},
}


@dataclass
class Pipeline:
    """A running worker wired to the test's database, Redis and simulator.

    ``api_version`` is the version its default account speaks: the test's parameter, or ``v1``
    when unset (``auto`` finds v1 on the simulator's default account, which serves both)."""

    env: dict[str, str]
    launcher: CeleryLauncher
    factory: sessionmaker[Session]
    sandbox: Any
    api_version: str = "v1"

    def endpoint(self, name: str) -> str:
        """The simulator's ``"METHOD /path"`` of :data:`ENDPOINTS` ``name`` in this version."""
        return ENDPOINTS[name][self.api_version]

    def requests_to(self, name: str) -> dict[str, int]:
        """What the simulator answered on :data:`ENDPOINTS` ``name`` in this version, for every
        account: ``{status: count}``."""
        return dict(self.sandbox.stats()["global"]["requests"].get(self.endpoint(name), {}))

    def response_bill(self, job: ElectronicInvoicingJob) -> dict[str, Any]:
        """The bill inside the invoice job's stored Factus answer: v1 nests it under ``bill``,
        v2's ``data`` is the bill itself."""
        payload = job.response_payload or {}
        return payload if self.api_version == "v2" else payload["bill"]

    def events(self, job_id: uuid.UUID) -> list[tuple[str, str | None]]:
        """(event_type, event_code) of the job, oldest first."""
        with self.factory() as session:
            rows = session.execute(text(
                "SELECT event_type, event_code FROM electronic_invoicing_events WHERE job_id = :j "
                "ORDER BY created_at, id"), {"j": job_id}).all()
        return [(r[0], r[1]) for r in rows]


@pytest.fixture
def api_version(request: pytest.FixtureRequest) -> str | None:
    """The Factus API version the pipeline's default account is set to speak
    (``FACTUS_API_VERSION``; the simulator's default account serves both): None (unset, i.e.
    ``auto``, which finds v1 on that account) unless the test parametrizes it, as a scenario
    that holds on both versions does with :data:`BOTH_VERSIONS`."""
    return getattr(request, "param", None)


def BOTH_VERSIONS(test: Callable[..., Any]) -> Callable[..., Any]:  # noqa: N802 - a marker
    """``@BOTH_VERSIONS`` runs a scenario once per Factus API version (the ``api_version``
    fixture; ``make_pipeline`` sets ``FACTUS_API_VERSION`` from it)."""
    versions = pytest.mark.parametrize("api_version", ["v1", "v2"], indirect=True)
    return pytest.mark.usefixtures("api_version")(versions(test))


@pytest.fixture
def make_pipeline(
    db_url: str, redis_url: str, sandbox_clean: Any, session_factory: sessionmaker[Session],
    celery_launcher: Callable[[dict[str, str]], CeleryLauncher], request: pytest.FixtureRequest,
) -> Callable[..., Pipeline]:
    """``make_pipeline(beat=False, concurrency=8, **env)`` starts a worker (and beat), its
    default account speaking the test's ``api_version`` parameter when it has one."""
    callspec = getattr(request.node, "callspec", None)
    api_version = callspec.params.get("api_version") if callspec is not None else None

    def make(*, beat: bool = False, concurrency: int = 8, start: bool = True,
             **extra: str) -> Pipeline:
        if api_version is not None:
            extra = {"FACTUS_API_VERSION": api_version, **extra}
        env = pipeline_environment(db_url, redis_url, sandbox_clean.base_url, **extra)
        launcher = celery_launcher(env)
        if start:
            launcher.worker(concurrency=concurrency)
        if beat:
            launcher.beat()
        speaks = extra.get("FACTUS_API_VERSION", "auto")
        return Pipeline(env=env, launcher=launcher, factory=session_factory, sandbox=sandbox_clean,
                        api_version=speaks if speaks in ("v1", "v2") else "v1")

    return make
