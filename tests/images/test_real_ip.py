"""nginx/25-real-ip.sh: TRUSTED_PROXIES becomes realip directives, and nothing else can.

The script runs for real into a temporary file; tests/e2e/test_03_edge.py checks that the
real nginx accepts what it writes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "nginx" / "25-real-ip.sh"


def render(tmp_path: Path, trusted: str | None) -> tuple[subprocess.CompletedProcess[str], str]:
    out = tmp_path / "real-ip.conf"
    env = {"PATH": os.environ["PATH"], "REAL_IP_CONF": str(out)}
    if trusted is not None:
        env["TRUSTED_PROXIES"] = trusted
    result = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, check=False)
    return result, out.read_text() if out.exists() else ""


def directives(conf: str) -> list[str]:
    return [line for line in conf.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("trusted", [None, "", " , "])
def test_no_front_proxy_by_default_trusts_no_forwarded_address(tmp_path, trusted):
    result, conf = render(tmp_path, trusted)
    assert result.returncode == 0, result.stderr
    assert directives(conf) == []  # the file exists (conf.d/*.conf) and says nothing


def test_each_trusted_proxy_is_a_set_real_ip_from_and_the_rightmost_untrusted_wins(tmp_path):
    result, conf = render(tmp_path, "10.0.0.0/8, 192.0.2.7 2001:db8::/32,fd00::1")
    assert result.returncode == 0, result.stderr
    assert directives(conf) == [
        "set_real_ip_from 10.0.0.0/8;",
        "set_real_ip_from 192.0.2.7;",
        "set_real_ip_from 2001:db8::/32;",
        "set_real_ip_from fd00::1;",
        "real_ip_header X-Forwarded-For;",
        "real_ip_recursive on;",
    ]


@pytest.mark.parametrize(
    "trusted",
    ["0.0.0.0/0; include /etc/shadow", "lb.example.com", "10.0.0.0/8}", "$remote_addr"],
)
def test_anything_but_an_address_or_cidr_stops_nginx_from_starting(tmp_path, trusted):
    result, conf = render(tmp_path, trusted)
    assert result.returncode != 0
    assert "is not an IP address or CIDR" in result.stderr
    assert conf == ""  # nothing half-written for nginx to load
