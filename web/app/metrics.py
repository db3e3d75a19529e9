"""Prometheus metrics of the app: requests, bcrypt slot waits, session store errors, and the
workers' memory.

Under gunicorn every worker is its own process. With PROMETHEUS_MULTIPROC_DIR set (web's
compose settings), prometheus_client keeps each worker's values in a file there and the
arbiter sums them when scraped (`serve`, started from gunicorn.conf.py on METRICS_PORT, a
port nginx does not proxy). Without it (tests, `flask run`) the values live in this process.

Labels stay bounded: the Flask endpoint name (not the raw path, which any client can vary
without limit), the method and the status code.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

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
    "Password checks refused with 503: BCRYPT_MAX_CONCURRENCY in flight (after BCRYPT_SLOT_WAIT).",
)
SESSION_STORE_ERRORS = Counter(
    "session_store_errors_total",
    "Redis errors of the session store, by operation (load, save, request).",
    ["operation"],
)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Methods outside this set are reported as "other": a client must not invent label values.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe(endpoint: str | None, method: str, status: int, seconds: float | None) -> None:
    """Count one answered request and its duration (app/logs.py times each request once)."""
    labels = (endpoint or "unmatched", method if method in METHODS else "other", status)
    series = _series.get(labels)
    if series is None:  # once per label set (bounded: endpoints x methods x statuses)
        values = (*labels[:2], str(status))
        series = _series.setdefault(labels, (REQUESTS.labels(*values), LATENCY.labels(*values)))
    series[0].inc()
    if seconds is not None:
        series[1].observe(seconds)


# The two series of each label set, looked up once: a labels() call costs a lock and a hash.
_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


class WorkerMemory(Collector):
    """Each live worker's resident memory, read from /proc when scraped (by the arbiter).

    Workers are not recycled (gunicorn.conf.py): this is what would show a leak. Labelled by
    pid, of which there are only as many as live workers at any time.
    """

    def __init__(self, workers: Callable[[], Iterable[int]]) -> None:
        self.workers = workers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauge, one sample per worker still alive."""
        gauge = GaugeMetricFamily(
            "gunicorn_worker_resident_memory_bytes",
            "Resident memory of each live gunicorn worker.",
            labels=["pid"],
        )
        for pid in self.workers():
            rss = resident_bytes(pid)
            if rss is not None:
                gauge.add_metric([str(pid)], rss)
        yield gauge


def resident_bytes(pid: int) -> int | None:
    """Return the resident memory of process `pid` (from /proc), None if it is gone."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def serve(port: int, directory: str, workers: Callable[[], Iterable[int]] | None = None) -> None:
    """Serve the summed metrics of every worker in `directory` on `port` (a daemon thread),
    and the resident memory of the `workers` pids."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    if workers is not None:
        registry.register(WorkerMemory(workers))
    start_http_server(port, registry=registry)


def worker_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (its counters and histograms are kept, summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
