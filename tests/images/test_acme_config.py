"""acme/acme_config.py: which names get a certificate, and which ACME directory is asked."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "acme" / "acme_config.py"


@pytest.fixture(scope="module")
def acme_config() -> dict[str, Any]:
    """The names acme/acme_config.py defines (a script in the image: loaded, not run)."""
    return runpy.run_path(str(SCRIPT))


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script as the acme entrypoint does, with only the given environment."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    "name",
    [
        "example.com",
        "shop.example.com",
        "Shop.Example.COM.",  # case and a trailing dot do not matter
        "xn--bcher-kva.example",  # an IDN in its ASCII form
        "shop.example.test",  # the e2e tests' name: Pebble validates it, a public CA refuses it
        "a-b.c0.io",
    ],
)
def test_public_names_get_a_certificate(acme_config: dict[str, Any], name: str) -> None:
    assert acme_config["public_name_problem"](name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("localhost", "no dot"),
        ("", "empty"),
        ("web", "no dot"),
        ("app.localhost", ".localhost"),
        ("printer.local", ".local"),
        ("db.internal", ".internal"),
        ("nas.lan", ".lan"),
        ("router.home.arpa", ".home.arpa"),
        ("x.invalid", ".invalid"),
        ("127.0.0.1", "IPv4"),
        ("203.0.113.7", "IPv4"),
        ("::1", "IPv6"),
        ("2001:db8::1", "IPv6"),
        ("*.example.com", "wildcard"),
        ("-bad.example.com", "not a valid DNS name"),
        ("under_score.example.com", "not a valid DNS name"),
        ("a..example.com", "not a valid DNS name"),
        (("a" * 64) + ".example.com", "not a valid DNS name"),
        (("a." * 127) + "com", "longer than 253"),
    ],
)
def test_other_names_keep_the_self_signed_certificate(
    acme_config: dict[str, Any], name: str, why: str
) -> None:
    assert why in acme_config["public_name_problem"](name)


def test_the_cli_exit_status_says_whether_the_name_is_public() -> None:
    assert run("public-name", "shop.example.com").returncode == 0
    refused = run("public-name", "localhost")
    assert refused.returncode == 1
    assert "'localhost' is not a public name: it has no dot" in refused.stderr


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "https://acme-v02.api.letsencrypt.org/directory"),
        ({"ACME_STAGING": "false"}, "https://acme-v02.api.letsencrypt.org/directory"),
        ({"ACME_STAGING": ""}, "https://acme-v02.api.letsencrypt.org/directory"),
        ({"ACME_STAGING": "true"}, "https://acme-staging-v02.api.letsencrypt.org/directory"),
        ({"ACME_STAGING": "1"}, "https://acme-staging-v02.api.letsencrypt.org/directory"),
        ({"ACME_STAGING": " Yes "}, "https://acme-staging-v02.api.letsencrypt.org/directory"),
        ({"ACME_DIRECTORY": "https://ca.example/dir"}, "https://ca.example/dir"),
        (
            {"ACME_DIRECTORY": "https://ca.example/dir", "ACME_STAGING": "false"},
            "https://ca.example/dir",
        ),
    ],
)
def test_the_directory_is_lets_encrypt_unless_told_otherwise(env: dict[str, str], url: str) -> None:
    done = run("directory", **env)
    assert (done.returncode, done.stdout.strip()) == (0, url), done.stderr


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"ACME_STAGING": "maybe"}, "ACME_STAGING must be true or false"),
        (
            {"ACME_DIRECTORY": "https://ca.example/dir", "ACME_STAGING": "true"},
            "your CA's own staging directory",
        ),
        ({"ACME_DIRECTORY": "http://ca.example/dir"}, "must be an https:// URL"),
    ],
)
def test_contradicting_settings_stop_with_one_line(env: dict[str, str], why: str) -> None:
    done = run("directory", **env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert why in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_wrong_command_prints_the_usage() -> None:
    done = run("issue")
    assert done.returncode == 2 and done.stderr.startswith("usage:")
