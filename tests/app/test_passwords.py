"""Password rules after NIST SP 800-63B / OWASP ASVS 5."""

from __future__ import annotations

import pytest
from app.passwords import common_passwords, password_problem


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("seven77", "at least 8 characters"),
        ("x" * 73, "at most 72 bytes"),
        ("ü" * 37, "at most 72 bytes"),  # 37 characters, 74 bytes
        ("password", "too common"),
        ("PASSWORD", "too common"),
        ("iloveyou", "too common"),
    ],
)
def test_refused_passwords(password, problem):
    assert problem in password_problem(password)


@pytest.mark.parametrize(
    "password", ["abcdefgh-unlikely", "x" * 72, "ü" * 36, "only lowercase words here", "😀" * 18]
)
def test_accepted_passwords_need_no_composition_rules(password):
    assert password_problem(password) is None


def test_the_shipped_list_is_big_and_local():
    assert len(common_passwords()) >= 9000


def test_passwords_are_hashed_and_checked_at_the_lowest_cpu_priority(make_app, monkeypatch):
    """bcrypt yields the CPU to request handling: its threads run at a higher niceness."""
    import os
    import threading

    from app.extensions import bcrypt
    from app.passwords import HASHING_NICE
    from helpers import Auth

    seen: list[tuple[str, int]] = []

    def watched(method):
        def run(*args):
            priority = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            seen.append((method.__name__, priority))
            return method(*args)

        return run

    for name in ("generate_password_hash", "check_password_hash"):
        monkeypatch.setattr(bcrypt, name, watched(getattr(bcrypt, name)))
    auth = Auth(make_app().test_client())
    assert auth.register().status_code == 302
    assert auth.login().status_code == 302
    assert {name for name, _ in seen} == {"generate_password_hash", "check_password_hash"}
    assert {priority for _, priority in seen} == {HASHING_NICE}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < HASHING_NICE


def test_a_login_beyond_the_in_flight_bound_is_answered_at_once(make_app, caplog):
    """By default a login never waits for a hashing slot, holding a thread reads need; the
    refusal is load shed on purpose: one warning line, no traceback."""
    import logging

    from helpers import Auth

    app = make_app(BCRYPT_MAX_CONCURRENCY=1)
    assert app.config["BCRYPT_SLOT_WAIT"] == 0  # no wait at all, by default
    auth = Auth(app.test_client())
    assert auth.register().status_code == 302
    slots = app.extensions["hashing_slots"]
    slots.acquire()  # another login is in flight
    try:
        with caplog.at_level(logging.WARNING, logger="app"):
            response = Auth(app.test_client()).login()
    finally:
        slots.release()
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    [record] = [r for r in caplog.records if "login service" in r.getMessage()]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert auth.login().status_code == 302


def test_a_refused_login_does_no_other_work(make_app, redis_client):
    """The refusal comes before rate limits and lookups: a flood of them costs little."""
    from app.extensions import db
    from helpers import Auth
    from sqlalchemy import event

    app = make_app(BCRYPT_MAX_CONCURRENCY=1)
    auth = Auth(app.test_client())
    assert auth.register().status_code == 302
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    slots = app.extensions["hashing_slots"]
    slots.acquire()  # another login is in flight
    event.listen(engine, "before_cursor_execute", count)
    try:
        redis_client.config_resetstat()
        response = Auth(app.test_client()).login()
        commands = redis_client.info("commandstats")
    finally:
        event.remove(engine, "before_cursor_execute", count)
        slots.release()
    assert response.status_code == 503
    assert statements == []
    assert not [name for name in commands if "eval" in name or "incr" in name], commands
