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
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import URL

from .environment import ConfigError, flag, integer, number, text, value_or_file

ENVIRONMENTS = ("production", "development", "testing")
WEAK_SECRET_KEYS = {"dev", "secret", "changeme", "change-me", "development", "secret-key"}
MIN_SECRET_KEY_LENGTH = 32
MIN_PRODUCTION_BCRYPT_ROUNDS = 12
MAX_REMEMBER_DAYS = 30
# Loopback names are always served: container healthchecks and operators on the host use them.
ALWAYS_TRUSTED_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def database_url(env: Mapping[str, str]) -> str | None:
    """Return DATABASE_URL, or build it from POSTGRES_* (the password from a file, quoted)."""
    url = value_or_file(env, "DATABASE_URL")
    if url:
        return url
    password = value_or_file(env, "POSTGRES_PASSWORD")
    if password is None:
        return None
    return URL.create(
        "postgresql+psycopg",
        username=text(env, "POSTGRES_USER", "app"),
        password=password,
        host=text(env, "POSTGRES_HOST", "db"),
        port=integer(env, "POSTGRES_PORT", 5432, minimum=1),
        database=text(env, "POSTGRES_DB", "app"),
    ).render_as_string(hide_password=False)


def redis_url(env: Mapping[str, str]) -> str | None:
    """Return REDIS_URL, or build it from REDIS_* (user and password percent-encoded)."""
    return _redis_user_url(env, "REDIS_URL", "REDIS_PASSWORD", env.get("REDIS_USER", ""))


def jobs_redis_url(env: Mapping[str, str]) -> str | None:
    """Return JOBS_REDIS_URL, or the `jobs` Redis user's URL from REDIS_JOBS_PASSWORD(_FILE);
    None (then REDIS_URL is used) when neither is set, as in development and tests."""
    return _redis_user_url(env, "JOBS_REDIS_URL", "REDIS_JOBS_PASSWORD", "jobs")


def _redis_user_url(
    env: Mapping[str, str], url_name: str, password_name: str, user: str
) -> str | None:
    """Return `url_name`, or the URL of Redis user `user` with `password_name`(_FILE)."""
    url = value_or_file(env, url_name)
    if url:
        return url
    password = value_or_file(env, password_name)
    if password is None:
        return None
    host, port = text(env, "REDIS_HOST", "redis"), integer(env, "REDIS_PORT", 6379, minimum=1)
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"redis://{credentials}@{host}:{port}/{integer(env, 'REDIS_DB', 0)}"


def retry_intervals(env: Mapping[str, str]) -> list[int]:
    """Return JOBS_RETRY_INTERVALS: seconds before each retry of a failed job."""
    raw = text(env, "JOBS_RETRY_INTERVALS", "30,120,600,1800,3600")
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        message = f"JOBS_RETRY_INTERVALS must be seconds separated by commas: {raw!r}"
        raise ConfigError(message) from None


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the settings from environment variables (nothing derived, nothing validated)."""
    env = os.environ if environ is None else environ
    return {
        "APP_ENV": text(env, "APP_ENV", "production"),
        "SECRET_KEY": value_or_file(env, "SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": database_url(env),
        "SQLALCHEMY_ENGINE_OPTIONS": {
            # No pre-ping on every checkout (a round trip and a transaction per request):
            # dbpool.py pings only connections that sat idle, and replaces dead ones.
            "pool_pre_ping": False,
            "connect_args": {"connect_timeout": 5},
            # No statement parameter (a password hash, a token hash) in any log or error text.
            "hide_parameters": True,
            # Per gunicorn worker: at most pool_size + max_overflow connections. The budget
            # over all replicas is in docs/deploy-swarm.md. Defaults: SQLAlchemy's own.
            "pool_size": integer(env, "DB_POOL_SIZE", 5, minimum=1),
            "max_overflow": integer(env, "DB_MAX_OVERFLOW", 10),
        },
        # A pooled connection idle this long is pinged before use (dbpool.py).
        "DB_PING_AFTER_IDLE": number(env, "DB_PING_AFTER_IDLE", 1.0),
        "REDIS_URL": redis_url(env),
        # Background jobs (app/jobs.py) and mail (app/mail.py).
        "JOBS_REDIS_URL": jobs_redis_url(env),
        "JOBS_RETRY_INTERVALS": retry_intervals(env),
        "JOBS_FAILED_TTL": integer(env, "JOBS_FAILED_TTL", 14 * 86400, minimum=3600),
        "JOBS_HEARTBEAT_PATH": text(env, "JOBS_HEARTBEAT_PATH", ""),
        "SMTP_HOST": text(env, "SMTP_HOST", "localhost"),
        "SMTP_PORT": integer(env, "SMTP_PORT", 587, minimum=1),
        "SMTP_USER": text(env, "SMTP_USER", ""),
        "SMTP_PASSWORD": value_or_file(env, "SMTP_PASSWORD"),
        "SMTP_SECURITY": text(env, "SMTP_SECURITY", "starttls"),
        "MAIL_FROM": text(env, "MAIL_FROM", "Flask stack <no-reply@localhost>"),
        # Mail budgets, spent by every message queued (mail.py: send): per address, per
        # account, per address and template; and the most messages the queue holds.
        "MAIL_LIMIT_RECIPIENT": text(env, "MAIL_LIMIT_RECIPIENT", "10/hour;30/day"),
        "MAIL_LIMIT_ACCOUNT": text(env, "MAIL_LIMIT_ACCOUNT", "20/hour;60/day"),
        "MAIL_LIMIT_TEMPLATE": text(env, "MAIL_LIMIT_TEMPLATE", "3/hour;10/day"),
        "MAIL_QUEUE_MAX": integer(env, "MAIL_QUEUE_MAX", 1000, minimum=1),
        # Links in mail and passkeys' origin; empty: https://<SERVER_NAME>[:HTTPS_PORT] (derive).
        # Never the request's Host.
        "SITE_URL": text(env, "SITE_URL", ""),
        "HTTPS_PORT": integer(env, "HTTPS_PORT", 443, minimum=1),
        "SITE_NAME": text(env, "SITE_NAME", "Flask stack"),
        "EMAIL_VERIFY_MAX_AGE": integer(env, "EMAIL_VERIFY_MAX_AGE", 24 * 3600, minimum=60),
        # The "not me: undo" link of a "passkey added" notice (recovery/routes.py).
        "UNDO_LINK_MAX_AGE": integer(env, "UNDO_LINK_MAX_AGE", 7 * 86400, minimum=3600),
        "PASSWORD_RESET_MAX_AGE": integer(env, "PASSWORD_RESET_MAX_AGE", 30 * 60, minimum=60),
        # "Forgot password" answers no sooner than this, known address or not (recovery/).
        "FORGOT_MIN_SECONDS": number(env, "FORGOT_MIN_SECONDS", 0.05),
        "LOG_LEVEL": text(env, "LOG_LEVEL", "INFO").upper(),
        # json: one JSON object per line (app/logs.py), for log shippers; text: for people.
        # Empty: json in production, text elsewhere (derive).
        "LOG_FORMAT": env.get("LOG_FORMAT", ""),
        # Reverse proxy: how many hops of X-Forwarded-* to trust (nginx in front = 1).
        "PROXY_FIX_HOPS": integer(env, "PROXY_FIX_HOPS", 0),
        # ...and only from these peers (addresses, CIDRs or host names; app/proxies.py).
        # Default: a proxy on this host's loopback only. Anyone else's X-Forwarded-* is dropped.
        "PROXY_FIX_TRUSTED": [
            p.strip() for p in env.get("PROXY_FIX_TRUSTED", "127.0.0.1,::1").split(",") if p.strip()
        ],
        "TRUSTED_HOSTS_EXTRA": [
            h.strip() for h in env.get("TRUSTED_HOSTS", "").split(",") if h.strip()
        ],
        "MAX_CONTENT_LENGTH": integer(env, "MAX_CONTENT_LENGTH", 1024 * 1024, minimum=1024),
        "EXPOSE_SERVED_BY": flag(env, "EXPOSE_SERVED_BY", False),
        # gunicorn creates this file when it starts draining (gunicorn.conf.py); /readyz
        # then answers 503. Empty: never draining (tests, flask run).
        "DRAIN_FILE": text(env, "DRAIN_FILE", ""),
        # Sessions: signed-in ones server-side in Redis (the cookie holds an opaque id only);
        # a signed-out visitor's session is a signed cookie, so visitors store nothing.
        "SESSION_COOKIE_SECURE": flag(env, "SESSION_COOKIE_SECURE", True),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_PATH": "/",
        "SESSION_KEY_PREFIX": text(env, "SESSION_KEY_PREFIX", "session:"),
        "SESSION_IDLE_TIMEOUT": integer(env, "SESSION_IDLE_TIMEOUT", 30 * 60, minimum=60),
        "SESSION_ABSOLUTE_TIMEOUT": integer(env, "SESSION_ABSOLUTE_TIMEOUT", 12 * 3600, minimum=60),
        "SESSION_ANONYMOUS_TIMEOUT": integer(env, "SESSION_ANONYMOUS_TIMEOUT", 15 * 60, minimum=60),
        # "Last used" and the sliding idle expiry are written at most this often (0: always).
        "SESSION_TOUCH_INTERVAL": integer(env, "SESSION_TOUCH_INTERVAL", 60),
        # Remember-me: per device, revocable (auth/remember.py), at most 30 days.
        "REMEMBER_COOKIE_DAYS": integer(env, "REMEMBER_COOKIE_DAYS", 14, minimum=1),
        # Sessions one remembered device may start (a copied cookie replayed in a loop).
        "REMEMBER_RESTORE_LIMIT": text(env, "REMEMBER_RESTORE_LIMIT", "10/hour"),
        # Device cookies (auth/lockout.py): a browser that signed in to an account before is
        # exempt from that account's failure budget shared by all addresses.
        "DEVICE_COOKIE_DAYS": integer(env, "DEVICE_COOKIE_DAYS", 180, minimum=1),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_PATH": "/",
        "REMEMBER_COOKIE_REFRESH_EACH_REQUEST": False,
        # Passwords.
        "BCRYPT_LOG_ROUNDS": integer(env, "BCRYPT_LOG_ROUNDS", 12, minimum=4),
        "BCRYPT_MAX_CONCURRENCY": integer(env, "BCRYPT_MAX_CONCURRENCY", 2, minimum=1),
        # How long a login waits for a hashing slot before a 503 (app/passwords.py). A waiting
        # login holds a request thread that reads need: by default none waits.
        "BCRYPT_SLOT_WAIT": number(env, "BCRYPT_SLOT_WAIT", 0.0),
        # Rate limits (Flask-Limiter syntax), stored in Redis next to the sessions.
        "RATELIMIT_STORAGE_OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
        "RATELIMIT_STRATEGY": "fixed-window",
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": "ratelimit",
        "RATELIMIT_LOGIN": text(env, "RATELIMIT_LOGIN", "10/minute;100/hour"),
        "RATELIMIT_REGISTER": text(env, "RATELIMIT_REGISTER", "5/minute;30/hour"),
        # "Forgot password" requests per client address and per address asked about.
        "RATELIMIT_FORGOT": text(env, "RATELIMIT_FORGOT", "5/minute;20/hour"),
        "RATELIMIT_FORGOT_EMAIL": text(env, "RATELIMIT_FORGOT_EMAIL", "3/hour;10/day"),
        # Failed password checks (auth/lockout.py): per account and address (or per recognised
        # browser), strict; per account from browsers it has not signed in from, growing.
        "RATELIMIT_ACCOUNT_ADDRESS_FAILURES": text(
            env, "RATELIMIT_ACCOUNT_ADDRESS_FAILURES", "5/5 minutes;20/hour"
        ),
        "RATELIMIT_ACCOUNT_FAILURES": text(
            env, "RATELIMIT_ACCOUNT_FAILURES", "10/15 minutes;30/hour;100/day"
        ),
        # Auth events (the account page's "recent activity") older than this are deleted by
        # `flask auth-events prune` (app/retention.py; the housekeeping service).
        "AUTH_EVENTS_RETENTION_DAYS": integer(env, "AUTH_EVENTS_RETENTION_DAYS", 90, minimum=1),
        # Second factor (app/mfa/). Secrets whose keys encrypt authenticator secrets at rest,
        # comma-separated: the first encrypts, all decrypt (rotation: `flask mfa rotate-key`).
        # Empty: SECRET_KEY's (the stack's secrets service always sets one of its own).
        "MFA_ENCRYPTION_KEYS": [
            k.strip()
            for k in (value_or_file(env, "MFA_ENCRYPTION_KEYS") or "").split(",")
            if k.strip()
        ],
        # Every account must enrol a factor before it can use the site.
        "MFA_REQUIRED": flag(env, "MFA_REQUIRED", False),
        # Sensitive actions need a sign-in (with the second factor) at most this old.
        "MFA_STEP_UP_SECONDS": integer(env, "MFA_STEP_UP_SECONDS", 600, minimum=60),
        # Between password and second factor: how long, and how many codes may be tried.
        "MFA_PENDING_SECONDS": integer(env, "MFA_PENDING_SECONDS", 300, minimum=30),
        "MFA_PENDING_ATTEMPTS": integer(env, "MFA_PENDING_ATTEMPTS", 5, minimum=1),
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
        "DEVICE_COOKIE_NAME": "__Host-device" if secure else "device",
        "REMEMBER_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_DURATION": timedelta(days=config["REMEMBER_COOKIE_DAYS"]),
        "RATELIMIT_STORAGE_URI": config["REDIS_URL"],
        "JOBS_REDIS_URL": config["JOBS_REDIS_URL"] or config["REDIS_URL"],
        "SITE_URL": config["SITE_URL"]
        or site_url((extra or ["localhost"])[0], config["HTTPS_PORT"]),
        # Host names to answer (others get 400); None answers any, outside production.
        "TRUSTED_HOSTS": (
            None
            if not extra and config["APP_ENV"] != "production"
            else [*ALWAYS_TRUSTED_HOSTS, *extra]
        ),
        "LOG_FORMAT": config["LOG_FORMAT"]
        or ("json" if config["APP_ENV"] == "production" else "text"),
    }


def site_url(host: str, port: int) -> str:
    """Return the site's public URL: https://host, with the port unless it is 443."""
    return f"https://{host}" if port == 443 else f"https://{host}:{port}"


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
    if config["SMTP_SECURITY"] not in ("starttls", "tls", "none"):
        raise ConfigError(
            f"SMTP_SECURITY must be starttls, tls or none, not {config['SMTP_SECURITY']!r}"
        )
    if config["PROXY_FIX_HOPS"] not in (0, 1):
        # nginx overwrites X-Forwarded-For with the one address it trusts (a front proxy's
        # client, through its realip module): there is never more than one hop to believe.
        raise ConfigError("PROXY_FIX_HOPS must be 0 (no proxy) or 1 (nginx in front)")
    if config["LOG_FORMAT"] not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT must be json or text, got {config['LOG_FORMAT']!r}")


def now(config: Mapping[str, Any]) -> float:
    """Return the current time from the configured clock."""
    clock: Callable[[], float] = config["CLOCK"]
    return clock()


def utcnow(config: Mapping[str, Any]) -> datetime:
    """Return the configured clock's time as an aware UTC datetime (for database columns)."""
    return datetime.fromtimestamp(now(config), UTC)
