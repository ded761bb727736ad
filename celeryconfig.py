"""Celery settings for einvoice (read by ``celery -A workers`` and by producers).

Every value that can be tuned comes from :class:`einvoice.settings.Settings` (``CELERY_BROKER_URL``,
``EINVOICE_VISIBILITY_TIMEOUT``, ``EINVOICE_DISPATCH_INTERVAL``, ``EINVOICE_TASK_EVENTS``), so a
malformed value is the same one-line ``ConfigError`` as any other setting; nothing here reads
``os.environ``. The rest are fixed decisions.

Why these values (Celery docs "Redis: visibility timeout"):

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only after its
  task ran; a worker killed mid-task leaves it to be redelivered. Every task is safe to run
  twice (the job row is claimed with a compare-and-set), so redelivery is harmless.
* ``worker_prefetch_multiplier = 1``: a worker reserves no more messages than it has threads.
* ``visibility_timeout`` (``EINVOICE_VISIBILITY_TIMEOUT``, 300 s): Redis redelivers an
  unacknowledged message after this long. It must be far above the longest task: a submission
  is bounded by the validate timeout (30 s), a few reads (15 s each), the rate-limit wait (capped
  at 5 s, longer waits are parked in the database) and the database; about 90 s worst case,
  so 300 s leaves a wide margin, while a message lost with a killed worker comes back within
  5 minutes. (Celery's default of one hour would leave jobs stuck that long; the database
  lease, 120 s, and the sweeper recover them sooner anyway, and the beat dispatcher
  re-publishes any due job whose message is gone.)
* Results are not stored: the outcome lives in ``electronic_invoicing_jobs``.
* JSON only; messages carry job ids, never payloads or tokens.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from einvoice.queueing import (
    QUEUE_MAINTENANCE,
    QUEUE_REFERENCE,
    QUEUE_SUBMISSION,
    QUEUE_WEBHOOKS,
    TASK_DELIVER_WEBHOOK,
    TASK_DISPATCH,
    TASK_DISPATCH_FOLLOWUPS,
    TASK_DISPATCH_WEBHOOKS,
    TASK_FOLLOWUP,
    TASK_RECOVER,
    TASK_REFRESH_TOKENS,
    TASK_SUBMIT,
    TASK_SUBMIT_MANY,
    TASK_SYNC,
)
from einvoice.settings import get_settings

_settings = get_settings()

VISIBILITY_TIMEOUT_SECONDS = _settings.einvoice_visibility_timeout
DISPATCH_INTERVAL_SECONDS = _settings.einvoice_dispatch_interval

broker_url = _settings.celery_broker_url
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # keep trying while Redis restarts
broker_transport_options = {
    "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "retry_on_timeout": True,
    "health_check_interval": 10,
}
broker_pool_limit = 20

task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"
task_ignore_result = True
result_backend = None

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_soft_time_limit = 150
task_time_limit = 180
worker_max_tasks_per_child = None
worker_cancel_long_running_tasks_on_connection_loss = False
# Celery's consumer, made to survive a Redis restart with tasks in flight (see workers/consumer.py).
worker_consumer = "workers.consumer:Consumer"

timezone = "America/Bogota"
enable_utc = True

# Flower: task events, and arguments shown as job ids only (tasks take nothing else).
# Task events cost every task three Redis PUBLISHes (received, started, succeeded) and every
# publish a fourth (sent), about a tenth of a worker's CPU per job (benchmark B1). They are off
# unless someone watches: Flower (``--enable_events``, its default) broadcasts ``enable_events``
# to the workers every few seconds while it runs, and they start sending at once.
# ``EINVOICE_TASK_EVENTS=true`` sends them always (e.g. for a Prometheus celery-exporter).
TASK_EVENTS = _settings.einvoice_task_events
worker_send_task_events = TASK_EVENTS
task_send_sent_event = TASK_EVENTS
worker_hijack_root_logger = False

task_default_queue = QUEUE_SUBMISSION
task_queues = (
    Queue(QUEUE_SUBMISSION, Exchange(QUEUE_SUBMISSION), routing_key=QUEUE_SUBMISSION),
    Queue(QUEUE_REFERENCE, Exchange(QUEUE_REFERENCE), routing_key=QUEUE_REFERENCE),
    Queue(QUEUE_MAINTENANCE, Exchange(QUEUE_MAINTENANCE), routing_key=QUEUE_MAINTENANCE),
    Queue(QUEUE_WEBHOOKS, Exchange(QUEUE_WEBHOOKS), routing_key=QUEUE_WEBHOOKS),
)
task_routes = {
    TASK_SUBMIT: {"queue": QUEUE_SUBMISSION},
    TASK_SUBMIT_MANY: {"queue": QUEUE_SUBMISSION},
    TASK_DISPATCH: {"queue": QUEUE_MAINTENANCE},
    TASK_RECOVER: {"queue": QUEUE_MAINTENANCE},
    TASK_REFRESH_TOKENS: {"queue": QUEUE_MAINTENANCE},
    TASK_SYNC: {"queue": QUEUE_REFERENCE},
    # Follow-ups of accepted jobs (PDF/XML archive, e-mail) share the reference queue: side work
    # that must never wait in front of a submission.
    TASK_FOLLOWUP: {"queue": QUEUE_REFERENCE},
    TASK_DISPATCH_FOLLOWUPS: {"queue": QUEUE_MAINTENANCE},
    # Webhook deliveries wait on the ERP's receivers (up to 10 s each): a queue of their own.
    TASK_DELIVER_WEBHOOK: {"queue": QUEUE_WEBHOOKS},
    TASK_DISPATCH_WEBHOOKS: {"queue": QUEUE_MAINTENANCE},
}

# One beat instance; every periodic task is idempotent.
# Short-lived periodic messages expire so a beat that ran while workers were down does not
# leave a pile of stale sweeps behind.
beat_schedule = {
    "dispatch-due-jobs": {
        "task": TASK_DISPATCH,
        "schedule": DISPATCH_INTERVAL_SECONDS,
        "options": {"expires": 10},
    },
    "dispatch-due-followups": {
        "task": TASK_DISPATCH_FOLLOWUPS,
        "schedule": DISPATCH_INTERVAL_SECONDS,
        "options": {"expires": 10},
    },
    "dispatch-due-webhooks": {
        "task": TASK_DISPATCH_WEBHOOKS,
        "schedule": DISPATCH_INTERVAL_SECONDS,
        "options": {"expires": 10},
    },
    "recover-expired-leases": {
        "task": TASK_RECOVER,
        "schedule": 30.0,
        "options": {"expires": 60},
    },
    "refresh-tokens": {
        "task": TASK_REFRESH_TOKENS,
        "schedule": 300.0,
        "options": {"expires": 240},
    },
    "sync-numbering-ranges": {
        "task": TASK_SYNC,
        "schedule": 3600.0,
        "args": ("ranges",),
        "options": {"expires": 1800},
    },
    "sync-catalogs-daily": {
        "task": TASK_SYNC,
        "schedule": 86400.0,
        "args": ("catalogs",),
        "options": {"expires": 3600},
    },
}
