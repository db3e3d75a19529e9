"""Every setting docker-compose.yml reads is explained in .env.example."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Given on the command line (`make deploy APP_VERSION=...`), not in a .env.
COMMAND_LINE_ONLY = {"APP_VERSION"}


def test_every_variable_compose_reads_is_in_env_example():
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    assert used - COMMAND_LINE_ONLY - listed == set()
