"""Stack-changing tests, run last: scaling web out, and a full down + up keeping the data."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests

from .conftest import Stack, new_username

pytestmark = pytest.mark.e2e

SECRET_FILES = ("secret_key", "postgres_app_password", "redis_password")


def fingerprints(stack: Stack) -> dict[str, str]:
    """Return a hash of each generated secret as web sees it (the values stay inside)."""
    out = stack.exec("web", "cd /run/secrets/app && sha256sum " + " ".join(SECRET_FILES))
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def test_nginx_answers_with_its_own_page_while_web_is_down(
    stack: Stack, client: requests.Session
) -> None:
    stack.compose("stop", "web")
    try:
        resp = client.get(stack.base_url + "/", timeout=30)
        # 502 once `web` no longer resolves; 504 while nginx still holds the old address
        # (up to the resolver's 5 s) and the connect times out.
        assert resp.status_code in (502, 504)
        assert f"<h1>{resp.status_code} " in resp.text  # nginx's page, not the app's
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "max-age=" in resp.headers["Strict-Transport-Security"]
    finally:
        stack.up()
    assert client.get(stack.base_url + "/healthz", timeout=10).status_code == 200


def test_scaled_out_replicas_share_the_session(stack: Stack, client: requests.Session) -> None:
    username = new_username()
    stack.register(client, username)
    stack.login(client, username)

    stack.up("--scale", "web=2")
    assert len(stack.container_ids("web")) == 2

    # nginx re-resolves `web` every 5 s: wait (bounded) until both replicas have answered.
    served_by: set[str] = set()
    deadline = time.monotonic() + 30
    while len(served_by) < 2 and time.monotonic() < deadline:
        resp = client.get(stack.base_url + "/dashboard", timeout=10, allow_redirects=False)
        assert resp.status_code == 200, "logged out while moving between replicas"
        assert f"Welcome {username}!" in resp.text
        served_by.add(resp.headers["X-Served-By"])
        time.sleep(0.2)
    assert len(served_by) == 2, f"only {served_by} answered"

    stack.up("--scale", "web=1")
    assert len(stack.container_ids("web")) == 1


def test_data_sessions_and_secrets_survive_down_and_up(
    stack: Stack, client: requests.Session
) -> None:
    username = new_username()
    stack.register(client, username)
    stack.login(client, username)
    before = fingerprints(stack)

    stack.down("-t", "10")  # no -v: volumes stay
    assert stack.compose("ps", "-a", "-q").split() == []
    stack.up()

    assert fingerprints(stack) == before, "a generated secret was regenerated"
    # The same cookie still works: same SECRET_KEY, and Redis kept the session (AOF).
    dashboard = client.get(stack.base_url + "/dashboard", timeout=10, allow_redirects=False)
    assert dashboard.status_code == 200
    assert f"Welcome {username}!" in dashboard.text
    # PostgreSQL kept the account: a fresh client can log in again.
    with stack.session() as fresh:
        stack.login(fresh, username)


def test_a_lost_secrets_volume_stops_the_stack_with_one_clear_line(stack: Stack) -> None:
    # Last: it leaves the stack unable to start (the fixture removes it with its volumes).
    stack.down("-t", "10")
    volume = f"{stack.project}_secrets"
    subprocess.run(["docker", "volume", "rm", volume], check=True, capture_output=True)

    started = subprocess.run(
        [*stack.compose_command(), "up", "-d", "--wait"],
        cwd=stack.tmp,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert started.returncode != 0, "the stack started with a new database password"
    logs = stack.compose("logs", "--no-color", "secrets")
    assert "postgres_password is missing but the database" in logs
    assert not stack.running("web"), "web started anyway"
