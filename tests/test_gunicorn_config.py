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


def test_each_worker_listens_on_its_own_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel spreads connections over the workers' sockets; with one shared socket a
    # burst of keep-alive connections pinned itself to whichever worker woke first.
    assert load(monkeypatch, "json")["reuse_port"] is True
