"""Configuration: read from the environment when the factory runs, then derived, then validated.

The one path every setting takes (`build`): environment variables (a secret may come from the
file `<NAME>_FILE` names, as Docker secrets do) -> the caller's overrides (tests) -> settings
derived from those (cookie names, lifetimes, the database and Redis URLs' users) -> one check
that says, in one line, what is wrong. Nothing here is read at import time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import URL

ENVIRONMENTS = ("production", "development", "testing")
WEAK_SECRET_KEYS = {"dev", "secret", "changeme", "change-me", "development", "secret-key"}
MIN_SECRET_KEY_LENGTH = 32
MIN_PRODUCTION_BCRYPT_ROUNDS = 12
MAX_REMEMBER_DAYS = 30
# Loopback names are always served: container healthchecks and operators on the host use them.
ALWAYS_TRUSTED_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the message is one line an operator can act on."""


def _env(environ: Mapping[str, str], name: str) -> str | None:
    """Return `name` from the environment, or the contents of the file `<name>_FILE` names."""
    value = environ.get(name)
    file_name = environ.get(f"{name}_FILE")
    if value and file_name:
        raise ConfigError(f"both {name} and {name}_FILE are set; set only one")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={file_name} cannot be read: {exc.strerror}") from None
    return value or None


def _str(environ: Mapping[str, str], name: str, default: str) -> str:
    """Return `name`, treating an empty value as unset (compose passes `${NAME:-}`)."""
    return environ.get(name) or default


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def database_url(env: Mapping[str, str]) -> str | None:
    """Return DATABASE_URL, or build it from POSTGRES_* (the password from a file, quoted)."""
    url = _env(env, "DATABASE_URL")
    password = _env(env, "POSTGRES_PASSWORD")
    if url or password is None:
        return url
    return URL.create(
        "postgresql+psycopg",
        username=_str(env, "POSTGRES_USER", "app"),
        password=password,
        host=_str(env, "POSTGRES_HOST", "db"),
        port=_int(env, "POSTGRES_PORT", 5432, minimum=1),
        database=_str(env, "POSTGRES_DB", "app"),
    ).render_as_string(hide_password=False)


def redis_url(env: Mapping[str, str]) -> str | None:
    """Return REDIS_URL, or build it from REDIS_* (user and password percent-encoded)."""
    url = _env(env, "REDIS_URL")
    password = _env(env, "REDIS_PASSWORD")
    if url or password is None:
        return url
    user = quote(env.get("REDIS_USER", ""), safe="")
    host, port = _str(env, "REDIS_HOST", "redis"), _int(env, "REDIS_PORT", 6379, minimum=1)
    return f"redis://{user}:{quote(password, safe='')}@{host}:{port}/{_int(env, 'REDIS_DB', 0)}"


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the settings from environment variables (nothing derived, nothing validated)."""
    env = os.environ if environ is None else environ
    return {
        "APP_ENV": _str(env, "APP_ENV", "production"),
        "SECRET_KEY": _env(env, "SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": database_url(env),
        "SQLALCHEMY_ENGINE_OPTIONS": {
            # No pre-ping on every checkout (a round trip and a transaction per request):
            # dbpool.py pings only connections that sat idle, and replaces dead ones.
            "pool_pre_ping": False,
            "connect_args": {"connect_timeout": 5},
            # Per gunicorn worker: at most pool_size + max_overflow connections. The budget
            # over all replicas is in docs/deploy-swarm.md. Defaults: SQLAlchemy's own.
            "pool_size": _int(env, "DB_POOL_SIZE", 5, minimum=1),
            "max_overflow": _int(env, "DB_MAX_OVERFLOW", 10),
        },
        # A pooled connection idle this long is pinged before use (dbpool.py).
        "DB_PING_AFTER_IDLE": _float(env, "DB_PING_AFTER_IDLE", 1.0),
        "REDIS_URL": redis_url(env),
        "LOG_LEVEL": _str(env, "LOG_LEVEL", "INFO").upper(),
        # Reverse proxy: how many hops of X-Forwarded-* to trust (nginx in front = 1).
        "PROXY_FIX_HOPS": _int(env, "PROXY_FIX_HOPS", 0),
        "TRUSTED_HOSTS_EXTRA": [
            h.strip() for h in env.get("TRUSTED_HOSTS", "").split(",") if h.strip()
        ],
        "MAX_CONTENT_LENGTH": _int(env, "MAX_CONTENT_LENGTH", 1024 * 1024, minimum=1024),
        "EXPOSE_SERVED_BY": _bool(env, "EXPOSE_SERVED_BY", False),
        # gunicorn creates this file when it starts draining (gunicorn.conf.py); /readyz
        # then answers 503. Empty: never draining (tests, flask run).
        "DRAIN_FILE": _str(env, "DRAIN_FILE", ""),
        # Sessions: signed-in ones server-side in Redis (the cookie holds an opaque id only);
        # a signed-out visitor's session is a signed cookie, so visitors store nothing.
        "SESSION_COOKIE_SECURE": _bool(env, "SESSION_COOKIE_SECURE", True),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_PATH": "/",
        "SESSION_KEY_PREFIX": _str(env, "SESSION_KEY_PREFIX", "session:"),
        "SESSION_IDLE_TIMEOUT": _int(env, "SESSION_IDLE_TIMEOUT", 30 * 60, minimum=60),
        "SESSION_ABSOLUTE_TIMEOUT": _int(env, "SESSION_ABSOLUTE_TIMEOUT", 12 * 3600, minimum=60),
        "SESSION_ANONYMOUS_TIMEOUT": _int(env, "SESSION_ANONYMOUS_TIMEOUT", 15 * 60, minimum=60),
        # "Last used" and the sliding idle expiry are written at most this often (0: always).
        "SESSION_TOUCH_INTERVAL": _int(env, "SESSION_TOUCH_INTERVAL", 60),
        # Remember-me: revocable (see models.User.get_id), at most 30 days.
        "REMEMBER_COOKIE_DAYS": _int(env, "REMEMBER_COOKIE_DAYS", 14, minimum=1),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_PATH": "/",
        "REMEMBER_COOKIE_REFRESH_EACH_REQUEST": False,
        # Passwords.
        "BCRYPT_LOG_ROUNDS": _int(env, "BCRYPT_LOG_ROUNDS", 12, minimum=4),
        "BCRYPT_MAX_CONCURRENCY": _int(env, "BCRYPT_MAX_CONCURRENCY", 2, minimum=1),
        # How long a login waits for a hashing slot before a 503. Queueing throttles a flood
        # (`make bench`: failing fast lets flooding clients retry at once, which is worse).
        "BCRYPT_SLOT_WAIT": _float(env, "BCRYPT_SLOT_WAIT", 10.0),
        # Rate limits (Flask-Limiter syntax), stored in Redis next to the sessions.
        "RATELIMIT_STORAGE_OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
        "RATELIMIT_STRATEGY": "fixed-window",
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": "ratelimit",
        "RATELIMIT_LOGIN": _str(env, "RATELIMIT_LOGIN", "10/minute;100/hour"),
        "RATELIMIT_REGISTER": _str(env, "RATELIMIT_REGISTER", "5/minute;30/hour"),
        # Failed logins (auth/lockout.py): per account and address, strict; per account from
        # addresses it has not signed in from, higher and growing.
        "RATELIMIT_ACCOUNT_ADDRESS_FAILURES": _str(
            env, "RATELIMIT_ACCOUNT_ADDRESS_FAILURES", "5/5 minutes;20/hour"
        ),
        "RATELIMIT_ACCOUNT_FAILURES": _str(
            env, "RATELIMIT_ACCOUNT_FAILURES", "10/15 minutes;30/hour;100/day"
        ),
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session that holds it
        # Injected clock (seconds since the epoch) so tests can move time without sleeping.
        "CLOCK": time.time,
    }


def derive(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the settings that follow from others (computed after any override)."""
    secure = config["SESSION_COOKIE_SECURE"]
    extra = config["TRUSTED_HOSTS_EXTRA"]
    return {
        "TESTING": config["APP_ENV"] == "testing",
        # __Host- means: Secure, Path=/, no Domain. Browsers refuse it over plain HTTP.
        "SESSION_COOKIE_NAME": "__Host-session" if secure else "session",
        "SESSION_ANONYMOUS_COOKIE_NAME": "__Host-visitor" if secure else "visitor",
        "PERMANENT_SESSION_LIFETIME": timedelta(seconds=config["SESSION_ABSOLUTE_TIMEOUT"]),
        "REMEMBER_COOKIE_NAME": "__Host-remember" if secure else "remember_token",
        "REMEMBER_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_DURATION": timedelta(days=config["REMEMBER_COOKIE_DAYS"]),
        "RATELIMIT_STORAGE_URI": config["REDIS_URL"],
        # Host names to answer (others get 400); None answers any, outside production.
        "TRUSTED_HOSTS": (
            None
            if not extra and config["APP_ENV"] != "production"
            else [*ALWAYS_TRUSTED_HOSTS, *extra]
        ),
    }


def build(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the validated config: environment, then `overrides`, then what derives from them.

    A derived setting given in `overrides` is kept as given.
    """
    overrides = overrides or {}
    config = {**load_config(environ), **overrides}
    config.update({k: v for k, v in derive(config).items() if k not in overrides})
    validate(config)
    return config


def validate(config: Mapping[str, Any]) -> None:
    """Raise ConfigError with one actionable line if the merged config is unusable."""
    if config["APP_ENV"] not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}")
    key = config.get("SECRET_KEY")
    if not key:
        raise ConfigError("SECRET_KEY is not set (or SECRET_KEY_FILE is empty)")
    if config["APP_ENV"] == "production":
        if len(key) < MIN_SECRET_KEY_LENGTH or key.lower() in WEAK_SECRET_KEYS:
            raise ConfigError(
                f"SECRET_KEY is weak: use at least {MIN_SECRET_KEY_LENGTH} random characters "
                '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        if config["BCRYPT_LOG_ROUNDS"] < MIN_PRODUCTION_BCRYPT_ROUNDS:
            raise ConfigError(f"BCRYPT_LOG_ROUNDS must be at least {MIN_PRODUCTION_BCRYPT_ROUNDS}")
    if not config.get("SQLALCHEMY_DATABASE_URI"):
        raise ConfigError(
            "DATABASE_URL is not set, nor POSTGRES_PASSWORD(_FILE) to build it from POSTGRES_*"
        )
    if not config.get("REDIS_URL"):
        raise ConfigError(
            "REDIS_URL is not set, nor REDIS_PASSWORD(_FILE) to build it from REDIS_*"
        )
    if config["REMEMBER_COOKIE_DAYS"] > MAX_REMEMBER_DAYS:
        raise ConfigError(f"REMEMBER_COOKIE_DAYS must be at most {MAX_REMEMBER_DAYS}")
    if config["SESSION_IDLE_TIMEOUT"] > config["SESSION_ABSOLUTE_TIMEOUT"]:
        raise ConfigError("SESSION_IDLE_TIMEOUT must not exceed SESSION_ABSOLUTE_TIMEOUT")
    if config["SESSION_TOUCH_INTERVAL"] * 2 > config["SESSION_IDLE_TIMEOUT"]:
        raise ConfigError("SESSION_TOUCH_INTERVAL must be at most half of SESSION_IDLE_TIMEOUT")


def now(config: Mapping[str, Any]) -> float:
    """Return the current time from the configured clock."""
    clock: Callable[[], float] = config["CLOCK"]
    return clock()
