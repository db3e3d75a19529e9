"""The alert rules (monitoring/prometheus/alerts.yml) under Prometheus' own rule tester.

promtool comes from Debian's prometheus package; `make test` unpacks it into .venv/bin.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ALERTS

RULES = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus"
PROMTOOL = Path(sys.executable).parent / "promtool"


@pytest.fixture(scope="module")
def promtool() -> str:
    if not PROMTOOL.exists():
        pytest.fail(f"{PROMTOOL} is missing: `make test` (or `make {PROMTOOL}`) installs it")
    return str(PROMTOOL)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=RULES, capture_output=True, text=True, timeout=120)


def test_the_rules_are_valid(promtool: str) -> None:
    result = run(promtool, "check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_as_its_tests_expect(promtool: str) -> None:
    result = run(promtool, "test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_test_that_makes_it_fire() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", (RULES / "alerts.yml").read_text(), re.M))
    tests = (RULES / "alerts.test.yml").read_text()
    firing = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", tests))
    assert alerts == ALERTS
    assert firing == alerts
