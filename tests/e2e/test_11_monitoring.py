"""The monitoring profile: Prometheus scrapes every part of the stack, the metrics stay
inside, nginx's and web's JSON log lines share the request id, and a firing alert reaches
someone by mail (Prometheus -> Alertmanager -> SMTP -> MailDev).

A stack of its own (`--profile monitoring --profile mail`), started once for this file. The
browser test takes a screenshot of Prometheus' targets page, saved as prometheus-targets.png
into $E2E_SCREENSHOTS (E2E_SCREENSHOTS=docs/images refreshes the one docs/monitoring.md
shows). The alert test runs last: it stops an exporter.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import ALERTS

from .conftest import Stack, new_username, running_stack, wait_for_mail

pytestmark = pytest.mark.e2e

JOBS = {"web", "nginx", "postgres", "redis", "certificate", "alertmanager", "prometheus", "backup"}
ALERT_MAIL_TO = "oncall@example.com"
# Alertmanager's timers, short: the first mail 5 s after an alert fires (not 30 s), the
# resolved one 10 s after it resolves (not 5 min). The alert rules and the path are real.
ALERTING = {"ALERT_MAIL_TO": ALERT_MAIL_TO, "ALERT_GROUP_WAIT": "5s", "ALERT_GROUP_INTERVAL": "10s"}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    profiles = ("monitoring", "mail")  # mail: MailDev catches what Alertmanager sends
    with running_stack(tmp_path_factory, "mon", profiles=profiles, **ALERTING) as stack:
        # Some traffic, so every metric has something to count: a sign-up and a login.
        client, username = stack.session(), new_username()
        stack.register(client, username)
        stack.login(client, username)
        assert client.get(stack.base_url + "/dashboard", timeout=10).status_code == 200
        yield stack


def prometheus(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.env['PROMETHEUS_PORT']}"


def api(stack: Stack, path: str, **params: str) -> dict:
    """GET Prometheus' HTTP API on its published port (127.0.0.1 only)."""
    with requests.Session() as client:
        client.trust_env = False  # no proxy from the environment
        response = client.get(prometheus(stack) + "/api/v1/" + path, params=params, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def query(stack: Stack, promql: str) -> list[dict]:
    return api(stack, "query", query=promql)["result"]


def wait_for_targets(stack: Stack, timeout: float = 120) -> list[dict]:
    """Wait until every target has been scraped successfully; return them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            targets = api(stack, "targets")["activeTargets"]
        except requests.RequestException:
            targets = []  # Prometheus still starting
        jobs = {t["labels"]["job"] for t in targets}  # web's appear after a DNS lookup
        if jobs == JOBS and all(t["health"] == "up" for t in targets):
            return targets
        if time.monotonic() > deadline:
            down = [(t["labels"]["job"], t["health"], t["lastError"]) for t in targets]
            raise AssertionError(f"targets not all up after {timeout} s: {down}")
        time.sleep(3)


def test_every_target_is_up(monitored: Stack) -> None:
    targets = wait_for_targets(monitored)
    assert {t["labels"]["job"] for t in targets} == JOBS
    web = [t for t in targets if t["labels"]["job"] == "web"]
    assert len(web) == len(monitored.running("web"))  # every replica, found through DNS


def test_every_exporter_reports_what_the_alerts_need(monitored: Stack) -> None:
    wait_for_targets(monitored)
    login = 'http_requests_total{endpoint="auth.login",method="POST",status="302"}'

    def value(promql: str) -> float:
        deadline = time.monotonic() + 60  # the next scrape may be up to 15 s away
        while not (result := query(monitored, promql)):
            assert time.monotonic() < deadline, f"no data for {promql}"
            time.sleep(3)
        return float(result[0]["value"][1])

    assert value(f"sum({login})") >= 1
    assert value("sum(bcrypt_slot_wait_seconds_count)") >= 2  # register and login hash
    assert value("sum(http_request_duration_seconds_count)") >= 3
    # Workers are not recycled: the arbiter reports each one's memory (WebWorkerMemoryHigh).
    assert 10e6 < value("max(gunicorn_worker_resident_memory_bytes)") < 512 * 1024 * 1024
    assert value("redis_memory_max_bytes") == 128 * 1024 * 1024
    assert value("redis_memory_used_bytes") > 0
    assert value("max(pg_settings_max_connections)") >= 100
    assert value("sum(pg_stat_database_numbackends)") >= 1
    assert value("nginx_http_requests_total") >= 1
    days_left = value("(probe_ssl_earliest_cert_expiry - time()) / 86400")
    assert 300 < days_left <= 366  # the self-signed default lasts a year
    # The backups: a new stack's first full backup and WAL (BackupTooOld, WALArchive*).
    assert value("time() - max(backup_last_completed_timestamp_seconds)") < 3600
    assert value("backup_repository_up") == 1
    assert value("max(pg_archiver_failing)") == 0
    assert value("max(pg_archiver_archived_count)") >= 1

    rules = api(monitored, "rules")["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} == ALERTS
    firing = [a for a in api(monitored, "alerts")["alerts"] if a["state"] == "firing"]
    assert firing == []


def test_metrics_stay_inside(monitored: Stack) -> None:
    with monitored.session() as client:
        for path in ("/metrics", "/stub_status"):
            response = client.get(monitored.base_url + path, timeout=10)
            assert response.status_code == 404, path
            assert "http_requests_total" not in response.text
            assert "Active connections" not in response.text
    # Only nginx's two ports, Prometheus' and Alertmanager's (on 127.0.0.1) are published.
    published = {}
    services = ("web", "nginx", "prometheus", "alertmanager", "postgres-exporter", "redis-exporter")
    for service in services:
        for container in monitored.running(service):
            ports = monitored.inspect(container)["NetworkSettings"]["Ports"] or {}
            for port, bindings in ports.items():
                for binding in bindings or []:
                    published[(service, port)] = binding["HostIp"]
    assert published == {
        ("nginx", "80/tcp"): "127.0.0.1",
        ("nginx", "443/tcp"): "127.0.0.1",
        ("prometheus", "9090/tcp"): "127.0.0.1",
        ("alertmanager", "9093/tcp"): "127.0.0.1",
    }


def json_lines(stack: Stack, service: str) -> list[dict]:
    """Return the JSON log lines of `service` (other lines, if any, are skipped)."""
    found = []
    for line in stack.compose("logs", "--no-color", "--no-log-prefix", service).splitlines():
        start = line.find("{")  # after the terminal codes compose may print first
        if start >= 0:
            found.append(json.loads(line[start:]))
    return found


def test_nginx_and_web_log_one_json_line_per_request_with_the_same_id(monitored: Stack) -> None:
    client, username = monitored.session(), new_username()
    monitored.register(client, username)
    monitored.login(client, username)
    response = client.get(monitored.base_url + "/people?token=do-not-log-me", timeout=10)
    assert response.status_code == 200
    rid = response.headers["X-Request-ID"]

    deadline = time.monotonic() + 10  # docker's log driver may lag a little
    while True:
        nginx = [x for x in json_lines(monitored, "nginx") if x.get("request_id") == rid]
        web = [x for x in json_lines(monitored, "web") if x.get("request_id") == rid]
        if (nginx and web) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(nginx) == 1 and len(web) == 1, (nginx, web)
    for line in (nginx[0], web[0]):
        assert line["method"] == "GET"
        assert line["path"] == "/people"
        assert line["status"] == 200
        assert line["duration_s"] >= 0
        assert line["replica"]
    assert isinstance(web[0]["user_id"], int)
    # replica: the container's hostname, i.e. the start of its id.
    assert any(cid.startswith(web[0]["replica"]) for cid in monitored.running("web"))
    assert any(cid.startswith(nginx[0]["replica"]) for cid in monitored.running("nginx"))
    logs = monitored.compose("logs", "--no-color")
    assert "do-not-log-me" not in logs
    events = [x["event"] for x in json_lines(monitored, "web") if x.get("logger") == "app.event"]
    assert "login" in events


def test_prometheus_targets_page_screenshot(monitored: Stack, browser) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    wait_for_targets(monitored)
    driver = browser
    driver.set_window_size(1100, 1000)
    # Debian's package serves Prometheus' classic UI (its /targets explains why).
    driver.get(prometheus(monitored) + "/classic/targets")
    WebDriverWait(driver, 30).until(lambda d: "postgres-exporter:9187" in d.page_source)
    text = driver.page_source
    assert all(job in text for job in JOBS)
    assert text.lower().count(">up<") >= len(JOBS)  # a state badge per target
    driver.execute_script("document.body.style.zoom = '60%'")  # all six jobs in one picture
    png = driver.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG") and 5_000 < len(png) < 400_000
    if folder := os.environ.get("E2E_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "prometheus-targets.png").write_bytes(png)


def test_a_firing_alert_arrives_by_mail_and_so_does_its_end(monitored: Stack) -> None:
    """Stop an exporter: TargetDown fires (after its real `for: 1m`), Alertmanager mails it
    through the stack's SMTP settings; start it again: the resolved mail follows."""
    wait_for_targets(monitored)
    started = time.monotonic()
    monitored.compose("stop", "redis-exporter")
    try:
        # A scrape (15 s), an evaluation (15 s), `for: 1m`, group_wait: about 2 minutes.
        firing = wait_for_mail(monitored, ALERT_MAIL_TO, "[FIRING:1] TargetDown", timeout=240)
    finally:
        monitored.compose("start", "redis-exporter")
    print(f"TargetDown mailed {time.monotonic() - started:.0f} s after the exporter stopped")
    assert "redis-exporter:9121" in firing["subject"]
    assert firing["from"][0]["address"] == "no-reply@localhost"  # the app's default sender
    summary = "redis target redis-exporter:9121 is down"
    assert f"[FIRING] TargetDown: {summary}" in firing["text"]  # the plain-text part
    assert summary in firing["html"]  # Alertmanager's default HTML part
    assert "severity=critical" in firing["text"]

    resolved = wait_for_mail(monitored, ALERT_MAIL_TO, "[RESOLVED] TargetDown", timeout=120)
    assert f"[RESOLVED] TargetDown: {summary}" in resolved["text"]
    wait_for_targets(monitored)
