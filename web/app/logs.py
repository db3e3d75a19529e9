"""Logs: one JSON object per line (LOG_FORMAT=json) or human-readable text (LOG_FORMAT=text).

In JSON, every request gets one line (logger `app.request`) with the id nginx gave it
(X-Request-ID, so it joins nginx's own line), and app events (login, logout, session ended,
rate limited...) get one line each (logger `app.event`). Only the fields named here are
ever written: never a password, a session id, a CSRF token, a cookie or a query string, and
a mailed link's token is cut out of the path (`loggable_path`; nginx and gunicorn do the same).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, request, request_finished, request_started
from flask.wrappers import Response

from . import metrics

FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HANDLER_NAME = "app"
# nginx's $request_id is 32 hex digits; accept any short token-like id, make one otherwise
# (a client reaching gunicorn directly must not write arbitrary text into the logs).
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
REPLICA = socket.gethostname()
# Paths whose last segment is a mailed link's token (a credential for minutes to hours): the
# routes with a <token> variable. nginx.conf's $request_path map says the same in PCRE.
TOKEN_PATH = re.compile(
    r"^/(password/reset|email/verify|email/confirm|email/cancel|undo/passkey)/[^/?\s]+"
)


def loggable_path(path: str) -> str:
    """Return `path` with a mailed link's token replaced by `<token>`."""
    return TOKEN_PATH.sub(r"/\1/<token>", path)


request_log = logging.getLogger("app.request")
event_log = logging.getLogger("app.event")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message and its `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "replica": REPLICA,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(app: Flask) -> None:
    """Send every log record to stderr at LOG_LEVEL in LOG_FORMAT (one handler, reused)."""
    json_lines = app.config["LOG_FORMAT"] == "json"
    formatter = JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT)
    root = logging.getLogger()
    # gunicorn (LOG_FORMAT=json, see gunicorn.conf.py) may already have given root a handler.
    handlers = [h for h in root.handlers if h.get_name() in (HANDLER_NAME, "console")]
    if not handlers:
        stream = logging.StreamHandler()
        stream.set_name(HANDLER_NAME)
        root.addHandler(stream)
        handlers = [stream]
    for handler in handlers:
        handler.setFormatter(formatter)
    root.setLevel(app.config["LOG_LEVEL"])
    app.logger.setLevel(app.config["LOG_LEVEL"])
    # Module-level receivers: blinker keeps only weak references to them. They time each
    # request for its log line and its metrics (metrics.observe) alike.
    request_started.connect(_started, app)
    request_finished.connect(_finished, app)


def request_id() -> str:
    """Return this request's id: nginx's X-Request-ID when it is sane, else a new one."""
    if "request_id" not in g:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    rid: str = g.request_id
    return rid


def signed_in_user() -> int | None:
    """Return the signed-in user's id from the session, without a database query."""
    from .sessions import signed_in_identity

    identity = signed_in_identity()
    return int(identity["uid"]) if identity else None


def event(name: str, message: str, **extra: Any) -> None:
    """Log an app event (login, logout, rate_limited...) with the request's id and path."""
    fields = {"event": name, "request_id": request_id(), "path": loggable_path(request.path)}
    fields |= extra
    event_log.info(message, extra={"fields": fields})


def _started(sender: Flask, **extra: Any) -> None:
    # The one clock reading at the start of a request: its log line and metrics share it.
    g.request_started = time.perf_counter()


def _finished(sender: Flask, response: Response, **extra: Any) -> None:
    # request_finished comes after every after_request hook, so the status is the final one
    # (a session save that failed turns a 200 into a 503).
    started = g.get("request_started")
    duration = time.perf_counter() - started if started is not None else None
    status = response.status_code
    metrics.observe(request.endpoint, request.method, status, duration)
    if status == 429:  # Flask-Limiter's answer: the app's own rate limits
        event("rate_limited", "rate limited", endpoint=request.endpoint, user_id=signed_in_user())
    # In text mode gunicorn's access log already has a line per request (gunicorn.conf.py).
    # The line's fields are gathered only when the line is written.
    if sender.config["LOG_FORMAT"] != "json" or not request_log.isEnabledFor(logging.INFO):
        return
    fields = {
        "request_id": request_id(),
        "method": request.method,
        # No query string, no token: either may carry what must not be logged.
        "path": loggable_path(request.path),
        "endpoint": request.endpoint,
        "status": status,
        "duration_s": round(duration, 4) if duration is not None else None,
        "user_id": signed_in_user(),
    }
    request_log.info("%s %s %s", request.method, fields["path"], status, extra={"fields": fields})
