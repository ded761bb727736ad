"""The Celery app. Settings come from ``celeryconfig``; tasks from :mod:`workers.tasks`
and :mod:`workers.followups`.

How a worker (or beat) meets a start problem:

* a missing or malformed variable (any :class:`einvoice.settings.Settings` field, including the
  Celery ones ``celeryconfig`` reads), or an ``EINVOICE_SECRET_KEY`` that cannot decrypt the
  stored Factus credentials: one line on stderr (``einvoice worker cannot start: ...``) and exit
  status 78 (``EX_CONFIG``), before it takes any job. A key problem must never fail jobs one by
  one, and a restart cannot fix it.
* Redis (the broker) unreachable: Celery logs one line per attempt (``consumer: Cannot connect to
  redis://...``) and keeps trying, and a database that cannot be reached is a warning line; the
  worker does not exit. Both come back by themselves (a restart, a failover), and a worker that
  waits for them takes jobs again at once, without a supervisor; the sweeper and the dispatcher
  recover whatever was in flight.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import Celery

#: Exit status of a worker refused at start (sysexits.h ``EX_CONFIG``).
EXIT_CONFIG = 78


def _stop(message: str) -> None:
    """Print ``message`` as one line on stderr and exit with :data:`EXIT_CONFIG`."""
    sys.stderr.write(f"einvoice worker cannot start: {message}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_CONFIG)


def _settings_or_stop() -> None:
    """Load the settings now (``celeryconfig`` needs them): a bad variable is one line, not
    Celery's option-parsing traceback."""
    from einvoice.errors import ConfigError  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    try:
        get_settings()
    except ConfigError as exc:
        _stop(str(exc))


_settings_or_stop()
app = Celery("einvoice")
app.config_from_object("celeryconfig")
# One autodiscovery per task module: task modules never import each other (no import cycle).
app.autodiscover_tasks(["workers"], related_name="tasks", force=True)
app.autodiscover_tasks(["workers"], related_name="followups", force=True)
app.autodiscover_tasks(["workers"], related_name="webhooks", force=True)


def _start_job_listener(**_: object) -> None:
    """On worker start: LISTEN for plain SQL inserts and publish their wake-up at once.

    Every worker starts a listener thread; one of them at a time is active (an advisory lock,
    see :func:`einvoice.services.dispatch.listen_for_new_jobs`), the others stand by.
    """
    import threading  # noqa: PLC0415

    from einvoice.errors import ConfigError  # noqa: PLC0415
    from einvoice.services.dispatch import (  # noqa: PLC0415
        dispatch_due_jobs,
        dispatch_new_jobs,
        listen_for_new_jobs,
    )
    from einvoice.services.webhooks import dispatch_deliveries_for_jobs  # noqa: PLC0415
    from einvoice.settings import libpq_url  # noqa: PLC0415
    from workers.resources import get_resources  # noqa: PLC0415

    try:
        res = get_resources()
    except ConfigError as exc:
        # A worker that cannot submit must not look healthy: say why in one line and stop.
        import logging  # noqa: PLC0415
        import os  # noqa: PLC0415
        import signal  # noqa: PLC0415

        logging.getLogger("einvoice").critical("worker cannot start: %s", exc)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if not res.settings.einvoice_listen:
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=listen_for_new_jobs,
        args=(libpq_url(res.settings.require_database_url()),
              lambda ids: dispatch_new_jobs(res.worker.session_factory, res.publisher, ids,
                                           res.settings, res.clients.limiter),
              stop),
        kwargs={"on_active": lambda: dispatch_due_jobs(res.worker.session_factory, res.publisher,
                                                        res.settings, res.clients.limiter),
                "on_webhooks": lambda ids: dispatch_deliveries_for_jobs(
                    res.worker.session_factory, res.publisher, ids)},
        name="einvoice-job-listener", daemon=True,
    )
    thread.start()


def _remember_concurrency(sender: object, **_: object) -> None:
    """On worker init: size this process's database pool for ``-c N`` (see
    :func:`workers.resources.set_concurrency`). ``sender`` is Celery's ``WorkController``."""
    from workers.resources import set_concurrency  # noqa: PLC0415

    threads = getattr(sender, "concurrency", None)
    if threads:
        set_concurrency(int(threads))


def _check_secret_key(**_: object) -> None:
    """On worker init: decrypt one stored ``factus_credentials`` row with ``EINVOICE_SECRET_KEY``
    (:func:`einvoice.services.accounts.check_secret_key`); stop the worker if it cannot.

    ``SystemExit`` passes through Celery's signal dispatch (it catches ``Exception`` only), so the
    worker ends before its pool starts. A database that cannot be reached is not a key problem:
    the worker starts, and jobs whose credentials turn out unreadable are retried, not failed.
    """
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415

    from einvoice.crypto import SecretBox  # noqa: PLC0415
    from einvoice.db.engine import make_engine, make_session_factory  # noqa: PLC0415
    from einvoice.errors import EinvoiceError  # noqa: PLC0415
    from einvoice.services.accounts import check_secret_key  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    if settings.einvoice_secret_key is None or not settings.database_url:
        return  # nothing to check with; the worker_ready step reports the missing variable
    try:
        box = SecretBox.from_settings(settings)
        engine = make_engine(settings.require_database_url(), pool_size=1, max_overflow=0)
        try:
            with make_session_factory(engine)() as session:
                check_secret_key(session, box)
        finally:
            engine.dispose()
    except EinvoiceError as exc:
        _stop(str(exc))
    except DBAPIError as exc:
        import logging  # noqa: PLC0415

        logging.getLogger("einvoice").warning(
            "EINVOICE_SECRET_KEY not checked at start, the database is unreachable (%s)",
            type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__)


_heartbeat: list[Any] = []  # this worker's WorkerHeartbeat, once started


def _setup_observability(**_: object) -> None:
    """On worker init: Factus counters to ``PROMETHEUS_MULTIPROC_DIR`` (read by the API's
    /metrics; einvoice.metrics)."""
    from einvoice import metrics  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    metrics.setup(get_settings().prometheus_multiproc_dir)


def _log_format(logger: Any, **_: object) -> None:
    """After Celery set up a logger (worker and beat): ``EINVOICE_LOG_FORMAT`` (einvoice.logs)."""
    from einvoice.logs import use_format  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    use_format(logger, get_settings().einvoice_log_format)


def _start_heartbeat(sender: object, **_: object) -> None:
    """On worker ready: stamp this worker alive in Redis every 10 s (einvoice.services.
    system_health); ``sender`` is the consumer, whose ``hostname`` is the node name."""
    from einvoice.services.system_health import WorkerHeartbeat, health_redis  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    name = str(getattr(sender, "hostname", None) or f"worker@{os.getpid()}")
    _heartbeat.append(WorkerHeartbeat(health_redis(get_settings().redis_url), name).start())


def _worker_stopped(**_: object) -> None:
    """On worker shutdown: its heartbeat removed, its live metric files released."""
    from einvoice import metrics  # noqa: PLC0415

    for beat in _heartbeat:
        beat.stop()
    metrics.mark_process_dead()


def _beat_started(**_: object) -> None:
    """In beat's process only: stamp beat's heartbeat whenever it publishes a task."""
    from einvoice.services.system_health import BeatHeartbeat, health_redis  # noqa: PLC0415
    from einvoice.settings import get_settings  # noqa: PLC0415

    stamp = BeatHeartbeat(lambda: health_redis(get_settings().redis_url))
    after_task_publish.connect(stamp, weak=False)


from celery.signals import (  # noqa: E402
    after_setup_logger,
    after_setup_task_logger,
    after_task_publish,
    beat_init,
    worker_init,
    worker_ready,
    worker_shutdown,
)

worker_init.connect(_remember_concurrency, weak=False)
worker_init.connect(_check_secret_key, weak=False)
worker_init.connect(_setup_observability, weak=False)
worker_ready.connect(_start_job_listener, weak=False)
worker_ready.connect(_start_heartbeat, weak=False)
worker_shutdown.connect(_worker_stopped, weak=False)
after_setup_logger.connect(_log_format, weak=False)
after_setup_task_logger.connect(_log_format, weak=False)
beat_init.connect(_beat_started, weak=False)
