"""deploy/pgbouncer/entrypoint.sh renders PgBouncer's config and auth file from the environment.

Runs the real script with bash; `pgbouncer` on PATH is a stand-in that records its argv and
the rendered files, so what the real server would be given is checked. (The real PgBouncer
serves web in the Swarm tests: tests/swarm.)
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy/pgbouncer/entrypoint.sh"
PASSWORD = 'pa"ss word$1'


@pytest.fixture
def run(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pgbouncer"
    fake.write_text('#!/bin/sh\necho "argv: $*"\n')
    fake.chmod(0o755)
    secret = tmp_path / "postgres_app_password"
    secret.write_text(PASSWORD + "\n")

    def runner(**env: str) -> subprocess.CompletedProcess:
        base = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PGBOUNCER_RUN_DIR": str(tmp_path / "run"),
            "PGBOUNCER_USERS": f"app_web={secret}",
        }
        return subprocess.run(
            ["bash", str(ENTRYPOINT)],
            env={**base, **env},
            capture_output=True,
            text=True,
            check=False,
        )

    return runner


def test_renders_the_contract_defaults_and_execs_pgbouncer_with_the_config(run, tmp_path):
    proc = run()
    assert proc.returncode == 0, proc.stderr
    ini_path = tmp_path / "run/pgbouncer.ini"
    assert proc.stdout.strip() == f"argv: {ini_path}"
    ini = ini_path.read_text()
    assert "app = host=db port=5432 dbname=app" in ini
    for line in (
        "listen_port = 6432",
        "pool_mode = transaction",
        "default_pool_size = 20",
        "max_client_conn = 500",
        "max_db_connections = 60",
        "auth_type = scram-sha-256",
    ):
        assert f"\n{line}\n" in ini, line
    assert "max_prepared_statements = 200" in ini  # psycopg 3 prepares statements


def test_settings_come_from_the_environment(run, tmp_path):
    proc = run(
        PGBOUNCER_DB_HOST="postgres.internal",
        PGBOUNCER_DB_PORT="5433",
        PGBOUNCER_DB_NAME="shop",
        PGBOUNCER_POOL_MODE="session",
        PGBOUNCER_DEFAULT_POOL_SIZE="7",
        PGBOUNCER_MAX_CLIENT_CONN="900",
        PGBOUNCER_MAX_DB_CONNECTIONS="30",
    )
    assert proc.returncode == 0, proc.stderr
    ini = (tmp_path / "run/pgbouncer.ini").read_text()
    assert "shop = host=postgres.internal port=5433 dbname=shop" in ini
    for line in ("pool_mode = session", "default_pool_size = 7", "max_client_conn = 900"):
        assert f"\n{line}\n" in ini, line


def test_the_password_is_only_in_an_owner_only_auth_file(run, tmp_path):
    proc = run()
    auth = tmp_path / "run/userlist.txt"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    assert auth.read_text() == '"app_web" "pa""ss word$1"\n'  # auth_file quoting: "" for "
    assert PASSWORD not in proc.stdout + proc.stderr
    assert PASSWORD not in (tmp_path / "run/pgbouncer.ini").read_text()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PGBOUNCER_USERS": ""}, "PGBOUNCER_USERS is empty"),
        ({"PGBOUNCER_USERS": "app_web=/nonexistent"}, "missing or unreadable: /nonexistent"),
        ({"PGBOUNCER_USERS": "app_web"}, "is not name=/path/to/password-file"),
        ({"PGBOUNCER_DEFAULT_POOL_SIZE": "twenty"}, "must be a whole number"),
        ({"PGBOUNCER_POOL_MODE": "fast"}, "must be session, transaction or statement"),
        ({"PGBOUNCER_DB_HOST": "db\nlisten_port = 1"}, "unexpected characters"),
    ],
)
def test_a_bad_setting_stops_it_with_one_clear_line(run, env, message):
    proc = run(**env)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "argv:" not in proc.stdout  # pgbouncer was not started
