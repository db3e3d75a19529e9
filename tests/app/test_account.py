"""The account area: sessions you can see and end, password change, deletion, activity."""

from __future__ import annotations

import re

from app.extensions import db
from app.models import AuthEvent, Person, User
from helpers import FIREFOX, PASSWORD, SAFARI, Auth

NEW_PASSWORD = "a much better passphrase"


def two_devices(make_client):
    laptop, phone = make_client(FIREFOX), make_client(SAFARI)
    Auth(laptop).signed_in("alice")
    Auth(phone).login("alice")
    return laptop, phone


def handles(page: str) -> list[str]:
    return re.findall(r'action="/account/sessions/([0-9a-f]{16})/end"', page)


def test_sessions_page_lists_every_device_and_marks_this_one(make_client):
    laptop, _ = two_devices(make_client)
    page = laptop.get("/account").get_data(as_text=True)
    assert "Firefox on Ubuntu" in page and "Mobile Safari on iOS" in page
    assert page.count("(this device)") == 1
    assert (
        page.index("Firefox on Ubuntu") < page.index("(this device)") < page.index("Mobile Safari")
    )
    assert "127.0.0.1" in page
    assert len(handles(page)) == 1  # only the other device has an "End session" button


def test_session_ids_are_never_shown(make_client):
    laptop, phone = two_devices(make_client)
    page = laptop.get("/account").get_data(as_text=True)
    assert laptop.cookie("__Host-session") not in page
    assert phone.cookie("__Host-session") not in page


def test_ending_one_session_logs_that_device_out(make_client, redis_client):
    laptop, phone = two_devices(make_client)
    phone_sid = phone.cookie("__Host-session")
    [handle] = handles(laptop.get("/account").get_data(as_text=True))
    response = laptop.post_form(f"/account/sessions/{handle}/end", {}, form_page="/account")
    assert response.status_code == 302
    assert not redis_client.exists(f"session:{phone_sid}")
    assert phone.get("/dashboard").status_code == 302
    assert laptop.get("/dashboard").status_code == 200
    assert "Session ended" in laptop.get("/account").get_data(as_text=True)


def test_ending_an_unknown_session_is_a_404(make_client):
    laptop, _ = two_devices(make_client)
    response = laptop.post_form("/account/sessions/0123456789abcdef/end", {}, form_page="/account")
    assert response.status_code == 404


def test_nobody_can_end_another_users_session(make_client):
    laptop, _ = two_devices(make_client)
    [handle] = handles(laptop.get("/account").get_data(as_text=True))
    mallory = make_client()
    Auth(mallory).signed_in("mallory")
    response = mallory.post_form(f"/account/sessions/{handle}/end", {}, form_page="/logout")
    assert response.status_code == 404


def test_end_all_other_sessions_keeps_this_one_and_revokes_remember_me(make_client):
    laptop, phone = make_client(FIREFOX), make_client(SAFARI)
    Auth(laptop).signed_in("alice", remember=True)
    Auth(phone).login("alice", remember=True)
    phone_remember = phone.cookie("__Host-remember")
    response = laptop.post_form("/account/sessions/end-others", {}, form_page="/account")
    assert response.status_code == 302
    assert laptop.get("/dashboard").status_code == 200
    assert phone.get("/dashboard").status_code == 302  # session gone, remember cookie revoked
    thief = make_client()
    thief.set_cookie("__Host-remember", phone_remember, domain="localhost")
    assert thief.get("/dashboard").status_code == 302
    # this device got a fresh remember cookie that still works
    fresh = make_client()
    fresh.set_cookie("__Host-remember", laptop.cookie("__Host-remember"), domain="localhost")
    assert fresh.get("/dashboard").status_code == 200


def test_password_change_needs_the_current_password(client, auth):
    auth.signed_in("alice")
    response = client.post_form(
        "/account/password",
        {"current": "not my password", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 422
    assert "not your current password" in response.get_data(as_text=True)


def test_password_change_applies_the_password_rules(client, auth):
    auth.signed_in("alice")
    response = client.post_form(
        "/account/password", {"current": PASSWORD, "password": "password", "confirm": "password"}
    )
    assert response.status_code == 422
    assert "too common" in response.get_data(as_text=True)


def test_password_change_ends_other_sessions_and_remember_tokens_keeps_this_one(make_client, app):
    laptop, phone = make_client(FIREFOX), make_client(SAFARI)
    Auth(laptop).signed_in("alice")
    Auth(phone).login("alice", remember=True)
    stolen_remember = phone.cookie("__Host-remember")
    response = laptop.post_form(
        "/account/password",
        {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert laptop.get("/dashboard").status_code == 200
    assert phone.get("/dashboard").status_code == 302
    thief = make_client()
    thief.set_cookie("__Host-remember", stolen_remember, domain="localhost")
    assert thief.get("/dashboard").status_code == 302
    assert Auth(make_client()).login("alice", PASSWORD).status_code == 401
    assert Auth(make_client()).login("alice", NEW_PASSWORD).status_code == 302


def test_account_deletion_removes_user_people_and_sessions(make_client, app, redis_client):
    laptop, phone = two_devices(make_client)
    laptop.post_form("/people/new", {"name": "Bob"})
    wrong = laptop.post_form("/account/delete", {"password": "not my password"})
    assert wrong.status_code == 422
    response = laptop.post_form("/account/delete", {"password": PASSWORD})
    assert response.status_code == 200
    assert "Your account has been deleted" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 0
        assert db.session.scalar(db.select(db.func.count()).select_from(Person)) == 0
    assert list(redis_client.scan_iter("session:*")) == []
    # What stays is the revocation's epoch, which expires with the longest session could have.
    assert list(redis_client.scan_iter("user-sessions:*")) == [b"user-sessions:1:epoch"]
    assert 0 < redis_client.ttl("user-sessions:1:epoch") <= app.config["SESSION_ABSOLUTE_TIMEOUT"]
    assert phone.get("/dashboard").status_code == 302
    assert laptop.get("/dashboard").status_code == 302


def test_recent_activity_lists_auth_events_without_secrets(client, auth, app, make_client):
    auth.register("alice")
    auth.login("alice", "wrong password here")
    auth.login("alice")
    page = client.get("/account").get_data(as_text=True)
    assert "Failed login" in page and "Logged in" in page
    with app.app_context():
        events = db.session.scalars(db.select(AuthEvent)).all()
        assert {e.event for e in events} == {"login_failed", "login"}
        assert all(PASSWORD not in str(vars(e)) for e in events)


def test_bcrypt_hash_is_upgraded_at_login_when_the_cost_changes(make_app):

    cheap = make_app(BCRYPT_LOG_ROUNDS=4)
    Auth(cheap.test_client()).register("alice")
    dearer = make_app(BCRYPT_LOG_ROUNDS=5)
    assert Auth(dearer.test_client()).login("alice").status_code == 302
    with dearer.app_context():
        assert db.session.scalar(db.select(User.password_hash)).startswith("$2b$05$")


def test_ending_this_sessions_handle_asks_to_log_out_instead(client, auth):
    from app.sessions import session_handle

    auth.signed_in("alice")
    handle = session_handle(client.cookie("__Host-session"))
    response = client.post_form(f"/account/sessions/{handle}/end", {}, form_page="/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/logout"
    assert client.get("/dashboard").status_code == 200


def test_sessions_that_vanished_from_redis_are_pruned_from_the_index(make_client, redis_client):
    laptop, phone = two_devices(make_client)
    redis_client.delete(f"session:{phone.cookie('__Host-session')}")  # e.g. evicted
    page = laptop.get("/account").get_data(as_text=True)
    assert handles(page) == []  # only this device is left to list
    members = {m.decode() for m in redis_client.zrange("user-sessions:1", 0, -1)}
    assert members == {laptop.cookie("__Host-session")}


def test_confirming_the_password_again_replaces_the_session_in_the_index(
    app, client, auth, clock, redis_client
):
    auth.signed_in("alice", remember=True)
    clock.advance(app.config["SESSION_IDLE_TIMEOUT"] + 1)
    assert client.get("/dashboard").status_code == 200  # restored by remember-me, not fresh
    remembered = client.cookie("__Host-session")
    response = client.post_form(
        "/login?next=/account/password", {"username": "alice", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/account/password"
    assert client.get("/account/password").status_code == 200  # fresh now
    members = {m.decode() for m in redis_client.zrange("user-sessions:1", 0, -1)}
    assert members == {client.cookie("__Host-session")} and remembered not in members


def test_a_password_change_moves_this_session_to_a_new_id(make_client, redis_client):
    laptop, _ = two_devices(make_client)
    before = laptop.cookie("__Host-session")
    form = {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert laptop.post_form("/account/password", form).status_code == 302
    after = laptop.cookie("__Host-session")
    assert after and after != before
    assert not redis_client.exists(f"session:{before}")
    assert laptop.get("/dashboard").status_code == 200


def test_deleting_the_account_needs_a_fresh_login(app, client, auth, clock):
    auth.signed_in("alice", remember=True)
    clock.advance(app.config["SESSION_IDLE_TIMEOUT"] + 1)
    assert client.get("/dashboard").status_code == 200  # restored: not fresh
    response = client.get("/account/delete")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def wrong_password(client, path: str):
    if path == "/account/password":
        form = {"current": "not my password", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    else:
        form = {"password": "not my password"}
    return client.post_form(path, form)


def test_wrong_passwords_on_account_pages_spend_the_sessions_budget_and_are_audited(
    make_app,
):
    """A stolen session cannot guess the password without limit on the pages that ask it;
    the budget is the guesser's (this session), so the owner elsewhere is not locked out."""
    app = make_app(RATELIMIT_ACCOUNT_ADDRESS_FAILURES="3/hour")
    client = app.test_client()
    Auth(client).signed_in("alice")
    assert wrong_password(client, "/account/password").status_code == 422
    assert wrong_password(client, "/account/delete").status_code == 422
    assert wrong_password(client, "/account/password").status_code == 422
    blocked = client.post_form("/account/delete", {"password": PASSWORD})
    assert blocked.status_code == 429 and blocked.headers["Retry-After"]
    assert Auth(app.test_client()).login("alice").status_code == 302
    with app.app_context():
        failed = db.session.scalar(
            db.select(db.func.count())
            .select_from(AuthEvent)
            .where(AuthEvent.event == "password_check_failed")
        )
    assert failed == 3
