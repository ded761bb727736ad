"""The Celery app. Settings come from ``celeryconfig``; tasks from :mod:`workers.tasks`."""

from __future__ import annotations

from celery import Celery

app = Celery("einvoice")
app.config_from_object("celeryconfig")
app.autodiscover_tasks(["workers"], related_name="tasks", force=True)


def _start_job_listener(**_: object) -> None:
    """On worker start: LISTEN for plain SQL inserts and publish their wake-up at once."""
    import threading  # noqa: PLC0415

    from einvoice.services.dispatch import dispatch_one, listen_for_new_jobs  # noqa: PLC0415
    from einvoice.settings import libpq_url  # noqa: PLC0415
    from workers.resources import get_resources  # noqa: PLC0415

    res = get_resources()
    if not res.settings.einvoice_listen:
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=listen_for_new_jobs,
        args=(libpq_url(res.settings.require_database_url()),
              lambda job_id: dispatch_one(res.submit.session_factory, res.publisher, job_id),
              stop),
        name="einvoice-job-listener", daemon=True,
    )
    thread.start()


from celery.signals import worker_ready  # noqa: E402

worker_ready.connect(_start_job_listener, weak=False)
