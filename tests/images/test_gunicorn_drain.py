"""gunicorn with the image's config: SIGTERM drains (not ready, still serving), then stops."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from servers import free_port, gunicorn

DRAIN_SECONDS = 3


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """GET a JSON probe; return the status and the body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_sigterm_drains_then_stops(base_config: dict[str, Any], tmp_path: Path) -> None:
    port = free_port()
    flag = tmp_path / "draining"
    flag.touch()  # left over from an earlier run: a fresh start must clear it
    with gunicorn(
        base_config, port, "--access-logfile", "/dev/null",
        WEB_CONCURRENCY="1", DRAIN_SECONDS=str(DRAIN_SECONDS), DRAIN_FILE=str(flag),
    ) as proc:  # fmt: skip
        assert get(port, "/readyz")[0] == 200
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        status, body = get(port, "/readyz")
        assert (status, body["status"]) == (503, "draining")
        assert get(port, "/healthz")[0] == 200  # still serving during the drain
        assert proc.poll() is None

        assert proc.wait(timeout=DRAIN_SECONDS + 25) == 0
        with pytest.raises(OSError):  # refused: the listener is closed
            get(port, "/healthz")
