#!/usr/bin/env python3
"""Create, rotate and list the stack's Swarm secrets (`make swarm-secrets`, `swarm-rotate`).

Swarm secrets are immutable and cannot be read back, so a new value is a new secret: each
is named `<stack>_<name>_v<N>`, and the stack file names the version to use
(SECRET_KEY_VERSION, ... in deploy/swarm/stack.yml). deploy/swarm/swarm.py deploys the
newest version of each group. Values are generated (Python's `secrets`) unless given in the
environment under the same names as for compose (.env.example); they go to `docker secret
create` on stdin, never in argv, and are never printed.

    manage_secrets.py ensure          create version 1 of every group that has none yet
    manage_secrets.py rotate GROUP    create the next version of GROUP (new generated values)
    manage_secrets.py versions        print GROUP_VERSION=N lines for the newest versions
    manage_secrets.py prune           remove older versions no service uses any more
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

STACK = os.environ.get("STACK_NAME", "flask-stack")
ROOT = Path(__file__).resolve().parents[2]

# group -> (version variable in stack.yml, {secret name: environment override})
# The redis passwords and redis.conf (which holds their hashes) change together.
GROUPS = {
    "secret_key": ("SECRET_KEY_VERSION", {"secret_key": "SECRET_KEY"}),
    "postgres_password": ("POSTGRES_PASSWORD_VERSION", {"postgres_password": "POSTGRES_PASSWORD"}),
    "postgres_owner_password": (
        "POSTGRES_OWNER_PASSWORD_VERSION",
        {"postgres_owner_password": "POSTGRES_OWNER_PASSWORD"},
    ),
    "postgres_app_password": (
        "POSTGRES_APP_PASSWORD_VERSION",
        {"postgres_app_password": "POSTGRES_APP_PASSWORD"},
    ),
    "mfa_encryption_key": (
        "MFA_ENCRYPTION_KEY_VERSION",
        {"mfa_encryption_key": "MFA_ENCRYPTION_KEYS"},
    ),
    # Not generated: your provider's, from SMTP_PASSWORD (rotate it after changing it).
    "smtp_password": ("SMTP_PASSWORD_VERSION", {"smtp_password": "SMTP_PASSWORD"}),
    "redis": (
        "REDIS_VERSION",
        {
            "redis_password": "REDIS_PASSWORD",
            "redis_probe_password": "REDIS_PROBE_PASSWORD",
            "redis_admin_password": "REDIS_ADMIN_PASSWORD",
            "redis_jobs_password": "REDIS_JOBS_PASSWORD",
        },
    ),
}
MIN_SECRET_KEY = 32  # the app's production config refuses anything shorter


def init_secrets_module():  # type: ignore[no-untyped-def]
    """Load web/init-secrets.py: the one place that knows the Redis ACL users and rules."""
    spec = importlib.util.spec_from_file_location("init_secrets", ROOT / "web/init-secrets.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def docker(*args: str, stdin: str | None = None, check: bool = True) -> str:
    # The docker CLI on PATH, as the Makefile uses it; the arguments come from this file.
    proc = subprocess.run(  # noqa: S603
        ["docker", *args],  # noqa: S607
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        sys.exit(f"secrets: docker {args[0]} {args[1]} failed: {proc.stderr.strip()}")
    return proc.stdout


def existing() -> dict[str, list[int]]:
    """Return {secret name: sorted versions} of this stack's secrets in the swarm."""
    found: dict[str, list[int]] = {}
    pattern = re.compile(rf"^{re.escape(STACK)}_([a-z_]+)_v(\d+)$")
    for line in docker("secret", "ls", "--format", "{{.Name}}").split():
        if match := pattern.match(line):
            found.setdefault(match[1], []).append(int(match[2]))
    return {name: sorted(v) for name, v in found.items()}


def database_exists() -> bool:
    """Return whether the stack's PostgreSQL volume exists (its data outlives the stack)."""
    return bool(docker("volume", "ls", "-q", "--filter", f"name=^{STACK}_pgdata$").strip())


def group_version(group: str, found: dict[str, list[int]]) -> int:
    """Return the newest version of a group that has every one of its secrets (0: none)."""
    _, names = GROUPS[group]
    common = set.intersection(*(set(found.get(name, [])) for name in names))
    if group == "redis":
        common &= set(found.get("redis_conf", []))
    return max(common, default=0)


def new_values(group: str) -> dict[str, str]:
    """Return the group's values: from the environment where given, otherwise generated."""
    _, names = GROUPS[group]
    values = {name: os.environ.get(env) or secrets.token_urlsafe(32) for name, env in names.items()}
    if group == "secret_key":
        values["secret_key"] = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48)
        if len(values["secret_key"]) < MIN_SECRET_KEY:
            sys.exit(f"secrets: SECRET_KEY must be at least {MIN_SECRET_KEY} characters")
    if group == "smtp_password":
        # Swarm refuses an empty secret; the app reads a blank file as "no password".
        values["smtp_password"] = os.environ.get("SMTP_PASSWORD") or "\n"
    if group == "redis":
        module = init_secrets_module()
        # redis.conf lists every ACL user of the compose stack. Those this stack does not run
        # yet (the monitoring exporters' `monitor`) get a random password nobody keeps.
        unused = {secret: secrets.token_urlsafe(32) for secret, _ in module.REDIS_USERS.values()}
        values["redis_conf"] = module.redis_conf({**unused, **values})
    return values


def create(group: str, version: int) -> None:
    for name, value in new_values(group).items():
        full = f"{STACK}_{name}_v{version}"
        labels = ["--label", f"flask-stack.stack={STACK}", "--label", f"flask-stack.group={group}"]
        docker("secret", "create", *labels, full, "-", stdin=value)
        print(f"secrets: created {full}")  # the name only, never the value


def main(argv: list[str]) -> None:
    command = argv[0] if argv else ""
    found = existing()
    if command == "ensure":
        lost = group_version("postgres_password", found) == 0 and database_exists()
        if lost and not os.environ.get("POSTGRES_PASSWORD"):
            sys.exit(
                f"secrets: the database volume {STACK}_pgdata exists but its password secret "
                "is gone: set POSTGRES_PASSWORD to the database's password (or remove the volume)"
            )
        for group in GROUPS:
            if group_version(group, found) == 0:
                create(group, 1)
    elif command == "rotate" and len(argv) == 2 and argv[1] in GROUPS:
        group = argv[1]
        if group == "postgres_password" and not os.environ.get("POSTGRES_PASSWORD"):
            sys.exit(
                "secrets: PostgreSQL reads its owner password only when it creates the "
                "database: run ALTER ROLE ... PASSWORD first, then rotate with "
                "POSTGRES_PASSWORD set to that value (docs/deploy-swarm.md)"
            )
        create(group, group_version(group, found) + 1)
    elif command == "versions":
        for group, (variable, _) in GROUPS.items():
            print(f"{variable}={max(group_version(group, found), 1)}")
    elif command == "prune":
        for name, versions in found.items():
            for version in versions[:-1]:
                # Refused by Docker while a service still uses it: that one stays.
                docker("secret", "rm", f"{STACK}_{name}_v{version}", check=False)
    else:
        groups = ",".join(GROUPS)
        sys.exit(f"usage: manage_secrets.py ensure | rotate {{{groups}}} | versions | prune")


if __name__ == "__main__":
    main(sys.argv[1:])
