"""Register, log in and log out through the real forms, sessions in the real Redis."""

from __future__ import annotations

import threading

import pytest
from app.extensions import db
from app.models import User
from helpers import PASSWORD, Auth


def session_keys(redis_client):
    return sorted(k.decode() for k in redis_client.scan_iter("session:*"))


# --- register -------------------------------------------------------------------------------


def test_register_creates_account_and_leads_to_login(client, auth, app):
    response = auth.register("alice")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert user.username == "alice"
        assert user.password_hash.startswith("$2b$04$")
        assert PASSWORD not in user.password_hash
    assert "Your account is ready" in client.get("/login").get_data(as_text=True)


def test_register_does_not_log_the_password(auth, caplog):
    caplog.set_level("DEBUG")
    auth.register("alice")
    assert "account created" in caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("username", "password", "confirm", "message"),
    [
        ("", PASSWORD, PASSWORD, "This field is required."),
        ("ab", PASSWORD, PASSWORD, "Use 3 to 32 characters."),
        ("a" * 33, PASSWORD, PASSWORD, "Use 3 to 32 characters."),
        ("bad name!", PASSWORD, PASSWORD, "Use letters, digits"),
        ("alice", "short", "short", "at least 8 characters"),
        ("alice", "é" * 37, "é" * 37, "at most 72 bytes"),
        ("alice", "password1", "password1", "too common"),
        ("alice", PASSWORD, PASSWORD + "x", "The passwords do not match."),
        ("Zorglub4711", "zorglub4711", "zorglub4711", "differ from your username"),
    ],
)
def test_register_shows_validation_errors_inline(client, username, password, confirm, message):
    data = {"username": username, "password": password, "confirm": confirm}
    response = client.post_form("/register", data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_register_accepts_non_ascii_username_and_password(client, auth, app):
    assert auth.register("Zoë-Ω", "mot de passe très sûr ✓").status_code == 302
    assert auth.login("zoë-ω", "mot de passe très sûr ✓").status_code == 302
    assert "Welcome Zoë-Ω!" in client.get("/dashboard").get_data(as_text=True)


def test_register_taken_username_is_a_form_error_case_insensitively(client, auth):
    auth.register("alice")
    response = auth.register("ALICE")
    assert response.status_code == 422
    assert "That username is taken." in response.get_data(as_text=True)


def test_register_race_unique_constraint_wins_and_loser_gets_form_error(make_app, monkeypatch):
    """Two registrations of one name at once: one account, the other a form error, no 500."""
    app = make_app()
    import app.auth.service as service

    barrier = threading.Barrier(2, timeout=10)
    real_find = service.find_user

    def find_then_wait(username):
        result = real_find(username)  # both threads see "free" before either commits
        barrier.wait()
        return result

    monkeypatch.setattr(service, "find_user", find_then_wait)
    results: list[int] = []
    bodies: list[str] = []

    def sign_up() -> None:
        client = app.test_client()
        response = Auth(client).register("racer")
        results.append(response.status_code)
        bodies.append(response.get_data(as_text=True))

    threads = [threading.Thread(target=sign_up) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [302, 422]
    assert any("That username is taken." in body for body in bodies)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 1


# --- log in ---------------------------------------------------------------------------------


def test_login_success_goes_to_dashboard_with_welcome(client, auth):
    auth.register("alice")
    response = auth.login("alice")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    assert "Welcome alice!" in client.get("/dashboard").get_data(as_text=True)


def test_login_is_case_insensitive_on_username(client, auth):
    auth.register("Alice")
    assert auth.login("aLiCe").status_code == 302


@pytest.mark.parametrize("username", ["alice", "nobody"])
def test_wrong_password_and_unknown_user_get_the_same_generic_message(auth, username):
    auth.register("alice")
    response = auth.login(username, "wrong password here")
    assert response.status_code == 401
    body = response.get_data(as_text=True)
    assert "Invalid username or password." in body
    assert "unknown" not in body.lower()


def test_unknown_user_costs_the_same_bcrypt_work(auth, monkeypatch):
    """No timing oracle: an unknown username runs one bcrypt check at the configured cost."""
    import flask_bcrypt

    calls: list[str] = []
    real = flask_bcrypt.Bcrypt.check_password_hash

    def spy(self, pw_hash, password):
        calls.append(pw_hash if isinstance(pw_hash, str) else pw_hash.decode())
        return real(self, pw_hash, password)

    monkeypatch.setattr(flask_bcrypt.Bcrypt, "check_password_hash", spy)
    auth.register("alice")
    auth.login("alice", "wrong password here")
    auth.login("nobody", "wrong password here")
    assert len(calls) == 2
    assert calls[0][:7] == calls[1][:7] == "$2b$04$"


def test_login_over_72_bytes_is_a_form_error_not_a_500(auth):
    auth.register("alice")
    response = auth.login("alice", "x" * 73)
    assert response.status_code == 422
    assert "at most 72 bytes" in response.get_data(as_text=True)


def test_login_creates_one_session_and_a_fresh_login_regenerates_its_id(
    app, client, auth, redis_client, clock
):
    auth.register("alice")
    client.get("/login")
    assert client.cookie("__Host-session") is None and session_keys(redis_client) == []
    auth.login("alice", remember=True)
    first = client.cookie("__Host-session")
    assert first and session_keys(redis_client) == [f"session:{first}"]
    clock.advance(app.config["SESSION_IDLE_TIMEOUT"] + 1)
    assert client.get("/dashboard").status_code == 200  # remembered: a new, non-fresh session
    before = client.cookie("__Host-session")
    assert before != first and session_keys(redis_client) == [f"session:{before}"]
    auth.login("alice")  # entering the password again makes it fresh, under a new id
    after = client.cookie("__Host-session")
    assert after and after != before
    assert session_keys(redis_client) == [f"session:{after}"]


def test_a_fixated_session_does_not_become_authenticated(app, client, auth, make_client):
    """An attacker plants their signed-out session in the victim's browser; login drops it."""
    attacker = make_client()
    attacker.get("/login")
    planted = attacker.cookie("__Host-visitor")
    assert planted
    auth.register("victim")
    client.set_cookie("__Host-visitor", planted, domain="localhost")
    auth.login("victim")
    assert client.cookie("__Host-visitor") is None  # deleted at login
    attacker_view = attacker.get("/dashboard")
    assert attacker_view.status_code == 302
    assert attacker_view.headers["Location"].startswith("/login")


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/people", "/people"),
        ("/people?sort=name", "/people?sort=name"),
        ("https://evil.example/", "/dashboard"),
        ("//evil.example/", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("http:/evil.example", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
        ("/%0d%0aLocation:%20https://evil.example", "/%0d%0aLocation:%20https://evil.example"),
    ],
)
def test_login_next_only_allows_same_site_relative_paths(client, auth, next_url, expected):
    from urllib.parse import quote

    auth.register("alice")
    path = f"/login?next={quote(next_url, safe='')}"
    response = client.post_form(path, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_login_required_page_redirects_to_login_with_next(client):
    response = client.get("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fdashboard"


def test_navigation_changes_when_logged_in(client, auth):
    anonymous = client.get("/").get_data(as_text=True)
    assert 'href="/login"' in anonymous and 'href="/dashboard"' not in anonymous
    auth.signed_in("alice")
    signed_in = client.get("/").get_data(as_text=True)
    assert 'href="/dashboard"' in signed_in and 'href="/logout"' in signed_in
    assert 'href="/login"' not in signed_in


# --- CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/register", "/login", "/logout", "/preferences"])
def test_post_without_csrf_token_is_a_400_page(client, path):
    response = client.post(path, data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert "The CSRF token is missing" in response.get_data(as_text=True)


def test_post_with_a_foreign_csrf_token_is_rejected(client, make_client, auth):
    other = make_client()
    token = other.csrf_token("/login")
    response = client.post("/login", data={"csrf_token": token, "username": "a", "password": "b"})
    assert response.status_code == 400


def test_post_from_another_origin_is_rejected_over_https(client):
    token = client.csrf_token("/login")
    response = client.post(
        "/login",
        data={"csrf_token": token, "username": "a", "password": "b"},
        headers={"Referer": "https://evil.example/form"},
    )
    assert response.status_code == 400
    assert "referrer does not match" in response.get_data(as_text=True)


# --- log out --------------------------------------------------------------------------------


def test_get_logout_shows_a_confirmation_form_and_does_not_log_out(client, auth):
    auth.signed_in("alice")
    response = client.get("/logout")
    assert response.status_code == 200
    assert 'action="/logout"' in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 200


def test_logout_deletes_the_redis_session_key(client, auth, redis_client):
    auth.signed_in("alice")
    sid = client.cookie("__Host-session")
    assert redis_client.exists(f"session:{sid}")
    response = auth.logout()
    assert response.status_code == 302
    assert not redis_client.exists(f"session:{sid}")
    assert not redis_client.exists("user-sessions:1")


def test_replayed_session_cookie_after_logout_is_anonymous(client, auth, make_client):
    auth.signed_in("alice")
    stolen = client.cookie("__Host-session")
    auth.logout()
    thief = make_client()
    thief.set_cookie("__Host-session", stolen, domain="localhost")
    response = thief.get("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_logout_clears_the_remember_cookie(client, auth):
    auth.signed_in("alice", remember=True)
    assert client.cookie("__Host-remember")
    response = auth.logout()
    set_cookies = response.headers.getlist("Set-Cookie")
    cleared = [c for c in set_cookies if c.startswith("__Host-remember=")]
    assert cleared and "Expires=Thu, 01 Jan 1970" in cleared[0] and "Secure" in cleared[0]
    assert client.cookie("__Host-remember") is None


@pytest.mark.parametrize("password", [PASSWORD, "wrong password"])
def test_a_login_that_ends_in_an_error_counts_and_creates_no_session(
    make_app, redis_client, monkeypatch, password
):
    """Whatever breaks after the password check (here: the audit write), the attempt counts
    against both budgets and no session or cookie is made."""
    from app import audit

    app = make_app(RATELIMIT_ACCOUNT_FAILURES="1/hour", RATELIMIT_ACCOUNT_ADDRESS_FAILURES="1/hour")
    client = app.test_client()
    Auth(client).register("alice")

    def broken(user, event):
        raise RuntimeError("the audit trail is broken")

    monkeypatch.setattr(audit, "record", broken)
    response = Auth(client).login("alice", password, remember=True)
    assert response.status_code == 500
    assert not [
        c for c in response.headers.getlist("Set-Cookie") if "remember" in c or "session=" in c
    ]
    assert list(redis_client.scan_iter("session:*")) == []
    monkeypatch.undo()
    assert Auth(client).login("alice").status_code == 429  # counted per account and address
    assert Auth(app.test_client()).login("alice").status_code == 429  # and per account
