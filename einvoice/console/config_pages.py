"""The console's configuration pages (admins): Factus accounts, numbering ranges, webhook
endpoints and API keys, over :mod:`einvoice.services.console_config`.

Secrets are write-only: a secret field is never filled in when a page is rendered, and a new
webhook secret or API key is shown once, on the page that answers its creation. Every form is
a POST behind the router-wide CSRF check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from einvoice.api.context import LazyClients
from einvoice.console.pages import redirect, render
from einvoice.console.security import Admin, FormData, context_of, csrf_guard, field
from einvoice.db.uow import UnitOfWork
from einvoice.errors import EinvoiceError
from einvoice.services import console_config as config
from einvoice.services import console_views
from einvoice.services.console_auth import Identity

router = APIRouter(prefix="/config", dependencies=[Depends(csrf_guard)])

SECTIONS = ("accounts", "ranges", "webhooks", "api-keys")


def _today() -> Any:
    return datetime.now(UTC).astimezone(console_views.BOGOTA).date()


def _org(form: dict[str, list[str]], identity: Identity) -> int:
    value = field(form, "organization_id")
    if not value and identity.organization_id is not None:
        return identity.organization_id
    if not value.isdigit():
        raise EinvoiceError("organization_id is not a number", reason="bad_input")
    return int(value)


def _section(request: Request, identity: Identity, section: str, *, status: int = 200,
             failure: EinvoiceError | None = None, **extra: Any) -> HTMLResponse:
    context = context_of(request)
    scope = identity.organization_id
    data: dict[str, Any] = {}
    with UnitOfWork(context.session_factory) as uow:
        data["organizations"] = console_views.organization_choices(uow.session, scope)
        if section == "accounts":
            data["accounts"] = config.accounts(uow.session, context.settings, scope)
        elif section == "ranges":
            data["ranges"] = console_views.overview(uow.session, scope).ranges
        elif section == "webhooks":
            data["endpoints"] = config.endpoints(uow.session, scope)
        else:
            data["keys"] = config.keys(uow.session, scope)
        uow.session.expunge_all()  # the rows stay readable (loaded) after the read ends
    return render(request, f"config_{section.replace('-', '_')}.html", identity, nav="config",
                  section=section, sections=SECTIONS, failure=failure, status=status,
                  done=request.query_params.get("done"), **data, **extra)


def _attempt(request: Request, identity: Identity, section: str, work: Any) -> Response:
    """Run ``work()``; on success show the section again (``extra`` from work, or a redirect),
    on a refusal show it with the reason (409)."""
    try:
        outcome = work()
    except EinvoiceError as exc:
        return _section(request, identity, section, status=409, failure=exc)
    if isinstance(outcome, dict):
        return _section(request, identity, section, **outcome)
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return redirect(f"{base}/config/{section}?done={outcome}")


# --------------------------------------------------------------------------------------------
# Factus accounts
# --------------------------------------------------------------------------------------------


@router.get("/accounts", include_in_schema=False)
def accounts_page(request: Request, identity: Admin) -> HTMLResponse:
    """The Factus accounts (never a secret) and the form to add or rotate one."""
    return _section(request, identity, "accounts")


def _save_account(request: Request, identity: Identity, form: dict[str, list[str]]) -> str:
    context = context_of(request)
    values = config.AccountForm(
        organization_id=_org(form, identity), environment=field(form, "environment"),
        client_id=field(form, "client_id"), username=field(form, "username"),
        client_secret=(form.get("client_secret") or [""])[-1],
        password=(form.get("password") or [""])[-1],
        base_url=field(form, "base_url") or None, api_version=field(form, "api_version"))
    with UnitOfWork(context.session_factory) as uow:
        config.save_account(uow.session, context.settings, identity.organization_id, values,
                            actor=identity.actor)
        uow.commit()
    return "saved"


@router.post("/accounts", include_in_schema=False)
def save_account(request: Request, identity: Admin, form: FormData) -> Response:
    """Add an organization's Factus account or rotate its credentials."""
    return _attempt(request, identity, "accounts", lambda: _save_account(request, identity, form))


@router.post("/accounts/check", include_in_schema=False)
def check_account(request: Request, identity: Admin, form: FormData) -> Response:
    """Sign in to Factus with an organization's account and read its company."""
    context = context_of(request)

    def work() -> dict[str, Any]:
        org = _org(form, identity)
        result = config.check_connection(context.session_factory, LazyClients(context),
                                         context.settings, identity.organization_id, org)
        return {"checked": result, "checked_org": org}

    return _attempt(request, identity, "accounts", work)


# --------------------------------------------------------------------------------------------
# Numbering ranges
# --------------------------------------------------------------------------------------------


@router.get("/ranges", include_in_schema=False)
def ranges_page(request: Request, identity: Admin) -> HTMLResponse:
    """The numbering ranges, the sync button and the forms to create one."""
    return _section(request, identity, "ranges")


@router.post("/ranges/sync", include_in_schema=False)
def sync_ranges(request: Request, identity: Admin) -> Response:
    """Sync the ranges from Factus now."""
    context = context_of(request)

    def work() -> dict[str, Any]:
        written, warnings = config.sync_ranges(context.session_factory, LazyClients(context),
                                               context.settings, identity.organization_id,
                                               _today())
        return {"synced": written, "warnings": warnings}

    return _attempt(request, identity, "ranges", work)


@router.post("/ranges/dian", include_in_schema=False)
def dian_ranges(request: Request, identity: Admin, form: FormData) -> Response:
    """List the ranges DIAN associated with an organization's software (Factus v2)."""
    context = context_of(request)

    def work() -> dict[str, Any]:
        org = _org(form, identity)
        account, found = config.dian_ranges(context.session_factory, LazyClients(context),
                                            context.settings, identity.organization_id, org)
        return {"dian": found, "dian_org": org, "dian_account": account}

    return _attempt(request, identity, "ranges", work)


@router.post("/ranges/create", include_in_schema=False)
def create_range(request: Request, identity: Admin, form: FormData) -> Response:
    """Create a range at Factus from a DIAN resolution, or a credit-note range."""
    context = context_of(request)

    def work() -> dict[str, Any]:
        created = config.create_range(
            context.session_factory, LazyClients(context), context.settings,
            identity.organization_id, _org(form, identity), today=_today(),
            from_dian=field(form, "resolution") or None,
            credit_note_prefix=field(form, "credit_note_prefix").upper() or None,
            actor=identity.actor)
        return {"created": created}

    return _attempt(request, identity, "ranges", work)


# --------------------------------------------------------------------------------------------
# Webhook endpoints
# --------------------------------------------------------------------------------------------


@router.get("/webhooks", include_in_schema=False)
def webhooks_page(request: Request, identity: Admin) -> HTMLResponse:
    """The webhook endpoints (no secret) and the form to add one."""
    return _section(request, identity, "webhooks")


@router.post("/webhooks", include_in_schema=False)
def add_webhook(request: Request, identity: Admin, form: FormData) -> Response:
    """Register an endpoint; its secret is shown once, on the answer."""
    context = context_of(request)

    def work() -> dict[str, Any]:
        with UnitOfWork(context.session_factory) as uow:
            new = config.add_endpoint(uow.session, context.settings, identity.organization_id,
                                      organization_id=_org(form, identity),
                                      url=field(form, "url"),
                                      event_types=[v for v in form.get("event_types", []) if v],
                                      description=field(form, "description") or None)
            uow.commit()
        return {"new_endpoint": new}

    return _attempt(request, identity, "webhooks", work)


@router.post("/webhooks/disable", include_in_schema=False)
def disable_webhook(request: Request, identity: Admin, form: FormData) -> Response:
    """Disable an endpoint (no new deliveries)."""
    context = context_of(request)

    def work() -> str:
        with UnitOfWork(context.session_factory) as uow:
            config.disable_endpoint(uow.session, identity.organization_id,
                                    field(form, "endpoint_id"))
            uow.commit()
        return "disabled"

    return _attempt(request, identity, "webhooks", work)


# --------------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------------


@router.get("/api-keys", include_in_schema=False)
def keys_page(request: Request, identity: Admin) -> HTMLResponse:
    """The API keys (prefix and dates) and the form to create one."""
    return _section(request, identity, "api-keys")


@router.post("/api-keys", include_in_schema=False)
def create_key(request: Request, identity: Admin, form: FormData) -> Response:
    """Create a key; it is shown once, on the answer."""
    context = context_of(request)

    def work() -> dict[str, Any]:
        with UnitOfWork(context.session_factory) as uow:
            created = config.create_key(uow.session, identity.organization_id,
                                        _org(form, identity), field(form, "name"))
            result = {"new_key": created.key, "new_key_prefix": created.row.prefix}
            uow.commit()
        return result

    return _attempt(request, identity, "api-keys", work)


@router.post("/api-keys/revoke", include_in_schema=False)
def revoke_key(request: Request, identity: Admin, form: FormData) -> Response:
    """Revoke a key (refused by the API within its key cache's 30 s)."""
    context = context_of(request)

    def work() -> str:
        with UnitOfWork(context.session_factory) as uow:
            config.revoke_key(uow.session, identity.organization_id, _org(form, identity),
                              field(form, "prefix"))
            uow.commit()
        return "revoked"

    return _attempt(request, identity, "api-keys", work)

