"""Session lifetimes, the per-user index, the visitor cookie and remember-me, on a fake clock."""

from __future__ import annotations

from app.sessions import INDEX_PREFIX


def sid(client):
    return client.cookie("__Host-session")


def test_anonymous_visitor_who_never_touched_the_session_writes_nothing(client, redis_client):
    response = client.get("/")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert list(redis_client.scan_iter("session:*")) == []


def test_a_visitor_s_form_session_is_a_signed_cookie_that_expires_within_minutes(
    app, client, redis_client
):
    response = client.get("/login")  # the CSRF secret lives in the visitor's session
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-visitor=")
    )
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/" in cookie and "Domain" not in cookie
    assert f"Max-Age={app.config['SESSION_ANONYMOUS_TIMEOUT']}" in cookie
    assert app.config["SESSION_ANONYMOUS_TIMEOUT"] <= 15 * 60
    assert redis_client.keys("*") == []


def test_a_tampered_visitor_cookie_is_ignored(client, auth):
    auth.register("alice")
    token = client.csrf_token("/login")
    value = client.cookie("__Host-visitor")
    client.set_cookie("__Host-visitor", value[:-2] + "xx", domain="localhost")
    data = {"username": "alice", "password": "correct horse battery", "csrf_token": token}
    response = client.post("/login", data=data)
    assert response.status_code == 400  # its CSRF secret is gone, so the token is not accepted


def test_session_cookie_attributes(client, auth):
    auth.register("alice")
    response = auth.login("alice")
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-session=")
    )
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/" in cookie and "Domain" not in cookie
    assert len(sid(client)) >= 32  # an opaque random id, nothing else


def test_the_cookie_carries_only_an_opaque_id(client, auth, redis_client):
    auth.signed_in("alice")
    value = sid(client)
    assert "alice" not in value and "." not in value
    assert redis_client.exists(f"session:{value}")


def test_signed_in_session_ttl_is_the_idle_timeout(app, client, auth, redis_client):
    auth.signed_in("alice")
    ttl = redis_client.ttl(f"session:{sid(client)}")
    assert app.config["SESSION_IDLE_TIMEOUT"] - 5 <= ttl <= app.config["SESSION_IDLE_TIMEOUT"]


def test_idle_timeout_makes_the_session_anonymous(app, client, auth, clock):
    auth.signed_in("alice")
    clock.advance(app.config["SESSION_IDLE_TIMEOUT"] - 10)
    assert client.get("/dashboard").status_code == 200  # activity slides the idle window
    clock.advance(app.config["SESSION_IDLE_TIMEOUT"] - 10)
    assert client.get("/dashboard").status_code == 200
    clock.advance(app.config["SESSION_IDLE_TIMEOUT"] + 1)
    response = client.get("/dashboard")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_absolute_lifetime_ends_even_an_active_session(make_app, clock):
    from helpers import Auth

    app = make_app(SESSION_IDLE_TIMEOUT=600, SESSION_ABSOLUTE_TIMEOUT=1800)
    client = app.test_client()
    Auth(client).signed_in("alice")
    for _ in range(5):  # active every 5 minutes for 25 minutes: still in
        clock.advance(300)
        assert client.get("/dashboard").status_code == 200
    clock.advance(301)  # past 30 minutes since login
    assert client.get("/dashboard").status_code == 302


def test_ttl_never_exceeds_what_is_left_of_the_absolute_lifetime(make_app, clock):
    from helpers import Auth

    app = make_app(SESSION_IDLE_TIMEOUT=600, SESSION_ABSOLUTE_TIMEOUT=900)
    client = app.test_client()
    Auth(client).signed_in("alice")
    for _ in range(2):
        clock.advance(400)
        assert client.get("/dashboard").status_code == 200
    ttl = app.extensions["redis"].ttl(f"session:{client.cookie('__Host-session')}")
    assert 0 < ttl <= 100


def test_user_index_lists_sessions_and_expires_with_the_last_one(app, make_client, redis_client):
    from helpers import Auth

    laptop, phone = make_client("laptop"), make_client("phone")
    Auth(laptop).signed_in("alice")
    Auth(phone).login("alice")
    members = {m.decode() for m in redis_client.zrange(f"{INDEX_PREFIX}1", 0, -1)}
    assert members == {sid(laptop), sid(phone)}
    index_ttl = redis_client.ttl(f"{INDEX_PREFIX}1")
    session_ttls = [redis_client.ttl(f"session:{sid(c)}") for c in (laptop, phone)]
    assert max(session_ttls) - 2 <= index_ttl <= max(session_ttls) + 1


def test_remember_me_restores_the_user_after_the_session_expires(app, client, auth, clock):
    auth.signed_in("alice", remember=True)
    old = sid(client)
    clock.advance(app.config["SESSION_IDLE_TIMEOUT"] + 1)
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert "Welcome alice!" in response.get_data(as_text=True)
    assert sid(client) != old  # a new, tracked session was started


def test_without_remember_me_an_expired_session_stays_logged_out(app, client, auth, clock):
    auth.signed_in("alice")
    clock.advance(app.config["SESSION_IDLE_TIMEOUT"] + 1)
    assert client.get("/dashboard").status_code == 302


def test_remember_cookie_attributes_and_lifetime(app, client, auth):
    auth.register("alice")
    response = auth.login("alice", remember=True)
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-remember=")
    )
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/" in cookie and "Domain" not in cookie
    assert "Max-Age=1209600" in cookie or "Expires=" in cookie  # 14 days by default


def test_remember_cookie_replayed_after_logout_logs_nobody_in(client, auth, make_client):
    auth.signed_in("alice", remember=True)
    stolen = client.cookie("__Host-remember")
    auth.logout()
    thief = make_client()
    thief.set_cookie("__Host-remember", stolen, domain="localhost")
    assert thief.get("/dashboard").status_code == 302


def test_remember_cookie_still_works_for_a_fresh_browser_before_revocation(
    client, auth, make_client
):
    auth.signed_in("alice", remember=True)
    copied = client.cookie("__Host-remember")
    other = make_client()
    other.set_cookie("__Host-remember", copied, domain="localhost")
    assert other.get("/dashboard").status_code == 200  # the control for the test above


def test_a_remembered_login_is_not_fresh(app, client, auth, clock):
    auth.signed_in("alice", remember=True)
    clock.advance(app.config["SESSION_IDLE_TIMEOUT"] + 1)
    assert client.get("/dashboard").status_code == 200
    response = client.get("/account/password")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_session_store_down_is_a_quick_503_not_a_hang(make_app, auth):
    from helpers import Auth

    app = make_app()
    client = app.test_client()
    Auth(client).signed_in("alice")
    broken = make_app(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_STORAGE_URI="memory://")
    probe = broken.test_client()
    probe.set_cookie("__Host-session", client.cookie("__Host-session"), domain="localhost")
    response = probe.get("/dashboard")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "unavailable" in response.get_data(as_text=True)
    assert probe.get("/healthz").status_code == 200
