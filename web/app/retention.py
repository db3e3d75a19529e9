"""Retention of the audit trail: `flask auth-events prune [--every HOURS]`.

Rows of auth_events older than AUTH_EVENTS_RETENTION_DAYS are deleted, in batches (each its
own short transaction, so the web tier's inserts never wait long). The web role may not
delete audit rows (app/access.py), so this runs as the schema owner: the compose and Swarm
`housekeeping` service every HOUSEKEEPING_INTERVAL_HOURS, a CronJob on Kubernetes.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from .config import utcnow
from .extensions import db
from .models import AuthEvent

log = logging.getLogger(__name__)
BATCH = 5000
# After a failed run (PostgreSQL restarting; on Swarm, migrate not done yet): try again soon.
RETRY_SECONDS = 60.0


def cutoff() -> datetime:
    """Return the oldest time kept: now (the configured clock) minus the retention window."""
    days = current_app.config["AUTH_EVENTS_RETENTION_DAYS"]
    return utcnow(current_app.config) - timedelta(days=days)


def prune(batch: int = BATCH) -> int:
    """Delete the auth events older than the retention window; return how many went."""
    oldest_kept, total = cutoff(), 0
    while True:
        doomed = (
            sa.select(AuthEvent.id).where(AuthEvent.created_at < oldest_kept).limit(batch)
        ).scalar_subquery()
        deleted = db.session.execute(sa.delete(AuthEvent).where(AuthEvent.id.in_(doomed)))
        db.session.commit()
        count = int(getattr(deleted, "rowcount", 0) or 0)
        total += count
        if count < batch:
            return total


def run_every(hours: float, stop: threading.Event, heartbeat: Path | None = None) -> None:
    """Prune now and then every `hours` until `stop` is set; a failed run is retried soon.

    `heartbeat` exists while the last run succeeded (the container's healthcheck reads it).
    """
    while not stop.is_set():
        pause = hours * 3600
        try:
            count = prune()
            log.info("auth_events: deleted %d row(s) older than %s", count, cutoff().date())
            if heartbeat:
                heartbeat.touch()
        except sa.exc.SQLAlchemyError as exc:
            db.session.rollback()
            if heartbeat:
                heartbeat.unlink(missing_ok=True)
            pause = min(pause, RETRY_SECONDS)
            log.warning("auth_events: prune failed, next try in %.0f s: %s", pause, exc)
        stop.wait(pause)


@click.group("auth-events")
def auth_events_cli() -> None:
    """Manage the audit trail of authentication events."""


@auth_events_cli.command("prune")
@click.option(
    "--every",
    "hours",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Keep running, and prune every HOURS (until SIGTERM or SIGINT).",
)
@click.option(
    "--heartbeat",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --every: a file that exists while the last run succeeded.",
)
@with_appcontext
def prune_command(hours: float | None, heartbeat: Path | None) -> None:
    """Delete the auth events older than AUTH_EVENTS_RETENTION_DAYS (as the schema owner)."""
    if hours is None:
        count = prune()
        click.echo(f"auth_events: deleted {count} row(s) older than {cutoff().date()}")
        return
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # the wait returns at once; a batch in flight finishes first

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("auth_events: pruning every %s h, keeping %s days", hours,
             current_app.config["AUTH_EVENTS_RETENTION_DAYS"])  # fmt: skip
    run_every(hours, stop, heartbeat)
    log.info("auth_events: stopped")
