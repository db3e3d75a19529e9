"""web/gunicorn.conf.py's choices that cost or save time on every request."""

from __future__ import annotations

import logging
import runpy
from typing import Any

import pytest
from gunicorn.config import Config
from servers import WEB


def load(monkeypatch: pytest.MonkeyPatch, log_format: str) -> dict[str, Any]:
    """Run the config file as gunicorn does, under APP_ENV=production and `log_format`."""
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("LOG_FORMAT", log_format)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    return runpy.run_path(str(WEB / "gunicorn.conf.py"))


def access_logger(settings: dict[str, Any], level: int) -> Any:
    """Return the config's AccessLogger over its settings, its access logger at `level`.

    (Without gunicorn's setup(), which would apply the logging config to this process.)
    """
    cfg = Config()
    for name in ("accesslog", "logconfig_dict", "access_log_format"):
        if name in settings:
            cfg.set(name, settings[name])
    logger = settings["AccessLogger"].__new__(settings["AccessLogger"])
    logger.cfg = cfg
    logger.access_log = logging.getLogger("perf-test.gunicorn.access")
    logger.access_log.setLevel(level)
    return logger


def test_workers_are_not_recycled(monkeypatch: pytest.MonkeyPatch) -> None:
    # Memory is watched instead (metrics and the WebWorkerMemoryHigh alert).
    assert load(monkeypatch, "json")["max_requests"] == 0


def test_no_access_log_line_is_built_when_nothing_writes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load(monkeypatch, "json")
    assert settings["accesslog"] is None and settings["logconfig_dict"]
    logger = access_logger(settings, logging.CRITICAL)  # as logconfig_dict sets it

    def atoms(*args: Any) -> None:
        raise AssertionError("access log atoms built for a line nothing writes")

    logger.atoms = atoms
    assert not logger.access_log_enabled
    logger.access(None, None, {}, None)  # returns at once


def test_the_text_access_log_still_gets_its_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, "text")
    assert settings["accesslog"] == "-"
    assert access_logger(settings, logging.INFO).access_log_enabled


def test_the_workers_share_one_listening_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    # A socket per worker (reuse_port) spreads connections better, but a draining worker's
    # socket reset connections queued on it during a deploy (gunicorn.conf.py says more).
    assert load(monkeypatch, "json")["reuse_port"] is False


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "200000 100000\n"}, 2),  # docker --cpus 2 (cgroup v2)
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: rounded up
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # v1
    ],
)
def test_workers_follow_the_containers_cpu_quota(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, files: dict[str, str], expected: int
) -> None:
    available_cpus = load(monkeypatch, "json")["available_cpus"]
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))  # a big host
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert available_cpus(tmp_path) == expected


def test_without_a_quota_the_cpus_it_may_run_on_count(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    available_cpus = load(monkeypatch, "json")["available_cpus"]
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2})
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == 3
    assert available_cpus(tmp_path / "missing") == 3


def test_the_text_access_log_has_no_query_string_and_no_mailed_token(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # docs/monitoring.md, "Never logged": a query string or a link's token may be a credential.
    from datetime import timedelta
    from types import SimpleNamespace

    settings = load(monkeypatch, "text")
    logger = access_logger(settings, logging.INFO)
    headers = [("X-FORWARDED-FOR", "203.0.113.9"), ("X-REQUEST-ID", "rid-1")]
    lines = []
    for raw in ("/people?token=QUERY-SECRET", "/password/reset/LINK-SECRET?next=QUERY-SECRET"):
        path, query = raw.split("?")
        environ = {
            "REQUEST_METHOD": "GET",
            "RAW_URI": raw,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "10.0.0.2",
        }
        response = SimpleNamespace(status="200 OK", headers=[], response_length=2, sent=2)
        request = SimpleNamespace(headers=headers)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=logger.access_log.name):
            logger.access(response, request, environ, timedelta(milliseconds=3))
        lines += [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert '"GET /people HTTP/1.1" 200' in lines[0]
    assert '"GET /password/reset/<token> HTTP/1.1" 200' in lines[1]
    assert not [line for line in lines if "SECRET" in line or "?" in line]
