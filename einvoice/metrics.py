"""The Prometheus instruments the einvoice processes update as they work (docs/metrics.md).

Counters and histograms of what only a running process sees: the Factus requests it sends, the
rate-limit waits, the token renewals, the webhook deliveries. What the database and Redis know
(jobs by status, ranges, backlogs, heartbeats) is read at scrape time instead
(:mod:`einvoice.services.metrics`).

How a worker's counters reach the API's ``GET /metrics``: prometheus_client's multiprocess mode.
With ``PROMETHEUS_MULTIPROC_DIR`` set, every value lives in a memory-mapped file of that folder
(``counter_<host>-<pid>.db``, ``histogram_<host>-<pid>.db``) instead of in the process's memory;
the API, given the same folder (a volume shared by the worker and api containers), merges every
file at scrape time with ``MultiProcessCollector``. One process's threads share its files (the
library holds one lock per process), so the worker's threads pool needs nothing per thread. A
process that ends leaves its files: its counts stay in the totals, as counters must.

The file names carry the host name as well as the pid (:func:`process_identifier`): containers
sharing the folder each have their own pid 1, 7, ..., and two live processes writing the same
file would corrupt it.

Labels are bounded: ``endpoint`` is a fixed route name (:func:`factus_route`, never a path with
a number or reference in it), ``status`` an HTTP status or a transport reason, ``account`` a
Factus account key (``default`` or a credentials row id). Each Factus call costs one counter
increment and one histogram observation.
"""

from __future__ import annotations

import logging
import os
import re
import socket

from prometheus_client import Counter, Histogram, values
from prometheus_client.multiprocess import mark_process_dead as _mark_dead

log = logging.getLogger(__name__)

#: The variable prometheus_client reads (its own name); :class:`einvoice.settings.Settings` has
#: it too, as ``prometheus_multiproc_dir``.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64] or "host"


def process_identifier() -> str:
    """``<host>-<pid>``: this process's name in the multiprocess folder's file names.

    Distinct for every live process writing a folder shared between containers (prometheus_client
    requires it). No ``_``: the collector splits file names on it.
    """
    return f"{_HOST}-{os.getpid()}"


def _switch_to_files(directory: str) -> bool:
    """Keep every value created from now on in ``directory``'s files (see the module doc).

    A folder that cannot be created or written leaves the values in memory, with a warning: an
    instrument must never fail a Factus call. Returns whether the files are in use.
    """
    try:
        os.makedirs(directory, exist_ok=True)
        if not os.access(directory, os.W_OK):
            raise PermissionError(f"{directory} is not writable")
    except OSError as exc:
        log.warning("metrics stay in this process: %s=%s cannot be used (%s)", MULTIPROC_ENV,
                    directory, exc)
        values.ValueClass = values.MutexValue
        return False
    # prometheus_client opens each file under os.environ's folder, whatever we pass here.
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.MultiProcessValue(process_identifier)  # type: ignore[no-untyped-call]
    return True


def multiprocess_directory() -> str | None:
    """The multiprocess folder this process writes to, or None (values in memory)."""
    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return os.environ.get(MULTIPROC_ENV) or None


def setup(directory: str | None) -> bool:
    """Write this process's values to ``directory`` (``PROMETHEUS_MULTIPROC_DIR``); call it once
    at process start (a worker's ``worker_init``, ``einvoice api serve``), before any Factus call.

    Needed only when the folder came from a ``.env`` file: a process started with the variable in
    its environment writes there from its first import (below). Values already created (none
    before the first request) stay where they are.

    Returns:
        Whether this process's values now go to ``directory``'s files (False for None, or for a
        folder that cannot be created or written: a warning is logged and they stay in memory).
    """
    if not directory:
        return False
    if multiprocess_directory() == directory:
        return True
    return _switch_to_files(directory)


def mark_process_dead() -> None:
    """At process exit: drop this process's live-gauge files (prometheus_client's bookkeeping
    for a process that ended; its counters stay in the totals). No folder: nothing to do."""
    directory = multiprocess_directory()
    if directory:
        _mark_dead(process_identifier(), directory)  # type: ignore[no-untyped-call]


# The library chooses at its own import from this variable; we keep its choice but name the
# files after the host as well as the pid, before any instrument below is created.
if os.environ.get(MULTIPROC_ENV):
    _switch_to_files(os.environ[MULTIPROC_ENV])


#: Seconds; Factus answers most calls in tens of milliseconds to a second, a validate waits for
#: DIAN up to ``FACTUS_VALIDATE_TIMEOUT`` (30 s).
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

FACTUS_REQUESTS = Counter(
    "einvoice_factus_requests", "Requests sent to Factus, by route, API version and answer "
    "(HTTP status, or the transport failure's reason).", ["endpoint", "version", "status"])
FACTUS_LATENCY = Histogram(
    "einvoice_factus_request_duration_seconds", "Time from sending a Factus request to its "
    "answer (or failure), seconds.", ["endpoint", "version"], buckets=LATENCY_BUCKETS)
RATE_LIMIT_WAITS = Counter(
    "einvoice_factus_rate_limit_waits", "Factus requests that waited for a slot of their "
    "account's rate limit.", ["account"])
RATE_LIMIT_WAIT_SECONDS = Counter(
    "einvoice_factus_rate_limit_wait_seconds", "Seconds Factus requests spent waiting for a "
    "rate-limit slot.", ["account"])
RATE_LIMIT_REFUSALS = Counter(
    "einvoice_factus_rate_limit_refusals", "Factus requests given up because no slot freed "
    "within FACTUS_RATE_LIMIT_MAX_WAIT_SECONDS (the job is parked and retried).", ["account"])
TOKEN_RENEWALS = Counter(
    "einvoice_factus_token_renewals", "Factus OAuth token renewals, by grant (refresh, "
    "password) and result (ok, error).", ["grant", "result"])
WEBHOOK_DELIVERIES = Counter(
    "einvoice_webhook_deliveries", "Outcome webhook POSTs, by verdict (delivered, gone, retry).",
    ["verdict"])


# --- Factus routes -----------------------------------------------------------------------------
# (method, path template, route name): {v} is v1 or v2, {x} one path segment (a number, a
# reference code, an id). The names are version-free; the version is a label of its own.
_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/oauth/token", "oauth_token"),
    ("POST", "/{v}/bills/validate", "bill_validate"),
    ("GET", "/{v}/bills", "bill_list"),
    ("GET", "/v1/bills/show/{x}", "bill_show"),
    ("GET", "/v1/bills/download-pdf/{x}", "bill_download_pdf"),
    ("GET", "/v1/bills/download-xml/{x}", "bill_download_xml"),
    ("POST", "/v1/bills/send-email/{x}", "bill_send_email"),
    ("DELETE", "/{v}/bills/destroy/reference/{x}", "bill_delete"),
    ("GET", "/v2/bills/{x}/download-pdf", "bill_download_pdf"),
    ("GET", "/v2/bills/{x}/download-xml", "bill_download_xml"),
    ("GET", "/v2/bills/{x}/download-attached-document-xml", "bill_download_attached_xml"),
    ("POST", "/v2/bills/{x}/send-email", "bill_send_email"),
    ("GET", "/v2/bills/{x}", "bill_show"),
    ("POST", "/{v}/credit-notes/validate", "credit_note_validate"),
    ("GET", "/{v}/credit-notes", "credit_note_list"),
    ("GET", "/v1/credit-notes/download-pdf/{x}", "credit_note_download_pdf"),
    ("GET", "/v1/credit-notes/download-xml/{x}", "credit_note_download_xml"),
    ("POST", "/v1/credit-notes/send-email/{x}", "credit_note_send_email"),
    ("DELETE", "/{v}/credit-notes/reference/{x}", "credit_note_delete"),
    ("GET", "/v2/credit-notes/{x}/download-pdf", "credit_note_download_pdf"),
    ("GET", "/v2/credit-notes/{x}/download-xml", "credit_note_download_xml"),
    ("GET", "/v2/credit-notes/{x}/download-attached-document-xml",
     "credit_note_download_attached_xml"),
    ("POST", "/v2/credit-notes/{x}/send-email", "credit_note_send_email"),
    ("GET", "/{v}/credit-notes/{x}", "credit_note_show"),
    ("GET", "/{v}/numbering-ranges", "numbering_range_list"),
    ("POST", "/v2/numbering-ranges", "numbering_range_create"),
    ("GET", "/v2/numbering-ranges/dian", "numbering_range_dian"),
    ("GET", "/v2/numbering-ranges/{x}", "numbering_range_show"),
    ("DELETE", "/v2/numbering-ranges/{x}", "numbering_range_delete"),
    ("GET", "/v1/municipalities", "municipality_list"),
    ("GET", "/v1/measurement-units", "measurement_unit_list"),
    ("GET", "/v1/tributes/products", "product_tribute_list"),
    ("GET", "/v1/company", "company_show"),
    ("GET", "/v2/companies", "company_show"),
)
_COMPILED = tuple(
    (method, re.compile("^" + re.escape(template).replace(r"\{v\}", "(?:v1|v2)")
                        .replace(r"\{x\}", "[^/]+") + "$"), name)
    for method, template, name in _ROUTES)
#: The route of a path Factus has that the table does not name.
OTHER_ROUTE = "other"


def factus_route(method: str, path: str) -> tuple[str, str]:
    """``(endpoint, version)`` of a Factus request, for metric labels.

    Args:
        method: ``GET``, ``POST`` or ``DELETE``.
        path: the request's path (``/v1/bills/show/SETP990000001``).
    Returns:
        The route's fixed name (``bill_show``; :data:`OTHER_ROUTE` for a path the table does not
        know, so a number never becomes a label) and ``v1``, ``v2`` or ``none`` (the OAuth
        endpoint has no version).
    """
    version = path[1:3] if path.startswith(("/v1/", "/v2/")) else "none"
    static = _STATIC_ROUTES.get((method, path))
    if static is not None:
        return static, version
    for route_method, pattern, name in _COMPILED:
        if route_method == method and pattern.match(path):
            return name, version
    return OTHER_ROUTE, version


#: Routes without a variable segment, by (method, path): one dict lookup on the hot path.
_STATIC_ROUTES: dict[tuple[str, str], str] = {
    (method, template.replace("{v}", version)): name
    for method, template, name in _ROUTES if "{x}" not in template
    for version in (("v1", "v2") if "{v}" in template else ("",))
}


def observe_factus(method: str, path: str, status: int | str, seconds: float) -> None:
    """Count one Factus request and its latency.

    Args:
        method, path: as sent (the path is reduced to its route, :func:`factus_route`).
        status: the HTTP status, or the transport failure's reason (``connect_error``,
            ``timeout_unknown_outcome``, ``connection_lost``).
        seconds: from sending to the answer or the failure.
    """
    endpoint, version = factus_route(method, path)
    FACTUS_REQUESTS.labels(endpoint, version, str(status)).inc()
    FACTUS_LATENCY.labels(endpoint, version).observe(seconds)


def rate_limit_waited(account_key: str, seconds: float) -> None:
    """Count a request that waited ``seconds`` for its account's rate-limit slot."""
    RATE_LIMIT_WAITS.labels(account_key).inc()
    RATE_LIMIT_WAIT_SECONDS.labels(account_key).inc(seconds)


def rate_limit_refused(account_key: str) -> None:
    """Count a request given up for want of a rate-limit slot."""
    RATE_LIMIT_REFUSALS.labels(account_key).inc()


def token_renewed(grant: str, result: str) -> None:
    """Count a token renewal by ``grant`` (``refresh``, ``password``), ``result`` ``ok`` or
    ``error`` (the grant raised a Factus error)."""
    TOKEN_RENEWALS.labels(grant, result).inc()


def webhook_delivered(verdict: str) -> None:
    """Count one webhook POST by its verdict (``delivered``, ``gone``, ``retry``)."""
    WEBHOOK_DELIVERIES.labels(verdict).inc()
