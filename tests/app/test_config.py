"""Configuration comes from the environment and is validated once, with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis
from app.config import ConfigError, build, load_config
from sqlalchemy.engine import make_url

GOOD = {
    "SECRET_KEY": "k" * 40,
    "DATABASE_URL": "postgresql+psycopg://u:p@db/app",
    "REDIS_URL": "redis://:p@redis:6379/0",
}


def config_for(**env: str) -> dict:
    return build(environ={**GOOD, **env})


def test_production_is_the_default_and_secure():
    config = config_for()
    assert config["APP_ENV"] == "production"
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_NAME"] == "__Host-session"
    assert config["REMEMBER_COOKIE_NAME"] == "__Host-remember"
    assert config["BCRYPT_LOG_ROUNDS"] == 12


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "dev"}, "SECRET_KEY is weak"),
        ({"SECRET_KEY": "short-but-not-32"}, "SECRET_KEY is weak"),
        ({"DATABASE_URL": ""}, "DATABASE_URL is not set"),
        ({"REDIS_URL": ""}, "REDIS_URL is not set"),
        ({"BCRYPT_LOG_ROUNDS": "10"}, "BCRYPT_LOG_ROUNDS must be at least 12"),
        ({"REMEMBER_COOKIE_DAYS": "90"}, "REMEMBER_COOKIE_DAYS must be at most 30"),
        ({"SESSION_IDLE_TIMEOUT": "x"}, "must be a whole number"),
        ({"SESSION_COOKIE_SECURE": "maybe"}, "must be true or false"),
        ({"APP_ENV": "staging"}, "APP_ENV must be one of"),
    ],
)
def test_bad_settings_are_refused_with_one_clear_line(env, message):
    with pytest.raises(ConfigError, match=message) as info:
        config_for(**env)
    assert "\n" not in str(info.value)


def test_secrets_can_come_from_files(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("f" * 48 + "\n")
    config = load_config({**GOOD, "SECRET_KEY": "", "SECRET_KEY_FILE": str(key_file)})
    assert config["SECRET_KEY"] == "f" * 48
    with pytest.raises(ConfigError, match="both SECRET_KEY and SECRET_KEY_FILE are set"):
        load_config({**GOOD, "SECRET_KEY_FILE": str(key_file)})
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config({**GOOD, "SECRET_KEY": "", "SECRET_KEY_FILE": str(tmp_path / "missing")})


def test_plain_http_local_mode_drops_the_host_prefix():
    config = config_for(SESSION_COOKIE_SECURE="false")
    assert config["SESSION_COOKIE_NAME"] == "session"
    assert config["SESSION_COOKIE_SECURE"] is False


def test_wsgi_refuses_to_start_with_one_line_on_stderr():
    web = Path(__file__).parents[2] / "web"
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "dev", "DATABASE_URL": "x", "REDIS_URL": "y"}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=web, env=env, capture_output=True, text=True
    )
    assert result.returncode == 78
    assert result.stderr.strip().startswith("configuration error: SECRET_KEY is weak")
    assert len(result.stderr.strip().splitlines()) == 1


def test_urls_are_built_from_parts_with_the_passwords_from_files(tmp_path):
    """The compose stack gives host, user and a password file; odd characters survive."""
    (tmp_path / "pg").write_text("p@ss:w/rd%?#\n")
    (tmp_path / "redis").write_text("r@d:is/%\n")
    parts = {
        "SECRET_KEY": "k" * 40,
        "POSTGRES_HOST": "db",
        "POSTGRES_USER": "app_web",
        "POSTGRES_DB": "shop",
        "POSTGRES_PASSWORD_FILE": str(tmp_path / "pg"),
        "REDIS_HOST": "cache",
        "REDIS_USER": "app",
        "REDIS_PASSWORD_FILE": str(tmp_path / "redis"),
    }
    config = build(environ=parts)
    url = make_url(config["SQLALCHEMY_DATABASE_URI"])
    assert (url.drivername, url.username, url.password) == (
        "postgresql+psycopg",
        "app_web",
        "p@ss:w/rd%?#",
    )
    assert (url.host, url.port, url.database) == ("db", 5432, "shop")
    client = redis.Redis.from_url(config["REDIS_URL"])
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["host"]) == ("app", "r@d:is/%", "cache")
    assert config["RATELIMIT_STORAGE_URI"] == config["REDIS_URL"]


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"TRUSTED_HOSTS": "example.com"}, "https://example.com"),
        ({"TRUSTED_HOSTS": "example.com", "HTTPS_PORT": "443"}, "https://example.com"),
        ({"TRUSTED_HOSTS": "example.com", "HTTPS_PORT": "8443"}, "https://example.com:8443"),
        ({"HTTPS_PORT": "8443", "SITE_URL": "https://site.example"}, "https://site.example"),
    ],
)
def test_the_site_url_is_where_browsers_reach_the_site(env, url):
    """Mail links and the passkeys' origin: SERVER_NAME, and the public port unless 443."""
    assert config_for(**env)["SITE_URL"] == url


def test_derived_settings_follow_the_overrides():
    """Tests and embedders override a base setting; what derives from it follows."""
    config = build({"SESSION_COOKIE_SECURE": False, "REMEMBER_COOKIE_DAYS": 3}, environ=GOOD)
    assert config["SESSION_COOKIE_NAME"] == "session"
    assert config["REMEMBER_COOKIE_NAME"] == "remember_token"
    assert config["REMEMBER_COOKIE_SECURE"] is False
    assert config["REMEMBER_COOKIE_DURATION"].days == 3
    kept = build({"RATELIMIT_STORAGE_URI": "memory://"}, environ=GOOD)
    assert kept["RATELIMIT_STORAGE_URI"] == "memory://"


def test_sql_parameters_never_reach_an_error_message_or_a_log(app):
    import pytest
    from app.extensions import db
    from sqlalchemy.exc import DBAPIError

    with app.app_context(), pytest.raises(DBAPIError) as raised:
        db.session.execute(db.text("SELECT 1 / :zero, :secret"), {"zero": 0, "secret": "hash$2b$"})
    assert "hash$2b$" not in str(raised.value)
