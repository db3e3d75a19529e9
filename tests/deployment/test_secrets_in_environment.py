"""No password is a value in a long-running service's environment, on any target.

docs/configuration.md promises it: every secret reaches a service as a file (`NAME_FILE`,
Docker, Swarm or Kubernetes secrets), so `docker inspect`, /proc/<pid>/environ and a crash
report never show one. The only exception is compose's one-shot `secrets` service, which
has no network and turns the values given in .env into those files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Names that hold a secret when they are not a path to one (NAME_FILE) or a login name.
SECRET_NAME = re.compile(r"(PASSWORD|_PASS|SECRET_KEY|ENCRYPTION_KEYS?|_TOKEN)$")
# One-shot, no network: it writes the files the others read (web/init-secrets.py).
GENERATOR = "secrets"


def secret_names(environment: Any) -> list[str]:
    names = (
        environment.keys()
        if isinstance(environment, dict)
        else [entry.split("=", 1)[0] for entry in environment or []]
    )
    return sorted(name for name in names if SECRET_NAME.search(name))


@pytest.mark.parametrize(
    "stack_file", [ROOT / "docker-compose.yml", ROOT / "deploy" / "swarm" / "stack.yml"]
)
def test_no_service_but_the_generator_gets_a_secret_as_a_value(stack_file):
    services = yaml.safe_load(stack_file.read_text())["services"]
    found = {
        name: secret_names(service.get("environment"))
        for name, service in services.items()
        if name != GENERATOR
    }
    assert {name: keys for name, keys in found.items() if keys} == {}


def test_no_kubernetes_configmap_holds_a_secret():
    for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.env")):
        keys = [line.split("=", 1)[0] for line in path.read_text().splitlines() if "=" in line]
        assert secret_names(keys) == [], path.name


def test_the_rule_catches_a_password_given_as_a_value():
    assert secret_names({"SMTP_PASSWORD": "", "SMTP_PASSWORD_FILE": "/run/x"}) == ["SMTP_PASSWORD"]
    assert secret_names(["BACKUP_CIPHER_PASS=x", "DATA_SOURCE_PASS_FILE=/f"]) == [
        "BACKUP_CIPHER_PASS"
    ]
