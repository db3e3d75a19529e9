"""The restore test: the newest backup and every archived WAL, restored into a throwaway
PostgreSQL beside the repository, must come up at the migration head with plausible rows.

A backup nobody has restored is a hope. This restores the latest state (the same path as
`make restore`, minus the live database) into scratch space (RESTORE_TEST_DIR), starts a
private PostgreSQL on a socket only (no TCP, no archiving), and checks:
- the schema is at the head of the migrations baked into this image (web/migrations);
- every table of the last passing test still exists and none has lost more than half of
  its rows (when it had RESTORE_TEST_MIN_ROWS or more): a restore of an emptied database is
  a failure even though PostgreSQL started.
The outcome is kept in the repository's state folder (backupctl's metrics export it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MIGRATIONS = Path(os.environ.get("MIGRATIONS_DIR", "/usr/share/flask-stack/migrations"))
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/17/bin"))
PORT = "5433"


@dataclass
class Outcome:
    ok: bool
    detail: str
    head: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def migration_head(folder: Path = MIGRATIONS) -> str:
    """The one revision no other migration names as its down_revision."""
    revisions, parents = set(), set()
    for path in folder.glob("*.py"):
        text = path.read_text()
        revision = re.search(r'^revision\s*=\s*"([^"]+)"', text, re.M)
        down = re.search(r'^down_revision\s*=\s*"([^"]+)"', text, re.M)
        if revision:
            revisions.add(revision.group(1))
        if down:
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"expected one migration head in {folder}, found {sorted(heads)}")
    return heads.pop()


def implausible(counts: Mapping[str, int], before: Mapping[str, int], min_rows: int) -> list[str]:
    """What looks lost against the last passing test's counts (empty: plausible)."""
    problems = []
    for table, rows in sorted(before.items()):
        if table not in counts:
            problems.append(f"table {table} is missing")
        elif rows >= min_rows and counts[table] * 2 < rows:
            problems.append(f"{table} has {counts[table]} rows, {rows} at the last test")
    return problems


def run(
    stanza: str,
    scratch_root: Path,
    user: str,
    database: str,
    before: Mapping[str, int],
    min_rows: int,
) -> Outcome:
    """Restore, start, check, stop, clean up; never raises for a failed check."""
    scratch = Path(tempfile.mkdtemp(prefix="restore-test-", dir=scratch_root))
    data, socket = scratch / "data", scratch / "run"
    socket.mkdir()
    server = None
    log = scratch / "postgres.log"  # a file, not a pipe nobody reads while it replays
    try:
        # A local restore: this container holds the repository (no pg1-host); the copy never
        # archives (it would write a second history into the live stanza).
        local = [f"--stanza={stanza}", "--reset-pg1-host", f"--pg1-path={data}"]
        restore = subprocess.run(
            ["pgbackrest", *local, "--archive-mode=off", "restore"],
            capture_output=True,
            text=True,
        )
        if restore.returncode:
            return Outcome(False, "restore failed: " + last_line(restore.stderr or restore.stdout))
        argv = [
            str(PG_BIN / "postgres"), "-D", str(data), "-k", str(socket), "-p", PORT,
            "-c", "listen_addresses=", "-c", "archive_mode=off",
            "-c", "restore_command=pgbackrest " + " ".join(local) + ' archive-get %f "%p"',
            "-c", "shared_buffers=32MB", "-c", "logging_collector=off",
        ]  # fmt: skip
        with log.open("w") as errors:
            server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errors, text=True)
        query = Query(socket, user, database)
        if not query.wait_promoted(server, log, timeout=600):
            return Outcome(False, "the restored PostgreSQL did not finish recovery")
        head = migration_head()
        at = query.scalar("SELECT version_num FROM alembic_version")
        counts = {
            # The name comes from pg_tables, quoted as an identifier.
            table: int(query.scalar(f"SELECT count(*) FROM public.{ident(table)}"))  # noqa: S608
            for table in query.column(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        }
        if at != head:
            return Outcome(
                False, f"schema at {at or 'nothing'}, migrations head {head}", at, counts
            )
        problems = implausible(counts, before, min_rows)
        if problems:
            return Outcome(False, "; ".join(problems), at, counts)
        return Outcome(
            True, "schema at head; " + ", ".join(f"{t} {n}" for t, n in counts.items()), at, counts
        )
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        return Outcome(False, str(error))
    finally:
        if server is not None:
            server.terminate()  # SIGTERM: smart shutdown; nothing is connected any more
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


class Query:
    """psql on the throwaway server's socket (the restored pg_hba trusts local connections)."""

    def __init__(self, socket: Path, user: str, database: str) -> None:
        self.base = [
            "psql", "-h", str(socket), "-p", PORT, "-U", user, "-d", database,
            "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
        ]  # fmt: skip

    def column(self, sql: str) -> list[str]:
        out = subprocess.run([*self.base, "-c", sql], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(last_line(out.stderr))
        return [line for line in out.stdout.splitlines() if line]

    def scalar(self, sql: str) -> str:
        rows = self.column(sql)
        return rows[0] if rows else ""

    def wait_promoted(self, server: subprocess.Popen[str], log: Path, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError("PostgreSQL stopped: " + last_line(log.read_text()))
            try:
                if self.scalar("SELECT pg_is_in_recovery()") == "f":
                    return True
            except RuntimeError:
                pass  # still starting or replaying
            time.sleep(1)
        return False
