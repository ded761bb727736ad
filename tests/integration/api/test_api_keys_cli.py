"""``einvoice api-keys create|list|revoke`` as an operator runs them: real subprocesses on a real
database. The key is printed once, at creation; the list shows its prefix only."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.integration.pipeline.conftest import seed_organization


def _cli(db_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTUS_", "EINVOICE_"))}
    env.update(DATABASE_URL=db_url, COLUMNS="200")
    result = subprocess.run([sys.executable, "-m", "einvoice.cli", *args], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_a_key_is_shown_once_listed_by_prefix_and_revoked(db_url: str, session: Session) -> None:
    seed_organization(session, 7)
    session.commit()

    created = json.loads(_cli(db_url, "api-keys", "create", "--org", "7", "--name", "erp",
                              "--json").stdout)
    plain = _cli(db_url, "api-keys", "create", "--org", "7", "--name", "backup").stdout
    listed = json.loads(_cli(db_url, "api-keys", "list", "--org", "7", "--json").stdout)
    table = _cli(db_url, "api-keys", "list", "--org", "7").stdout
    revoked = json.loads(_cli(db_url, "api-keys", "revoke", created["prefix"], "--org", "7",
                              "--json").stdout)
    after = json.loads(_cli(db_url, "api-keys", "list", "--org", "7", "--json").stdout)
    unknown = _cli(db_url, "api-keys", "revoke", "zzzzzzzz", "--org", "7", check=False)
    no_org = _cli(db_url, "api-keys", "create", "--org", "999", check=False)

    key = created["key"]
    assert key.startswith(f"ei_{created['prefix']}_")
    assert len(key) >= 3 + 8 + 1 + 43
    assert "shown only this once" in plain
    # Only the hash is stored; lists show prefixes and never a key.
    stored = session.execute(text("SELECT key_sha256 FROM api_keys WHERE prefix = :p"),
                             {"p": created["prefix"]}).scalar_one()
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(listed)
    assert key not in table
    assert created["prefix"] in table
    assert sorted(k["name"] for k in listed) == ["backup", "erp"]
    assert all("key" not in k for k in listed)
    assert revoked["revoked_at"] is not None
    assert [k["revoked_at"] is not None for k in after if k["prefix"] == created["prefix"]] == [
        True]
    assert unknown.returncode == 1
    assert "no key" in unknown.stderr
    assert no_org.returncode == 1
    assert "no organization 999" in no_org.stderr
