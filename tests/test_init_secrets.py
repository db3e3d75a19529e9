"""web/init-secrets.py: generate once, reuse, and never silently replace a lost password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import INIT_SECRETS


def run(root: Path, pgdata: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script on folders under `root`, as the `secrets` service does."""
    environ = {
        "PATH": os.environ["PATH"],
        "SECRETS_ROOT": str(root),
        "PGDATA_SEEN": str(pgdata),
        "APP_UID": str(os.getuid()),
        **env,
    }
    return subprocess.run(
        [sys.executable, str(INIT_SECRETS)],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


def test_generates_once_then_reuses(tmp_path):
    first = run(tmp_path / "s", tmp_path / "pgdata")
    assert first.returncode == 0, first.stderr
    password = (tmp_path / "s" / "canonical" / "postgres_password").read_text()
    assert run(tmp_path / "s", tmp_path / "pgdata").returncode == 0
    assert (tmp_path / "s" / "canonical" / "postgres_password").read_text() == password
    assert (tmp_path / "s" / "db" / "postgres_password").read_text() == password
    assert password not in first.stdout + first.stderr


def test_a_lost_password_with_an_existing_database_stops_with_one_clear_line(tmp_path):
    pgdata = tmp_path / "pgdata"
    assert run(tmp_path / "s", pgdata).returncode == 0
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("17\n")
    (tmp_path / "s" / "canonical" / "postgres_password").unlink()  # the volume was lost

    result = run(tmp_path / "s", pgdata)
    assert result.returncode != 0
    assert "postgres_password is missing but the database" in result.stderr
    assert "POSTGRES_PASSWORD" in result.stderr
    assert not (tmp_path / "s" / "canonical" / "postgres_password").exists()

    given = run(tmp_path / "s", pgdata, POSTGRES_PASSWORD="the-database-password")
    assert given.returncode == 0, given.stderr
