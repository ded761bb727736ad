"""The embedded PostgreSQL and Redis start from a checkout inside a private (mode 700) folder.

Run as root (a container, a fresh VM), ``make test`` and ``make demo`` start the servers as the
``postgres`` and ``redis`` system accounts. An account that kept root's group would be judged by
the *group* bits of a root-owned ``700`` folder such as ``/root`` and be refused ("initdb: could
not access directory ... Permission denied"); each server must run with its own group and no
supplementary groups.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from einvoice.devservices import PG_ACCOUNT, REDIS_ACCOUNT, DevServices, free_port

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the servers change account only when started by root"
)


@pytest.fixture
def private_home() -> Iterator[Path]:
    """A root-owned folder of mode 700, like ``/root``, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="einvoice-home-"))
    home.chmod(0o700)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def process_identity(pid: int) -> dict[str, list[int]]:
    """The real uid, real gid and supplementary groups of a running process (/proc/<pid>/status)."""
    fields: dict[str, list[int]] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Uid", "Gid", "Groups"):
            fields[name] = [int(part) for part in value.split()]
    return fields


def test_services_start_from_a_checkout_inside_a_root_only_folder(private_home: Path) -> None:
    # Given a checkout whose parent folder is owned by root with mode 700 (like /root/einvoice)
    info = private_home.stat()
    assert info.st_uid == 0
    assert stat.S_IMODE(info.st_mode) == 0o700
    services = DevServices(
        base_dir=private_home / "einvoice" / ".einvoice",
        pg_port=free_port(),
        redis_port=free_port(),
        fast=True,
    )

    try:
        # When the embedded services start there
        services.up()

        # Then PostgreSQL answers a query, as the postgres role
        with psycopg.connect(services.postgres.admin_url()) as conn:
            assert conn.execute("SELECT current_user, 1 + 1").fetchone() == ("postgres", 2)
        # And Redis answers
        assert redis.Redis.from_url(services.redis.url).ping() is True

        # And each server runs as its own account, with that account's group and no other group
        postmaster_pid = int((services.postgres.datadir / "postmaster.pid").read_text().split()[0])
        redis_pid = services.redis.pid()
        assert redis_pid is not None
        for pid, account_name in ((postmaster_pid, PG_ACCOUNT), (redis_pid, REDIS_ACCOUNT)):
            account = pwd.getpwnam(account_name)
            identity = process_identity(pid)
            assert identity["Uid"][0] == account.pw_uid, account_name
            assert identity["Gid"][0] == account.pw_gid != 0, account_name
            assert identity["Groups"] in ([], [account.pw_gid]), (
                account_name,
                [grp.getgrgid(gid).gr_name for gid in identity["Groups"]],
            )

        # And the private folder was opened for entering only: nobody else may list or read it
        mode = stat.S_IMODE(private_home.stat().st_mode)
        assert mode & 0o077 == stat.S_IXOTH
    finally:
        services.down()
