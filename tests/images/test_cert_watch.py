"""nginx/cert-watch.sh: a changed certificate means one graceful reload, only if nginx -t agrees.

The script runs for real against files in a temporary folder; `nginx` is a stand-in on PATH
that records its arguments (tests/e2e/test_10_acme.py runs it with the real nginx).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "nginx" / "cert-watch.sh"
FAKE_NGINX = """#!/bin/sh
echo "$*" >> "$NGINX_CALLS"
[ "$1" != -t ] || exit "$(cat "$NGINX_TEST_STATUS")"
"""


class Watcher:
    """The running watcher and the folder it watches."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cert, self.key = tmp / "tls.crt", tmp / "tls.key"
        self.calls, self.status = tmp / "calls", tmp / "nginx-t-status"
        self.cert.write_text("cert 1\n")
        self.key.write_text("key 1\n")
        self.calls.write_text("")
        self.status.write_text("0")
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "nginx").write_text(FAKE_NGINX)
        (bin_dir / "nginx").chmod(0o755)
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "TLS_CERT": str(self.cert),
            "TLS_KEY": str(self.key),
            "CERT_WATCH_INTERVAL": "0.1",
            "NGINX_CALLS": str(self.calls),
            "NGINX_TEST_STATUS": str(self.status),
        }
        self.log = (tmp / "watch.log").open("w+")
        self.proc = subprocess.Popen(
            ["bash", str(SCRIPT)], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def reloads(self) -> int:
        return self.calls.read_text().splitlines().count("-s reload")

    def output(self) -> str:
        self.log.flush()
        return (self.tmp / "watch.log").read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Poll until condition() is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[Watcher]:
    w = Watcher(tmp_path)
    try:
        wait_for(lambda: "cert-watch: watching" in w.output())  # it has read the files
        yield w
    finally:
        w.stop()


def settle(watcher: Watcher) -> None:
    """Give the watcher several polls and its 1 s debounce to act on anything it saw."""
    time.sleep(1.6)
    assert watcher.proc.poll() is None, watcher.output()


def test_unchanged_files_are_never_reloaded(watcher: Watcher) -> None:
    settle(watcher)
    assert watcher.calls.read_text() == ""


def test_a_renewed_certificate_is_reloaded_once(watcher: Watcher) -> None:
    watcher.key.write_text("key 2\n")
    watcher.cert.write_text("cert 2\n")
    wait_for(lambda: watcher.reloads() == 1)
    settle(watcher)
    assert watcher.calls.read_text().splitlines() == ["-t -q", "-s reload"]
    assert "tls.crt changed; nginx reloaded (graceful)" in watcher.output()

    watcher.cert.write_text("cert 3\n")  # the next renewal
    wait_for(lambda: watcher.reloads() == 2)


def test_a_certificate_nginx_rejects_is_not_reloaded_until_it_changes(watcher: Watcher) -> None:
    watcher.status.write_text("1")  # nginx -t fails (say, the key does not match)
    watcher.cert.write_text("cert 2\n")
    wait_for(lambda: "nginx -t rejects it" in watcher.output())
    settle(watcher)
    assert watcher.calls.read_text().splitlines() == ["-t -q"]  # asked once, not every poll
    assert watcher.output().count("rejects it") == 1

    watcher.status.write_text("0")
    watcher.key.write_text("key 2\n")  # the matching key arrives
    wait_for(lambda: watcher.reloads() == 1)


def test_a_missing_file_does_not_stop_the_watcher(watcher: Watcher) -> None:
    watcher.status.write_text("1")  # as the real nginx -t says without its certificate
    watcher.cert.unlink()
    settle(watcher)  # the watcher is still running (checked here)
    watcher.status.write_text("0")
    watcher.cert.write_text("cert 2\n")
    wait_for(lambda: watcher.reloads() == 1)
