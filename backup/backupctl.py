#!/usr/bin/env python3
"""backupctl: the `backup` service's one command (docker-compose.yml; docs/operations.md).

    backupctl serve                 pgBackRest's TLS server for the repository, the schedule
                                    (schedule.py), the restore test, metrics on :9854
    backupctl backup [full|diff]    one backup now (`make backup`: full)
    backupctl restore-test          restore the latest state into scratch space and check it
    backupctl info                  what the repository holds (`make backups`)
    backupctl check-target TIME     one line on stderr and exit 2 unless TIME can be restored
                                    to; else print it as pgBackRest's --target (`make restore`)

Every pgBackRest option comes from the environment (PGBACKREST_*, set by compose) and the
repository's passphrase from PGBACKREST_CONFIG (a file the `secrets` service writes).
Outcomes are kept as JSON in the repository's `state/` folder, so a run started by `make`
(docker compose exec) shows in the metrics of the long-running `serve`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import restore_check
import schedule

STANZA = os.environ.get("PGBACKREST_STANZA", "db")
REPO = Path(os.environ.get("PGBACKREST_REPO1_PATH", "/var/lib/pgbackrest"))
STATE = REPO / "state"
SCRATCH = Path(os.environ.get("RESTORE_TEST_DIR", "/scratch"))
METRICS_PORT = int(os.environ.get("METRICS_PORT", "9854"))


def log(message: str) -> None:
    print(f"backup: {message}", file=sys.stderr, flush=True)


def pgbackrest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pgbackrest", f"--stanza={STANZA}", *args], capture_output=True, text=True
    )


# ---- state -------------------------------------------------------------------------------
def record(job: str, **outcome: Any) -> None:
    """Atomically keep a job's last outcome (and its last success's) in state/<job>.json."""
    STATE.mkdir(exist_ok=True)
    previous = load(job)
    entry = {**outcome, "finished": time.time()}
    if outcome.get("ok"):
        entry["last_success"] = entry["finished"]
    elif "last_success" in previous:
        entry["last_success"] = previous["last_success"]
    fd, tmp = tempfile.mkstemp(dir=STATE, prefix=f".{job}.")
    with os.fdopen(fd, "w") as f:
        json.dump(entry, f)
    os.replace(tmp, STATE / f"{job}.json")


def load(job: str) -> dict[str, Any]:
    try:
        return dict(json.loads((STATE / f"{job}.json").read_text()))
    except (OSError, ValueError):
        return {}


# ---- the repository ----------------------------------------------------------------------
def info() -> dict[str, Any]:
    """The stanza's entry of `pgbackrest info --output=json`; raises RuntimeError on failure."""
    out = pgbackrest("--output=json", "info")
    if out.returncode:
        raise RuntimeError(restore_check.last_line(out.stderr or out.stdout))
    for stanza in json.loads(out.stdout):
        if stanza.get("name") == STANZA:
            return dict(stanza)
    raise RuntimeError(f"no stanza {STANZA} in the repository")


def backup(kind: str) -> bool:
    started = time.monotonic()
    log(f"{kind} backup started")
    out = pgbackrest(f"--type={kind}", "backup")
    seconds = round(time.monotonic() - started, 1)
    ok = out.returncode == 0
    detail = "done" if ok else restore_check.last_line(out.stderr or out.stdout)
    record(f"backup-{kind}", ok=ok, seconds=seconds, detail=detail)
    log(f"{kind} backup {'finished' if ok else 'FAILED'} in {seconds} s: {detail}")
    return ok


def run_restore_test() -> bool:
    started = time.monotonic()
    before = load("restore-test").get("counts", {})  # the last passing test's
    outcome = restore_check.run(
        STANZA,
        SCRATCH,
        user=os.environ.get("POSTGRES_USER", "app"),
        database=os.environ.get("POSTGRES_DB", "app"),
        before=before,
        min_rows=int(os.environ.get("RESTORE_TEST_MIN_ROWS", "20")),
    )
    seconds = round(time.monotonic() - started, 1)
    counts = outcome.counts if outcome.ok else before
    record(
        "restore-test",
        ok=outcome.ok,
        seconds=seconds,
        detail=outcome.detail,
        head=outcome.head,
        counts=counts,
    )
    log(f"restore test {'passed' if outcome.ok else 'FAILED'} in {seconds} s: {outcome.detail}")
    return outcome.ok


def check_target(text: str, backups: list[dict[str, Any]], now: datetime) -> str:
    """TIME as pgBackRest's --target, or ValueError with the one line that says why not."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"TIME={text!r} is not a time: give it as 2026-12-01T23:00:00Z (ISO 8601, UTC)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"TIME={text!r} has no time zone: end it with Z (UTC) or +01:00")
    if moment > now:
        raise ValueError(f"TIME={text!r} is in the future (now is {iso(now)})")
    done = sorted(b["timestamp"]["stop"] for b in backups if b.get("error") is not True)
    if not done:
        raise ValueError("the repository holds no backup yet: `make backup` first")
    if moment.timestamp() < done[0]:
        oldest = datetime.fromtimestamp(done[0], UTC)
        raise ValueError(f"TIME={text!r} is before the oldest backup, which ended {iso(oldest)}")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- metrics -----------------------------------------------------------------------------
class Metrics:
    """What the alerts read: the repository (asked at each scrape) and the jobs' outcomes."""

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("backup_repository_up", "1 if pgbackrest info answered")
        last = GaugeMetricFamily(
            "backup_last_completed_timestamp_seconds",
            "When the newest backup of each type ended",
            labels=["type"],
        )
        wal = GaugeMetricFamily(
            "backup_wal_last_archived_timestamp_seconds",
            "When the newest WAL segment reached the repository",
        )
        size = GaugeMetricFamily(
            "backup_repository_backup_bytes", "Repository size of the backups kept"
        )
        try:
            stanza = info()
            up.add_metric([], 1)
            newest: dict[str, float] = {}
            for entry in stanza.get("backup", []):
                kind, stop = entry["type"], float(entry["timestamp"]["stop"])
                newest[kind] = max(newest.get(kind, 0.0), stop)
            for kind, stop in newest.items():
                last.add_metric([kind], stop)
            size.add_metric(
                [], sum(b["info"]["repository"].get("delta", 0) for b in stanza.get("backup", []))
            )
            archived = newest_wal(stanza)
            if archived:
                wal.add_metric([], archived)
        except (RuntimeError, ValueError, KeyError) as error:
            log(f"info for metrics failed: {error}")
            up.add_metric([], 0)
        yield from (up, last, wal, size)

        runs = GaugeMetricFamily(
            "backup_job_last_run_timestamp_seconds", "When each job last finished", labels=["job"]
        )
        ok = GaugeMetricFamily(
            "backup_job_last_run_ok", "1 if each job's last run succeeded", labels=["job"]
        )
        success = GaugeMetricFamily(
            "backup_job_last_success_timestamp_seconds",
            "When each job last succeeded",
            labels=["job"],
        )
        for job in ("backup-full", "backup-diff", "backup-incr", "restore-test"):
            state = load(job)
            if state:
                runs.add_metric([job], state["finished"])
                ok.add_metric([job], 1 if state.get("ok") else 0)
                if "last_success" in state:
                    success.add_metric([job], state["last_success"])
        yield from (runs, ok, success)


def newest_wal(stanza: dict[str, Any]) -> float | None:
    """The mtime of the newest archived segment (info names it; the folder holds it)."""
    newest = None
    for archive in stanza.get("archive", []):
        name = archive.get("max")
        if not name:
            continue
        folder = REPO / "archive" / STANZA / archive["id"] / name[:16]
        for path in folder.glob(name + "*"):
            mtime = path.stat().st_mtime
            newest = mtime if newest is None else max(newest, mtime)
    return newest


# ---- serve -------------------------------------------------------------------------------
def serve() -> None:
    jobs = schedule.jobs()  # a bad setting stops here, with its name, before anything starts
    from prometheus_client import REGISTRY, start_http_server

    REGISTRY.register(Metrics())  # type: ignore[arg-type]
    start_http_server(METRICS_PORT)
    server = subprocess.Popen(["pgbackrest", "server"])
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        server.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def sleep_until(moment: float) -> None:
        while not stopping and time.time() < moment:
            if server.poll() is not None and not stopping:
                log(f"pgbackrest server exited ({server.returncode})")
                sys.exit(1)  # compose restarts the service
            time.sleep(min(5.0, max(0.0, moment - time.time())))

    # The stanza (idempotent) once the database's agent answers; then, on a new repository,
    # a first full backup and its restore test at once rather than at the first schedule.
    waited = 0.0
    while not stopping:
        created = pgbackrest("stanza-create")
        if created.returncode == 0:
            break
        if waited % 60 == 0:
            log("waiting for the database: " + restore_check.last_line(created.stderr))
        sleep_until(time.time() + 5)
        waited += 5
    try:
        first = not info().get("backup")
    except RuntimeError as error:
        log(f"info failed: {error}")
        first = False
    if first and not stopping:
        log("no backup yet: a full backup now, then the restore test")
        if backup("full"):
            run_restore_test()

    names = ", ".join(f"{job.name} at '{job.cron}'" for job in jobs)
    log(f"schedule (UTC): {names or 'nothing'}")
    while not stopping and jobs:
        moment, due = schedule.due(jobs, datetime.now(UTC))
        sleep_until(moment.timestamp())
        for name in due:
            if stopping:
                break
            if name == "restore-test":
                run_restore_test()
            else:
                backup(name)
    if not jobs:
        sleep_until(float("inf"))  # every job off: the repository still serves the database
    server.wait()


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("serve", [])
    if command == "serve":
        try:
            serve()
        except schedule.ScheduleError as error:
            log(f"configuration error: {error}")
            return 78  # EX_CONFIG, as web's configuration errors
        return 0
    if command == "backup":
        kind = args[0] if args else "full"
        if kind not in ("full", "diff", "incr"):
            print("usage: backupctl backup [full|diff|incr]", file=sys.stderr)
            return 2
        return 0 if backup(kind) else 1
    if command == "restore-test":
        return 0 if run_restore_test() else 1
    if command == "info":
        return subprocess.run(["pgbackrest", f"--stanza={STANZA}", "info"]).returncode
    if command == "check-target" and len(args) == 1:
        try:
            print(check_target(args[0], info().get("backup", []), datetime.now(UTC)))
        except (ValueError, RuntimeError) as error:
            print(f"restore refused: {error}", file=sys.stderr)
            return 2
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
