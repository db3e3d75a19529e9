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
