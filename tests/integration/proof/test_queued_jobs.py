"""B4's counter of the jobs woken in a Celery queue (``scripts/loadkit.QueuedJobs``), against
real Redis: it must count every message once while kombu keeps pushing new ones at the head."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from types import ModuleType

import redis

from einvoice.devservices import project_root


def _loadkit() -> ModuleType:
    """``scripts/loadkit.py`` (a script's helper, not a package module)."""
    if "loadkit" in sys.modules:
        return sys.modules["loadkit"]
    spec = importlib.util.spec_from_file_location("loadkit",
                                                  project_root() / "scripts" / "loadkit.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadkit"] = module
    spec.loader.exec_module(module)
    return module


def _message(job_count: int) -> bytes:
    """A kombu Redis envelope of a wake-up for ``job_count`` jobs (protocol 2 body)."""
    ids = [f"job-{i}" for i in range(job_count)]
    task, args = (("einvoice.submit_invoices", [ids]) if job_count > 1
                  else ("einvoice.submit_invoice", ids))
    body = base64.b64encode(json.dumps([args, {}, {}]).encode()).decode()
    return json.dumps({"body": body, "headers": {"task": task}}).encode()


def test_messages_pushed_while_counting_are_each_counted_once(redis_url: str) -> None:
    # Given a queue holding a 1-job and a 10-job wake-up
    client = redis.Redis.from_url(redis_url)
    client.lpush("submission", _message(1), _message(10))
    counter = _loadkit().QueuedJobs(redis_url, "submission")
    # And a producer that pushes another 10-job wake-up right after each LLEN of the counter
    real_llen = counter.client.llen

    def llen_then_push(name: str) -> int:
        length = int(real_llen(name))
        client.lpush(name, _message(10))
        return length

    counter.client.llen = llen_then_push  # type: ignore[method-assign]

    # When the counter counts twice, each time racing a push
    first = counter.count()
    second = counter.count()
    counter.client.llen = real_llen  # type: ignore[method-assign]
    third = counter.count()

    # Then each count is exactly the jobs in the messages it had seen, none twice, none missed
    assert (first, second, third) == (11, 21, 31)
    counter.close()
    client.close()
