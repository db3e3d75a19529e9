"""acme/entrypoint.sh: when the acme service asks a CA for a certificate, and when it does not.

The script runs for real with its helpers on PATH; `certbot` is a stand-in that records its
arguments and fails, so nothing leaves this machine (tests/e2e/test_10_acme.py runs the real
certbot against Pebble).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ACME = Path(__file__).resolve().parents[2] / "acme"
FAKE_CERTBOT = """#!/bin/sh
echo "$*" >> "$CERTBOT_CALLS"
echo "certbot: no network here" >&2
exit 1
"""


class Entrypoint:
    """The entrypoint running in the background with a given environment."""

    def __init__(self, tmp: Path, **env: str) -> None:
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for name, target in {
            "acme-config": "acme_config.py",
            "acme-deploy": "deploy.sh",
            "acme-renew": "renew.sh",
        }.items():
            (bin_dir / name).symlink_to(ACME / target)
        (bin_dir / "certbot").write_text(FAKE_CERTBOT)
        (bin_dir / "certbot").chmod(0o755)
        self.calls = tmp / "certbot-calls"
        self.log_path = tmp / "entrypoint.log"
        self.log = self.log_path.open("w")
        full_env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "CERTBOT_CALLS": str(self.calls),
            "ACME_RETRY_SECONDS": "600",
            **env,
        }
        self.proc = subprocess.Popen(
            ["bash", str(ACME / "entrypoint.sh")],
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def wait_for_output(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc.poll() is None or text in self.output(), self.output()
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()}"
            time.sleep(0.05)

    def certbot_calls(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def stop(self) -> int:
        """Send SIGTERM as `docker stop` does; return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=5)


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    started: list[Entrypoint] = []

    def _start(**env: str) -> Entrypoint:
        entrypoint = Entrypoint(tmp_path, **env)
        started.append(entrypoint)
        return entrypoint

    yield _start
    for entrypoint in started:
        if entrypoint.proc.poll() is None:
            entrypoint.proc.kill()
            entrypoint.proc.wait()
        entrypoint.log.close()


def test_without_acme_email_it_asks_no_ca_and_stops_at_once_on_sigterm(start) -> None:
    acme = start(SERVER_NAME="shop.example.com")
    acme.wait_for_output("ACME_EMAIL is not set: no certificate is requested")
    time.sleep(0.5)
    assert acme.proc.poll() is None  # idles: no restart loop under `restart: unless-stopped`
    started = time.monotonic()
    assert acme.stop() == 0
    assert time.monotonic() - started < 2  # not the 10 s docker stop would wait
    assert acme.certbot_calls() == []


def test_a_local_name_keeps_the_self_signed_certificate(start) -> None:
    acme = start(SERVER_NAME="localhost", ACME_EMAIL="ops@example.com")
    acme.wait_for_output("no certificate is requested for localhost")
    assert "'localhost' is not a public name: it has no dot" in acme.output()
    assert acme.proc.poll() is None
    assert acme.stop() == 0
    assert acme.certbot_calls() == []


def test_contradicting_settings_stop_the_container_before_any_ca_is_asked(start) -> None:
    acme = start(SERVER_NAME="shop.example.com", ACME_EMAIL="ops@example.com", ACME_STAGING="1x")
    assert acme.proc.wait(timeout=10) != 0
    assert "ACME_STAGING must be true or false" in acme.output()
    assert acme.certbot_calls() == []


@pytest.mark.parametrize(
    ("env", "directory"),
    [
        ({}, "https://acme-v02.api.letsencrypt.org/directory"),
        ({"ACME_STAGING": "true"}, "https://acme-staging-v02.api.letsencrypt.org/directory"),
        ({"ACME_DIRECTORY": "https://ca.example/acme"}, "https://ca.example/acme"),
    ],
)
def test_a_public_name_is_asked_for_over_http_01_and_retried_later_on_failure(
    start, env: dict[str, str], directory: str
) -> None:
    acme = start(SERVER_NAME="shop.example.com", ACME_EMAIL="ops@example.com", **env)
    acme.wait_for_output("next try in 600s")
    [call] = acme.certbot_calls()  # one try, then a pause (the CA's failed-validation limit)
    args = call.split()
    assert args[0] == "certonly"
    for flag, value in [
        ("--server", directory),
        ("--email", "ops@example.com"),
        ("--webroot-path", "/var/www/acme"),
        ("--cert-name", "shop.example.com"),
        ("--domains", "shop.example.com"),
    ]:
        assert args[args.index(flag) + 1] == value, call
    # No new certificate while a valid one is held; nothing forced without a CA change.
    assert "--keep-until-expiring" in args and "--force-renewal" not in args
    assert {"--non-interactive", "--agree-tos", "--webroot"} <= set(args)
    assert acme.stop() == 0
