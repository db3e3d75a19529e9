"""`flask auth-events prune`: the audit trail keeps AUTH_EVENTS_RETENTION_DAYS, no more."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from app.extensions import db
from app.models import AuthEvent, User
from app.retention import prune, run_every
from helpers import Auth

WEB = Path(__file__).resolve().parents[2] / "web"
DAY = 86400.0


def add_events(app, clock, *ages_in_days: float) -> None:
    """Store one auth event per age, as old as that by the app's (fake) clock."""
    now = datetime.fromtimestamp(clock(), UTC)
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id))
        for age in ages_in_days:
            created = now - timedelta(days=age)
            db.session.add(AuthEvent(user_id=user_id, event="login", created_at=created))
        db.session.commit()


def ages(app, clock) -> list[int]:
    """Return the stored events' ages in whole days, by the app's clock, oldest first."""
    now = datetime.fromtimestamp(clock(), UTC)
    with app.app_context():
        times = db.session.scalars(sa.select(AuthEvent.created_at).order_by(AuthEvent.created_at))
        return [(now - t).days for t in times]


@pytest.fixture
def user(client):
    Auth(client).register("alice")
    with client.application.app_context():
        db.session.execute(sa.delete(AuthEvent))  # only the events the test stores
        db.session.commit()


def test_prune_deletes_what_is_older_than_90_days_by_the_clock(app, clock, user):
    assert app.config["AUTH_EVENTS_RETENTION_DAYS"] == 90
    add_events(app, clock, 400, 91, 89, 1)
    result = app.test_cli_runner().invoke(args=["auth-events", "prune"])
    assert result.exit_code == 0, result.output
    assert "deleted 2 row(s)" in result.output
    assert ages(app, clock) == [89, 1]
    clock.advance(2 * DAY)  # what was 89 days old is now 91
    result = app.test_cli_runner().invoke(args=["auth-events", "prune"])
    assert "deleted 1 row(s)" in result.output
    assert ages(app, clock) == [3]


def test_the_window_is_a_setting(make_app, clock, user):
    app = make_app(AUTH_EVENTS_RETENTION_DAYS=7)
    add_events(app, clock, 8, 6)
    assert app.test_cli_runner().invoke(args=["auth-events", "prune"]).exit_code == 0
    assert ages(app, clock) == [6]


def test_prune_works_through_any_number_of_batches(app, clock, user):
    add_events(app, clock, *[100 + n for n in range(5)], 10)
    with app.app_context():
        assert prune(batch=2) == 5
    assert ages(app, clock) == [10]


def test_the_repeating_prune_runs_at_once_and_stops_when_told(app, clock, user, tmp_path):
    add_events(app, clock, 100)
    stop, done = threading.Event(), threading.Event()
    heartbeat = tmp_path / "pruned"

    def loop() -> None:
        with app.app_context():
            run_every(24, stop, heartbeat)
        done.set()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while ages(app, clock) and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    assert ages(app, clock) == []  # the first run does not wait for the interval
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while not heartbeat.exists() and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    assert heartbeat.exists()  # healthy: the last run succeeded
    stop.set()
    assert done.wait(5), "the loop did not stop"


def test_the_housekeeping_process_stops_cleanly_on_sigterm(base_config, redis_url):
    env = {
        "PATH": os.environ["PATH"],
        "FLASK_APP": "wsgi",
        "APP_ENV": "testing",
        "LOG_FORMAT": "text",
        "SECRET_KEY": base_config["SECRET_KEY"],
        "DATABASE_URL": base_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": redis_url,
    }
    with subprocess.Popen(
        [sys.executable, "-m", "flask", "auth-events", "prune", "--every", "6"],
        cwd=WEB, env=env, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stderr is not None
            lines = []
            for line in proc.stderr:  # the first run is over once it reports
                lines.append(line)
                if "deleted" in line or "prune failed" in line:
                    break
            assert any("deleted" in line for line in lines), lines
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert "auth_events: stopped" in proc.stderr.read()
        finally:
            proc.kill()


def test_a_failed_run_clears_the_heartbeat_and_is_retried_soon(
    make_app, tmp_path, monkeypatch, caplog
):
    import app.retention as retention

    monkeypatch.setattr(retention, "RETRY_SECONDS", 0.05)
    down = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://x:y@127.0.0.1:1/none")
    heartbeat = tmp_path / "pruned"
    heartbeat.touch()  # the previous run had succeeded
    stop = threading.Event()

    def loop() -> None:
        with down.app_context():
            run_every(6, stop, heartbeat)

    thread = threading.Thread(target=loop, daemon=True)
    with caplog.at_level("WARNING", logger="app.retention"):
        thread.start()
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while len(caplog.records) < 2 and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
        stop.set()
        thread.join(5)
    assert len(caplog.records) >= 2  # retried within seconds, not in 6 hours
    assert "prune failed" in caplog.records[0].getMessage()
    assert not heartbeat.exists()  # unhealthy until a run succeeds
