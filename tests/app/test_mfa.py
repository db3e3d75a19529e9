"""The second factor: authenticator apps (TOTP), recovery codes, passkeys, the pending state
between password and factor, step-up, operator reset and MFA_REQUIRED. Real PostgreSQL, Redis,
SMTP and RQ worker; passkeys answered by a software authenticator (real keys and CBOR)."""

from __future__ import annotations

import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyotp
import pytest
from app.environment import ConfigError
from app.extensions import db
from app.mfa import crypto
from app.models import AuthEvent, Passkey, RecoveryCode, User
from helpers import PASSWORD, Auth, Client, deliver, enrol_totp, verified
from webauthn_authenticator import Authenticator

SESSION_COOKIE = "__Host-session"


def csrf(client: Client, path: str) -> str:
    return client.csrf_token(path)


def totp_user(app: Any, client: Client, outbox: Any, clock: Any) -> tuple[str, list[str]]:
    """A verified, signed-in alice with an authenticator app; the mail outbox emptied."""
    verified(app, client, outbox)
    assert Auth(client).login().status_code == 302
    secret, codes = enrol_totp(app, client, clock)
    deliver(app)
    outbox.clear()
    return secret, codes


def password_step(client: Client, username: str = "alice", **kw: Any) -> Any:
    response = Auth(client).login(username, **kw)
    assert response.status_code == 302 and response.location.endswith("/login/verify")
    return response


def factor_notice(outbox: Any) -> str:
    """Return the text of the one "sign-in protection changed" message to alice."""
    [notice] = [m for m in outbox.to("alice@example.com") if "protection" in m["Subject"]]
    return str(notice.get_body(("plain",)).get_content())


def signed_in(client: Client) -> bool:
    return client.get("/dashboard").status_code == 200


# ---- enrolment ------------------------------------------------------------------------


def test_enrolment_shows_a_server_rendered_qr_code_and_needs_one_valid_code(
    app, client, outbox, clock
):
    verified(app, client, outbox)
    Auth(client).login()
    page = client.get("/account/two-factor/app").get_data(as_text=True)
    assert "<svg" in page and "<script" not in page  # the QR code is markup, drawn here
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)  # type: ignore[union-attr]
    wrong = client.post_form("/account/two-factor/app", {"code": "000000"})
    assert wrong.status_code == 422
    with app.app_context():
        assert db.session.scalar(db.select(User)).totp_enabled_at is None  # not yet on
    right = client.post_form("/account/two-factor/app", {"code": pyotp.TOTP(secret).at(clock.now)})
    assert right.status_code == 200 and "shown only once" in right.get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert user.totp_enabled_at is not None
        assert secret not in user.totp_secret  # encrypted at rest
        assert crypto.decrypt(user.totp_secret) == secret
        hashes = db.session.scalars(db.select(RecoveryCode.code_hash)).all()
    codes = re.findall(r"<li><code>([a-z2-7-]+)</code></li>", right.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10 and len(hashes) == 10
    assert not any(code.replace("-", "") in h for code in codes for h in hashes)  # hashed
    deliver(app)
    assert "authenticator app now protects" in factor_notice(outbox)


def test_a_factor_is_offered_to_verified_addresses_only(client, auth):
    auth.signed_in()
    response = client.get("/account/two-factor/app")
    assert response.status_code == 302 and response.location.endswith("/account/two-factor")


# ---- signing in with the authenticator app ----------------------------------------------


def test_no_page_is_signed_in_between_password_and_factor(app, client, outbox, clock):
    secret, _ = totp_user(app, client, outbox, clock)
    Auth(client).logout()
    anonymous = app.test_client()
    password_step(client)
    assert client.cookie(SESSION_COOKIE) is None  # no session exists yet
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments and rule.endpoint != "mfa.verify":
            path = rule.rule
            assert client.get(path).status_code == anonymous.get(path).status_code, path
            assert client.get("/login/verify").status_code == 200, path
    clock.advance(30)  # the enrolment used this step's code
    client.post_form("/login/verify", {"code": pyotp.TOTP(secret).at(clock.now)})
    assert signed_in(client)


def test_a_code_works_once_and_within_one_step_either_side(app, client, outbox, clock):
    secret, _ = totp_user(app, client, outbox, clock)
    Auth(client).logout()
    totp = pyotp.TOTP(secret)
    clock.advance(60)
    password_step(client)
    replayed = client.post_form("/login/verify", {"code": totp.at(clock.now - 60)})
    assert replayed.status_code == 401  # two steps ago: outside the window
    previous_step = client.post_form("/login/verify", {"code": totp.at(clock.now - 30)})
    assert previous_step.status_code == 302 and signed_in(client)
    Auth(client).logout()
    password_step(client)
    again = client.post_form("/login/verify", {"code": totp.at(clock.now - 30)})
    assert again.status_code == 401 and "used already" in again.get_data(as_text=True)
    now = client.post_form("/login/verify", {"code": totp.at(clock.now)})
    assert now.status_code == 302 and signed_in(client)
    Auth(client).logout()
    password_step(client)
    # The same code from another browser at the same time: still refused.
    assert client.post_form("/login/verify", {"code": totp.at(clock.now)}).status_code == 401


def test_wrong_codes_end_the_pending_sign_in_and_count_against_the_account(
    app, make_app, make_client, outbox, clock
):
    app = make_app(RATELIMIT_ACCOUNT_ADDRESS_FAILURES="4/hour", MFA_PENDING_ATTEMPTS=3)
    client = app.test_client()
    secret, _ = totp_user(app, client, outbox, clock)
    Auth(client).logout()
    password_step(client)
    assert client.post_form("/login/verify", {"code": "111111"}).status_code == 401
    assert client.post_form("/login/verify", {"code": "222222"}).status_code == 401
    last = client.post_form("/login/verify", {"code": "333333"})
    assert last.status_code == 302 and last.location.endswith("/login")
    right = client.post_form(
        "/login/verify", {"code": pyotp.TOTP(secret).at(clock.now)}, form_page="/login"
    )
    assert right.status_code == 302 and not signed_in(client)  # the pending sign-in is over
    password_step(client)  # a fourth wrong factor spends the account's strict budget
    assert client.post_form("/login/verify", {"code": "444444"}).status_code == 401
    assert client.post_form("/login/verify", {"code": "555555"}).status_code == 429
    with app.app_context():
        failed = db.session.scalars(
            db.select(AuthEvent).where(AuthEvent.event == "second_factor_failed")
        ).all()
    assert len(failed) == 4


def test_parallel_wrong_codes_check_at_most_the_promised_number(
    app, make_app, client, outbox, clock, redis_client
):
    app = make_app(RATELIMIT_ACCOUNT_ADDRESS_FAILURES="100/hour", RATELIMIT_LOGIN="100/minute")
    client = app.test_client()
    totp_user(app, client, outbox, clock)
    Auth(client).logout()
    password_step(client)
    token = client.csrf_token("/login/verify")
    visitor = client.cookie("__Host-visitor")
    assert visitor

    def guess(code: str) -> int:
        browser = app.test_client()  # the same pending sign-in, another connection
        browser.set_cookie("__Host-visitor", visitor, domain="localhost")
        data = {"csrf_token": token, "code": code}
        return int(browser.post("/login/verify", data=data).status_code)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(guess, (f"{n:06d}" for n in range(30))))
    checked = app.config["MFA_PENDING_ATTEMPTS"]
    assert answers.count(401) == checked - 1  # the last check ends the sign-in (a redirect)
    with app.app_context():
        failed = db.session.scalar(
            db.select(db.func.count())
            .select_from(AuthEvent)
            .where(AuthEvent.event == "second_factor_failed")
        )
    assert failed == checked
    assert not redis_client.keys("user-sessions:pending:*")  # nothing recreated late


def test_a_late_challenge_never_recreates_an_ended_pending_sign_in(
    app, client, outbox, clock, redis_client
):
    totp_user(app, client, outbox, clock)
    Auth(client).logout()
    password_step(client)
    with app.test_request_context():
        from app.mfa import pending

        [key] = redis_client.keys("user-sessions:pending:*")
        found = pending.Pending(key.decode(), 1, "alice", 0, False, "/", "")
        redis_client.delete(key)
        pending.set_challenge(found, "late")
        assert pending.reserve_attempt(found) == -1
    assert not redis_client.exists(key)


def test_the_pending_sign_in_expires(app, client, outbox, clock):
    secret, _ = totp_user(app, client, outbox, clock)
    Auth(client).logout()
    password_step(client)
    clock.advance(app.config["MFA_PENDING_SECONDS"] + 1)
    response = client.post_form(
        "/login/verify", {"code": pyotp.TOTP(secret).at(clock.now)}, form_page="/login"
    )
    assert response.status_code == 302 and not signed_in(client)


def test_a_revocation_between_password_and_factor_defeats_the_sign_in(
    app, client, make_client, outbox, clock
):
    secret, _ = totp_user(app, client, outbox, clock)
    other = make_client()
    password_step(other)
    ended = client.post_form("/account/sessions/end-others", {}, form_page="/account/two-factor")
    assert ended.status_code == 302
    clock.advance(30)
    other.post_form("/login/verify", {"code": pyotp.TOTP(secret).at(clock.now)})
    assert not signed_in(other)  # the epoch it read with the password is stale


def test_the_sessions_page_shows_how_each_session_signed_in(app, client, outbox, clock):
    _, codes = totp_user(app, client, outbox, clock)
    page = client.get("/account").get_data(as_text=True)
    assert '<td class="method">Password</td>' in page
    Auth(client).logout()
    password_step(client)
    client.post_form("/login/verify", {"code": codes[0]})
    page = client.get("/account").get_data(as_text=True)
    assert '<td class="method">Password + recovery code</td>' in page


# ---- recovery codes ---------------------------------------------------------------------


def test_a_recovery_code_works_once_is_audited_and_mailed(app, client, outbox, clock):
    _, codes = totp_user(app, client, outbox, clock)
    Auth(client).logout()
    password_step(client)
    assert client.post_form("/login/verify", {"code": codes[3].upper()}).status_code == 302
    assert signed_in(client)
    deliver(app)
    assert "recovery codes was used" in factor_notice(outbox)
    Auth(client).logout()
    password_step(client)
    assert client.post_form("/login/verify", {"code": codes[3]}).status_code == 401
    with app.app_context():
        events = db.session.scalars(db.select(AuthEvent.event)).all()
    assert "recovery_code_used" in events


def test_new_recovery_codes_void_the_old_and_need_a_fresh_sign_in(app, client, outbox, clock):
    secret, old = totp_user(app, client, outbox, clock)
    clock.advance(app.config["MFA_STEP_UP_SECONDS"] + 1)
    stale = client.post_form(
        "/account/two-factor/recovery-codes", {}, form_page="/account/two-factor"
    )
    assert stale.status_code == 302 and "/login?next=" in stale.location
    client.post_form("/login", {"username": "alice", "password": PASSWORD})
    client.post_form("/login/verify", {"code": pyotp.TOTP(secret).at(clock.now)})
    fresh = client.post_form(
        "/account/two-factor/recovery-codes", {}, form_page="/account/two-factor"
    )
    new = re.findall(r"<li><code>([a-z2-7-]+)</code></li>", fresh.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    Auth(client).logout()
    password_step(client)
    assert client.post_form("/login/verify", {"code": old[0]}).status_code == 401
    assert client.post_form("/login/verify", {"code": new[0]}).status_code == 302


# ---- step-up ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/account/password", "/account/email", "/account/delete"])
def test_sensitive_actions_need_a_sign_in_younger_than_the_setting(app, client, clock, path):
    Auth(client).signed_in()
    assert client.get(path).status_code == 200
    clock.advance(app.config["MFA_STEP_UP_SECONDS"] - 5)
    assert client.get(path).status_code == 200
    clock.advance(10)
    response = client.get(path)
    assert response.status_code == 302 and response.location.endswith(f"/login?next={path}")
    again = client.post_form(f"/login?next={path}", {"username": "alice", "password": PASSWORD})
    assert again.location.endswith(path) and client.get(path).status_code == 200


def test_a_remember_me_restore_is_not_fresh(app, make_client, clock):
    client = make_client()
    Auth(client).signed_in(remember=True)
    client.delete_cookie(SESSION_COOKIE, domain="localhost")
    assert signed_in(client)  # restored from the remember cookie
    assert client.get("/account/password").status_code == 302


def test_disabling_the_app_sends_a_notice_and_voids_the_codes(app, client, outbox, clock):
    totp_user(app, client, outbox, clock)
    assert (
        client.post_form(
            "/account/two-factor/app/disable", {}, form_page="/account/two-factor"
        ).status_code
        == 302
    )
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert user.totp_secret is None and not user.has_second_factor()
        assert db.session.scalar(db.select(db.func.count()).select_from(RecoveryCode)) == 0
    deliver(app)
    assert "turned off" in factor_notice(outbox)
    Auth(client).logout()
    assert Auth(client).login().location.endswith("/dashboard")  # the password alone again


# ---- operators and settings -------------------------------------------------------------


def test_an_operator_resets_a_users_factors_and_ends_their_sessions(app, client, outbox, clock):
    totp_user(app, client, outbox, clock)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["mfa", "reset", "ALICE"])
    assert result.exit_code == 0, result.output
    assert "ended 1 session(s)" in result.output
    assert not signed_in(client)
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert not user.has_second_factor() and user.totp_secret is None
        [event] = db.session.scalars(
            db.select(AuthEvent).where(AuthEvent.event == "factors_reset")
        ).all()
        assert event.ip is None
    deliver(app)
    assert "An operator removed" in factor_notice(outbox)
    again = runner.invoke(args=["mfa", "reset", "alice"])  # nothing left: says so, no error
    assert again.exit_code == 0 and "ended 0 session(s)" in again.output
    assert runner.invoke(args=["mfa", "reset", "nobody"]).exit_code == 1
    assert Auth(client).login().location.endswith("/dashboard")  # the password alone again


def test_required_sends_accounts_without_a_factor_to_enrol(make_app, outbox, clock):
    app = make_app(MFA_REQUIRED=True)
    client = app.test_client()
    verified(app, client, outbox)
    Auth(client).login()
    response = client.get("/dashboard")
    assert response.status_code == 302 and response.location.endswith("/account/two-factor")
    assert client.get("/account/two-factor").status_code == 200
    enrol_totp(app, client, clock)
    assert signed_in(client)  # this session knows the account has a factor now


# ---- encryption at rest -----------------------------------------------------------------


def test_secrets_survive_a_key_rotation(make_app, client, outbox, clock):
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    app = make_app(MFA_ENCRYPTION_KEYS=[old])
    client = app.test_client()
    secret, _ = totp_user(app, client, outbox, clock)
    rotated = make_app(MFA_ENCRYPTION_KEYS=[new, old])
    with rotated.app_context():
        assert crypto.decrypt(db.session.scalar(db.select(User)).totp_secret) == secret
    for _ in range(2):  # a second run re-encrypts again, harmlessly
        result = rotated.test_cli_runner().invoke(args=["mfa", "rotate-key"])
        assert result.exit_code == 0 and "re-encrypted 1" in result.output
    only_new = make_app(MFA_ENCRYPTION_KEYS=[new])
    with only_new.app_context():
        assert crypto.decrypt(db.session.scalar(db.select(User)).totp_secret) == secret
    with make_app(MFA_ENCRYPTION_KEYS=[old]).app_context(), pytest.raises(ConfigError):
        crypto.decrypt(db.session.scalar(db.select(User)).totp_secret)


def test_a_malformed_key_is_one_clear_error(make_app):
    app = make_app(MFA_ENCRYPTION_KEYS=["short"])
    with app.app_context(), pytest.raises(ConfigError, match="MFA_ENCRYPTION_KEYS"):
        crypto.encrypt("x")


# ---- passkeys ---------------------------------------------------------------------------


def add_passkey(client: Client, authenticator: Authenticator, name: str = "Laptop") -> Any:
    token = csrf(client, "/account/two-factor")
    options = client.post("/account/passkeys/options", headers={"X-CSRFToken": token}).get_json()
    credential = authenticator.create(options)
    return client.post(
        "/account/passkeys", data={"csrf_token": token, "name": name, "credential": credential}
    )


def passkey_user(app: Any, client: Client, outbox: Any) -> Authenticator:
    verified(app, client, outbox)
    assert Auth(client).login().status_code == 302
    authenticator = Authenticator()
    response = add_passkey(client, authenticator)
    assert response.status_code == 200 and "shown only once" in response.get_data(as_text=True)
    return authenticator


def test_a_passkey_is_registered_named_and_listed(app, client, outbox):
    passkey_user(app, client, outbox)
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert "<td>Laptop</td>" in page and "never" in page
    with app.app_context():
        [passkey] = db.session.scalars(db.select(Passkey)).all()
        assert passkey.user.username == "alice"
    deliver(app)
    assert "passkey was added" in factor_notice(outbox)


def test_a_passkey_from_another_origin_is_refused(app, client, outbox):
    verified(app, client, outbox)
    Auth(client).login()
    token = csrf(client, "/account/two-factor")
    options = client.post("/account/passkeys/options", headers={"X-CSRFToken": token}).get_json()
    credential = Authenticator().create(options, origin="https://evil.example")
    client.post(
        "/account/passkeys", data={"csrf_token": token, "name": "x", "credential": credential}
    )
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Passkey)) == 0


def passkey_sign_in(client: Client, authenticator: Authenticator, **kw: Any) -> Any:
    token = csrf(client, "/login")
    options = client.post("/login/passkey/options", headers={"X-CSRFToken": token}).get_json()
    assert options["userVerification"] == "required" and options.get("allowCredentials", []) == []
    assertion = authenticator.get(options, **kw)
    return client.post("/login/passkey", data={"csrf_token": token, "credential": assertion})


def test_a_passkey_signs_in_without_a_password_once_per_challenge(app, client, outbox):
    authenticator = passkey_user(app, client, outbox)
    Auth(client).logout()
    response = passkey_sign_in(client, authenticator)
    assert response.status_code == 302 and signed_in(client)
    page = client.get("/account").get_data(as_text=True)
    assert '<td class="method">Passkey</td>' in page
    with app.app_context():
        events = db.session.scalars(db.select(AuthEvent.event).order_by(AuthEvent.id)).all()
    assert events[-1] == "login_passkey" and events.count("login_passkey") == 1
    Auth(client).logout()
    # A replayed assertion (its challenge spent) signs nobody in.
    token = csrf(client, "/login")
    options = client.post("/login/passkey/options", headers={"X-CSRFToken": token}).get_json()
    assertion = authenticator.get(options)
    assert (
        client.post(
            "/login/passkey", data={"csrf_token": token, "credential": assertion}
        ).status_code
        == 302
    )
    Auth(client).logout()
    replay = client.post(
        "/login/passkey", data={"csrf_token": csrf(client, "/login"), "credential": assertion}
    )
    assert replay.status_code == 302 and not signed_in(client)


def test_a_passwordless_sign_in_needs_user_verification(app, client, outbox):
    authenticator = passkey_user(app, client, outbox)
    Auth(client).logout()
    passkey_sign_in(client, authenticator, verified=False)
    assert not signed_in(client)


def test_a_passkey_is_a_second_factor_after_the_password(app, client, outbox):
    authenticator = passkey_user(app, client, outbox)
    Auth(client).logout()
    password_step(client)
    response = second_step_with_passkey(client, authenticator)
    assert response.status_code == 302 and signed_in(client)
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert "never" not in page  # "last used" is set
    assert '<td class="method">Password + passkey</td>' in client.get("/account").get_data(True)


def second_step_with_passkey(client: Client, authenticator: Authenticator) -> Any:
    token = csrf(client, "/login/verify")
    options = client.post(
        "/login/verify/passkey-options", headers={"X-CSRFToken": token}
    ).get_json()
    assertion = authenticator.get(options, verified=False)  # presence is enough after a password
    return client.post("/login/verify", data={"csrf_token": token, "credential": assertion})


def test_removing_a_passkey_needs_step_up(app, client, outbox, clock):
    authenticator = passkey_user(app, client, outbox)
    deliver(app)
    outbox.clear()
    with app.app_context():
        passkey_id = db.session.scalar(db.select(Passkey.id))
    clock.advance(app.config["MFA_STEP_UP_SECONDS"] + 1)
    path = f"/account/passkeys/{passkey_id}/remove"
    stale = client.post_form(path, {}, form_page="/account/two-factor")
    assert stale.status_code == 302 and "/login" in stale.location
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Passkey)) == 1
    password_step(client)
    assert second_step_with_passkey(client, authenticator).status_code == 302
    assert client.post_form(path, {}, form_page="/account/two-factor").status_code == 302
    with app.app_context():
        assert not db.session.scalar(db.select(User)).has_second_factor()
        assert db.session.scalar(db.select(db.func.count()).select_from(RecoveryCode)) == 0
    deliver(app)
    assert "passkey was removed" in factor_notice(outbox)


def test_a_second_factor_challenge_is_answered_once(app, client, outbox):
    authenticator = passkey_user(app, client, outbox)
    Auth(client).logout()
    password_step(client)
    token = csrf(client, "/login/verify")
    options = client.post(
        "/login/verify/passkey-options", headers={"X-CSRFToken": token}
    ).get_json()
    forged = authenticator.get(options, origin="https://evil.example")
    good = authenticator.get(options)
    for credential in (forged, good):  # the forged answer spent the challenge
        response = client.post(
            "/login/verify", data={"csrf_token": token, "credential": credential}
        )
        assert response.status_code == 401
    assert not signed_in(client)


HOSTILE_CREDENTIALS = [
    "",
    "not json",
    "[]",
    "null",
    '{"id": 1}',
    '{"id": "AA", "rawId": "!!!", "type": "public-key", "response": null}',
    '{"id": "AA", "rawId": "AA", "type": "public-key", "response": {"clientDataJSON": "%%"}}',
    "{" * 5000,
    "x" * 20_000,
]


@pytest.mark.parametrize("credential", HOSTILE_CREDENTIALS)
def test_hostile_passkey_answers_are_4xx_or_refused_never_5xx(app, client, outbox, credential):
    passkey_user(app, client, outbox)
    Auth(client).logout()
    token = csrf(client, "/login")
    client.post("/login/passkey/options", headers={"X-CSRFToken": token})
    response = client.post("/login/passkey", data={"csrf_token": token, "credential": credential})
    assert response.status_code in (302, 400) and not signed_in(client)
    password_step(client)
    token = csrf(client, "/login/verify")
    client.post("/login/verify/passkey-options", headers={"X-CSRFToken": token})
    response = client.post("/login/verify", data={"csrf_token": token, "credential": credential})
    assert response.status_code in (401, 422) and not signed_in(client)
    for code in ("", "0" * 6, "٣" * 6, "x" * 64, "\x00", "1 2 3 4 5 6"):
        response = client.post("/login/verify", data={"csrf_token": token, "code": code})
        assert response.status_code in (302, 400, 401, 422, 429), code  # NUL: 400 (inputs.py)


# ---- notices ----------------------------------------------------------------------------


def device_nonce(app: Any, client: Client) -> str:
    """The nonce this browser's device cookie holds for alice."""
    from itsdangerous import URLSafeTimedSerializer

    cookie = client.cookie(app.config["DEVICE_COOKIE_NAME"])
    serializer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="device-cookie")
    [[_, nonce]] = serializer.loads(cookie)
    return str(nonce)


def new_sign_in_notices(app: Any, outbox: Any) -> int:
    deliver(app)
    return sum("New sign-in" in m["Subject"] for m in outbox.to("alice@example.com"))


def test_a_known_browser_signing_in_through_the_factor_step_is_not_new(app, client, outbox, clock):
    secret, _ = totp_user(app, client, outbox, clock)
    nonce = device_nonce(app, client)
    for _ in range(2):
        Auth(client).logout()
        clock.advance(30)
        password_step(client)
        client.post_form("/login/verify", {"code": pyotp.TOTP(secret).at(clock.now)})
        assert signed_in(client)
    assert new_sign_in_notices(app, outbox) == 0
    assert device_nonce(app, client) == nonce  # the same recognised browser, its budgets too


def test_a_known_browser_signing_in_with_a_passkey_is_not_new(app, client, outbox):
    authenticator = passkey_user(app, client, outbox)
    deliver(app)
    outbox.clear()
    nonce = device_nonce(app, client)
    Auth(client).logout()
    assert passkey_sign_in(client, authenticator).status_code == 302 and signed_in(client)
    assert new_sign_in_notices(app, outbox) == 0
    assert device_nonce(app, client) == nonce
    stranger = app.test_client()  # a browser that never signed in: told
    assert passkey_sign_in(stranger, authenticator).status_code == 302
    assert new_sign_in_notices(app, outbox) == 1


@pytest.mark.parametrize(
    "code",
    ["\u0661\u0662\u0663\u0664\u0665\u0666", "\uff11\uff12\uff13\uff14\uff15\uff16", "12345\uff16"],
)
def test_codes_in_other_scripts_digits_are_form_errors_not_500s(app, client, outbox, clock, code):
    verified(app, client, outbox)
    Auth(client).login()
    client.get("/account/two-factor/app")  # an enrolment under way
    enrolling = client.post_form("/account/two-factor/app", {"code": code})
    assert enrolling.status_code == 422 and "digits 0-9" in enrolling.get_data(as_text=True)
    enrol_totp(app, client, clock)
    Auth(client).logout()
    password_step(client)
    signing_in = client.post_form("/login/verify", {"code": code})
    assert signing_in.status_code == 401 and "digits 0-9" in signing_in.get_data(as_text=True)


def test_recovery_codes_carry_at_least_112_bits(app, client, outbox, clock):
    _, codes = totp_user(app, client, outbox, clock)
    for code in codes:
        letters = code.replace("-", "")
        assert len(letters) * 5 >= 112 and set(letters) <= set("abcdefghijklmnopqrstuvwxyz234567")


def test_the_passkey_added_notice_undoes_it_once_and_ends_every_session(
    app, client, make_client, outbox
):
    passkey_user(app, client, outbox)  # (as if a thief had added it from this browser)
    thief = client
    deliver(app)
    [notice] = [m for m in outbox.to("alice@example.com") if "protection" in m["Subject"]]
    undo = link_in_text(notice, "/undo/passkey/")
    owner = make_client()  # the owner, signed out, from the mailbox
    assert owner.get(undo).status_code == 200  # a page with a button: scanners change nothing
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Passkey)) == 1
    response = owner.post_form(undo, {})
    assert response.status_code == 302 and response.location.endswith("/login")
    assert not signed_in(thief)  # every session ended
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Passkey)) == 0
        assert db.session.scalar(db.select(db.func.count()).select_from(RecoveryCode)) == 0
    assert owner.post_form(undo, {}).status_code == 400  # it works once


def link_in_text(message: Any, prefix: str) -> str:
    """Return the path of the link starting with `prefix` in a message's text."""
    text = message.get_body(("plain",)).get_content()
    match = re.search(r"https://localhost(" + re.escape(prefix) + r"\S+)", text)
    assert match, text
    return match.group(1)
