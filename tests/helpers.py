"""What tests share besides fixtures: the browser-like client, the auth steps, test data.

Tests import these from here (`from helpers import Auth`), never from conftest.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyotp
from app import jobs
from flask.testing import FlaskClient

BASE_URL = "https://localhost"
INIT_SECRETS = Path(__file__).resolve().parents[1] / "web" / "init-secrets.py"
PASSWORD = "correct horse battery"
# The alert rules monitoring/prometheus/alerts.yml must define (and load into Prometheus).
ALERTS = frozenset({
    "TargetDown",
    "HighErrorRatio",
    "HighLatencyP99",
    "RedisMemoryNearLimit",
    "MailQueueBacklog",
    "MailUndeliverable",
    "PostgresConnectionsNearMax",
    "CertificateExpiresSoon",
    "WebWorkerMemoryHigh",
    "BackupTooOld",
    "BackupFailed",
    "RestoreTestFailed",
    "RestoreTestTooOld",
    "BackupRepositoryUnreadable",
    "WALArchiveFailing",
    "WALArchiveBehind",
})  # fmt: skip
# Two devices, as the sessions page names them.
FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


class Client(FlaskClient):
    """A test client on https://localhost that sends a same-origin Referer, like a browser."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("base_url", BASE_URL)
        headers = kwargs.setdefault("headers", {})
        if isinstance(headers, dict):
            headers.setdefault("Referer", BASE_URL + "/")
        return super().open(*args, **kwargs)

    def csrf_token(self, path: str) -> str:
        """Load `path` and return the CSRF token of its form."""
        page = self.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def post_form(self, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
        """POST `data` to `path` with the CSRF token of the form served there."""
        form_page = kwargs.pop("form_page", path)
        return self.post(path, data={"csrf_token": self.csrf_token(form_page), **data}, **kwargs)

    def cookie(self, name: str) -> str | None:
        """Return the value of cookie `name` held by the client, or None."""
        found = self.get_cookie(name)
        return found.value if found else None


class Auth:
    """Register, log in and log out through the real forms."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def register(
        self, username: str = "alice", password: str = PASSWORD, email: str | None = None
    ) -> Any:
        form = {"username": username, "password": password, "confirm": password}
        form["email"] = f"{username}@example.com" if email is None else email
        return self.client.post_form("/register", form)

    def login(
        self, username: str = "alice", password: str = PASSWORD, remember: bool = False, **kw: Any
    ) -> Any:
        data = {"username": username, "password": password}
        if remember:
            data["remember"] = "y"
        return self.client.post_form("/login", data, **kw)

    def logout(self) -> Any:
        return self.client.post_form("/logout", {})

    def signed_in(self, username: str = "alice", remember: bool = False) -> Client:
        """Register and log in `username`; return the client."""
        assert self.register(username).status_code == 302
        assert self.login(username, remember=remember).status_code == 302
        return self.client


def deliver(app: Any) -> None:
    """Run the worker until the queue is empty (as the `worker` service would, continuously)."""
    with app.app_context():
        jobs.work(burst=True)


def enrol_totp(app: Any, client: Client, clock: Any) -> tuple[str, list[str]]:
    """Enrol an authenticator app for the signed-in user; return its secret and the codes."""
    page = client.get("/account/two-factor/app").get_data(as_text=True)
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)  # type: ignore[union-attr]
    code = pyotp.TOTP(secret).at(clock.now)
    response = client.post_form("/account/two-factor/app", {"code": code})
    assert response.status_code == 200, response.get_data(as_text=True)
    codes = re.findall(r"<li><code>([a-z2-7-]+)</code></li>", response.get_data(as_text=True))
    return secret, codes


def link_in(message: Any) -> str:
    """Return the path of the one link in a message's text."""
    text = message.get_body(("plain",)).get_content()
    match = re.search(r"https://localhost(/\S+)", text)
    assert match, text
    return match.group(1)


def verified(app: Any, client: Client, outbox: Any, username: str = "alice") -> Client:
    """Register `username`, and verify the address through the mailed link."""
    assert Auth(client).register(username).status_code == 302
    deliver(app)
    [message] = outbox.to(f"{username}@example.com")
    assert "Verify your email address" in message["Subject"]
    assert client.get(link_in(message)).status_code == 302
    outbox.clear()
    return client


REMEMBER = "__Host-remember"  # the remember-me cookie's name under HTTPS (app/config.py)


def fresh_browser_with(make_client: Any, cookie: str) -> Client:
    """A browser that holds only a copy of a remember cookie (no session)."""
    browser = make_client()
    browser.set_cookie(REMEMBER, cookie, domain="localhost")
    return browser


def signed_in(browser: Client) -> bool:
    """Return whether the browser reaches the dashboard (signed in or restored)."""
    return browser.get("/dashboard").status_code == 200
