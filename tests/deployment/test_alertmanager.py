"""Alertmanager in docker-compose.yml and Prometheus' configuration: the monitoring profile
mails through the worker's SMTP settings, hardened like its neighbours, and Prometheus sends
it every alert. Its entrypoint: tests/images/test_alertmanager_entrypoint.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_alertmanager_mails_through_the_workers_smtp_settings(compose):
    worker = compose["services"]["worker"]["environment"]
    alertmanager = compose["services"]["alertmanager"]["environment"]
    for key in ("SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_SECURITY", "MAIL_FROM"):
        assert alertmanager[key] == worker[key], key
    # The password as a file from the same volume, never as a value in the environment.
    assert alertmanager["SMTP_PASSWORD_FILE"] == worker["SMTP_PASSWORD_FILE"]
    assert "SMTP_PASSWORD" not in alertmanager
    assert "SMTP_PASSWORD" not in worker
    mount = f"secrets-mail:{Path(worker['SMTP_PASSWORD_FILE']).parent}:ro"
    for service in ("worker", "alertmanager"):
        assert mount in compose["services"][service]["volumes"], service


def test_alertmanager_is_hardened_like_the_other_monitoring_services(compose):
    service = compose["services"]["alertmanager"]
    assert service["profiles"] == ["monitoring"]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    stage = (ROOT / "monitoring" / "Dockerfile").read_text().split("FROM base AS alertmanager")[1]
    assert "\nUSER nobody\n" in stage.split("\nFROM ")[0]


def test_prometheus_sends_every_alert_to_alertmanager():
    config = yaml.safe_load((ROOT / "monitoring" / "prometheus" / "prometheus.yml").read_text())
    [target] = [
        t
        for manager in config["alerting"]["alertmanagers"]
        for c in manager["static_configs"]
        for t in c["targets"]
    ]
    assert target == "alertmanager:9093"
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert "alertmanager" in jobs  # TargetDown when it is down
