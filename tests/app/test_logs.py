"""Log lines: one JSON object per request and per app event, with nginx's request id, and
never a password, session id, CSRF token or cookie value (LOG_FORMAT=text for people)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from app.config import ConfigError, build
from app.logs import JsonFormatter, configure
from helpers import PASSWORD, Auth

RID = "0123456789abcdef0123456789abcdef"  # nginx's $request_id: 32 hex digits


def lines(caplog: pytest.LogCaptureFixture, logger: str = "app.") -> list[dict[str, Any]]:
    """Return the captured records of the app's loggers as the JSON lines they become."""
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name.startswith(logger)]


@pytest.fixture
def json_app(make_app):
    app = make_app(LOG_FORMAT="json")
    return app


def test_each_request_is_one_json_line_with_nginx_request_id(json_app, caplog):
    caplog.set_level(logging.INFO)
    client = json_app.test_client()
    client.get("/people?q=secret-query", headers={"X-Request-ID": RID})

    (line,) = lines(caplog, "app.request")
    assert line["request_id"] == RID
    assert line["method"] == "GET"
    assert line["path"] == "/people"  # without the query string
    assert line["endpoint"] == "people.index"
    assert line["status"] == 302  # signed out: to the login page
    assert 0 <= line["duration_s"] < 5
    assert line["user_id"] is None
    assert line["replica"] and line["level"] == "info" and line["time"].endswith("+00:00")
    assert "secret-query" not in json.dumps(line)


def test_a_missing_or_hostile_request_id_is_replaced(json_app, caplog):
    caplog.set_level(logging.INFO)
    client = json_app.test_client()
    client.get("/healthz")
    client.get("/healthz", headers={"X-Request-ID": 'x" injected {"forged": 1}'})
    ids = [line["request_id"] for line in lines(caplog, "app.request")]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in ids)


def test_login_and_logout_are_events_and_requests_carry_the_user_id(json_app, caplog):
    caplog.set_level(logging.INFO)
    client = json_app.test_client()
    auth = Auth(client)
    assert auth.register().status_code == 302
    assert auth.login(remember=True).status_code == 302
    assert client.get("/dashboard", headers={"X-Request-ID": RID}).status_code == 200
    session_id = client.cookie(json_app.config["SESSION_COOKIE_NAME"])
    remember = client.cookie(json_app.config["REMEMBER_COOKIE_NAME"])
    csrf = client.csrf_token("/logout")
    assert auth.logout().status_code == 302

    records = lines(caplog)
    events = [(line["event"], line["user_id"]) for line in records if "event" in line]
    user_id = events[0][1]
    assert events == [("login", user_id), ("logout", user_id)]
    (dashboard,) = [r for r in records if r.get("request_id") == RID]
    assert dashboard["user_id"] == user_id and dashboard["status"] == 200

    # What must never be written: the password, the cookies' values, the CSRF tokens.
    text = "\n".join(json.dumps(line) for line in records)
    secrets = [PASSWORD, session_id, remember, csrf, client.csrf_token("/login")]
    assert all(secret and secret not in text for secret in secrets)


def test_failed_login_and_rate_limit_are_events(make_app, caplog):
    app = make_app(LOG_FORMAT="json", RATELIMIT_LOGIN="2/minute")
    auth = Auth(app.test_client())
    assert auth.register().status_code == 302
    caplog.set_level(logging.INFO)
    statuses = [auth.login(password="wrong password 1").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    events = [line["event"] for line in lines(caplog, "app.event")]
    assert events == ["login_failed", "login_failed", "rate_limited"]
    assert "wrong password" not in caplog.text


def test_text_format_writes_no_request_lines_but_keeps_events(make_app, caplog):
    app = make_app(LOG_FORMAT="text")
    caplog.set_level(logging.INFO)
    auth = Auth(app.test_client())
    assert auth.register().status_code == 302
    assert auth.login().status_code == 302
    assert not lines(caplog, "app.request")  # gunicorn's access log has them in text mode
    assert [line["event"] for line in lines(caplog, "app.event")] == ["login"]
    root = logging.getLogger()
    assert not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)


def test_configure_reuses_its_handler(make_app):
    app = make_app(LOG_FORMAT="json")
    handlers = len(logging.getLogger().handlers)
    configure(app)
    configure(app)
    assert len(logging.getLogger().handlers) == handlers


def test_an_exception_is_one_json_line_too():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "failed", None, True)
        record.exc_info = __import__("sys").exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["exception"].endswith("ValueError: boom")


GOOD = {"SECRET_KEY": "k" * 40, "DATABASE_URL": "postgresql://x", "REDIS_URL": "redis://x"}


@pytest.mark.parametrize(("env", "expected"), [("production", "json"), ("development", "text")])
def test_json_is_the_default_in_production_only(env, expected):
    assert build(environ={**GOOD, "APP_ENV": env})["LOG_FORMAT"] == expected
    assert build(environ={**GOOD, "APP_ENV": env, "LOG_FORMAT": "text"})["LOG_FORMAT"] == "text"


def test_an_unknown_format_is_refused():
    with pytest.raises(ConfigError, match="LOG_FORMAT must be json or text"):
        build(environ={**GOOD, "LOG_FORMAT": "xml"})


def token_paths(app) -> list[str]:
    """Every route whose URL carries a mailed link's token, with a sample token in it."""
    return [
        rule.rule.replace("<token>", "SECRET-TOKEN.abc_123-x")
        for rule in app.url_map.iter_rules()
        if "token" in rule.arguments
    ]


def test_a_mailed_link_s_token_never_reaches_the_app_s_log(json_app, caplog):
    caplog.set_level(logging.INFO)
    paths = token_paths(json_app)
    assert len(paths) >= 3  # reset, verify, confirm
    client = json_app.test_client()
    for path in paths:
        client.get(path)
    logged = lines(caplog)
    assert {line["path"] for line in logged if "path" in line} >= {
        path.replace("SECRET-TOKEN.abc_123-x", "<token>") for path in paths
    }
    assert "SECRET-TOKEN" not in json.dumps(logged)


def test_nginx_cuts_the_same_tokens_out_of_its_access_log(app):
    """nginx.conf's $request_path map, applied as nginx applies it (first match wins)."""
    import re
    from pathlib import Path

    conf = (Path(__file__).resolve().parents[2] / "nginx" / "nginx.conf").read_text()
    body = re.search(r"map \$request_uri \$request_path \{(.*?)\}", conf, re.S)[1]
    rules = re.findall(r'"~(.*?)"\s+(\S+);', body)

    def nginx_path(uri: str) -> str:
        for pattern, value in rules:
            if match := re.match(pattern.replace("(?<", "(?P<"), uri):
                return re.sub(r"\$(\w+)", lambda m: match[m[1]], value)
        return uri

    for path in token_paths(app):
        assert nginx_path(path + "?q=1") == path.replace("SECRET-TOKEN.abc_123-x", "<token>")
    assert nginx_path("/people?q=secret") == "/people"
    assert "$http_referer" not in conf  # a form's Referer is the page it was on: a token's
