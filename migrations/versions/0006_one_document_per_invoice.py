"""One legal document per invoice, enforced by the database itself.

An ERP writes to these tables directly, so the rules that protect the law and the money live in
PostgreSQL, not only in einvoice's code paths (docs/erp-contract.md explains each for the ERP):

* a second job for an invoice that already has an accepted document of that type is kept but
  ended at once (``cancelled``, ``already_accepted``), not refused: an exception would roll back
  the ERP's own "save the invoice" transaction;
* a new job after an ambiguous ending (the document may exist at Factus) inherits that job's
  ``reference_code`` with ``outcome_unknown`` set, so Factus's deduplication by reference code
  protects it; ``reference_code`` is unique among live jobs and never shared by two invoices;
* an accepted job, and a validated ``invoice_sales`` row with its lines, are immutable (DIAN
  requires the documents to be kept five years; a cancellation is a credit note);
* an invoice's customer, branch and referenced invoice belong to its organization (composite
  foreign keys, ``NOT VALID`` for existing rows, ``DEFERRABLE INITIALLY DEFERRED`` for any insert
  order);
* ``products.unit_code`` becomes ``text`` where einvoice created the table (``character(1)`` is too
  short for DIAN unit codes such as ``94``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MARK_0001 = "einvoice:0001"
MARK = "einvoice:0006"

#: Final error codes after which a document may exist at Factus (the reference is inherited).
AMBIGUOUS_CODES = ("outcome_unknown", "reconcile_mismatch", "dian_already_processed",
                   "dian_timeout", "invalid_cufe")

_AMBIGUOUS_SQL = ", ".join(f"'{code}'" for code in AMBIGUOUS_CODES)

JOB_GUARD_FUNCTION = f"""
CREATE OR REPLACE FUNCTION einvoice_job_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    earlier record;
BEGIN
    IF NEW.status NOT IN ('pending', 'processing', 'sent') THEN
        RETURN NEW;
    END IF;
    -- One read of the invoice's earlier jobs (ix_ei_jobs_invoice): its accepted one if any,
    -- else its newest ambiguous failure. A producer inserts many jobs a second (benchmark B4).
    SELECT id, status, reference_code, document_number
      INTO earlier
      FROM electronic_invoicing_jobs
     WHERE invoice_id = NEW.invoice_id AND document_type = NEW.document_type AND id <> NEW.id
       AND (status = 'accepted'
            OR (status = 'failed' AND (outcome_unknown OR error_code IN ({_AMBIGUOUS_SQL}))))
     ORDER BY status = 'accepted' DESC, created_at DESC
     LIMIT 1;
    IF FOUND AND earlier.status = 'accepted' THEN
        IF TG_OP = 'UPDATE' THEN
            RAISE EXCEPTION 'invoice % already has an accepted % (job %, document %): a job of '
                'it cannot be re-opened', NEW.invoice_id, NEW.document_type, earlier.id,
                coalesce(earlier.document_number, '?')
                USING ERRCODE = 'check_violation', HINT = 'issue a credit note to correct it';
        END IF;
        NEW.status := 'cancelled';
        NEW.error_code := 'already_accepted';
        NEW.error_message := format('invoice %s already has an accepted %s: job %s, document %s; '
                                    'nothing was sent', NEW.invoice_id, NEW.document_type,
                                    earlier.id, coalesce(earlier.document_number, '?'));
        NEW.processed_at := now();
        NEW.next_retry_at := coalesce(NEW.next_retry_at, now());
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF FOUND THEN  -- an ambiguous failure: its document may exist at Factus
            NEW.reference_code := earlier.reference_code;
            NEW.outcome_unknown := true;
        END IF;
        IF EXISTS (SELECT 1 FROM electronic_invoicing_jobs
                    WHERE reference_code = NEW.reference_code
                      AND invoice_id <> NEW.invoice_id) THEN
            RAISE EXCEPTION 'reference_code % belongs to a job of another invoice',
                NEW.reference_code USING ERRCODE = 'unique_violation';
        END IF;
    END IF;
    RETURN NEW;
END $$"""  # noqa: S608 - it interpolates only _AMBIGUOUS_SQL, built from constants

REFUSED_EVENT_FUNCTION = """
CREATE OR REPLACE FUNCTION einvoice_job_refused_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    accepted record;
BEGIN
    SELECT id, document_number INTO accepted FROM electronic_invoicing_jobs
     WHERE invoice_id = NEW.invoice_id AND document_type = NEW.document_type
       AND status = 'accepted' AND id <> NEW.id
     LIMIT 1;
    INSERT INTO electronic_invoicing_events (job_id, event_type, event_code, event_message,
                                             metadata)
    VALUES (NEW.id, 'already_accepted', 'already_accepted', NEW.error_message,
            jsonb_build_object('to', 'cancelled', 'accepted_job', accepted.id,
                               'document_number', accepted.document_number));
    RETURN NULL;
END $$"""

#: Columns of an accepted job that never change (the legal document and how it was obtained).
IMMUTABLE_JOB_COLUMNS = ("status", "document_type", "invoice_id", "organization_id",
                         "reference_code", "cufe", "qr_code", "document_number",
                         "factus_document_id", "request_payload", "response_payload")

#: Columns of a validated invoice that never change (its CUFE, number, totals and parties).
IMMUTABLE_INVOICE_COLUMNS = ("xml_uuid", "number", "qr_image", "validated_at", "subtotal",
                             "tax_total", "total", "currency", "issue_date", "customer_id",
                             "organization_id", "document_type", "related_invoice_id")


def _immutable_function(name: str, what: str, number: str, columns: tuple[str, ...],
                        change: str) -> str:
    """A row trigger function that refuses deleting the row and changing ``columns``.

    ``what`` and ``number`` are SQL expressions naming the row in the messages (``%`` is the
    row id, then ``number``); ``change`` ends the message of a refused change.
    """
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in columns)
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '{what}: it is kept, never deleted', OLD.id, coalesce({number}, '?')
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'DIAN requires validated documents to be kept for five years';
    END IF;
    IF {changed} THEN
        RAISE EXCEPTION '{what}: {change}', OLD.id, coalesce({number}, '?')
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'to reverse or correct a validated invoice, issue a credit note';
    END IF;
    RETURN NEW;
END $$"""


ACCEPTED_JOB_FUNCTION = _immutable_function(
    "einvoice_accepted_job_immutable", "job % is accepted (document %)", "OLD.document_number",
    IMMUTABLE_JOB_COLUMNS, "its document cannot be changed")
VALIDATED_INVOICE_FUNCTION = _immutable_function(
    "einvoice_validated_invoice_immutable", "invoice % was validated by DIAN (%)", "OLD.number",
    IMMUTABLE_INVOICE_COLUMNS, "its CUFE, number, totals and parties cannot be changed")

VALIDATED_LINES_FUNCTION = """
CREATE OR REPLACE FUNCTION einvoice_validated_lines_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    invoice record;
BEGIN
    FOR invoice IN
        SELECT id, number FROM invoice_sales
         WHERE validated_at IS NOT NULL
           AND id IN (CASE WHEN TG_OP <> 'INSERT' THEN OLD.invoice_id END,
                      CASE WHEN TG_OP <> 'DELETE' THEN NEW.invoice_id END)
    LOOP
        RAISE EXCEPTION 'invoice % was validated by DIAN (%): its lines cannot be changed',
            invoice.id, coalesce(invoice.number, '?')
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'to reverse or correct a validated invoice, issue a credit note';
    END LOOP;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$"""

TRUNCATE_FUNCTION = """
CREATE OR REPLACE FUNCTION einvoice_refuse_truncate_of_documents() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM electronic_invoicing_jobs WHERE status = 'accepted') THEN
        RAISE EXCEPTION '% holds accepted documents: it is kept, never truncated', TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$"""

TRIGGERS: list[tuple[str, str, str]] = [
    # (name, table, definition after "CREATE TRIGGER name")
    ("einvoice_job_guard_insert", "electronic_invoicing_jobs",
     ("BEFORE INSERT ON electronic_invoicing_jobs FOR EACH ROW "
      "WHEN (NEW.provider = 'factus') EXECUTE FUNCTION einvoice_job_guard()")),
    ("einvoice_job_guard_reopen", "electronic_invoicing_jobs",
     ("BEFORE UPDATE OF status ON electronic_invoicing_jobs FOR EACH ROW "
      "WHEN (OLD.status NOT IN ('pending', 'processing', 'sent') "
      "AND NEW.status IN ('pending', 'processing', 'sent')) "
      "EXECUTE FUNCTION einvoice_job_guard()")),
    ("einvoice_job_refused_event", "electronic_invoicing_jobs",
     ("AFTER INSERT ON electronic_invoicing_jobs FOR EACH ROW "
      "WHEN (NEW.status = 'cancelled' AND NEW.error_code = 'already_accepted') "
      "EXECUTE FUNCTION einvoice_job_refused_event()")),
    ("einvoice_accepted_job_immutable", "electronic_invoicing_jobs",
     ("BEFORE UPDATE OR DELETE ON electronic_invoicing_jobs FOR EACH ROW "
      "WHEN (OLD.status = 'accepted') EXECUTE FUNCTION einvoice_accepted_job_immutable()")),
    ("einvoice_jobs_no_truncate", "electronic_invoicing_jobs",
     ("BEFORE TRUNCATE ON electronic_invoicing_jobs FOR EACH STATEMENT "
      "EXECUTE FUNCTION einvoice_refuse_truncate_of_documents()")),
    ("einvoice_validated_invoice_immutable", "invoice_sales",
     ("BEFORE UPDATE OR DELETE ON invoice_sales FOR EACH ROW "
      "WHEN (OLD.validated_at IS NOT NULL) "
      "EXECUTE FUNCTION einvoice_validated_invoice_immutable()")),
    ("einvoice_validated_lines_immutable", "invoice_items",
     ("BEFORE INSERT OR UPDATE OR DELETE ON invoice_items FOR EACH ROW "
      "EXECUTE FUNCTION einvoice_validated_lines_immutable()")),
]
FUNCTIONS = [JOB_GUARD_FUNCTION, REFUSED_EVENT_FUNCTION, ACCEPTED_JOB_FUNCTION,
             VALIDATED_INVOICE_FUNCTION, VALIDATED_LINES_FUNCTION, TRUNCATE_FUNCTION]
FUNCTION_NAMES = ["einvoice_job_guard", "einvoice_job_refused_event",
                  "einvoice_accepted_job_immutable", "einvoice_validated_invoice_immutable",
                  "einvoice_validated_lines_immutable", "einvoice_refuse_truncate_of_documents"]

#: (table, unique index on (id, organization_id)) that the tenant foreign keys refer to.
TENANT_KEYS = [("customers", "ux_customers_id_organization"),
               ("branches", "ux_branches_id_organization"),
               ("invoice_sales", "ux_invoice_sales_id_organization")]
#: (constraint, column on invoice_sales, referenced table)
TENANT_FOREIGN_KEYS = [("fk_invoice_sales_customer_organization", "customer_id", "customers"),
                       ("fk_invoice_sales_branch_organization", "branch_id", "branches"),
                       ("fk_invoice_sales_related_organization", "related_invoice_id",
                        "invoice_sales")]


def _scalar(sql: str, **params: object) -> object:
    return op.get_bind().execute(text(sql), params).scalar()


def _constraint_exists(name: str) -> bool:
    return bool(_scalar("SELECT 1 FROM pg_constraint WHERE conname = :n", n=name))


def _created_by_einvoice(table: str) -> bool:
    comment = _scalar("SELECT obj_description(to_regclass(:n), 'pg_class')", n=f"public.{table}")
    return bool(comment and str(comment).startswith(MARK_0001))


def upgrade() -> None:
    """Add the guards, the reference-code and accepted-document indexes, the tenant keys."""
    # Reference codes: unique among live jobs; a plain index serves lookups of any job.
    op.execute("DROP INDEX IF EXISTS ux_ei_jobs_reference_code")
    op.execute("CREATE UNIQUE INDEX IF NOT EXISTS ux_ei_jobs_reference_code_live "
               "ON electronic_invoicing_jobs (reference_code) "
               "WHERE status IN ('pending', 'processing', 'sent', 'accepted')")
    op.execute("CREATE INDEX IF NOT EXISTS ix_ei_jobs_reference_code "
               "ON electronic_invoicing_jobs (reference_code)")
    # At most one accepted document per (invoice, document type). A database that already holds
    # two (validated twice before this guard) cannot get the index; the triggers still prevent
    # any new one, and the duplicates are left for an operator (they are legal documents).
    duplicates = _scalar("SELECT count(*) FROM (SELECT 1 FROM electronic_invoicing_jobs "
                         "WHERE status = 'accepted' GROUP BY invoice_id, document_type "
                         "HAVING count(*) > 1) d")
    if not duplicates:
        op.execute("CREATE UNIQUE INDEX IF NOT EXISTS ux_ei_jobs_one_accepted_per_invoice "
                    "ON electronic_invoicing_jobs (invoice_id, document_type) "
                    "WHERE status = 'accepted'")
    for function in FUNCTIONS:
        op.execute(function)
    for name, table, definition in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute(f"CREATE TRIGGER {name} {definition}")

    for table, index in TENANT_KEYS:
        op.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} (id, organization_id)")
    for name, column, table in TENANT_FOREIGN_KEYS:
        if not _constraint_exists(name):
            op.execute(f"ALTER TABLE invoice_sales ADD CONSTRAINT {name} FOREIGN KEY "
                       f"({column}, organization_id) REFERENCES {table} (id, organization_id) "
                       "DEFERRABLE INITIALLY DEFERRED NOT VALID")

    unit_type = _scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = to_regclass('public.products') AND attname = 'unit_code' "
                        "AND NOT attisdropped")
    if unit_type == "character(1)" and _created_by_einvoice("products"):
        op.execute("ALTER TABLE products ALTER COLUMN unit_code TYPE text")
        op.execute(f"COMMENT ON COLUMN products.unit_code IS '{MARK}: widened to text by einvoice'")


def downgrade() -> None:
    """Remove the guards and keys; reference codes go back to unique among all jobs when they
    are (a database where a job inherited its predecessor's reference keeps the plain index)."""
    for name, _column, _table in reversed(TENANT_FOREIGN_KEYS):
        op.execute(f"ALTER TABLE invoice_sales DROP CONSTRAINT IF EXISTS {name}")
    for _table, index in TENANT_KEYS:
        op.execute(f"DROP INDEX IF EXISTS {index}")
    for name, table, _definition in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for function in FUNCTION_NAMES:
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.execute("DROP INDEX IF EXISTS ux_ei_jobs_one_accepted_per_invoice")
    op.execute("DROP INDEX IF EXISTS ux_ei_jobs_reference_code_live")
    shared = _scalar("SELECT 1 FROM electronic_invoicing_jobs GROUP BY reference_code "
                     "HAVING count(*) > 1 LIMIT 1")
    if not shared:
        op.execute("DROP INDEX IF EXISTS ix_ei_jobs_reference_code")
        op.execute("CREATE UNIQUE INDEX IF NOT EXISTS ux_ei_jobs_reference_code "
                   "ON electronic_invoicing_jobs (reference_code)")
    if _scalar("SELECT col_description(to_regclass('public.products'), attnum) FROM pg_attribute "
               "WHERE attrelid = to_regclass('public.products') AND attname = 'unit_code'") == (
            f"{MARK}: widened to text by einvoice"):
        op.execute("COMMENT ON COLUMN products.unit_code IS NULL")
