"""Prometheus metrics of the app: requests, bcrypt slot waits, session store errors.

Under gunicorn every worker is its own process. With PROMETHEUS_MULTIPROC_DIR set (web's
compose settings), prometheus_client keeps each worker's values in a file there and the
arbiter sums them when scraped (`serve`, started from gunicorn.conf.py on METRICS_PORT, a
port nginx does not proxy). Without it (tests, `flask run`) the values live in this process.

Labels stay bounded: the Flask endpoint name (not the raw path, which any client can vary
without limit), the method and the status code.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, g, request, request_finished, request_started
from flask.wrappers import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.exposition import start_http_server

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered by the app.",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from the request reaching the app to its response, session save included.",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BCRYPT_SLOT_WAIT = Histogram(
    "bcrypt_slot_wait_seconds",
    "Time a password check or hash waited for a free bcrypt slot (BCRYPT_MAX_CONCURRENCY).",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BCRYPT_SLOT_TIMEOUTS = Counter(
    "bcrypt_slot_timeouts_total",
    "Password checks refused with 503 after waiting BCRYPT_SLOT_WAIT for a slot.",
)
SESSION_STORE_ERRORS = Counter(
    "session_store_errors_total",
    "Redis errors of the session store, by operation (load, save, request).",
    ["operation"],
)
# Methods outside this set are reported as "other": a client must not invent label values.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_app(app: Flask) -> None:
    """Time every request of `app`, from the start of dispatch to the final response."""
    # Module-level receivers: blinker keeps only weak references to them.
    request_started.connect(_started, app)
    request_finished.connect(_finished, app)


def _started(sender: Flask, **extra: Any) -> None:
    g.metrics_started = time.perf_counter()


def _finished(sender: Flask, response: Response, **extra: Any) -> None:
    # request_finished comes after every after_request hook, so the status is the final one
    # (a session save that failed turns a 200 into a 503).
    started = g.get("metrics_started")
    method = request.method if request.method in METHODS else "other"
    labels = (request.endpoint or "unmatched", method, str(response.status_code))
    REQUESTS.labels(*labels).inc()
    if started is not None:
        LATENCY.labels(*labels).observe(time.perf_counter() - started)


def serve(port: int, directory: str) -> None:
    """Serve the summed metrics of every worker in `directory` on `port` (a daemon thread)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    start_http_server(port, registry=registry)


def worker_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (its counters and histograms are kept, summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
