"""The app's Redis ACL (web/init-secrets.py): its own keys and data commands, nothing else."""

from __future__ import annotations

import secrets

import pytest
import redis


@pytest.fixture
def app_user(app_redis_url):
    """A Redis client logged in as the app's user (conftest creates it from the rules)."""
    client = redis.Redis.from_url(app_redis_url)
    yield client
    client.close()


def test_the_app_user_runs_data_commands_on_the_apps_keys(app_user):
    app_user.set("session:abc", "x", ex=60)
    assert app_user.get("session:abc") == b"x"
    app_user.zadd("user-sessions:1", {"abc": 1})
    assert app_user.register_script("return redis.call('GET', KEYS[1])")(["session:abc"]) == b"x"
    assert app_user.incrby("LIMITS:LIMITER/x", 1) == 1
    assert app_user.ping()


@pytest.mark.parametrize(
    "command",
    [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("DEBUG", "SLEEP", "0")],
)
def test_the_app_user_cannot_run_dangerous_commands(app_user, command):
    with pytest.raises(redis.exceptions.NoPermissionError):
        app_user.execute_command(*command)


def test_the_app_user_runs_scripts_the_way_redis_py_sends_them(app_user, redis_client):
    app_user.set("session:s", "1")
    script = app_user.register_script("return redis.call('INCR', KEYS[1])")
    redis_client.script_flush()  # a restarted server: EVALSHA fails, SCRIPT LOAD, EVALSHA
    assert script(["session:s"]) == 2
    assert script(["session:s"]) == 3  # EVALSHA alone
    redis_client.script_flush()
    with app_user.pipeline() as pipe:  # SCRIPT EXISTS, SCRIPT LOAD, then MULTI/EVALSHA/EXEC
        script(["session:s"], client=pipe)
        assert pipe.execute() == [4]


def test_the_rate_limit_storage_runs_its_scripts_as_the_app_user(app_redis_url, redis_client):
    from limits.storage import storage_from_string

    storage = storage_from_string(app_redis_url)
    redis_client.script_flush()
    assert storage.incr("LIMITS:acl-test", 60) == 1  # its incr_expire script
    assert storage.incr("LIMITS:acl-test", 60) == 2
    assert storage.get("LIMITS:acl-test") == 2


@pytest.mark.parametrize(
    "command",
    [
        ("EVAL", "return 1", "0"),
        ("SCRIPT", "FLUSH"),
        ("SCRIPT", "KILL"),
        ("SCRIPT", "DEBUG", "YES"),
    ],
)
def test_the_app_user_cannot_run_code_of_its_own(app_user, command):
    with pytest.raises(redis.exceptions.NoPermissionError):
        app_user.execute_command(*command)


def test_the_app_user_cannot_touch_other_keys(app_user):
    with pytest.raises(redis.exceptions.NoPermissionError):
        app_user.get("someone-else:key")


def test_redis_conf_holds_only_password_hashes(init_secrets):
    users = init_secrets["REDIS_USERS"].values()
    values = {secret: secrets.token_urlsafe(32) for secret, _ in users}
    conf = init_secrets["redis_conf"](values)
    assert "user default off" in conf
    assert all(value not in conf for value in values.values())


def test_the_monitor_user_reads_statistics_and_nothing_else(redis_url, init_secrets):
    _, rules = init_secrets["REDIS_USERS"]["monitor"]
    name, password = f"monitor-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", name, "on", f">{password}", *rules.split())
    monitor = redis.Redis.from_url(redis_url, username=name, password=password)
    try:
        assert monitor.ping()
        assert "used_memory" in monitor.info("memory")
        # what the exporter's --check-single-keys asks of the mail queue and its dead letters
        admin.rpush("rq:queue:mail", "job-1")
        assert monitor.execute_command("SELECT", 0)
        assert monitor.type("rq:queue:mail") == b"list"
        assert monitor.llen("rq:queue:mail") == 1
        assert monitor.zcard("rq:failed:mail") == 0
        forbidden = [("GET", "session:abc"), ("CONFIG", "GET", "*"), ("KEYS", "*")]
        forbidden += [("LRANGE", "rq:queue:mail", 0, -1), ("GET", "rq:job:job-1")]
        forbidden += [("SLOWLOG", "GET"), ("CLIENT", "LIST"), ("MONITOR",)]
        for command in forbidden:
            with pytest.raises(redis.exceptions.NoPermissionError):
                monitor.execute_command(*command)
    finally:
        monitor.close()
        admin.acl_deluser(name)
        admin.close()
