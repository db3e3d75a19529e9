"""Prometheus metrics: per endpoint and status, bcrypt slot waits, session store errors, and
the sum of every gunicorn worker served on its own port (not by the app, not through nginx)."""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from helpers import Auth
from prometheus_client import REGISTRY, generate_latest
from servers import free_port, gunicorn


def sample(name: str, **labels: str) -> float:
    """Return the current value of a sample in this process (0 if it was never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_and_timed_by_endpoint_method_and_status(client):
    labels = {"endpoint": "main.index", "method": "GET", "status": "200"}
    before = sample("http_requests_total", **labels)
    timed = sample("http_request_duration_seconds_count", **labels)
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert sample("http_requests_total", **labels) == before + 3
    assert sample("http_request_duration_seconds_count", **labels) == timed + 3


def test_an_unknown_path_is_one_label_value_not_the_path(client):
    before = sample("http_requests_total", endpoint="unmatched", method="GET", status="404")
    assert client.get("/no-such-page-4f1c").status_code == 404
    assert client.get("/metrics").status_code == 404  # the app itself serves no metrics
    after = sample("http_requests_total", endpoint="unmatched", method="GET", status="404")
    assert after == before + 2
    assert b"no-such-page-4f1c" not in generate_latest(REGISTRY)


def test_an_invented_method_is_reported_as_other(client):
    before = sample("http_requests_total", endpoint="unmatched", method="other", status="405")
    before += sample("http_requests_total", endpoint="main.index", method="other", status="405")
    client.open("/", method="BREW")
    after = sample("http_requests_total", endpoint="unmatched", method="other", status="405")
    after += sample("http_requests_total", endpoint="main.index", method="other", status="405")
    assert after == before + 1
    assert b'method="BREW"' not in generate_latest(REGISTRY)


def test_a_login_waits_for_a_bcrypt_slot_and_a_timeout_is_counted(make_app):
    app = make_app(BCRYPT_MAX_CONCURRENCY=1, BCRYPT_SLOT_WAIT=0.2)
    auth = Auth(app.test_client())
    assert auth.register().status_code == 302
    waits = sample("bcrypt_slot_wait_seconds_count")
    assert auth.login().status_code == 302
    assert sample("bcrypt_slot_wait_seconds_count") > waits

    timeouts = sample("bcrypt_slot_timeouts_total")
    slots: threading.BoundedSemaphore = app.extensions["hashing_slots"]
    slots.acquire()  # another login holds the only slot
    try:
        assert Auth(app.test_client()).login().status_code == 503  # another browser
    finally:
        slots.release()
    assert sample("bcrypt_slot_timeouts_total") == timeouts + 1


def test_a_session_store_outage_is_counted_with_the_final_status(make_app):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: Redis is down
    app = make_app(REDIS_URL=dead, RATELIMIT_STORAGE_URI=dead)
    client = app.test_client()
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], "some-session-id", domain="localhost")
    loads = sample("session_store_errors_total", operation="load")
    answered = sample("http_requests_total", endpoint="main.dashboard", method="GET", status="503")
    assert client.get("/dashboard").status_code == 503
    assert sample("session_store_errors_total", operation="load") == loads + 1
    after = sample("http_requests_total", endpoint="main.dashboard", method="GET", status="503")
    assert after == answered + 1


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_gunicorn_serves_the_sum_of_its_workers_on_the_metrics_port_only(
    base_config: dict[str, Any], tmp_path: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left by an earlier run")
    with gunicorn(
        base_config, port,
        WEB_CONCURRENCY="2", DRAIN_SECONDS="0",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), METRICS_PORT=str(metrics_port),
    ):  # fmt: skip
        # The start-up check was the first /healthz; 19 more, each on its own connection.
        for _ in range(19):
            assert get(port, "/healthz")[0] == 200
        assert get(port, "/metrics")[0] == 404

        status, text = get(metrics_port, "/metrics")
        assert status == 200
        line = re.search(
            r'^http_requests_total\{endpoint="health.healthz",method="GET",status="200"\} (\S+)$',
            text,
            re.M,
        )
        assert line and float(line.group(1)) == 20.0, text
        assert "bcrypt_slot_wait_seconds_bucket" in text
        # Workers are not recycled: each live one's memory is reported instead, read by the
        # arbiter (one sample per worker, labelled by its pid).
        sample = r'^gunicorn_worker_resident_memory_bytes\{pid="(\d+)"\} (\S+)$'
        memory = re.findall(sample, text, re.M)
        assert len(memory) == 2, text
        assert all(float(rss) > 10e6 for _, rss in memory)
