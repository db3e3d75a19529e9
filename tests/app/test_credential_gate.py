"""The credential gate and the credential version (auth/credentials.py): a stolen session (a
copied remember-me cookie, a shared computer) cannot change how the account signs in, and
every change of the password, a factor or the address revokes everything but this browser,
whose remember-me token is renewed."""

from __future__ import annotations

import re
from typing import Any

import pyotp
from app.extensions import db
from app.models import RememberedDevice, User
from helpers import (
    FIREFOX,
    PASSWORD,
    REMEMBER,
    SAFARI,
    Auth,
    Client,
    deliver,
    enrol_totp,
    fresh_browser_with,
    link_in,
    signed_in,
    verified,
)
from werkzeug.exceptions import MethodNotAllowed

SESSION = "__Host-session"
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
# State-changing routes under /account that a restored session may use: none.
ALLOWED: set[str] = set()
NEW_PASSWORD = "a brand new passphrase"


def restored(client: Client) -> Client:
    """Drop the session cookie: the next request is signed in from the remember cookie."""
    client.delete_cookie(SESSION, domain="localhost")
    assert client.get("/dashboard").status_code == 200
    return client


def example_path(rule: Any) -> str:
    """Fill a rule's arguments with values that name nothing of the user's."""
    return re.sub(r"<[^>]+>", "x", re.sub(r"<int:[^>]+>", "1", rule.rule))


def test_every_credential_change_sends_a_restored_session_to_sign_in_again(
    app, make_client, outbox
):
    browser = make_client(FIREFOX)
    verified(app, browser, outbox)
    assert Auth(browser).login(remember=True).status_code == 302
    restored(browser)
    token = browser.csrf_token("/account")
    adapter = app.url_map.bind("localhost")
    walked = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/account") or not rule.methods & CHANGES:
            continue
        assert getattr(app.view_functions[rule.endpoint], "credential_change", False) or (
            rule.endpoint in ALLOWED
        ), f"{rule.endpoint} is not declared a credential change"
        if rule.endpoint in ALLOWED:
            continue
        path = example_path(rule)
        for method in sorted(rule.methods & CHANGES):
            response = browser.open(path, method=method, data={"csrf_token": token})
            assert response.status_code == 302, (path, response.status_code)
            assert "/login?next=" in response.location, (path, response.location)
            back = response.location.partition("next=")[2].replace("%2F", "/")
            try:  # the way back is a page, not a POST-only action (no 405 after signing in)
                adapter.match(back, method="GET")
            except MethodNotAllowed:
                raise AssertionError(f"{path} returns to {back}, which answers no GET") from None
            walked.append(rule.endpoint)
    assert {"mfa.add_passkey", "mfa.passkey_registration_options", "account.password"} <= set(
        walked
    )
    with app.app_context():
        assert db.session.scalar(db.select(User)).credential_version == 0  # nothing changed


def test_a_passkey_ceremony_needs_a_fresh_sign_in_for_both_requests(app, make_client, outbox):
    browser = make_client(FIREFOX)
    verified(app, browser, outbox)
    Auth(browser).login(remember=True)
    restored(browser)
    for path in ("/account/passkeys/options", "/account/passkeys"):
        response = browser.post_form(path, {"name": "thief"}, form_page="/account/two-factor")
        assert response.location.endswith("/login?next=/account/two-factor"), path
    Auth(browser).login()  # signing in again makes it fresh
    options = browser.post_form("/account/passkeys/options", {}, form_page="/account/two-factor")
    assert options.status_code == 200 and options.is_json


def test_factor_pages_need_a_verified_address(app, client, auth):
    auth.signed_in()
    for path in ("/account/two-factor/app", "/account/passkeys/options"):
        response = client.post_form(path, {}, form_page="/account/password")
        assert response.status_code == 302 and response.location.endswith("/account/two-factor")


def test_the_gate_wants_the_credential_version_the_session_signed_in_with(app, client, auth):
    auth.signed_in()
    assert client.get("/account/password").status_code == 200
    with app.app_context():  # changed elsewhere (another replica, a race): not this session's
        db.session.execute(db.update(User).values(credential_version=User.credential_version + 1))
        db.session.commit()
    assert client.get("/account/password").location.endswith("/login?next=/account/password")


def test_a_factor_enrolled_later_ends_sessions_and_devices_from_before_it(
    app, make_client, outbox, clock
):
    laptop, phone = make_client(FIREFOX), make_client(SAFARI)
    verified(app, laptop, outbox)
    Auth(laptop).login()
    assert Auth(phone).login(remember=True).status_code == 302  # password only, remembered
    phone_cookie = phone.cookie(REMEMBER)
    enrol_totp(app, laptop, clock)
    assert signed_in(laptop)
    assert not signed_in(phone)  # its session ended: it cannot make codes or turn the app off
    assert not signed_in(
        fresh_browser_with(make_client, phone_cookie)
    )  # nor restore one that skips it
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(RememberedDevice)) == 0


def test_a_password_change_renews_this_browsers_remember_token(app, make_client):
    laptop = make_client(FIREFOX)
    Auth(laptop).signed_in(remember=True)
    old = laptop.cookie(REMEMBER)
    thief = fresh_browser_with(make_client, old)  # a copy taken before the change...
    response = laptop.post_form(
        "/account/password",
        {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 302
    new = laptop.cookie(REMEMBER)
    assert new and new != old
    assert not signed_in(thief)  # ...dies with it
    assert signed_in(laptop) and signed_in(fresh_browser_with(make_client, new))


def test_a_device_remembered_under_an_older_version_restores_nobody(app, make_client):
    laptop = make_client(FIREFOX)
    Auth(laptop).signed_in(remember=True)
    cookie = laptop.cookie(REMEMBER)
    with app.app_context():  # the floor under the revocation: even a row that survived it
        db.session.execute(db.update(User).values(credential_version=User.credential_version + 1))
        db.session.commit()
    assert not signed_in(fresh_browser_with(make_client, cookie))


def test_an_address_change_is_a_credential_change(app, make_client, outbox):
    laptop, phone = make_client(FIREFOX), make_client(SAFARI)
    verified(app, laptop, outbox)
    Auth(laptop).login(remember=True)
    Auth(phone).login(remember=True)
    laptop.post_form("/account/email", {"email": "new@example.com", "password": PASSWORD})
    deliver(app)
    [message] = outbox.to("new@example.com")
    assert laptop.post_form(link_in(message), {}).status_code == 302
    assert signed_in(laptop) and not signed_in(phone)
    with app.app_context():
        assert db.session.scalar(db.select(User)).credential_version == 1


def test_a_restored_session_cannot_turn_the_app_off_or_make_codes(app, make_client, outbox, clock):
    browser = make_client(FIREFOX)
    verified(app, browser, outbox)
    Auth(browser).login(remember=True)
    secret, _ = enrol_totp(app, browser, clock)
    restored(browser)
    for path in ("/account/two-factor/app/disable", "/account/two-factor/recovery-codes"):
        response = browser.post_form(path, {}, form_page="/account/two-factor")
        assert response.location.endswith("/login?next=/account/two-factor")
    browser.post_form(
        "/login?next=/account/two-factor", {"username": "alice", "password": PASSWORD}
    )
    clock.advance(30)
    back = browser.post_form("/login/verify", {"code": pyotp.TOTP(secret).at(clock.now)})
    assert back.location.endswith("/account/two-factor")
    fresh = browser.post_form(
        "/account/two-factor/recovery-codes", {}, form_page="/account/two-factor"
    )
    assert len(re.findall(r"<li><code>", fresh.get_data(as_text=True))) == 10


def test_removing_a_factor_ends_the_other_sessions_and_their_factor_flag(
    app, make_client, outbox, clock
):
    laptop, phone = make_client(FIREFOX), make_client(SAFARI)
    verified(app, laptop, outbox)
    Auth(laptop).login()
    secret, _ = enrol_totp(app, laptop, clock)
    clock.advance(30)
    Auth(phone).login()
    phone.post_form("/login/verify", {"code": pyotp.TOTP(secret).at(clock.now)})
    assert signed_in(phone)  # a session that believes the account has a factor
    off = laptop.post_form("/account/two-factor/app/disable", {}, form_page="/account/two-factor")
    assert off.status_code == 302 and signed_in(laptop)
    assert not signed_in(phone)
