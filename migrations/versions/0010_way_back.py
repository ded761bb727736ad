"""The ERP's way in over HTTP and its ways back: outcomes, NOTIFY, webhooks, API keys.

* ``invoice_sales`` gains, where missing, ``einvoice_job_id``, ``einvoice_error_code``,
  ``einvoice_error_message`` and ``einvoice_outcome_at``: the last final outcome of the invoice's
  document (docs/erp-contract.md, "The ways back").
* The trigger ``einvoice_job_outcome`` (``AFTER INSERT OR UPDATE OF status`` on
  ``electronic_invoicing_jobs``) runs on every final transition, whichever path made it (a
  worker, an operator, the ERP's own SQL):

  - writes the outcome onto the invoice: ``status`` (``rejected``, ``failed``, ``cancelled``;
    ``validated`` is written by the recording statement with the CUFE), the error code, the
    message, the job and the time. A validated invoice keeps its ``validated`` status: a
    later job that ends otherwise (a duplicate ended ``already_accepted``) does not overwrite it;
  - ``NOTIFY einvoice_outcomes`` with a JSON payload (job, invoice, organization, document
    type, status, error code);
  - one webhook delivery per subscribed endpoint of the organization (a follow-up of kind
    ``webhook``), in the same transaction as the outcome: committed together or not at all,
    so no outcome is ever without its deliveries; when there is any, ``NOTIFY
    einvoice_webhooks`` with the job id wakes the workers' listener to publish them (an
    organization without endpoints costs its workers nothing).
* ``webhook_endpoints``: per organization, a URL, its Standard Webhooks secret (encrypted at rest
  with ``EINVOICE_SECRET_KEY``), the event types it wants (empty: all).
* ``electronic_invoicing_followups`` accepts kind ``webhook`` with its endpoint, event type,
  event id (the ``webhook-id`` header: unique, for the receiver's deduplication) and the frozen
  payload; ``webhook_delivery_attempts`` logs every attempt (HTTP status, error, duration).
* ``api_keys``: per organization, the key's public prefix and the SHA-256 of the whole key.
* ``api_idempotency_keys``: the first answer to each ``Idempotency-Key`` of an organization.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MARK = "einvoice:0010"

ADDED_COLUMNS: list[tuple[str, str, str]] = [
    ("invoice_sales", "einvoice_job_id", "UUID"),
    ("invoice_sales", "einvoice_error_code", "TEXT"),
    ("invoice_sales", "einvoice_error_message", "TEXT"),
    ("invoice_sales", "einvoice_outcome_at", "TIMESTAMPTZ"),
]

WEBHOOK_ENDPOINTS = """
CREATE TABLE webhook_endpoints (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id INTEGER NOT NULL,
    url TEXT NOT NULL CONSTRAINT webhook_endpoints_url_check CHECK (url ~ '^https?://'),
    secret_encrypted TEXT NOT NULL,
    event_types TEXT[] NOT NULL DEFAULT '{}',
    description TEXT,
    disabled_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""

DELIVERY_ATTEMPTS = """
CREATE TABLE webhook_delivery_attempts (
    id BIGSERIAL PRIMARY KEY,
    followup_id UUID NOT NULL REFERENCES electronic_invoicing_followups(id) ON DELETE CASCADE,
    attempt SMALLINT NOT NULL,
    response_status INTEGER,
    error TEXT,
    duration_ms INTEGER,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""

API_KEYS = """
CREATE TABLE api_keys (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL CONSTRAINT uq_api_keys_prefix UNIQUE,
    key_sha256 CHAR(64) NOT NULL CONSTRAINT uq_api_keys_key_sha256 UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
)"""

IDEMPOTENCY = """
CREATE TABLE api_idempotency_keys (
    organization_id INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    request_sha256 CHAR(64) NOT NULL,
    response_status INTEGER,
    response_body JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at TIMESTAMPTZ,
    CONSTRAINT pk_api_idempotency_keys PRIMARY KEY (organization_id, idempotency_key)
)"""

FOLLOWUP_COLUMNS = [
    ("endpoint_id", "UUID REFERENCES webhook_endpoints(id)"),
    ("event_type", "TEXT"),
    ("event_id", "TEXT"),
    ("payload", "JSONB"),
]

INDEXES = [
    ("CREATE INDEX ix_webhook_endpoints_organization ON webhook_endpoints (organization_id) "
    "WHERE disabled_at IS NULL"),
    ("CREATE INDEX ix_webhook_delivery_attempts_followup ON webhook_delivery_attempts "
    "(followup_id, attempt)"),
    "CREATE INDEX ix_api_keys_organization ON api_keys (organization_id)",
    ("CREATE UNIQUE INDEX ux_ei_followups_event_id ON electronic_invoicing_followups (event_id) "
    "WHERE event_id IS NOT NULL"),
    ("CREATE INDEX ix_ei_followups_endpoint ON electronic_invoicing_followups "
    "(endpoint_id, created_at) WHERE endpoint_id IS NOT NULL"),
]

OUTCOME_FUNCTION = """
CREATE OR REPLACE FUNCTION einvoice_job_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_type text;
    deliveries integer;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        RETURN NULL;
    END IF;
    IF NEW.status = 'accepted' THEN
        -- The worker's recording statement writes these with the CUFE (one update of the row:
        -- a second one in the same transaction would re-check its foreign keys); this is for
        -- any other path to acceptance.
        UPDATE invoice_sales
           SET einvoice_job_id = NEW.id, einvoice_error_code = NULL,
               einvoice_error_message = NULL, einvoice_outcome_at = now()
         WHERE id = NEW.invoice_id AND einvoice_job_id IS DISTINCT FROM NEW.id;
    ELSE
        -- A validated invoice stays validated whatever a later job of it does.
        UPDATE invoice_sales
           SET status = NEW.status, einvoice_job_id = NEW.id,
               einvoice_error_code = NEW.error_code,
               einvoice_error_message = left(NEW.error_message, 2000),
               einvoice_outcome_at = now()
         WHERE id = NEW.invoice_id AND validated_at IS NULL;
    END IF;
    PERFORM pg_notify('einvoice_outcomes', json_build_object(
        'job_id', NEW.id, 'invoice_id', NEW.invoice_id,
        'organization_id', NEW.organization_id, 'document_type', NEW.document_type,
        'status', NEW.status, 'error_code', NEW.error_code)::text);
    event_type := CASE WHEN NEW.status = 'accepted' AND NEW.document_type = 'credit_note'
                       THEN 'credit_note.accepted' ELSE 'job.' || NEW.status END;
    INSERT INTO electronic_invoicing_followups
           (job_id, kind, endpoint_id, event_type, event_id, payload, max_attempts)
    SELECT NEW.id, 'webhook', e.id, event_type, 'msg_' || replace(gen_random_uuid()::text, '-', ''),
           jsonb_build_object(
               'type', event_type,
               'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'data', jsonb_build_object(
                   'job_id', NEW.id, 'invoice_id', NEW.invoice_id,
                   'organization_id', NEW.organization_id, 'document_type', NEW.document_type,
                   'status', NEW.status, 'error_code', NEW.error_code,
                   'error_message', NEW.error_message, 'reference_code', NEW.reference_code,
                   'cufe', NEW.cufe, 'document_number', NEW.document_number)),
           20
      FROM webhook_endpoints e
     WHERE e.organization_id = NEW.organization_id AND e.disabled_at IS NULL
       AND (cardinality(e.event_types) = 0 OR event_type = ANY (e.event_types));
    GET DIAGNOSTICS deliveries = ROW_COUNT;
    IF deliveries > 0 THEN
        -- Wakes the workers' listener to publish them at once (beat would within seconds).
        PERFORM pg_notify('einvoice_webhooks', NEW.id::text);
    END IF;
    RETURN NULL;
END $$"""

OUTCOME_TRIGGER = """
CREATE TRIGGER einvoice_job_outcome
AFTER INSERT OR UPDATE OF status ON electronic_invoicing_jobs
FOR EACH ROW WHEN (NEW.status IN ('accepted', 'rejected', 'failed', 'cancelled'))
EXECUTE FUNCTION einvoice_job_outcome()"""

FOLLOWUP_KIND_CHECK = (
    "ALTER TABLE electronic_invoicing_followups ADD CONSTRAINT "
    "electronic_invoicing_followups_kind_check CHECK (kind IN ('archive', 'email', 'webhook'))")
WEBHOOK_FIELDS_CHECK = (
    "ALTER TABLE electronic_invoicing_followups ADD CONSTRAINT "
    "electronic_invoicing_followups_webhook_check CHECK (kind <> 'webhook' OR ("
    "endpoint_id IS NOT NULL AND event_type IS NOT NULL AND event_id IS NOT NULL "
    "AND payload IS NOT NULL))")


def _scalar(sql: str, **params: object) -> object:
    return op.get_bind().execute(text(sql), params).scalar()


def _exec(sql: str) -> None:
    op.get_bind().execute(text(sql))


def _column_exists(table: str, column: str) -> bool:
    return bool(_scalar(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = :t AND column_name = :c", t=table, c=column))


def upgrade() -> None:
    """Add the outcome columns where missing, create the new tables and the outcome trigger."""
    for table, column, ddl in ADDED_COLUMNS:
        if not _column_exists(table, column):
            _exec(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
            _exec(f"COMMENT ON COLUMN {table}.{column} IS '{MARK}: added by einvoice'")
    for ddl in (WEBHOOK_ENDPOINTS, DELIVERY_ATTEMPTS, API_KEYS, IDEMPOTENCY):
        _exec(ddl)
    for column, ddl in FOLLOWUP_COLUMNS:
        _exec(f"ALTER TABLE electronic_invoicing_followups ADD COLUMN {column} {ddl}")
    _exec("ALTER TABLE electronic_invoicing_followups "
          "DROP CONSTRAINT electronic_invoicing_followups_kind_check")
    _exec(FOLLOWUP_KIND_CHECK)
    _exec(WEBHOOK_FIELDS_CHECK)
    for statement in INDEXES:
        _exec(statement)
    for table in ("webhook_endpoints", "webhook_delivery_attempts", "api_keys",
                  "api_idempotency_keys"):
        _exec(f"COMMENT ON TABLE {table} IS '{MARK}: created by einvoice'")
    _exec(OUTCOME_FUNCTION)
    _exec(OUTCOME_TRIGGER)


def downgrade() -> None:
    """Remove what ``upgrade`` added; the ERP's own columns are kept."""
    _exec("DROP TRIGGER IF EXISTS einvoice_job_outcome ON electronic_invoicing_jobs")
    _exec("DROP FUNCTION IF EXISTS einvoice_job_outcome()")
    _exec("DELETE FROM electronic_invoicing_followups WHERE kind = 'webhook'")
    _exec("ALTER TABLE electronic_invoicing_followups "
          "DROP CONSTRAINT electronic_invoicing_followups_webhook_check")
    _exec("ALTER TABLE electronic_invoicing_followups "
          "DROP CONSTRAINT electronic_invoicing_followups_kind_check")
    _exec("ALTER TABLE electronic_invoicing_followups ADD CONSTRAINT "
          "electronic_invoicing_followups_kind_check CHECK (kind IN ('archive', 'email'))")
    _exec("DROP TABLE webhook_delivery_attempts")
    for column, _ in reversed(FOLLOWUP_COLUMNS):
        _exec(f"ALTER TABLE electronic_invoicing_followups DROP COLUMN {column}")
    for table in ("webhook_endpoints", "api_keys", "api_idempotency_keys"):
        _exec(f"DROP TABLE {table}")
    added = op.get_bind().execute(text(
        "SELECT a.attname FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass('public.invoice_sales') AND a.attnum > 0 "
        "AND NOT a.attisdropped AND col_description(a.attrelid, a.attnum) LIKE :mark"),
        {"mark": f"{MARK}%"}).scalars().all()
    for column in added:
        _exec(f"ALTER TABLE invoice_sales DROP COLUMN {column}")
