"""Background jobs (RQ on the stack's Redis): the queue, retries, the dead-letter list, the worker.

Mail is never sent inside a request: a view enqueues a job (one Redis round trip, the same for
every outcome) and the `worker` service sends it. A job that fails (the SMTP server is down)
is retried after JOBS_RETRY_INTERVALS seconds; when the retries are spent it stays in RQ's
failed-job registry, the dead-letter list, until an operator retries it
(`flask jobs retry --all`, `make jobs`). The worker stops after its current job on SIGTERM.

Settings: JOBS_REDIS_URL (the `jobs` Redis user: `rq:*` keys only), JOBS_RETRY_INTERVALS,
JOBS_FAILED_TTL, MAIL_QUEUE_MAX (the queue's bound), JOBS_HEARTBEAT_PATH (touched at every
heartbeat the worker gives Redis, at least every 7 minutes: the container's health check
reads its age).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import redis
from flask import Flask, current_app
from flask.cli import with_appcontext
from rq import Queue, Retry, SimpleWorker
from rq.registry import FailedJobRegistry

QUEUE = "mail"


def init_app(app: Flask) -> None:
    """Open the jobs connection (RQ stores pickled jobs: bytes, not decoded strings)."""
    from . import redis_client

    app.extensions["jobs_redis"] = redis_client(app.config["JOBS_REDIS_URL"])


def queue() -> Queue:
    """Return the mail queue."""
    connection: redis.Redis = current_app.extensions["jobs_redis"]
    return Queue(QUEUE, connection=connection)


def enqueue(function: Callable[..., Any], *args: Any, description: str) -> bool:
    """Run `function(*args)` in the worker, retried on failure, dead-lettered at the end;
    False (and nothing queued) if MAIL_QUEUE_MAX jobs wait already.

    `description` names the job in logs and `flask jobs status`; the arguments never appear
    there (they may hold a link's token). A finished job is deleted at once (result_ttl=0):
    Redis keeps what waits and what failed, nothing that is done."""
    waiting = queue()
    if waiting.count >= current_app.config["MAIL_QUEUE_MAX"]:
        return False
    intervals = current_app.config["JOBS_RETRY_INTERVALS"]
    waiting.enqueue(
        function,
        *args,
        description=description,
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        failure_ttl=current_app.config["JOBS_FAILED_TTL"],
        result_ttl=0,
    )
    return True


def failed() -> FailedJobRegistry:
    """Return the dead-letter list: jobs whose every attempt failed."""
    return FailedJobRegistry(queue=queue())


class Worker(SimpleWorker):
    """RQ's in-process worker (jobs run in the app context it was started in), which also
    touches a heartbeat file whenever it reports to Redis that it is alive."""

    heartbeat_file = ""

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        super().heartbeat(*args, **kwargs)
        if self.heartbeat_file:
            Path(self.heartbeat_file).touch()


def work(burst: bool = False) -> bool:
    """Run a worker in this process (inside the app context) until SIGTERM, or until the queue
    is empty with `burst`. Retries wait in RQ's scheduler, which the worker runs."""
    with warnings.catch_warnings():
        # The jobs user may not list other clients (CLIENT LIST): RQ then names no address.
        warnings.filterwarnings("ignore", "CLIENT LIST command not supported")
        # RQ would log each job's call with its arguments: the description we set names the
        # job only, and the worker does not log descriptions either.
        mail = queue()
        worker = Worker([mail], connection=mail.connection, log_job_description=False)
    worker.heartbeat_file = current_app.config["JOBS_HEARTBEAT_PATH"]
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level="INFO"))


@click.group("jobs")
def jobs_cli() -> None:
    """Inspect and run the background jobs (mail)."""


@jobs_cli.command("work")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@with_appcontext
def work_command(burst: bool) -> None:
    """Run the worker (the `worker` service's command)."""
    work(burst=burst)


@jobs_cli.command("status")
@with_appcontext
def status_command() -> None:
    """Show the queue length and the dead-letter list."""
    registry = failed()
    click.echo(f"queued: {queue().count}\tfailed: {registry.count}")
    for job in registry.get_job_ids():
        found = queue().fetch_job(job)
        result = found.latest_result() if found else None
        reason = (result.exc_string or "").strip().splitlines()[-1:] if result else []
        click.echo(f"{job}\t{found.description if found else '?'}\t{' '.join(reason)}")


@jobs_cli.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every job in the dead-letter list.")
@with_appcontext
def retry_command(job_ids: tuple[str, ...], every: bool) -> None:
    """Put failed jobs back on the queue."""
    if not (job_ids or every):
        raise click.UsageError("give job ids, or --all")
    registry = failed()
    ids = registry.get_job_ids() if every else list(job_ids)
    for job in ids:
        registry.requeue(job)
    click.echo(f"requeued {len(ids)} job(s)")
