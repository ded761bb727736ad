"""Which Factus account an organization submits with, and the secrets kept for it.

An organization's active ``factus_credentials`` row for the configured ``FACTUS_ENVIRONMENT``
wins. Without one, the default account of the ``FACTUS_*`` variables is used only if the
deployment allows it (``EINVOICE_DEFAULT_ACCOUNT``, :func:`default_account_mode`): once other
organizations have their own rows, the shared account would issue this organization's invoices
with another company's NIT.

Each account speaks one Factus API version (:func:`resolve_account`): the row's ``api_version``
(``FACTUS_API_VERSION`` for the default account) when it names one; with ``auto``, the version
stored for the account's identity in ``factus_account_versions``, else v1 until Factus answers v1
with "this account is not enabled for API v1" (:func:`remember_version`, called by the submit
service, which then re-runs the job's step on v2). Factus opens new accounts on v2 only, and an
account opened before v2 keeps v1 (FACTUS_API.md "API v2").

Secrets in the row are Fernet ciphertext (:mod:`einvoice.crypto`), decrypted only into a
``SecretStr``. A row's ``base_url`` receives the account's password, so it must be an https
Factus host or a host the deployment names (:func:`check_factus_base_url`).

Errors::

    EinvoiceError
    ├── ConfigError
    │   ├── reason config_missing           the FACTUS_* account is incomplete, or no key is set
    │   ├── reason default_account_refused  no row of its own, EINVOICE_DEFAULT_ACCOUNT says none
    │   └── reason factus_base_url_refused  the row's base_url is not an allowed Factus host
    └── CredentialsUnreadableError          the row exists but no key of EINVOICE_SECRET_KEY opens
                                            it: a deployment problem, never the job's fault
                                            (callers retry later; they do not fail the job)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import redis
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from einvoice.crypto import SecretBox, SecretDecryptError
from einvoice.db import accounts as account_repo
from einvoice.db import reference as ref_repo
from einvoice.db import webhooks as webhook_repo
from einvoice.db.models import FactusCredential
from einvoice.db.uow import UnitOfWork
from einvoice.errors import ConfigError, EinvoiceError
from einvoice.factus.tokens import API_VERSIONS, TOKEN_KEY_PREFIX, FactusAccount, api_version
from einvoice.settings import FACTUS_URLS, Settings, get_settings, redact_url

log = logging.getLogger(__name__)

#: The hosts of the two Factus environments (FACTUS_API.md "Evidence": sandbox and production).
FACTUS_HOSTS = frozenset(urlsplit(url).hostname or "" for url in FACTUS_URLS.values())


class CredentialsUnreadableError(EinvoiceError):
    """An organization's stored credentials cannot be decrypted with ``EINVOICE_SECRET_KEY``.

    Not a :class:`ConfigError` on purpose: job code maps ``ConfigError`` to a failed job, and a
    key problem is the deployment's, not the invoice's. The job is retried once the key is fixed
    (the key that wrote the row added to ``EINVOICE_SECRET_KEY``, or ``einvoice secrets rotate``).
    """

    reason = "secret_key_mismatch"


# ------------------------------------------------------------------------------------------
# Rules
# ------------------------------------------------------------------------------------------


def default_account_mode(settings: Settings, *, any_credentials: bool) -> str:
    """``"shared"`` or ``"none"``: may an organization without its own row use ``FACTUS_*``?

    Args:
        settings: ``EINVOICE_DEFAULT_ACCOUNT`` (``shared``, ``none`` or unset).
        any_credentials: whether ``factus_credentials`` holds any row at all (any organization,
            environment or ``is_active``: a deactivated row still says "multi-tenant").
    Returns:
        The setting when set; unset, ``"none"`` when any row exists, else ``"shared"`` (a
        single-tenant deployment, where the ``FACTUS_*`` account is the company's own).
    """
    if settings.einvoice_default_account is not None:
        return settings.einvoice_default_account
    return "none" if any_credentials else "shared"


def check_factus_base_url(url: str, settings: Settings, *, owner: str = "base_url") -> str:
    """Return ``url`` (without a trailing slash) if Factus credentials may be sent to it.

    Allowed: ``https://`` on a Factus host (``api.factus.com.co``, ``api-sandbox.factus.com.co``,
    default port); ``http://`` or ``https://`` on the host of ``FACTUS_BASE_URL`` (the operator
    chose it already) or a host listed in ``EINVOICE_FACTUS_ALLOWED_HOSTS`` (the simulator in
    development, a proxy). Never user info, a query or a fragment.

    Args:
        url: a ``factus_credentials.base_url`` value.
        settings: the allow-list and ``FACTUS_BASE_URL``.
        owner: names the value in the message (e.g. "factus_credentials.base_url of
            organization 7").
    Raises:
        ConfigError: ``reason="factus_base_url_refused"``, naming the value (password-free) and
            ``EINVOICE_FACTUS_ALLOWED_HOSTS``.
    """
    def refuse(why: str) -> ConfigError:
        return ConfigError(
            f"{owner} {redact_url(url)!r} is refused: {why}. Factus credentials are sent only "
            f"to https://{' or https://'.join(sorted(FACTUS_HOSTS))}, the host of "
            "FACTUS_BASE_URL, or a host listed in EINVOICE_FACTUS_ALLOWED_HOSTS",
            reason="factus_base_url_refused",
        )

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise refuse("it is not a URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise refuse("it is not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise refuse("it carries user info")
    if parts.query or parts.fragment:
        raise refuse("it carries a query or fragment")
    if host in FACTUS_HOSTS:
        if parts.scheme != "https" or port not in (None, 443):
            raise refuse("a Factus host is reached over https on port 443 only")
        return url.strip().rstrip("/")
    trusted = set(settings.factus_allowed_hosts)
    operator_host = urlsplit(settings.factus_base_url or "").hostname
    if operator_host:
        trusted.add(operator_host.lower())
    if host not in trusted:
        raise refuse(f"{host} is not a Factus host")
    return url.strip().rstrip("/")


# ------------------------------------------------------------------------------------------
# Reading and writing credentials
# ------------------------------------------------------------------------------------------

#: The version an ``auto`` account speaks until Factus says otherwise: accounts opened before
#: v2 existed speak v1 only, and a v2-only account announces itself with a 403 on the first v1
#: call (:class:`einvoice.factus.errors.ApiVersionNotEnabled`), which moves it to v2 for good.
AUTO_START_VERSION = "v1"


@dataclass(frozen=True)
class ResolvedAccount:
    """An organization's Factus account with the API version it speaks and why.

    Attributes:
        account: the account; ``account.api_version`` is the version to use (never ``auto``).
        configured: ``v1``, ``v2`` or ``auto``: ``factus_credentials.api_version``, or
            ``FACTUS_API_VERSION`` for the default account.
        detected: the version stored for the account by ``auto`` (None when none yet, or when a
            version is configured).
    """

    account: FactusAccount
    configured: str
    detected: str | None

    @property
    def is_auto(self) -> bool:
        """True when the version is ``auto``'s to find (and to change on Factus's word)."""
        return self.configured == "auto"


def _with_version(account: FactusAccount, configured: str,
                  stored: list[str] | None) -> ResolvedAccount:
    """``account`` with its API version resolved: ``configured`` when it names one, else the
    version stored for its identity (``stored``: ``"<account_key>=<version>"`` items), else
    :data:`AUTO_START_VERSION`."""
    if configured in API_VERSIONS:
        return ResolvedAccount(replace(account, api_version=api_version(configured)), configured,
                               None)
    found = dict(item.rsplit("=", 1) for item in stored or ())
    detected = found.get(account.token_key)
    return ResolvedAccount(replace(account, api_version=api_version(detected or AUTO_START_VERSION)),
                           "auto", detected)


def account_for_organization(
    session: Session, organization_id: int, settings: Settings, box: SecretBox | None
) -> FactusAccount:
    """The :class:`FactusAccount` that ``organization_id`` submits with, its API version
    resolved (:func:`resolve_account`; its errors)."""
    return resolve_account(session, organization_id, settings, box).account


def resolve_account(
    session: Session, organization_id: int, settings: Settings, box: SecretBox | None
) -> ResolvedAccount:
    """The Factus account ``organization_id`` submits with, and its API version (one query:
    the credentials row, the default-account rule and the versions ``auto`` stored).

    Args:
        box: decrypts the credential row; may be None when no row is expected (default account).
    Raises:
        ConfigError: ``default_account_refused`` (no row, and :func:`default_account_mode` is
            ``none``), ``config_missing`` (no row and the ``FACTUS_*`` account is incomplete, or a
            row and no ``EINVOICE_SECRET_KEY``), ``factus_base_url_refused`` (the row's base_url,
            :func:`check_factus_base_url`). Job code ends the job ``failed`` (``no_factus_account``)
            with the message.
        CredentialsUnreadableError: the row exists but no key opens it (retry later, never fail).
    """
    default_key = (FactusAccount.from_settings(settings).token_key
                   if settings.has_default_factus_account() else "")
    row, any_credentials, stored = account_repo.account_row(
        session, organization_id, settings.factus_environment, default_key)
    if row is None:
        if default_account_mode(settings, any_credentials=bool(any_credentials)) == "none":
            why = ("EINVOICE_DEFAULT_ACCOUNT=none" if settings.einvoice_default_account
                   else "EINVOICE_DEFAULT_ACCOUNT is unset, which means none while other "
                        "organizations have their own rows")
            raise ConfigError(
                f"organization {organization_id} has no active factus_credentials row for "
                f"{settings.factus_environment} and {why}: the shared FACTUS_* account would issue "
                "its invoices with another company's NIT. Store its own Factus credentials, or "
                "set EINVOICE_DEFAULT_ACCOUNT=shared if every organization issues with that account",
                reason="default_account_refused",
            )
        return _with_version(FactusAccount.from_settings(settings),
                             settings.factus_api_version, stored)
    base_url = settings.factus_base_url or ""
    if row.base_url:
        base_url = check_factus_base_url(
            row.base_url, settings,
            owner=f"factus_credentials.base_url of organization {organization_id}")
    if box is None:
        box = SecretBox.from_settings(settings)
    try:
        client_secret = box.decrypt(row.client_secret)
        password = box.decrypt(row.password_encrypted)
    except SecretDecryptError:
        raise CredentialsUnreadableError(
            f"the Factus credentials of organization {organization_id} (factus_credentials "
            f"{row.id}) cannot be decrypted with any key of EINVOICE_SECRET_KEY: add the key "
            "they were written with to EINVOICE_SECRET_KEY (after the current one), or store "
            "them again; the job is retried, not failed"
        ) from None
    account = FactusAccount(
        key=str(row.id),
        environment=row.environment,  # type: ignore[arg-type]
        base_url=base_url,
        client_id=row.client_id,
        client_secret=SecretStr(client_secret),
        username=row.username,
        password=SecretStr(password),
    )
    return _with_version(account, row.api_version or "auto", stored)


def remember_version(session: Session, resolved: ResolvedAccount, api_version: str, *,
                     organization_id: int | None, detected_by: str, replace: bool) -> bool:
    """Store the API version ``auto`` found for ``resolved``'s account, with an account event
    when it changed. Does not commit; other processes see it when their account cache expires
    (``WorkerContext.account_ttl_seconds``).

    Args:
        api_version: ``v1`` or ``v2``.
        organization_id: the organization whose job found it (kept for operators).
        detected_by: how, for operators (e.g. ``factus_version_not_enabled: <Factus message>``).
        replace: True when Factus refused the version in use (the finding replaces any stored
            one); False for a confirmation that the version in use works (kept if one is stored).
    Returns:
        True when the stored version changed.
    """
    key = resolved.account.token_key
    changed = account_repo.store_version(session, key, api_version,
                                         organization_id=organization_id,
                                         detected_by=detected_by, replace=replace)
    if changed:
        previous = resolved.detected or "none"
        account_repo.add_event(
            session, key, "api_version_detected", organization_id=organization_id,
            code=api_version,
            message=f"Factus account {resolved.account.username} ({resolved.account.environment})"
            f" speaks API {api_version} (auto; was {previous}): {detected_by}",
            metadata={"from": resolved.detected, "to": api_version,
                      "account": resolved.account.username})
        log.warning("Factus account %s (%s): API version %s stored (%s)",
                    resolved.account.username, key, api_version, detected_by)
    return changed


@dataclass
class AccountView:
    """One Factus account as ``einvoice accounts`` shows it (never a secret).

    Attributes:
        organization_id: the row's organization; None for the default ``FACTUS_*`` account.
        key: ``FactusAccount.token_key`` (row id or ``default``, and an identity hash).
        environment, username, base_url: where and who (``base_url`` without user info).
        configured: ``v1``, ``v2`` or ``auto``; detected: what ``auto`` stored (or None);
        effective: the version used now; detected_at: when it was stored (UTC) or None.
        active: the row's ``is_active`` (True for the default account).
        note: why the account is not usable as is (e.g. a refused base URL), or None.
    """

    organization_id: int | None
    key: str
    environment: str
    username: str
    base_url: str
    configured: str
    detected: str | None
    effective: str
    detected_at: object | None
    active: bool
    note: str | None = None


def list_accounts(session: Session, settings: Settings) -> list[AccountView]:
    """Every organization's Factus account (all environments) and the default ``FACTUS_*``
    account when configured, with configured, detected and effective API versions.

    Reads no secret and decrypts nothing (the identity hash needs only environment, base URL,
    client id and user).
    """
    identities: list[tuple[int | None, FactusAccount, str, bool, str | None]] = []
    if settings.has_default_factus_account():
        identities.append((None, FactusAccount.from_settings(settings),
                           settings.factus_api_version, True, None))
    for row in account_repo.credential_rows(session):
        note = None
        base_url = settings.factus_base_url or ""
        if row.base_url:
            try:
                base_url = check_factus_base_url(row.base_url, settings)
            except ConfigError as exc:
                base_url, note = row.base_url, exc.message
        identities.append((row.organization_id, FactusAccount(
            key=str(row.id), environment=row.environment,  # type: ignore[arg-type]
            base_url=base_url, client_id=row.client_id, client_secret=SecretStr(""),
            username=row.username, password=SecretStr("")), row.api_version or "auto",
            bool(row.is_active), note))
    stored = account_repo.detected_versions(session, [a.token_key for _, a, _, _, _ in identities])
    views = []
    for org_id, account, configured, active, note in identities:
        found = stored.get(account.token_key) if configured == "auto" else None
        detected = found.api_version if found is not None else None
        views.append(AccountView(
            organization_id=org_id, key=account.token_key, environment=account.environment,
            username=account.username, base_url=redact_url(account.base_url) or "",
            configured=configured, detected=detected,
            effective=configured if configured != "auto" else (detected or AUTO_START_VERSION),
            detected_at=found.detected_at if found is not None else None, active=active,
            note=note))
    return views



def usable_accounts(session: Session, settings: Settings,
                    box: SecretBox | None) -> dict[int, FactusAccount]:
    """Organization id -> its Factus account, for every organization that may submit now.

    For periodic work over every organization (range sync, token refresh): an organization
    refused by :func:`account_for_organization` (``default_account_refused``,
    ``factus_base_url_refused``, or credentials no key opens) is left out with a warning
    instead of stopping the run for all the others; above all, the shared account's ranges are
    never copied into an organization that may not use it.

    Raises:
        ConfigError: ``config_missing`` (the ``FACTUS_*`` account is incomplete while an
            organization is meant to use it, or no key is set): the deployment must be fixed.
    """
    accounts: dict[int, FactusAccount] = {}
    for org_id in ref_repo.organization_ids(session):
        try:
            accounts[org_id] = account_for_organization(session, org_id, settings, box)
        except CredentialsUnreadableError as exc:
            log.warning("organization %s skipped: %s", org_id, exc)
        except ConfigError as exc:
            if exc.reason not in ("default_account_refused", "factus_base_url_refused"):
                raise
            log.warning("organization %s skipped: %s", org_id, exc)
    return accounts


def save_credentials(
    session: Session,
    *,
    organization_id: int,
    environment: str,
    client_id: str,
    client_secret: str,
    username: str,
    password: str,
    box: SecretBox,
    base_url: str | None = None,
    settings: Settings | None = None,
    api_version: str | None = None,
) -> FactusCredential:
    """Create or replace an organization's Factus credentials, encrypting every secret.

    Stored tokens are cleared (they belonged to the previous credentials). Does not commit.

    Args:
        base_url: the account's API root; None uses ``FACTUS_BASE_URL``. Checked by
            :func:`check_factus_base_url` against ``settings`` (the process's when None).
        api_version: ``v1``, ``v2`` or ``auto``; None keeps the row's (``auto`` for a new row).
    Raises:
        ConfigError: ``factus_base_url_refused``, or ``config_invalid`` for another
            ``api_version``, before anything is written.
    """
    if base_url is not None:
        base_url = check_factus_base_url(
            base_url, settings or get_settings(),
            owner=f"factus_credentials.base_url of organization {organization_id}")
    if api_version is not None and api_version not in ("v1", "v2", "auto"):
        raise ConfigError(f"api_version {api_version!r}: use v1, v2 or auto",
                          reason="config_invalid")
    row = account_repo.credential_of(session, organization_id, environment)
    if row is None:
        row = FactusCredential(organization_id=organization_id, environment=environment,
                               client_id="", client_secret="", username="", password_encrypted="")
        session.add(row)
    row.client_id = client_id
    row.client_secret = box.encrypt(client_secret)
    row.username = username
    row.password_encrypted = box.encrypt(password)
    row.base_url = base_url
    row.access_token = None
    row.refresh_token = None
    row.token_expires_at = None
    row.is_active = True
    if api_version is not None:
        row.api_version = api_version
    session.flush()
    return row


def account_keys_by_organization(session: Session, settings: Settings) -> dict[int, str]:
    """Organization id -> the key of its own Factus account (the ``factus_credentials`` row id,
    as text: the key of its rate limit), for every organization with an active row
    in ``FACTUS_ENVIRONMENT``. Organizations on the default account are absent."""
    return account_repo.active_account_keys(session, settings.factus_environment)


# ------------------------------------------------------------------------------------------
# The key: checked at worker start, rotated on demand
# ------------------------------------------------------------------------------------------

_SECRET_COLUMNS = ("client_secret", "password_encrypted", "access_token", "refresh_token")


def check_secret_key(session: Session, box: SecretBox) -> int | None:
    """Decrypt one stored credentials row (the active, most recently updated one) with ``box``.

    Run when a worker starts: a worker whose ``EINVOICE_SECRET_KEY`` cannot read the stored
    credentials must stop before it takes jobs. One row, not all: a single row written with a
    foreign key must not stop every worker of every organization (its jobs wait instead).

    Returns:
        The organization id of the row checked, or None when there is no row.
    Raises:
        CredentialsUnreadableError: naming the organization and row, never a value.
    """
    row = account_repo.newest_credential_secrets(session)
    if row is None:
        return None
    try:
        box.decrypt(row.client_secret)
        box.decrypt(row.password_encrypted)
    except SecretDecryptError:
        raise CredentialsUnreadableError(
            f"EINVOICE_SECRET_KEY ({box.key_count} key{'s' if box.key_count > 1 else ''}) cannot "
            f"decrypt the stored Factus credentials of organization {row.organization_id} "
            f"(factus_credentials {row.id}): wrong key, or the key they were written with was "
            "dropped (keep it after the new one until `einvoice secrets rotate` has run)"
        ) from None
    return int(row.organization_id)


@dataclass
class RotationReport:
    """What :func:`rotate_secrets` did.

    Attributes:
        rows: ``factus_credentials`` rows read.
        values: encrypted column values re-encrypted with the first key.
        redis_tokens: token entries in Redis re-encrypted.
        webhook_secrets: ``webhook_endpoints`` secrets re-encrypted.
        unreadable: values no key opens, left as they are: ``factus_credentials <id>.<column>``,
            ``webhook_endpoints <id>.secret_encrypted`` or ``redis <key>``.
    """

    rows: int = 0
    values: int = 0
    redis_tokens: int = 0
    webhook_secrets: int = 0
    unreadable: list[str] = field(default_factory=list)


def rotate_secrets(session_factory: sessionmaker[Session], redis_client: redis.Redis | None,
                   box: SecretBox) -> RotationReport:
    """Re-encrypt every stored secret with ``box``'s first key (``einvoice secrets rotate``).

    Covers each ``factus_credentials`` row's client secret, password and tokens and each
    ``webhook_endpoints`` row's secret (one transaction, rows locked ``FOR UPDATE`` so that a
    worker saving a renewed token waits instead of being overwritten by the old one) and the
    Redis token cache (``WATCH``ed per key, its time
    to live kept). Values no key opens are reported, not touched. Safe to run again.

    Args:
        session_factory: sessions on ``DATABASE_URL``.
        redis_client: the Redis of ``REDIS_URL`` (None skips the token cache).
        box: all keys of ``EINVOICE_SECRET_KEY``, the new one first.
    Returns:
        The counts (:class:`RotationReport`).
    Raises:
        sqlalchemy.exc.OperationalError, redis.RedisError: the store is unreachable (the database
            part is all or nothing; Redis keys already done stay done).
    """
    report = RotationReport()
    with UnitOfWork(session_factory) as uow:
        for row in account_repo.credential_rows_for_update(uow.session):
            report.rows += 1
            for column in _SECRET_COLUMNS:
                value = getattr(row, column)
                if not value:
                    continue
                try:
                    setattr(row, column, box.rotate(value))
                    report.values += 1
                except SecretDecryptError:
                    report.unreadable.append(f"factus_credentials {row.id}.{column}")
        for endpoint in webhook_repo.endpoints_for_update(uow.session):
            try:
                endpoint.secret_encrypted = box.rotate(endpoint.secret_encrypted)
                report.webhook_secrets += 1
            except SecretDecryptError:
                report.unreadable.append(f"webhook_endpoints {endpoint.id}.secret_encrypted")
        uow.commit()
    if redis_client is not None:
        for key in redis_client.scan_iter(match=TOKEN_KEY_PREFIX + "*", count=500):
            name = key.decode() if isinstance(key, bytes) else str(key)
            outcome = _rotate_redis_value(redis_client, name, box)
            if outcome == "rotated":
                report.redis_tokens += 1
            elif outcome == "unreadable":
                report.unreadable.append(f"redis {name}")
    log.info("secrets rotated: %d rows, %d values, %d Redis tokens, %d unreadable",
             report.rows, report.values, report.redis_tokens, len(report.unreadable))
    return report


def _rotate_redis_value(client: redis.Redis, key: str, box: SecretBox) -> str:
    """Re-encrypt one Redis value in place; ``rotated``, ``gone`` or ``unreadable``."""
    with client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                raw = pipe.get(key)
                ttl_ms = pipe.pttl(key)
                if raw is None:
                    return "gone"
                text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
                try:
                    sealed = box.rotate(text)
                except SecretDecryptError:
                    return "unreadable"
                pipe.multi()
                if isinstance(ttl_ms, int) and ttl_ms > 0:
                    pipe.set(key, sealed, px=ttl_ms)
                else:
                    pipe.set(key, sealed)
                pipe.execute()
                return "rotated"
            except redis.WatchError:
                continue  # a worker saved a renewed token meanwhile: rotate that one
