"""The worker's database pool follows ``celery worker -c N`` (benchmark B1 runs 50 threads)."""

from __future__ import annotations

from celery.signals import worker_init


class _WorkController:
    concurrency = 25


def test_worker_init_passes_the_command_lines_concurrency_to_the_pool_size() -> None:
    import workers.app  # noqa: F401 - connects the signal handlers
    from workers import resources

    before = resources._concurrency
    try:
        # Celery sends worker_init with the WorkController, which holds -c N (app.conf does not).
        worker_init.send(sender=_WorkController())
        assert resources.concurrency() == 25
    finally:
        resources._concurrency = before
