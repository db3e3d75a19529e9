"""Accounts through nginx: sessions page, revocable remember-me, limits, __Host- cookies."""

from __future__ import annotations

import pytest
import requests

from .conftest import TEST_PASSWORD, Stack, new_username

pytestmark = pytest.mark.e2e


def is_anonymous(stack: Stack, client: requests.Session) -> bool:
    response = client.get(stack.base_url + "/dashboard", allow_redirects=False, timeout=10)
    return response.status_code == 302 and "/login" in response.headers["Location"]


def replay(stack: Stack, remember_cookie: str) -> requests.Session:
    """A browser that holds nothing but a copied remember-me cookie."""
    thief = stack.session()
    thief.cookies.set("__Host-remember", remember_cookie)
    return thief


def test_remember_cookie_replayed_after_logout_is_anonymous(stack: Stack) -> None:
    username = new_username()
    client = stack.session()
    stack.register(client, username)
    stack.login(client, username, remember=True)
    stolen = client.cookies.get("__Host-remember")
    assert stolen
    assert not is_anonymous(stack, replay(stack, stolen))  # control: it works before logout
    stack.post_form(client, "/logout", {})
    assert is_anonymous(stack, replay(stack, stolen))


def test_account_failures_hit_429_and_forged_x_forwarded_for_does_not_reset(stack: Stack) -> None:
    username = new_username()
    owner = stack.session()
    stack.register(owner, username)
    attacker = stack.session()
    statuses = []
    for n in range(6):  # the default budget from one address is 5 failures in 5 minutes
        token = stack.csrf_token(attacker, "/login")
        response = attacker.post(
            stack.base_url + "/login",
            data={"csrf_token": token, "username": username, "password": f"guess number {n}"},
            headers={"Referer": stack.base_url + "/login", "X-Forwarded-For": f"10.9.8.{n}"},
            timeout=30,
        )
        statuses.append(response.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    assert 0 < int(response.headers["Retry-After"]) <= 300
    assert "Too many attempts" in response.text


def test_host_prefixed_cookies_through_nginx(stack: Stack) -> None:
    username = new_username()
    client = stack.session()
    stack.register(client, username)
    token = stack.csrf_token(client, "/login")
    response = client.post(
        stack.base_url + "/login",
        data={
            "csrf_token": token,
            "username": username,
            "password": TEST_PASSWORD,
            "remember": "y",
        },
        headers={"Referer": stack.base_url + "/login"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302
    headers = response.raw.headers.getlist("Set-Cookie")
    for name in ("__Host-session", "__Host-remember"):
        [cookie] = [h for h in headers if h.startswith(name + "=")]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"secure", "httponly", "path", "samesite"} <= attributes
        assert "domain" not in attributes
        assert "Path=/" in cookie and "SameSite=Lax" in cookie


def test_unknown_host_is_refused(stack: Stack) -> None:
    response = stack.session().get(
        stack.base_url + "/", headers={"Host": "evil.example"}, timeout=10
    )
    assert response.status_code == 400


def test_a_real_account_with_a_hostile_user_agent_signs_in(stack: Stack) -> None:
    """ua-parser names this device with 128 characters: longer than the audit column."""
    username = new_username()
    client = stack.session()
    stack.register(client, username)
    client.headers["User-Agent"] = f"{'A' * 50} the Spider{'a' * 50}/1 (Windows Phone 8.0)"
    stack.login(client, username, remember=True)
    account = client.get(stack.base_url + "/account", allow_redirects=False, timeout=10)
    assert account.status_code == 200 and "the Spider" in account.text


def test_replaying_a_remember_cookie_keeps_one_session_per_device(stack: Stack) -> None:
    username = new_username()
    owner = stack.session()
    stack.register(owner, username)
    stack.login(owner, username, remember=True)
    cookie = owner.cookies.get("__Host-remember")
    signed_in = sum(not is_anonymous(stack, replay(stack, cookie)) for _ in range(15))
    assert signed_in == 10  # REMEMBER_RESTORE_LIMIT's default, then that browser logs in again
    page = owner.get(stack.base_url + "/account", timeout=10).text
    sessions = page.split("Remembered devices")[0].count('/end"')
    assert sessions <= 1  # the owner's own session has no End button: one other, the device's


def test_a_copied_remember_cookie_changes_no_credential_and_dies_with_the_owners_new_password(
    stack: Stack,
) -> None:
    """Issue 26 from outside, through nginx: a session restored from a stolen remember-me
    cookie meets the credential gate, and the owner's password change ends every copy while
    the owner's own browser stays signed in with a new token."""
    username, new_password = new_username(), TEST_PASSWORD + " changed"
    owner = stack.session()
    stack.register(owner, username)
    stack.login(owner, username, remember=True)
    stolen = owner.cookies.get("__Host-remember")
    thief = replay(stack, stolen)
    assert not is_anonymous(stack, thief)  # control: the copy restores a session

    # The gate: a restored session may not start a passkey registration nor open the
    # password form; it is sent to sign in again.
    token = stack.csrf_token(thief, "/logout")
    options = thief.post(
        stack.base_url + "/account/passkeys/options",
        data={"csrf_token": token},
        headers={"Referer": stack.base_url + "/account/two-factor"},
        allow_redirects=False,
        timeout=30,
    )
    assert options.status_code == 302, options.text[:300]
    assert "/login" in options.headers["Location"]
    form = thief.get(stack.base_url + "/account/password", allow_redirects=False, timeout=10)
    assert form.status_code == 302 and "/login" in form.headers["Location"]

    # The thief's restore replaced the session of the device it copied (the owner's): the
    # owner signs in again with the password, and then the change goes through.
    stack.login(owner, username, remember=True)
    fields = {"current": TEST_PASSWORD, "password": new_password, "confirm": new_password}
    changed = stack.post_form(owner, "/account/password", fields)
    assert changed.status_code == 200 and "Password changed" in changed.text
    renewed = owner.cookies.get("__Host-remember")
    assert renewed and renewed != stolen, "this browser's remember-me token was not renewed"
    assert not is_anonymous(stack, owner)
    assert is_anonymous(stack, thief), "the thief's restored session outlived the change"
    assert is_anonymous(stack, replay(stack, stolen)), "a copy of the old cookie still restores"
    # The renewed token is this browser's lasting way in, as before the change.
    assert not is_anonymous(stack, replay(stack, renewed))
