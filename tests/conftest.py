"""Shared fixtures: real PostgreSQL/Redis (tests.fixtures.services) and the Factus simulator
(tests.fixtures.sandbox)."""

import os

# Tests never read a developer's .env or environment by accident.
for _name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "FACTUS_BASE_URL"):
    os.environ.pop(_name, None)

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.sandbox", "tests.fixtures.worker"]
