"""Application factory."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis
from flask import Flask, request
from flask.wrappers import Response

from . import config as config_module
from .extensions import bcrypt, csrf, db, login_manager, migrate


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Create the app from the environment, with `overrides` on top (tests use them)."""
    app = Flask(__name__)
    app.config.update(config_module.build(overrides))

    configure_logging(app)
    register_proxy_fix(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_request_hooks(app)
    register_commands(app)
    from .sessions import guard_after_request_hooks

    guard_after_request_hooks(app)  # last: every hook is registered by now
    return app


def configure_logging(app: Flask) -> None:
    """Log to stderr at LOG_LEVEL in LOG_FORMAT (gunicorn and docker collect it); time requests."""
    from . import logs

    logs.configure(app)


def register_proxy_fix(app: Flask) -> None:
    """Trust PROXY_FIX_HOPS proxies' X-Forwarded-*, only from PROXY_FIX_TRUSTED peers."""
    from .proxies import TrustedProxyFix

    hops = app.config["PROXY_FIX_HOPS"]
    app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]
        app.wsgi_app, app.config["PROXY_FIX_TRUSTED"] if hops else [], hops=hops or 1
    )


def redis_client(url: str) -> redis.Redis:
    """Return a Redis client that fails fast (2 s) with one bounded retry, never hangs."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        health_check_interval=30,
    )


def register_extensions(app: Flask) -> None:
    """Bind the session store, the extensions and the hashing slots to the app."""
    from . import dbpool, i18n, jobs, passwords, ratelimits, sessions
    from .auth.loader import register_user_loader

    client = redis_client(app.config["REDIS_URL"])
    app.extensions["redis"] = client
    # First: its hooks must run before CSRFProtect's and after Flask-Login's (see sessions).
    sessions.init_app(app, client)
    db.init_app(app)
    dbpool.register(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    bcrypt.init_app(app)
    csrf.init_app(app)
    ratelimits.init_app(app)
    login_manager.init_app(app)
    register_user_loader(login_manager)
    jobs.init_app(app)
    i18n.init_app(app)
    passwords.init_app(app)


def register_blueprints(app: Flask) -> None:
    """Register one blueprint per feature."""
    from .account.routes import bp as account_bp
    from .auth.routes import bp as auth_bp
    from .demo.routes import bp as demo_bp
    from .health.routes import bp as health_bp
    from .main.routes import bp as main_bp
    from .mfa import routes as mfa_routes
    from .people.routes import bp as people_bp
    from .preferences.routes import bp as preferences_bp
    from .recovery.routes import bp as recovery_bp

    for blueprint in (
        main_bp,
        auth_bp,
        recovery_bp,
        account_bp,
        mfa_routes.bp,
        people_bp,
        preferences_bp,
        demo_bp,
        health_bp,
    ):
        app.register_blueprint(blueprint)
    mfa_routes.init_app(app)


def register_error_handlers(app: Flask) -> None:
    """Render every error as a page (or JSON for JSON clients)."""
    from .errors import register

    register(app)


def register_request_hooks(app: Flask) -> None:
    """Refuse NUL input, expose preferences to templates, and mark signed-in pages no-store."""
    from . import inputs
    from .preferences.cookies import current_preferences

    inputs.register(app)

    @app.context_processor
    def inject_preferences() -> dict[str, Any]:
        return {"prefs": current_preferences()}

    @app.template_filter("timestamp")
    def timestamp(value: float) -> str:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")

    credentials = (app.config["SESSION_COOKIE_NAME"], app.config["REMEMBER_COOKIE_NAME"])

    @app.after_request
    def no_store_when_signed_in(response: Response) -> Response:
        # A page for a signed-in browser must not stay in a shared or back-button cache after
        # logout. Decided from the cookies: no user lookup here, where an outage would be a 500.
        if any(request.cookies.get(name) for name in credentials):
            response.headers["Cache-Control"] = "no-store"
        return response

    if app.config["EXPOSE_SERVED_BY"]:
        hostname = socket.gethostname()

        @app.after_request
        def served_by(response: Response) -> Response:
            response.headers["X-Served-By"] = hostname
            return response


def register_commands(app: Flask) -> None:
    """Add the operator commands (`flask sessions|access|auth-events|jobs|mfa ...`)."""
    from .access import access_cli
    from .cli import sessions_cli
    from .jobs import jobs_cli
    from .mfa.cli import mfa_cli
    from .retention import auth_events_cli

    app.cli.add_command(sessions_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(access_cli)
    app.cli.add_command(auth_events_cli)
    app.cli.add_command(mfa_cli)
