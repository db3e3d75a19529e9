"""make dump / make load on the real stack: owner-only logical dumps, data back, sessions
ended. (Point-in-time backups with pgBackRest: test_09_backups.py.)"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from .conftest import Stack, new_username

pytestmark = pytest.mark.e2e


def make(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a make target against the test's compose project; it must succeed."""
    result = stack.make(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_dump_then_load_brings_the_data_back_and_ends_every_session(
    stack: Stack, tmp_path: Path
) -> None:
    kept, later = new_username(), new_username()
    with stack.session() as before:
        stack.register(before, kept)
        stack.login(before, kept, remember=True)

        make(stack, "dump", f"BACKUP_DIR={tmp_path / 'backups'}")
        [dump] = (tmp_path / "backups").iterdir()
        assert stat.S_IMODE(dump.stat().st_mode) == 0o600, "the dump is readable by others"
        assert stat.S_IMODE(dump.parent.stat().st_mode) == 0o700

        with stack.session() as other:
            stack.register(other, later)  # made after the dump: loading it removes it

        loaded = make(stack, "load", f"FILE={dump}")
        assert "every session and remember-me cookie was ended" in loaded.stdout

        # The session and the remember-me cookie from before the load no longer sign in.
        dashboard = before.get(stack.base_url + "/dashboard", timeout=10, allow_redirects=False)
        assert dashboard.status_code == 302, "a session survived the load"
    with stack.session() as fresh:
        stack.login(fresh, kept)  # the account from the dump is there
    with stack.session() as fresh:
        form = {"username": later, "password": "correct horse battery staple 42"}
        resp = stack.post_form(fresh, "/login", form)
        assert "Welcome" not in resp.text, "an account made after the dump survived"
