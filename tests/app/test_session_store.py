"""The session store's contract: one Redis command per read, no resurrection, no visitor keys.

Counted on the real servers: Redis `INFO commandstats`, SQLAlchemy's cursor events.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import psycopg
import pytest
import redis
from app.extensions import db
from app.sessions import INDEX_PREFIX, session_handle
from helpers import PASSWORD, Auth, Client
from sqlalchemy import event

JSON = {"Accept": "application/json"}


def session_keys(redis_client: redis.Redis) -> list[str]:
    return sorted(k.decode() for k in redis_client.scan_iter("session:*"))


def commands_since_reset(redis_client: redis.Redis) -> Counter[str]:
    """Return the commands Redis ran since CONFIG RESETSTAT, by name (ours left out)."""
    stats = redis_client.info("commandstats")
    return Counter(
        {
            name.removeprefix("cmdstat_"): value["calls"]
            for name, value in stats.items()
            if not name.startswith(("cmdstat_config", "cmdstat_info"))
        }
    )


def client_of(app: Any) -> Client:
    return app.test_client()  # type: ignore[no-any-return]


def test_anonymous_form_loads_store_nothing_and_login_creates_one_session(client, redis_client):
    Auth(client).register("alice")
    redis_client.flushdb()  # registering counted a POST against the rate limit
    for path in ("/login", "/register", "/preferences"):
        assert client.get(path).status_code == 200
    assert redis_client.keys("*") == []
    assert client.cookie("__Host-visitor") and client.cookie("__Host-session") is None
    Auth(client).login("alice")
    sid = client.cookie("__Host-session")
    assert session_keys(redis_client) == [f"session:{sid}"]
    assert redis_client.zrange(f"{INDEX_PREFIX}1", 0, -1) == [sid.encode()]


def test_a_read_only_signed_in_request_costs_one_redis_command(client, auth, redis_client):
    auth.signed_in("alice")
    assert client.get("/dashboard").status_code == 200
    redis_client.config_resetstat()
    for _ in range(100):
        assert client.get("/dashboard").status_code == 200
    commands = commands_since_reset(redis_client)
    assert commands["get"] == 100  # each request loaded its session...
    assert sum(commands.values()) <= 100, commands  # ...and did nothing else


def test_the_session_is_touched_once_per_touch_interval(app, client, auth, redis_client, clock):
    auth.signed_in("alice")
    redis_client.config_resetstat()
    clock.advance(app.config["SESSION_TOUCH_INTERVAL"] - 1)
    client.get("/dashboard")
    assert commands_since_reset(redis_client)["evalsha"] == 0
    clock.advance(1)
    client.get("/dashboard")
    client.get("/dashboard")
    assert commands_since_reset(redis_client)["evalsha"] == 1


def test_dashboard_makes_one_database_query(app, client, auth):
    auth.signed_in("alice")
    for name in ("Bob", "Carol"):
        client.post_form("/people/new", {"name": name})
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get("/dashboard")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert "You have 2 people" in response.get_data(as_text=True)
    assert len(statements) == 1, statements


def test_the_account_page_reads_three_statements_on_one_connection_and_no_transaction(
    app, client, auth
):
    """Account, remembered devices, recent events: no BEGIN/ROLLBACK, one pool checkout."""
    auth.signed_in("alice", remember=True)
    seen: list[tuple[int, Any]] = []

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        raw = conn.connection.dbapi_connection
        seen.append((id(raw), raw.info.transaction_status))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", after)
    try:
        page = client.get("/account").get_data(as_text=True)
    finally:
        event.remove(engine, "after_cursor_execute", after)
    assert "alice@example.com" in page and "(this device)" in page and "Logged in" in page
    assert len(seen) == 3 and len({connection for connection, _ in seen}) == 1, seen
    assert all(status == psycopg.pq.TransactionStatus.IDLE for _, status in seen), seen


@pytest.mark.parametrize("path", ["/dashboard", "/people"])
def test_signed_in_pages_read_with_one_statement_and_no_transaction(app, client, auth, path):
    """No BEGIN before the page's SELECT and no ROLLBACK after it: two round trips saved."""
    auth.signed_in("alice")
    client.post_form("/people/new", {"name": "Bob"})
    seen: list[tuple[str, Any]] = []

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # A BEGIN would have left the server-side transaction open after the statement.
        seen.append((statement, conn.connection.dbapi_connection.info.transaction_status))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", after)
    try:
        response = client.get(path)
    finally:
        event.remove(engine, "after_cursor_execute", after)
    assert response.status_code == 200 and "Bob" in response.get_data(as_text=True)
    assert len(seen) == 1, seen
    assert seen[0][1] == psycopg.pq.TransactionStatus.IDLE, seen


def cut_redis_during(app: Any, path: str) -> dict[str, Any]:
    """Point the app's Redis client at a closed port once `path` has loaded its session."""
    store = app.extensions["redis"]
    state = {"cut": True, "pool": store.connection_pool}
    dead = redis.ConnectionPool.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)

    @app.before_request
    def cut() -> None:
        from flask import request

        if state["cut"] and request.path == path:
            store.connection_pool = dead

    return state


@pytest.mark.parametrize("wants_json", [False, True])
def test_a_redis_failure_while_saving_is_a_503_and_recovery_is_automatic(
    make_app, clock, wants_json
):
    app = make_app()
    Auth(laptop := client_of(app)).signed_in("alice")
    broken = make_app()
    state = cut_redis_during(broken, "/dashboard")
    probe = client_of(broken)
    probe.set_cookie("__Host-session", laptop.cookie("__Host-session"), domain="localhost")
    clock.advance(broken.config["SESSION_TOUCH_INTERVAL"])  # this request must write
    response = probe.get("/dashboard", headers=dict(JSON) if wants_json else {})
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    if wants_json:
        assert response.get_json()["status"] == 503
    else:
        assert "unavailable" in response.get_data(as_text=True)
    broken.extensions["redis"].connection_pool = state["pool"]  # Redis is back
    state["cut"] = False
    assert probe.get("/dashboard").status_code == 200


def test_a_request_in_flight_when_its_session_ends_does_not_bring_it_back(
    make_app, clock, redis_client
):
    app = make_app(SESSION_TOUCH_INTERVAL=0)  # every request writes
    Auth(laptop := client_of(app)).signed_in("alice")
    sid = laptop.cookie("__Host-session")
    racing = make_app(SESSION_TOUCH_INTERVAL=0)

    @racing.before_request
    def end_it_meanwhile() -> None:
        from app.sessions import end_sessions_of

        end_sessions_of(1)  # after this request loaded the session, before it saves

    copy = client_of(racing)
    copy.set_cookie("__Host-session", sid, domain="localhost")
    assert copy.get("/dashboard").status_code == 200  # it was signed in when it started
    assert not redis_client.exists(f"session:{sid}")
    assert redis_client.zscore(f"{INDEX_PREFIX}1", sid) is None
    assert copy.cookie("__Host-session") is None  # and the browser was told to drop it
    assert copy.cookie("__Host-visitor") is None  # none of its data moved into a cookie
    assert copy.get("/dashboard").status_code == 302


class Copies:
    """Threads that request /dashboard with a copy of one session cookie until stopped."""

    def __init__(self, app: Any, sid: str, threads: int = 4) -> None:
        self.app, self.sid, self.done = app, sid, threading.Event()
        self.requests, self.statuses = threading.Condition(), Counter[int]()
        self.threads = [threading.Thread(target=self.loop) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def loop(self) -> None:
        client = self.app.test_client(use_cookies=False)
        cookie = {"Cookie": f"__Host-session={self.sid}"}
        while not self.done.is_set():
            status = client.get("/dashboard", headers=cookie).status_code
            with self.requests:
                self.statuses[status] += 1
                self.requests.notify_all()

    def wait_for_more(self, count: int) -> None:
        with self.requests:
            target = self.statuses.total() + count
            assert self.requests.wait_for(lambda: self.statuses.total() >= target, timeout=30)

    def stop(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=30)


def end_by(how: str, app: Any, laptop: Client, phone: Client, sid: str, token: str) -> None:
    """End the laptop's session the way `how` says, from the laptop, the phone or the CLI."""
    if how == "logout":
        assert laptop.post("/logout", data={"csrf_token": token}).status_code == 302
    elif how == "end-from-another-device":
        path = f"/account/sessions/{session_handle(sid)}/end"
        assert phone.post_form(path, {}, form_page="/account").status_code == 302
    elif how == "password-change":
        new = "a brand new passphrase"
        form = {"current": PASSWORD, "password": new, "confirm": new}
        assert phone.post_form("/account/password", form).status_code == 302
    else:
        result = app.test_cli_runner().invoke(args=["sessions", "end", "--user", "alice"])
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "how", ["logout", "end-from-another-device", "password-change", "flask-sessions-end"]
)
def test_an_ended_session_stays_ended_while_copies_of_its_cookie_keep_writing(
    make_app, redis_client, how
):
    app = make_app(SESSION_TOUCH_INTERVAL=0)  # every request of a copy writes the session
    laptop, phone = client_of(app), client_of(app)
    Auth(laptop).signed_in("alice")
    Auth(phone).login("alice")
    sid = laptop.cookie("__Host-session")
    # Before the copies start: a copy that loaded the session before the form page created
    # its CSRF secret would write the session back without it (last writer wins).
    token = laptop.csrf_token("/logout")
    copies = Copies(app, sid)
    try:
        copies.wait_for_more(40)
        end_by(how, app, laptop, phone, sid, token)
        copies.wait_for_more(40)  # requests that were in flight, and more after them
    finally:
        copies.stop()
    assert not redis_client.exists(f"session:{sid}")
    assert redis_client.zscore(f"{INDEX_PREFIX}1", sid) is None
    probe = app.test_client(use_cookies=False)
    response = probe.get("/dashboard", headers={"Cookie": f"__Host-session={sid}"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert set(copies.statuses) <= {200, 302}


def test_when_redis_is_full_reads_and_logouts_work_and_logins_get_a_503(make_client, redis_client):
    """`noeviction` (docker-compose.yml): a full Redis refuses writes instead of evicting."""
    reader, newcomer = make_client(), make_client()
    Auth(reader).signed_in("alice")
    token = reader.csrf_token("/logout")
    Auth(newcomer).register("bob")
    newcomer_token = newcomer.csrf_token("/login")
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)
    try:
        assert reader.get("/dashboard").status_code == 200
        form = {"username": "bob", "password": PASSWORD, "csrf_token": newcomer_token}
        login = newcomer.post("/login", data=form)
        assert login.status_code == 503 and login.headers["Retry-After"]
        assert reader.post("/logout", data={"csrf_token": token}).status_code == 302
    finally:
        redis_client.config_set("maxmemory", 0)
    assert session_keys(redis_client) == []
