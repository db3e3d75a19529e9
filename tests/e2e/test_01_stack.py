"""The stack's shape: start-up order, schema, users, and what the images hold."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime

import pytest

from .conftest import Stack

pytestmark = pytest.mark.e2e


def docker_time(value: str) -> datetime:
    """Parse docker's RFC 3339 timestamps (nanoseconds, Z) into an aware datetime."""
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", value).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed)


def test_migrate_exited_zero_before_web_started(stack: Stack) -> None:
    [migrate] = stack.container_ids("migrate")
    [web] = stack.container_ids("web")
    migrate_state = stack.inspect(migrate)["State"]
    web_state = stack.inspect(web)["State"]
    assert migrate_state["Status"] == "exited"
    assert migrate_state["ExitCode"] == 0
    assert docker_time(migrate_state["FinishedAt"]) <= docker_time(web_state["StartedAt"])


def test_migrations_created_the_tables(stack: Stack) -> None:
    tables = stack.exec("db", 'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -At -c "\\dt"')
    names = {line.split("|")[1] for line in tables.splitlines() if "|" in line}
    assert {"alembic_version", "users"} <= names
    version = stack.exec(
        "db", 'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -At -c "select * from alembic_version"'
    )
    assert version.strip(), "alembic_version is empty: no migration was applied"


@pytest.mark.parametrize("service", ["web", "db", "redis"])
def test_service_processes_run_as_non_root(stack: Stack, service: str) -> None:
    uids = stack.exec(service, "awk '/^Uid:/ {print $2}' /proc/1/status; id -u")
    pid1_uid = uids.split()[0]
    assert pid1_uid != "0", f"{service} runs its main process as root"


def test_web_exec_user_is_not_root(stack: Stack) -> None:
    assert stack.exec("web", "id -u").strip() == "10001"


def test_nginx_workers_run_as_non_root(stack: Stack) -> None:
    # The master keeps root to bind 443 and read the key; every worker must not.
    script = (
        "for p in /proc/[0-9]*; do "
        'grep -q "^nginx: worker" $p/cmdline 2>/dev/null && awk "/^Uid:/ {print \\$2}" $p/status; '
        "done; true"
    )
    worker_uids = stack.exec("nginx", script).split()
    assert worker_uids, "no nginx worker found"
    assert "0" not in worker_uids


def run_in_image(stack: Stack, script: str) -> str:
    """Run a shell snippet in a throwaway container of the web image (no entrypoint)."""
    return subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "sh", stack.env["WEB_IMAGE"], "-c", script],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_web_image_holds_no_local_files(stack: Stack) -> None:
    top = run_in_image(stack, "ls -A /app").split()
    assert {"wsgi.py", "gunicorn.conf.py", "app", "migrations"} <= set(top)
    leaked = run_in_image(
        stack,
        "find /app -name .env -o -name '.env.*' -o -name .git -o -name tests "
        "-o -name '*.pem' -o -name '*.key'",
    )
    assert leaked.split() == []


def test_web_image_has_no_compiler(stack: Stack) -> None:
    assert run_in_image(stack, "command -v gcc cc g++ make || true").strip() == ""


def test_readiness_sees_postgres_redis_and_the_schema(stack: Stack) -> None:
    # The published ports are nginx's only: db and redis answer web, not the host.
    resp = stack.session().get(stack.base_url + "/readyz", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["checks"] == {"postgres": "ok", "redis": "ok", "schema": "ok"}
    published = stack.compose("ps", "--format", "{{.Service}} {{.Ports}}")
    for line in published.splitlines():
        service, _, ports = line.partition(" ")
        if service != "nginx":
            assert "->" not in ports, f"{service} publishes a port: {ports}"


def test_redis_needs_the_password_and_keeps_it_out_of_argv(stack: Stack) -> None:
    anonymous = stack.exec("redis", "redis-cli ping 2>&1 || true")
    assert "NOAUTH" in anonymous
    password = stack.exec("redis", "cat /run/secrets/redis/admin_password")
    assert len(password) >= 32
    argv = stack.exec("redis", "tr '\\0' ' ' < /proc/1/cmdline")
    assert password not in argv


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("maxmemory-policy", "noeviction"), ("appendonly", "yes"), ("appendfsync", "everysec")],
)
def test_redis_memory_and_persistence_settings(stack: Stack, setting: str, expected: str) -> None:
    assert stack.redis("config", "get", setting).split() == [setting, expected]


def test_web_secrets_are_files_only_the_app_user_can_read(stack: Stack) -> None:
    modes = stack.exec("web", "stat -c '%a %u %n' /run/secrets/app/*").splitlines()
    names = {line.rsplit("/", 1)[1] for line in modes}
    assert names == {
        "secret_key",
        "postgres_app_password",
        "redis_password",
        "redis_jobs_password",
        "mfa_encryption_key",
    }
    assert all(line.startswith("440 10001 ") for line in modes), modes
    environment = stack.exec("web", "tr '\\0' '\\n' < /proc/1/environ")
    assert "SECRET_KEY_FILE=" in environment or "SECRET_KEY=" in environment
    # Passwords stay in their files: the app reads them (web/app/config.py).
    assert "POSTGRES_PASSWORD=" not in environment and "REDIS_PASSWORD=" not in environment


WEB_ROLE_PROBE = """
import sqlalchemy as sa
from app.config import load_config
with sa.create_engine(load_config()["SQLALCHEMY_DATABASE_URI"]).connect() as c:
    print(c.exec_driver_sql("SELECT current_user").scalar())
    try:
        c.exec_driver_sql("CREATE TABLE intruder (id int)")
        print("created")
    except sa.exc.ProgrammingError:
        print("refused")
"""


def test_web_logs_in_as_a_role_that_cannot_change_the_schema(stack: Stack) -> None:
    assert "postgres_password" not in stack.exec("web", "ls /run/secrets/app").split()
    out = stack.exec("web", f"python -c '{WEB_ROLE_PROBE}'").split()
    assert out == ["app_web", "refused"]


APP_REDIS_PROBE = """
import redis
from app.config import load_config
r = redis.Redis.from_url(load_config()["REDIS_URL"])
r.set("session:acl-probe", "1", ex=5)
print("data-ok")
script = r.register_script("return redis.call([[GET]], KEYS[1])")
print("script-ok" if script(["session:acl-probe"]) == b"1" else "script-wrong")
forbidden = (("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("GET", "other:key"),
             ("EVAL", "return 1", "0"), ("SCRIPT", "FLUSH"), ("FUNCTION", "LIST"))
for command in forbidden:
    try:
        r.execute_command(*command)
        print("allowed", command[0])
    except redis.exceptions.NoPermissionError:
        print("denied")
"""


def test_the_apps_redis_user_cannot_flush_configure_or_list_keys(stack: Stack) -> None:
    out = stack.exec("web", f"python -c '{APP_REDIS_PROBE}'").split()
    assert out == ["data-ok", "script-ok", *["denied"] * 7]
    assert "PONG" in stack.redis("ping", user="probe")
    assert "NOPERM" in stack.redis("get", "session:acl-probe", user="probe")


WEB_AUDIT_PROBE = """
import sqlalchemy as sa
from app.config import load_config
with sa.create_engine(load_config()["SQLALCHEMY_DATABASE_URI"]).connect() as c:
    for statement in ("DELETE FROM auth_events", "UPDATE auth_events SET event = 1",
                      "CREATE TEMPORARY TABLE t (id int)"):
        try:
            c.exec_driver_sql(statement)
            print("allowed")
        except sa.exc.ProgrammingError:
            print("refused")
        c.rollback()
"""


def test_web_cannot_rewrite_the_audit_trail_nor_make_temporary_tables(stack: Stack) -> None:
    out = stack.exec("web", f"python -c '{WEB_AUDIT_PROBE}'").split()
    assert out == ["refused"] * 3


def psql(stack: Stack, query: str) -> str:
    return stack.exec("db", f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -At -c "{query}"')


def test_migrations_ran_as_an_owner_that_is_not_superuser(stack: Stack) -> None:
    owners = set(
        psql(stack, "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'").split()
    )
    assert owners == {"app_owner"}
    roles = psql(
        stack, "SELECT rolname, rolsuper FROM pg_roles WHERE rolname LIKE 'app%' ORDER BY 1"
    )
    assert roles.split() == ["app|t", "app_owner|f", "app_web|f"]  # app: bootstrap only
    verifiers = psql(stack, "SELECT rolpassword FROM pg_authid WHERE rolname LIKE 'app_%'")
    assert all(v.startswith("SCRAM-SHA-256$") for v in verifiers.split())


def test_housekeeping_pruned_at_start_as_the_owner_and_stops_on_sigterm(stack: Stack) -> None:
    logs = stack.compose("logs", "--no-color", "housekeeping")
    assert "auth_events: deleted" in logs, logs
    assert stack.exec("housekeeping", "id -u").strip() == "10001"
    [container] = stack.container_ids("housekeeping")
    stack.compose("stop", "-t", "10", "housekeeping", timeout=30)
    state = stack.inspect(container)["State"]
    assert state["ExitCode"] == 0, state  # SIGTERM, not the SIGKILL after 10 s
    stack.compose("start", "housekeeping")


def test_web_root_filesystem_is_read_only(stack: Stack) -> None:
    out = stack.exec("web", "touch /app/probe 2>&1 || echo refused")
    assert "refused" in out
