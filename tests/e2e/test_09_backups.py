"""Backups on the real stack (pgBackRest, backup/): restore to a moment, restore the latest
state without losing a committed transaction, and keep every WAL segment while the
repository is away, with the alert firing meanwhile.

A stack of its own with the monitoring profile (the alert is Prometheus'), started once for
this file; the tests run in order on it, each restore on top of the last. Named to run before
the mail files (test_12, test_13): their session-scoped stack, the main one and this one
together need more networks than Docker's 31 default address pools hold.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from .conftest import TEST_PASSWORD, Stack, new_username, running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, "bak", profiles=("monitoring",)) as stack:
        yield stack


def make(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    result = stack.make(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def signs_in(stack: Stack, username: str) -> bool:
    with stack.session() as client:
        form = {"username": username, "password": TEST_PASSWORD}
        return f"Welcome {username}!" in stack.post_form(client, "/login", form).text


def register(stack: Stack) -> str:
    username = new_username()
    with stack.session() as client:
        stack.register(client, username)
    return username


def sql(stack: Stack, statement: str) -> str:
    command = f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -Atc "{statement}"'
    return stack.exec("db", command).strip()


def alerts(stack: Stack) -> dict[str, str]:
    """Prometheus' alerts by name: their state (pending or firing)."""
    with requests.Session() as client:
        client.trust_env = False
        url = f"http://127.0.0.1:{stack.env['PROMETHEUS_PORT']}/api/v1/alerts"
        body = client.get(url, timeout=10).json()
    return {a["labels"]["alertname"]: a["state"] for a in body["data"]["alerts"]}


def wait_until(condition, timeout: float, what: str, diagnose=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}\n{diagnose()}"
            )
        time.sleep(3)


def archiver(stack: Stack) -> str:
    """What PostgreSQL's archiver did, and its last log lines: for a failure's message."""
    state = sql(
        stack,
        "SELECT archived_count, failed_count, last_archived_wal, last_failed_wal,"
        " last_archived_time, last_failed_time FROM pg_stat_archiver",
    )
    waiting = sql(stack, "SELECT string_agg(name, ' ') FROM pg_ls_archive_statusdir()")
    logs = stack.compose("logs", "--no-color", "--tail", "15", "db", "backup", check=False)
    return f"pg_stat_archiver: {state}\narchive_status: {waiting}\n{logs}"


def test_a_new_stack_backs_itself_up_and_proves_the_backup_restores(backed: Stack) -> None:
    # No schedule to wait for: the first start takes a full backup and restore-tests it.
    wait_until(
        lambda: "restore test passed" in backed.compose("logs", "backup", check=False),
        240,
        "the first backup and its restore test",
    )
    listed = make(backed, "backups").stdout
    assert "full backup:" in listed and "status: ok" in listed
    tested = make(backed, "restore-test")
    assert "restore test passed" in tested.stderr
    assert "schema at head" in tested.stderr


def test_restore_to_a_time_keeps_exactly_the_accounts_from_before_it(backed: Stack) -> None:
    with backed.session() as before:
        kept = new_username()
        backed.register(before, kept)
        backed.login(before, kept, remember=True)
        make(backed, "backup")
        also_kept = register(backed)
        time.sleep(1.5)
        moment = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        time.sleep(1.5)
        gone = register(backed)

        restored = make(backed, "restore", f"TIME={moment}")
        assert f"restored to {moment}" in restored.stdout

        # Every session and remember-me cookie from before the restore is ended.
        dashboard = before.get(backed.base_url + "/dashboard", timeout=10, allow_redirects=False)
        assert dashboard.status_code == 302, "a session survived the restore"
    assert signs_in(backed, kept)
    assert signs_in(backed, also_kept)
    assert not signs_in(backed, gone), "an account made after TIME survived the restore"
    with backed.session() as client:
        assert client.get(backed.base_url + "/", timeout=10).status_code == 200


def test_make_restore_loses_nothing_committed_before_it_started(backed: Stack) -> None:
    # Committed a moment before the restore: in a WAL segment not yet full, so not archived
    # yet. The restore switches segments and waits for the archive before it stops db.
    last = register(backed)
    restored = make(backed, "restore")
    assert "restored to the latest state" in restored.stdout
    assert signs_in(backed, last)


def test_restore_refuses_a_time_it_cannot_reach_and_touches_nothing(backed: Stack) -> None:
    refused = backed.make("restore", "TIME=2999-01-01T00:00:00Z")
    assert refused.returncode != 0
    [line] = [text for text in refused.stderr.splitlines() if text.startswith("restore refused")]
    assert "is in the future" in line
    assert backed.running("web"), "a refused restore stopped web"


def test_wal_waits_for_a_killed_repository_and_the_alert_fires_meanwhile(backed: Stack) -> None:
    backed.compose("kill", "backup")
    try:
        written = register(backed)
        sql(backed, "SELECT pg_switch_wal()")  # the segment holding it is now due
        wait_until(
            lambda: alerts(backed).get("WALArchiveFailing") == "firing",
            300,
            "WALArchiveFailing to fire",
            lambda: archiver(backed),
        )
        ready = sql(
            backed, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
        )
        assert int(ready) >= 1, "PostgreSQL did not keep the unarchived segment"
    finally:
        backed.up("backup")
    wait_until(
        lambda: sql(backed, "SELECT count(*) FROM pg_ls_archive_statusdir()"
                    " WHERE name LIKE '%.ready'") == "0",
        240,
        "the kept segments to be archived",
        lambda: archiver(backed),
    )  # fmt: skip
    make(backed, "restore")
    assert signs_in(backed, written), "a transaction archived late was lost"
