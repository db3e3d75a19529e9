#!/usr/bin/env python3
"""Wait until a new web container is healthy and ready: `wait_ready.py ID TIMEOUT`.

deploy/rollout.sh (`make deploy`) runs it for each new replica. Exit 0 once Docker says
healthy and the replica's own /readyz answers (PostgreSQL, Redis and the schema at this
image's head); exit 1 as soon as it stops or restarts, or when TIMEOUT seconds pass. Reads
`docker inspect` as JSON; the decision is unit-tested (tests/deployment/test_wait_ready.py).
Standard library only: the make target runs it with the system's python3.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

# From inside: web publishes no port.
READYZ = "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"


def verdict(container: dict[str, Any]) -> str:
    """Return "failed" (stopped or restarted), "healthy" or "waiting" from `docker inspect`."""
    state = container["State"]
    if state["Status"] != "running" or container.get("RestartCount", 0) != 0:
        return "failed"
    health = (state.get("Health") or {}).get("Status", "none")
    return "healthy" if health == "healthy" else "waiting"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own arguments
        ["docker", *args],  # noqa: S607 - the docker CLI on PATH
        capture_output=True,
        text=True,
        check=False,
    )


def wait_ready(container_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = docker("inspect", container_id)
        if found.returncode != 0:
            return False  # removed
        now = verdict(json.loads(found.stdout)[0])
        if now == "failed":
            return False
        if (
            now == "healthy"
            and docker("exec", container_id, "python", "-c", READYZ).returncode == 0
        ):
            return True
        time.sleep(1)
    return False


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: wait_ready.py CONTAINER TIMEOUT", file=sys.stderr)
        return 2
    return 0 if wait_ready(argv[0], float(argv[1])) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
