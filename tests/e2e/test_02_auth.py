"""Register, log in, see the dashboard and log out through nginx, with sessions in Redis."""

from __future__ import annotations

import pytest
import requests

from .conftest import Stack, new_username

pytestmark = pytest.mark.e2e

SESSION_COOKIE = "__Host-session"


def session_keys(stack: Stack) -> set[str]:
    """Return the session keys currently stored in Redis."""
    return set(stack.redis("--scan", "--pattern", "session:*").split())


def cookie(resp: requests.Response, name: str) -> str:
    """Return the raw Set-Cookie header that sets `name` along the redirect chain."""
    for r in [*resp.history, resp]:
        for header in r.raw.headers.getlist("Set-Cookie"):
            if header.startswith(name + "="):
                return header
    raise AssertionError(f"{name} was never set")


def test_register_login_dashboard_logout(stack: Stack, client: requests.Session) -> None:
    username = new_username()
    stack.register(client, username)

    stack.login(client, username)
    sid = client.cookies.get(SESSION_COOKIE)
    assert sid, "no session cookie after login"
    assert f"session:{sid}" in session_keys(stack), "the signed-in session is not in Redis"

    dashboard = client.get(stack.base_url + "/dashboard", timeout=10)
    assert dashboard.status_code == 200
    assert f"Welcome {username}!" in dashboard.text

    logout = stack.post_form(client, "/logout", {})
    assert logout.status_code == 200
    assert f"session:{sid}" not in session_keys(stack), "the session outlived the logout"
    again = client.get(stack.base_url + "/dashboard", timeout=10, allow_redirects=False)
    assert again.status_code in (302, 303)
    assert "/login" in again.headers["Location"]


def test_session_and_remember_cookies_are_locked_down(
    stack: Stack, client: requests.Session
) -> None:
    username = new_username()
    stack.register(client, username)
    form = {"username": username, "password": "correct horse battery staple 42", "remember": "y"}
    resp = stack.post_form(client, "/login", form)
    assert f"Welcome {username}!" in resp.text
    for name in (SESSION_COOKIE, "__Host-remember"):
        attributes = {part.strip().split("=")[0].lower() for part in cookie(resp, name).split(";")}
        assert {"secure", "httponly", "path"} <= attributes, name
        assert "domain" not in attributes, name  # __Host- cookies must not have one
        assert "samesite=lax" in cookie(resp, name).lower().replace(" ", ""), name
