"""Remember-me per device: stored hashed, forgotten one device at a time, one live session
per device however often its cookie is replayed, and never outrunning a revocation."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from app.extensions import db
from app.models import AuthEvent, RememberedDevice
from flask_login import decode_cookie
from helpers import (
    FIREFOX,
    PASSWORD,
    REMEMBER,
    SAFARI,
    Auth,
    Client,
    fresh_browser_with,
    signed_in,
)


def remembered(make_client: Any, user_agent: str, first: bool = False) -> Client:
    """A browser where alice logged in with "remember me" (registering her first if asked)."""
    browser = make_client(user_agent)
    if first:
        Auth(browser).register("alice")
    assert Auth(browser).login("alice", remember=True).status_code == 302
    return browser


def test_the_database_keeps_only_a_hash_of_each_device_s_token(app, make_client):
    laptop = remembered(make_client, FIREFOX, first=True)
    with app.app_context():
        token = decode_cookie(laptop.cookie(REMEMBER)).partition(".")[2]
        (device,) = db.session.scalars(db.select(RememberedDevice))
        assert device.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in repr(db.session.execute(db.text("SELECT * FROM users")).all())
        assert device.label == "Firefox on Ubuntu"


def test_logging_out_on_one_device_forgets_only_that_device(make_client):
    laptop = remembered(make_client, FIREFOX, first=True)
    phone = remembered(make_client, SAFARI)
    laptop_cookie, phone_cookie = laptop.cookie(REMEMBER), phone.cookie(REMEMBER)
    Auth(laptop).logout()
    assert not signed_in(fresh_browser_with(make_client, laptop_cookie))
    assert signed_in(fresh_browser_with(make_client, phone_cookie))


def test_replaying_a_remember_cookie_keeps_one_live_session_and_bounded_restores(
    make_app, redis_client
):
    app = make_app(REMEMBER_RESTORE_LIMIT="5/hour")
    browser = app.test_client()
    browser.environ_base["HTTP_USER_AGENT"] = FIREFOX
    Auth(browser).register("alice")
    Auth(browser).login("alice", remember=True)
    Auth(browser).logout  # noqa: B018 (the login's own session stays; only restores are counted)
    cookie = browser.cookie(REMEMBER)
    statuses = []
    for _ in range(30):
        replay = app.test_client(use_cookies=False)
        statuses.append(replay.get("/dashboard", headers={"Cookie": f"{REMEMBER}={cookie}"}))
    assert sum(r.status_code == 200 for r in statuses) == 5  # then signed out: log in again
    device_sessions = [
        key
        for key in redis_client.scan_iter("session:*")
        if key.decode() != f"session:{browser.cookie('__Host-session')}"
    ]
    assert len(device_sessions) == 1  # each restore replaced the device's previous session
    with app.app_context():
        restores = db.session.scalar(
            db.select(db.func.count())
            .select_from(AuthEvent)
            .where(AuthEvent.event == "login_remembered")
        )
    assert restores == 5


def test_the_sessions_page_lists_remembered_devices_and_forgets_one(app, make_client, redis_client):
    laptop = remembered(make_client, FIREFOX, first=True)
    phone = remembered(make_client, SAFARI)
    phone_cookie = phone.cookie(REMEMBER)
    page = laptop.get("/account").get_data(as_text=True)
    assert "Remembered devices" in page
    assert "Firefox on Ubuntu" in page and "Mobile Safari on iOS" in page
    with app.app_context():
        phone_device = db.session.scalar(
            db.select(RememberedDevice.id).where(RememberedDevice.label.like("%Safari%"))
        )
    forget = laptop.post_form(f"/account/devices/{phone_device}/forget", {}, form_page="/account")
    assert forget.status_code == 302
    assert not signed_in(phone)  # its session ended with it
    assert not signed_in(fresh_browser_with(make_client, phone_cookie))  # and its cookie died
    assert signed_in(laptop)
    stranger = make_client()
    assert Auth(stranger).register("mallory").status_code == 302
    assert Auth(stranger).login("mallory").status_code == 302
    path = f"/account/devices/{phone_device}/forget"
    assert stranger.post_form(path, {}, form_page="/logout").status_code == 404


def revoke(how: str, app: Any, laptop: Client) -> None:
    """Revoke alice's remembered devices the way `how` says, from her laptop or the CLI."""
    if how == "end-others":
        assert (
            laptop.post_form("/account/sessions/end-others", {}, form_page="/account").status_code
            == 302
        )
    elif how == "password-change":
        new = "a brand new passphrase"
        form = {"current": PASSWORD, "password": new, "confirm": new}
        assert laptop.post_form("/account/password", form).status_code == 302
    else:
        result = app.test_cli_runner().invoke(args=["sessions", "end", "--user", "alice"])
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("how", ["end-others", "password-change", "flask-sessions-end"])
def test_a_restore_in_flight_cannot_outrun_a_revocation(make_app, redis_client, how):
    """The restore checks the token, then the revocation commits and ends the sessions it
    can see, then the restore creates its session: the epoch makes that creation fail."""
    app = make_app()
    laptop = app.test_client()
    Auth(laptop).register("alice")
    Auth(laptop).login("alice")
    phone = app.test_client()
    Auth(phone).login("alice", remember=True)
    stolen = phone.cookie(REMEMBER)
    racing = make_app()
    raced = []

    @racing.after_request
    def revoke_meanwhile(response: Any) -> Any:
        # Runs after the restore checked the token, before its session is created.
        if not raced:
            raced.append(how)
            revoke(how, app, laptop)
        return response

    thief = racing.test_client(use_cookies=False)
    first = thief.get("/dashboard", headers={"Cookie": f"{REMEMBER}={stolen}"})
    assert raced and first.status_code == 200  # it was signed in when it started...
    assert "__Host-session=" not in " ".join(first.headers.getlist("Set-Cookie"))
    sessions = {k.decode() for k in redis_client.scan_iter("session:*")}
    kept = set() if how == "flask-sessions-end" else {f"session:{laptop.cookie('__Host-session')}"}
    assert sessions == kept  # ...and got no session
    again = thief.get("/dashboard", headers={"Cookie": f"{REMEMBER}={stolen}"})
    assert again.status_code == 302
