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


def test_a_lost_secrets_volume_stops_the_stack_and_the_recovery_kit_brings_it_back(
    stack: Stack, client: requests.Session
) -> None:
    # Last: it removes the secrets volume. The kit is made first, as docs/operations.md asks.
    username = new_username()
    stack.register(client, username)
    before = fingerprints(stack)
    kit = stack.tmp / "recovery.kit"
    kit_env = {
        "RECOVERY_KIT_PASSPHRASE": "kept in the team's password manager",
        "ENV_FILE": str(stack.tmp / "empty.env"),
    }
    made = stack.make("recovery-kit", f"KIT={kit}", env=kit_env)
    assert made.returncode == 0, made.stderr
    assert "secrets and .env" in made.stdout
    assert kit.stat().st_mode & 0o777 == 0o600

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

    wrong = stack.make(
        "recovery-kit-restore",
        f"KIT={kit}",
        env={**kit_env, "RECOVERY_KIT_PASSPHRASE": "a guess, not the passphrase"},
    )
    assert wrong.returncode != 0
    assert "recovery-kit: wrong passphrase, or the file was changed" in wrong.stderr
    restored = stack.make("recovery-kit-restore", f"KIT={kit}", env=kit_env)
    assert restored.returncode == 0, restored.stderr
    stack.up()
    assert fingerprints(stack) == before, "a secret differs from the kit's"
    with stack.session() as fresh:
        stack.login(fresh, username)
    # A second restore finds its own secrets in place and changes nothing.
    again = stack.make("recovery-kit-restore", f"KIT={kit}", env=kit_env)
    assert again.returncode == 0, again.stderr
    assert "already holds this kit's secrets" in again.stdout
