"""Alertmanager's entrypoint (monitoring/alertmanager/alertmanager.sh) renders its
configuration from the stack's mail settings; Alertmanager's own `amtool check-config`
checks each result.

The script runs as in the container, except that the `prometheus-alertmanager` it ends in
is a stand-in recording its arguments and environment. amtool comes from Debian's
prometheus-alertmanager package; `make test` unpacks it into .venv/bin.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "monitoring" / "alertmanager" / "alertmanager.sh"
AMTOOL = Path(sys.executable).parent / "amtool"
# Stands in for the real binary: records what it was started with, then exits.
FAKE_ALERTMANAGER = """#!/bin/sh
printf '%s\\n' "$@" > "$RECORD/argv"
env > "$RECORD/env"
"""
PASSWORD = "not-a-real-smtp-password-7Q"


@dataclass
class Started:
    """What one start of the entrypoint did."""

    returncode: int
    stderr: str
    run_dir: Path
    record: Path

    @property
    def config_file(self) -> Path:
        return self.run_dir / "alertmanager.yml"

    @property
    def config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_file.read_text())

    @property
    def argv(self) -> list[str]:
        return (self.record / "argv").read_text().splitlines()

    @property
    def env(self) -> str:
        return (self.record / "env").read_text()


@pytest.fixture(scope="module")
def amtool() -> str:
    if not AMTOOL.exists():
        pytest.fail(f"{AMTOOL} is missing: `make test` (or `make {AMTOOL}`) installs it")
    return str(AMTOOL)


@pytest.fixture
def start(tmp_path: Path):
    """Run the entrypoint with only the given settings in its environment."""
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    fake = bin_dir / "prometheus-alertmanager"
    fake.write_text(FAKE_ALERTMANAGER)
    fake.chmod(0o755)

    def run(**settings: str) -> Started:
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "RECORD": str(record),
            "ALERTMANAGER_RUN_DIR": str(tmp_path / "run"),
            **settings,
        }
        result = subprocess.run(
            ["bash", str(SCRIPT), "--storage.path=/alertmanager"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return Started(result.returncode, result.stderr, tmp_path / "run", record)

    return run


def check_config(amtool: str, path: Path) -> None:
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def app_default_sender() -> str:
    config = (ROOT / "web" / "app" / "config.py").read_text()
    return re.search(r'"MAIL_FROM": text\(env, "MAIL_FROM", "([^"]+)"\)', config)[1]


# The compose defaults (MailDev, no login), the usual provider ports, and implicit TLS.
@pytest.mark.parametrize(
    ("security", "port", "require_tls"),
    [("none", "1025", False), ("starttls", "587", True), ("tls", "465", False)],
)
def test_each_smtp_security_renders_a_valid_config(amtool, start, security, port, require_tls):
    started = start(
        SMTP_HOST="smtp.example.com",
        SMTP_PORT=port,
        SMTP_SECURITY=security,
        SMTP_USER="apikey",
        SMTP_PASSWORD=PASSWORD,
        MAIL_FROM="Ops <ops@example.com>",
        ALERT_MAIL_TO="oncall@example.com",
    )
    assert started.returncode == 0, started.stderr
    check_config(amtool, started.config_file)
    smtp = started.config["global"]
    assert smtp["smtp_smarthost"] == f"smtp.example.com:{port}"
    assert smtp["smtp_require_tls"] is require_tls
    assert smtp["smtp_from"] == "Ops <ops@example.com>"
    assert smtp["smtp_auth_username"] == "apikey"
    [receiver] = started.config["receivers"]
    assert receiver["email_configs"][0]["to"] == "oncall@example.com"
    assert receiver["email_configs"][0]["send_resolved"] is True
    assert started.argv == [f"--config.file={started.config_file}", "--storage.path=/alertmanager"]
    assert started.stderr.strip() == (
        f"alertmanager: every alert is mailed to oncall@example.com"
        f" through smtp.example.com:{port} ({security})"
    )


def test_the_password_reaches_alertmanager_as_a_file_only(amtool, start):
    started = start(SMTP_USER="apikey", SMTP_PASSWORD=PASSWORD, ALERT_MAIL_TO="a@example.com")
    assert started.returncode == 0, started.stderr
    password_file = started.run_dir / "smtp_password"
    assert started.config["global"]["smtp_auth_password_file"] == str(password_file)
    assert password_file.read_text() == PASSWORD
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    # Not in the rendered file, the command line, Alertmanager's environment or the log.
    for place in (started.config_file.read_text(), " ".join(started.argv), started.env):
        assert PASSWORD not in place
    assert PASSWORD not in started.stderr
    check_config(amtool, started.config_file)


def test_a_mounted_password_file_is_used_where_it_is(start, tmp_path):
    mounted = tmp_path / "smtp_password"
    mounted.write_text(PASSWORD + "\n")
    started = start(SMTP_USER="apikey", SMTP_PASSWORD_FILE=str(mounted), ALERT_MAIL_TO="a@b.c")
    assert started.returncode == 0, started.stderr
    assert started.config["global"]["smtp_auth_password_file"] == str(mounted)
    assert not (started.run_dir / "smtp_password").exists()


def test_an_empty_password_file_means_no_password(start, tmp_path):
    # compose's secrets service writes an empty file when .env sets no SMTP_PASSWORD.
    mounted = tmp_path / "smtp_password"
    mounted.write_text("")
    started = start(SMTP_USER="apikey", SMTP_PASSWORD_FILE=str(mounted), ALERT_MAIL_TO="a@b.c")
    assert started.returncode == 0, started.stderr
    assert started.config["global"]["smtp_auth_username"] == "apikey"
    assert "smtp_auth_password_file" not in started.config["global"]


def test_without_a_user_no_login_is_attempted(start):
    started = start(SMTP_PASSWORD=PASSWORD, ALERT_MAIL_TO="a@example.com")
    assert started.returncode == 0, started.stderr
    assert "smtp_auth_username" not in started.config["global"]
    assert "smtp_auth_password_file" not in started.config["global"]


def test_the_defaults_reach_maildev_from_the_apps_sender_and_mail_nobody(amtool, start):
    started = start()
    assert started.returncode == 0, started.stderr
    check_config(amtool, started.config_file)
    config = started.config
    assert config["global"]["smtp_smarthost"] == "mail:1025"
    assert config["global"]["smtp_require_tls"] is False
    assert config["global"]["smtp_from"] == app_default_sender()
    # Idle, and it says so in one line: alerts are kept, nobody gets mail.
    assert config["receivers"] == [{"name": "mail"}]
    assert started.stderr.splitlines() == [
        "alertmanager: ALERT_MAIL_TO is empty: alerts are mailed to nobody (set it in .env)"
    ]


def test_alerts_are_grouped_by_name_with_the_documented_timers(start):
    route = start(ALERT_MAIL_TO="a@example.com").config["route"]
    assert route == {
        "receiver": "mail",
        "group_by": ["alertname"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
    }
    timers = {"ALERT_GROUP_WAIT": "5s", "ALERT_GROUP_INTERVAL": "1m", "ALERT_REPEAT_INTERVAL": "1d"}
    route = start(ALERT_MAIL_TO="a@example.com", **timers).config["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "5s",
        "1m",
        "1d",
    )


def test_addresses_with_quotes_and_backslashes_arrive_unchanged(amtool, start):
    sender = 'The "Ops" Desk \\ Alerts <ops@example.com>'
    recipients = 'oncall@example.com, "Doe, Jo" <jo@example.com>'
    started = start(MAIL_FROM=sender, ALERT_MAIL_TO=recipients)
    assert started.returncode == 0, started.stderr
    assert started.config["global"]["smtp_from"] == sender
    assert started.config["receivers"][0]["email_configs"][0]["to"] == recipients
    check_config(amtool, started.config_file)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"SMTP_SECURITY": "tls", "SMTP_PORT": "587"}, "SMTP_SECURITY=tls needs SMTP_PORT=465"),
        ({"SMTP_SECURITY": "ssl"}, "SMTP_SECURITY must be none, starttls or tls"),
        ({"SMTP_PORT": "smtp"}, "SMTP_PORT=smtp is not a port number"),
        ({"ALERT_GROUP_WAIT": "30 seconds"}, "ALERT_GROUP_WAIT=30 seconds is not a duration"),
        ({"ALERT_REPEAT_INTERVAL": "4"}, "ALERT_REPEAT_INTERVAL=4 is not a duration"),
        # A newline would add YAML keys of its own (another receiver, another route).
        ({"ALERT_MAIL_TO": "a@example.com\n  x: y"}, "ALERT_MAIL_TO holds a control character"),
        ({"SMTP_USER": "u", "SMTP_PASSWORD_FILE": "/nonexistent"}, "SMTP_PASSWORD_FILE"),
    ],
)
def test_a_wrong_setting_stops_the_start_with_one_line_naming_it(start, settings, named):
    started = start(**{"ALERT_MAIL_TO": "a@example.com", **settings})
    assert started.returncode != 0
    [line] = started.stderr.splitlines()
    assert line.startswith("alertmanager: ") and named in line
    assert not (started.record / "argv").exists()  # Alertmanager never started
