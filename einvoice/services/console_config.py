"""The console's configuration pages (admins only): Factus accounts, numbering ranges, webhook
endpoints and API keys, each over the service the CLI uses, in the admin's scope.

* Factus accounts: :func:`einvoice.services.accounts.save_credentials` adds or rotates an
  organization's credentials (every secret encrypted with ``EINVOICE_SECRET_KEY``; the page
  never shows one back: the form's secret fields are always empty), recorded as a
  ``credentials_saved`` account event naming the admin; :func:`check_connection` signs in to
  Factus with them and reads the company (``GET /v1/company``).
* Numbering ranges: :func:`einvoice.services.sync.sync_ranges`,
  :func:`einvoice.services.operator.dian_ranges` and
  :func:`einvoice.services.operator.create_range`.
* Webhook endpoints: :mod:`einvoice.services.webhooks` (a new endpoint's secret is shown once).
* API keys: :mod:`einvoice.services.api_keys` (a new key is shown once).

``scope`` is the admin's organization (None: every one); a request about another organization
is refused as :class:`ScopeError`. Functions that take a session never commit; those that call
Factus take a session factory and use units of work, never holding a transaction during the call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from einvoice.crypto import SecretBox
from einvoice.db import accounts as account_repo
from einvoice.db import console as repo
from einvoice.db.models import ApiKey
from einvoice.db.uow import UnitOfWork
from einvoice.errors import EinvoiceError
from einvoice.services import api_keys, webhooks
from einvoice.services.accounts import (
    AccountView,
    list_accounts,
    resolve_account,
    save_credentials,
)
from einvoice.settings import Settings

#: Factus environments an account row may name (``factus_credentials.environment``).
ENVIRONMENTS = ("sandbox", "production")
#: API versions an account row may name.
API_VERSIONS = ("auto", "v1", "v2")


class ScopeError(EinvoiceError):
    """The admin asked about an organization outside their scope, or one that does not exist."""

    reason = "organization_not_found"


def check_organization(session: Session, scope: int | None, organization_id: int) -> None:
    """Raise :class:`ScopeError` unless ``organization_id`` exists and is in ``scope``."""
    if (scope is not None and organization_id != scope) or not repo.organization_exists(
            session, organization_id):
        raise ScopeError(f"no organization {organization_id}")


# --------------------------------------------------------------------------------------------
# Factus accounts
# --------------------------------------------------------------------------------------------


def accounts(session: Session, settings: Settings, scope: int | None) -> list[AccountView]:
    """The Factus accounts in scope (the default ``FACTUS_*`` account only for an admin of every
    organization), without any secret."""
    return [view for view in list_accounts(session, settings)
            if (view.organization_id is None and scope is None)
            or (view.organization_id is not None
                and (scope is None or view.organization_id == scope))]


@dataclass(frozen=True)
class AccountForm:
    """What the account form sends. The secrets are write-only: kept in ``repr``-less fields
    and never rendered back."""

    organization_id: int
    environment: str
    client_id: str
    username: str
    client_secret: str
    password: str
    base_url: str | None
    api_version: str

    def __repr__(self) -> str:
        return (f"AccountForm(organization_id={self.organization_id!r}, "
                f"environment={self.environment!r}, username={self.username!r})")


def save_account(session: Session, settings: Settings, scope: int | None, form: AccountForm, *,
                 actor: str) -> None:
    """Add or rotate an organization's Factus credentials (flushed, not committed); an account
    event ``credentials_saved`` records who did it (never a secret).

    Raises:
        ScopeError: organization outside scope. ConfigError: no ``EINVOICE_SECRET_KEY``, a
            refused base URL, a bad API version. EinvoiceError (``bad_input``): an empty field
            or an unknown environment.
    """
    check_organization(session, scope, form.organization_id)
    if form.environment not in ENVIRONMENTS:
        raise EinvoiceError(f"environment {form.environment!r}: sandbox or production",
                            reason="bad_input")
    required = {"client_id": form.client_id, "username": form.username,
                "client_secret": form.client_secret, "password": form.password}
    missing = [name for name, value in required.items() if not value.strip()]
    if missing:
        raise EinvoiceError(f"missing: {', '.join(missing)}", reason="bad_input")
    row = save_credentials(
        session, organization_id=form.organization_id, environment=form.environment,
        client_id=form.client_id.strip(), client_secret=form.client_secret,
        username=form.username.strip(), password=form.password,
        box=SecretBox.from_settings(settings), base_url=form.base_url or None,
        settings=settings, api_version=form.api_version or None)
    account_repo.add_event(
        session, str(row.id), "credentials_saved", organization_id=form.organization_id,
        code=form.environment,
        message=f"Factus credentials of {row.username} ({form.environment}) saved by {actor}",
        metadata={"actor": actor, "username": row.username, "environment": form.environment,
                  "api_version": row.api_version})


@dataclass(frozen=True)
class ConnectionTest:
    """The answer of :func:`check_connection`: ``ok``, and the company Factus knows the account
    by (name and NIT) or the reason and message of the refusal."""

    ok: bool
    company: str | None = None
    nit: str | None = None
    reason: str | None = None
    message: str | None = None


def check_connection(session_factory: sessionmaker[Session], clients: Any, settings: Settings,
                    scope: int | None, organization_id: int) -> ConnectionTest:
    """Sign in to Factus with the organization's account and read its company
    (``GET /v1/company``); no transaction is open during the call.

    Raises:
        ScopeError: organization outside scope.
    """
    from einvoice.factus.errors import FactusError  # noqa: PLC0415

    try:
        with UnitOfWork(session_factory) as uow:
            check_organization(uow.session, scope, organization_id)
            box = SecretBox.from_settings(settings) if settings.einvoice_secret_key else None
            resolved = resolve_account(uow.session, organization_id, settings, box)
        company = clients.for_account(resolved.account).company()
    except ScopeError:
        raise
    except FactusError as exc:
        return ConnectionTest(ok=False, reason=exc.reason, message=str(exc))
    except EinvoiceError as exc:
        return ConnectionTest(ok=False, reason=exc.reason, message=str(exc))
    name = company.company or " ".join(p for p in (company.names, company.surnames) if p) or None
    nit = f"{company.nit}-{company.dv}" if company.nit and company.dv else company.nit
    return ConnectionTest(ok=True, company=name, nit=nit)


# --------------------------------------------------------------------------------------------
# Numbering ranges
# --------------------------------------------------------------------------------------------


def sync_ranges(session_factory: sessionmaker[Session], clients: Any, settings: Settings,
                scope: int | None, today: date) -> tuple[int, list[str]]:
    """Sync every organization's ranges from Factus (the hourly beat task, now).

    Returns:
        ``(rows written, warnings)``; the warnings only of the admin's organization when scoped.
    """
    from einvoice.services import sync  # noqa: PLC0415

    report = sync.sync_ranges(session_factory, clients, settings, today)
    warnings = [w for w in report.warnings
                if scope is None or w.startswith(f"organization {scope}:")]
    return report.written.get("invoice_sequences", 0), warnings


def dian_ranges(session_factory: sessionmaker[Session], clients: Any, settings: Settings,
                scope: int | None, organization_id: int) -> tuple[str, list[Any]]:
    """The ranges DIAN associated with the organization's software (Factus v2), to pick one
    to create. Raises ``ScopeError`` and the service's errors."""
    from einvoice.services.operator import dian_ranges as list_dian  # noqa: PLC0415

    with UnitOfWork(session_factory) as uow:
        check_organization(uow.session, scope, organization_id)
    return list_dian(session_factory, clients, settings, organization_id)


def create_range(session_factory: sessionmaker[Session], clients: Any, settings: Settings,
                 scope: int | None, organization_id: int, *, today: date,
                 from_dian: str | None, credit_note_prefix: str | None, actor: str) -> Any:
    """Create a range at Factus from a DIAN resolution, or a credit-note range with a prefix
    (:func:`einvoice.services.operator.create_range`), then sync. Raises ``ScopeError`` and the
    service's errors."""
    from einvoice.services.operator import create_range as create  # noqa: PLC0415

    with UnitOfWork(session_factory) as uow:
        check_organization(uow.session, scope, organization_id)
    return create(session_factory, clients, settings, organization_id, today=today,
                  from_dian=from_dian or None, credit_note=bool(credit_note_prefix),
                  prefix=credit_note_prefix or None, actor=actor)


# --------------------------------------------------------------------------------------------
# Webhook endpoints and API keys
# --------------------------------------------------------------------------------------------


def endpoints(session: Session, scope: int | None) -> list[webhooks.EndpointView]:
    """The webhook endpoints in scope (never a secret)."""
    return webhooks.list_endpoints(session, scope)


def add_endpoint(session: Session, settings: Settings, scope: int | None, *,
                 organization_id: int, url: str, event_types: list[str],
                 description: str | None) -> webhooks.NewEndpoint:
    """Register an endpoint (its secret returned once). Raises ``ScopeError``, ``WebhookError``,
    ``ConfigError`` (no ``EINVOICE_SECRET_KEY``)."""
    check_organization(session, scope, organization_id)
    return webhooks.add_endpoint(session, SecretBox.from_settings(settings),
                                 organization_id=organization_id, url=url,
                                 event_types=event_types, description=description or None)


def disable_endpoint(session: Session, scope: int | None,
                     endpoint_id: uuid.UUID | str) -> webhooks.EndpointView:
    """Disable an endpoint in scope. Raises ``ScopeError`` / ``WebhookError``."""
    wanted = str(endpoint_id)
    if not any(str(e.id) == wanted for e in webhooks.list_endpoints(session, scope)):
        raise ScopeError(f"no webhook endpoint {wanted}", reason="unknown_endpoint")
    return webhooks.disable_endpoint(session, wanted)


def keys(session: Session, scope: int | None) -> list[ApiKey]:
    """The API keys in scope, by organization then newest (prefix and dates; no key)."""
    found: list[ApiKey] = []
    for org_id, _ in repo.organizations(session, scope):
        found += api_keys.list_keys(session, org_id)
    return found


def create_key(session: Session, scope: int | None, organization_id: int,
               name: str) -> api_keys.CreatedKey:
    """A new API key (shown once). Raises ``ScopeError`` / ``ApiKeyError``."""
    check_organization(session, scope, organization_id)
    return api_keys.create_key(session, organization_id, name)


def revoke_key(session: Session, scope: int | None, organization_id: int,
               prefix: str) -> ApiKey:
    """Revoke a key of an organization in scope. Raises ``ScopeError`` / ``ApiKeyError``."""
    check_organization(session, scope, organization_id)
    return api_keys.revoke_key(session, organization_id, prefix)
