"""Gunicorn settings for the web container; every value says why it is what it is."""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

from gunicorn import glogging


def _int_env(name: str, default: int) -> int:
    """Read a positive integer from the environment, or fall back to the default."""
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


# Only nginx talks to us, over the private `front` network; no port is published.
bind = "0.0.0.0:8000"


def available_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Return the CPUs this container may use: its CPU quota (cgroup v2 cpu.max, or v1
    cpu.cfs_quota_us / cpu.cfs_period_us) rounded up, at most the CPUs it may run on."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return cpus
    if quota in ("max", "-1") or not quota.isdigit() or not period.isdigit() or not int(period):
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


# (2 x CPUs) + 1 is gunicorn's rule of thumb, capped at 8: each worker holds its own DB and
# Redis pools, and bcrypt at cost 12 already saturates a core. The CPUs are the container's
# quota (docker's --cpus, Swarm's and Kubernetes' CPU limits), not the host's cores, which a
# container limited to 2 CPUs on a 64-core host would otherwise count. Scale out with more
# replicas (`--scale web=N`).
def default_workers(cpus: int) -> int:
    """Return the workers for `cpus` CPUs when WEB_CONCURRENCY is unset."""
    return min(cpus * 2 + 1, 8)


workers = _int_env("WEB_CONCURRENCY", default_workers(available_cpus()))

# gthread: threads wait on PostgreSQL/Redis in parallel, and the worker keeps nginx's
# keep-alive connections open between requests (a sync worker closes every connection).
worker_class = "gthread"
threads = _int_env("GUNICORN_THREADS", 4)

# One listening socket, shared by the workers (not SO_REUSEPORT). A socket per worker spreads
# connections evenly (16 keep-alive connections opened at once over 2 workers: 9/7, 8/8,
# 9/7... against 13/3, 15/1, 12/4... shared; bench/README.md), but in one of four runs of the
# zero-downtime e2e test a `make deploy` under load lost a POST (502, 1 of 19,667): a
# draining worker's own socket closed with connections still queued on it, and those are
# reset after nginx sent the request. Until the drain hands such connections over (Linux's
# net.ipv4.tcp_migrate_req, or closing every socket before the last request is queued),
# no request lost beats an even spread (issue 19 stays open on it).
reuse_port = False

# A request that takes longer than 30 s is a bug: the worker is killed and replaced.
timeout = _int_env("GUNICORN_TIMEOUT", 30)
# After the drain (below), in-flight requests get up to 20 s to finish. compose's
# stop_grace_period for web (30 s) covers drain + graceful_timeout: docker never SIGKILLs.
graceful_timeout = 20
# Idle keep-alive seconds. Must be LONGER than the idle timeout of the proxy in front
# (nginx's upstream keepalive_timeout defaults to 60 s) so that an idle connection is always
# closed by nginx first, never by gunicorn under nginx's feet (that shows up as random 502s).
keepalive = 75

# Logs to stdout/stderr: docker collects them (`make logs`).
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# nginx's $request_id (sent as X-Request-ID) ties an access-log line here to nginx's.
access_log_format = (
    '%({x-forwarded-for}i)s via %(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}i)s'
)


class AccessLogger(glogging.Logger):
    """gunicorn's logger: the request line without its query string, and with a mailed
    link's token cut out (either may carry a credential; docs/monitoring.md#never-logged)."""

    @property
    def access_log_enabled(self) -> bool:
        """Build no access-log line that nothing would write.

        gunicorn builds every request's atoms whenever a logging config is given, as it is
        in JSON mode (below), where its access logger sits at CRITICAL and writes nothing.
        """
        enabled = bool(super().access_log_enabled)
        return enabled and self.access_log.isEnabledFor(logging.INFO)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        from app.logs import loggable_path

        atoms = super().atoms(resp, req, environ, request_time)
        safe = loggable_path(environ.get("PATH_INFO", ""))
        atoms["r"] = f"{environ.get('REQUEST_METHOD')} {safe} {environ.get('SERVER_PROTOCOL')}"
        atoms["U"] = safe
        atoms["q"] = ""
        return atoms


logger_class = AccessLogger

# The app trusts PROXY_FIX_HOPS proxy (nginx, from PROXY_FIX_TRUSTED only: app/proxies.py)
# with werkzeug's ProxyFix. gunicorn's own
# X-Forwarded-* handling stays at its default (trust 127.0.0.1 only, i.e. nobody here),
# so the headers are interpreted in one place only.
forwarded_allow_ips = "127.0.0.1,::1"

# No worker recycling (gunicorn's default, max_requests = 0). A recycle costs the exiting
# worker 0.4-1 s of CPU, its successor a re-warm, and leaves one worker serving meanwhile:
# measured, recycling every ~2000 requests cost /dashboard 27 % of its throughput and tripled
# its p99 (bench/README.md). Memory is watched instead: the arbiter reports every worker's
# resident memory (gunicorn_worker_resident_memory_bytes, app/metrics.py) and the alert
# WebWorkerMemoryHigh fires if one grows (monitoring/prometheus/alerts.yml). Should a leak
# need recycling until it is fixed, set max_requests here (say 20000, with a jitter).
max_requests = 0

# The heartbeat file lives in RAM: a slow or read-only container disk cannot make
# the arbiter think a worker hung.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - a private tmpfs per container, not a shared /tmp

# Load the app once in the arbiter, before forking: a configuration error (the app refuses
# a missing or weak secret with one clear line and exit code 78) stops the container at once
# instead of gunicorn respawning workers that fail the same way forever.
preload_app = True


def post_fork(server: object, worker: object) -> None:
    """Drop any database connection the preloaded app opened: sockets must not cross a fork.

    (create_app opens none today; redis-py pools reset themselves after a fork.)
    """
    from app.extensions import db
    from wsgi import app

    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)


# No runtime control socket (gunicorn >= 25): the root filesystem is read-only and replicas
# are added or removed with `docker compose up --scale web=N`, not by gunicornc.
control_socket_disable = True


# Graceful drain. On SIGTERM (docker stop, scale-in, `make deploy`) the replica first marks
# itself as draining (/readyz answers 503 while DRAIN_FILE exists) and keeps serving for
# DRAIN_SECONDS, longer than nginx takes to forget a replica (~2 s, docs/architecture.md):
# where the platform removes a stopping replica from service discovery at once (Swarm,
# Kubernetes), nginx stops choosing it meanwhile. Only then does gunicorn close its
# listener (nginx retries a refused connection on another replica and skips this one, see
# nginx/upstream.conf), finish the in-flight requests and exit.
drain_seconds = int(os.environ.get("DRAIN_SECONDS") or 5)
drain_file = os.environ.get("DRAIN_FILE", "")


def when_ready(server: object) -> None:
    """Make SIGTERM drain first, then stop gracefully as gunicorn always does."""
    flag = Path(drain_file) if drain_file else None
    if flag:
        flag.unlink(missing_ok=True)  # a restarted container starts ready
    stop = server.handle_term  # type: ignore[attr-defined]

    def drain_then_stop() -> None:
        if flag:
            flag.touch()
        server.log.info("draining for %s s before stopping", drain_seconds)  # type: ignore[attr-defined]
        time.sleep(drain_seconds)  # the arbiter has nothing else to do meanwhile
        stop()

    # The arbiter dispatches each queued signal to its handle_<name> method.
    server.handle_term = drain_then_stop  # type: ignore[attr-defined]


def post_worker_init(worker: object) -> None:
    """Close this worker's copy of the listener the moment it is told to stop.

    gunicorn's workers stop accepting on SIGTERM but keep the listening socket open until
    they exit, so the kernel goes on completing connections nobody will accept, then resets
    them (a POST nginx already sent on one fails with 502). Closed at once, the socket
    refuses instead, and nginx retries a refused connection on another replica.
    """
    stop = worker.handle_exit  # type: ignore[attr-defined]

    def close_listener_then_stop(signum: int, frame: object) -> None:
        for listener in worker.sockets:  # type: ignore[attr-defined]
            listener.close()
        stop(signum, frame)

    signal.signal(signal.SIGTERM, close_listener_then_stop)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn sets it: no EINTR mid-request


# Metrics (app/metrics.py). Each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR
# (on the /tmp tmpfs); the arbiter serves their sum on METRICS_PORT, a port of this container
# that nginx does not proxy: /metrics is never reachable from outside. Files of an earlier
# run are removed before any process writes new ones (this file runs before the app loads).
metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
metrics_port = _int_env("METRICS_PORT", 0)
if metrics_dir:
    Path(metrics_dir).mkdir(parents=True, exist_ok=True)
    for stale in Path(metrics_dir).glob("*.db"):
        stale.unlink()


def on_starting(server: object) -> None:
    """Serve the workers' summed metrics from the arbiter, which outlives every worker, with
    each live worker's resident memory read from /proc at scrape time (nothing in workers)."""
    if metrics_dir and metrics_port:
        from app import metrics

        metrics.serve(metrics_port, metrics_dir, lambda: list(server.WORKERS))  # type: ignore[attr-defined]


def child_exit(server: object, worker: object) -> None:
    """Tell prometheus_client a worker is gone (its live gauges are dropped)."""
    from app import metrics

    metrics.worker_exited(worker.pid)  # type: ignore[attr-defined]


# Logs. LOG_FORMAT=json (web's compose default): gunicorn's own lines are JSON objects too,
# and its access log is off, since the app writes one JSON line per request (app/logs.py).
# text: gunicorn's human-readable access lines, as above. Unset: as the app decides it.
production = os.environ.get("APP_ENV", "production") == "production"
if (os.environ.get("LOG_FORMAT") or ("json" if production else "text")) == "json":
    accesslog = None
    # Merged into gunicorn's logging defaults (glogging.CONFIG_DEFAULTS): its handlers use
    # the formatter "generic"; gunicorn's error lines go to root's handler (stdout), once.
    logconfig_dict = {
        "formatters": {"generic": {"()": "app.logs.JsonFormatter"}},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }
