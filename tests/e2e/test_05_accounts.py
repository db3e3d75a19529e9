"""Accounts through nginx: sessions page, revocable remember-me, limits, __Host- cookies."""

from __future__ import annotations

import re

import pytest
import requests

from .conftest import TEST_PASSWORD, Stack, new_username

pytestmark = pytest.mark.e2e

FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def device(stack: Stack, user_agent: str) -> requests.Session:
    client = stack.session()
    client.headers["User-Agent"] = user_agent
    return client


def is_anonymous(stack: Stack, client: requests.Session) -> bool:
    response = client.get(stack.base_url + "/dashboard", allow_redirects=False, timeout=10)
    return response.status_code == 302 and "/login" in response.headers["Location"]


def replay(stack: Stack, remember_cookie: str) -> requests.Session:
    """A browser that holds nothing but a copied remember-me cookie."""
    thief = stack.session()
    thief.cookies.set("__Host-remember", remember_cookie)
    return thief


def test_sessions_page_shows_two_devices_and_ends_one(stack: Stack) -> None:
    username = new_username()
    laptop, phone = device(stack, FIREFOX), device(stack, SAFARI)
    stack.register(laptop, username)
    stack.login(laptop, username)
    stack.login(phone, username)

    page = laptop.get(stack.base_url + "/account", timeout=10).text
    assert "Firefox on Ubuntu" in page and "Mobile Safari on iOS" in page
    assert page.count("(this device)") == 1
    [handle] = re.findall(r'action="/account/sessions/([0-9a-f]{16})/end"', page)

    token = stack.csrf_token(laptop, "/account")
    ended = laptop.post(
        f"{stack.base_url}/account/sessions/{handle}/end",
        data={"csrf_token": token},
        headers={"Referer": stack.base_url + "/account"},
        timeout=10,
    )
    assert ended.status_code == 200 and "The session has ended." in ended.text
    assert is_anonymous(stack, phone)
    assert not is_anonymous(stack, laptop)


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


def test_remember_cookie_replayed_after_password_change_is_anonymous(stack: Stack) -> None:
    username = new_username()
    laptop, phone = stack.session(), stack.session()
    stack.register(laptop, username)
    stack.login(laptop, username)
    stack.login(phone, username, remember=True)
    stolen = phone.cookies.get("__Host-remember")
    new = TEST_PASSWORD + " changed"
    changed = stack.post_form(
        laptop, "/account/password", {"current": TEST_PASSWORD, "password": new, "confirm": new}
    )
    assert changed.status_code == 200 and "Password changed" in changed.text
    assert not is_anonymous(stack, laptop)
    assert is_anonymous(stack, phone)
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
