"""The Celery app. Settings come from ``celeryconfig``; tasks from :mod:`workers.tasks`."""

from __future__ import annotations

from celery import Celery

app = Celery("einvoice")
app.config_from_object("celeryconfig")
app.autodiscover_tasks(["workers"], related_name="tasks", force=True)


def _start_job_listener(**_: object) -> None:
    """On worker start: LISTEN for plain SQL inserts and publish their wake-up at once.

    Every worker starts a listener thread; one of them at a time is active (an advisory lock,
    see :func:`einvoice.services.dispatch.listen_for_new_jobs`), the others stand by.
    """
    import threading  # noqa: PLC0415

    from einvoice.errors import ConfigError  # noqa: PLC0415
    from einvoice.services.dispatch import dispatch_new_jobs, listen_for_new_jobs  # noqa: PLC0415
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
              lambda ids: dispatch_new_jobs(res.submit.session_factory, res.publisher, ids,
                                           res.settings, res.clients.limiter),
              stop),
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


from celery.signals import worker_init, worker_ready  # noqa: E402

worker_init.connect(_remember_concurrency, weak=False)
worker_ready.connect(_start_job_listener, weak=False)
