"""The app's Redis ACL (web/init-secrets.py): its own keys and data commands, nothing else."""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path

import pytest
import redis

SCRIPT = Path(__file__).resolve().parents[1] / "web" / "init-secrets.py"


def init_secrets():
    """Load web/init-secrets.py (a script, not a package module) to read its rules."""
    spec = importlib.util.spec_from_file_location("init_secrets", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app_user(redis_url):
    """A Redis client logged in as a user with the app's rules; removed afterwards."""
    admin = redis.Redis.from_url(redis_url)
    name, password = f"app-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    admin.acl_setuser(name, enabled=True, passwords=[f"+{password}"])
    admin.execute_command("ACL", "SETUSER", name, *init_secrets().REDIS_APP_RULES.split())
    client = redis.Redis.from_url(redis_url, username=name, password=password)
    yield client
    client.close()
    admin.acl_deluser(name)
    admin.close()


def test_the_app_user_runs_data_commands_on_the_apps_keys(app_user):
    app_user.set("session:abc", "x", ex=60)
    assert app_user.get("session:abc") == b"x"
    app_user.zadd("user-sessions:1", {"abc": 1})
    assert app_user.eval("return redis.call('GET', KEYS[1])", 1, "session:abc") == b"x"
    assert app_user.incrby("LIMITS:LIMITER/x", 1) == 1
    assert app_user.ping()


@pytest.mark.parametrize(
    "command",
    [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("DEBUG", "SLEEP", "0")],
)
def test_the_app_user_cannot_run_dangerous_commands(app_user, command):
    with pytest.raises(redis.exceptions.NoPermissionError):
        app_user.execute_command(*command)


def test_the_app_user_cannot_touch_other_keys(app_user):
    with pytest.raises(redis.exceptions.NoPermissionError):
        app_user.get("someone-else:key")


def test_redis_conf_holds_only_password_hashes(tmp_path):
    module = init_secrets()
    values = {secret: secrets.token_urlsafe(32) for secret, _ in module.REDIS_USERS.values()}
    conf = module.redis_conf(values)
    assert "user default off" in conf
    assert all(value not in conf for value in values.values())
