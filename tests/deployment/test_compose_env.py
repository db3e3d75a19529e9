"""deploy/compose_env.py reads `.env` and interpolates as docker compose does.

The swarm-* and k8s-* targets rely on it to give the same settings as `make up`. Where the
docker compose CLI is installed (no daemon needed), the same file is also read by compose
itself and the two must agree value by value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from compose_env import ROOT, InterpolationError, environment, interpolate, parse_env_file

TRICKY_ENV = """\
# a comment line, then a blank one

A=1
B=${A}x
export C=c # an inline comment after a space
D=d# no space: part of the value
E='$A stays\\t literal'
F="tab\\there $A \\"quoted\\" # not a comment"  # a comment
G = spaced
H=
I="two
lines"
J=${UNDEFINED:-fallback}
K=  trimmed
L=${A:+set}${UNDEFINED:+never}
M=$$A
"""
EXPECTED = {
    "A": "1",
    "B": "1x",
    "C": "c",
    "D": "d# no space: part of the value",
    "E": "$A stays\\t literal",
    "F": 'tab\there 1 "quoted" # not a comment',
    "G": "spaced",
    "H": "",
    "I": "two\nlines",
    "J": "fallback",
    "K": "trimmed",
    "L": "set",
    "M": "$A",
}


def test_env_file_syntax_as_compose_documents_it():
    assert parse_env_file(TRICKY_ENV, {}.get) == EXPECTED


def test_the_process_environment_wins_over_env_and_feeds_its_interpolation(tmp_path):
    (tmp_path / ".env").write_text("A=from-file\nB=${A}-b\nC=only-in-file\n")
    env = environment(tmp_path, {"A": "from-shell"})
    assert env == {"A": "from-shell", "B": "from-shell-b", "C": "only-in-file"}
    assert environment(tmp_path / "nowhere", {"X": "1"}) == {"X": "1"}  # no .env: no error


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${SET:-d}", "v"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${UNSET:-${SET}x}", "vx"),
        ("${SET:+r}", "r"),
        ("${EMPTY+r}", "r"),
        ("${EMPTY:+r}", ""),
        ("$SET/$$SET/${SET}", "v/$SET/v"),
        ("cost ${BCRYPT_LOG_ROUNDS:-12}", "cost 12"),
    ],
)
def test_interpolation_operators(template, expected):
    assert interpolate(template, {"SET": "v", "EMPTY": ""}.get) == expected


def test_a_required_variable_that_is_missing_is_an_error_naming_it():
    with pytest.raises(InterpolationError, match="SERVER_NAME: set it"):
        interpolate("${SERVER_NAME:?set it}", {}.get)


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_compose_itself_reads_the_same_values(tmp_path):
    names = [*EXPECTED, "SHELL_ONLY"]
    probe = {"services": {"p": {"image": "x", "environment": {n: f"${{{n}-}}" for n in names}}}}
    (tmp_path / "compose.yml").write_text(json.dumps(probe))
    (tmp_path / ".env").write_text(TRICKY_ENV)
    shell = {"PATH": "/usr/bin:/bin", "A": "from-shell", "SHELL_ONLY": "s"}
    result = subprocess.run(
        ["docker", "compose", "--project-directory", str(tmp_path), "config", "--format", "json"],
        env=shell, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if "is not a docker command" in result.stderr:
        pytest.skip("no docker compose plugin")
    assert result.returncode == 0, result.stderr
    theirs = json.loads(result.stdout)["services"]["p"]["environment"]
    # `config` writes a literal $ as $$ (its output is a compose file again).
    theirs = {k: v.replace("$$", "$") for k, v in theirs.items()}
    ours = environment(tmp_path, shell)
    assert theirs == {n: ours.get(n, "") for n in names}


def test_env_file_names_another_file_and_a_missing_one_is_an_error(tmp_path):
    (tmp_path / "other.env").write_text("A=other\n")
    (tmp_path / ".env").write_text("A=default\n")
    assert environment(tmp_path, {"ENV_FILE": "other.env"})["A"] == "other"
    with pytest.raises(FileNotFoundError, match=r"ENV_FILE=missing\.env"):
        environment(tmp_path, {"ENV_FILE": "missing.env"})


def test_run_gives_the_command_the_settings_of_env(tmp_path):
    env_file = tmp_path / "settings.env"
    env_file.write_text("RATELIMIT_LOGIN='7/minute'\nSHOWN=${RATELIMIT_LOGIN}!\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy/compose_env.py"), "run", "sh", "-c",
         'printf "%s %s" "$RATELIMIT_LOGIN" "$SHOWN"'],
        env={"PATH": os.environ["PATH"], "ENV_FILE": str(env_file)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout == "7/minute 7/minute!"
