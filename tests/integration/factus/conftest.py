"""Fixtures of the Factus client's integration tests: a private real Redis server.

The Redis server is this folder's own (``redis-server`` on a free port, via
``einvoice.devservices.RedisServer``), so these tests need neither PostgreSQL nor the session's
shared services.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from einvoice.devservices import RedisServer, free_port


@pytest.fixture(scope="module")
def factus_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server for the tests of one module, stopped afterwards."""
    server = RedisServer(Path(tmp_path_factory.mktemp("factus-redis")), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def factus_redis_url(factus_redis_server: RedisServer) -> Iterator[str]:
    """URL of the module's Redis, flushed before the test."""
    client = redis.Redis.from_url(factus_redis_server.url)
    client.flushall()
    client.close()
    yield factus_redis_server.url


@pytest.fixture
def factus_redis(factus_redis_url: str) -> Iterator[redis.Redis]:
    """A client of the module's (flushed) Redis."""
    client = redis.Redis.from_url(factus_redis_url)
    yield client
    client.close()
