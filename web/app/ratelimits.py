"""Flask-Limiter, bound so that a route without a limit pays nothing for it.

Each route limit here is a decorator (`@limiter.limit`, `limiter.shared_limit`), and
Flask-Limiter checks a decorated limit in the decorator's own wrapper. Its app-wide
before-request hook only adds default, application and meta limits, and this app sets none:
on every other route it resolved, for nothing, that there was nothing to check (0.1-0.16 ms
a request). So the hook is removed while there are no such limits. Its after-request hook
stays: it writes the X-RateLimit headers and makes the conditional deductions
(`deduct_when`) of the routes that have limits.
"""

from __future__ import annotations

from flask import Flask
from limits import parse_many

from .extensions import limiter

APP_WIDE = ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION", "RATELIMIT_META")


def init_app(app: Flask) -> None:
    """Bind the limiter to `app`; drop its before-request hook if no limit is app-wide."""
    limiter.init_app(app)
    if any(app.config.get(name) for name in APP_WIDE) or (
        limiter.limit_manager.default_limits or limiter.limit_manager.application_limits
    ):
        return
    hooks = app.before_request_funcs.get(None, [])
    hooks[:] = [hook for hook in hooks if getattr(hook, "__self__", None) is not limiter]


def spend(limit: str, *identifiers: str) -> bool:
    """Count one use against `limit` (Flask-Limiter syntax) for `identifiers`; False if spent."""
    strategy = limiter.limiter
    return all(strategy.hit(item, *identifiers) for item in parse_many(limit))


def spend_each(budgets: list[tuple[str, tuple[str, ...]]]) -> bool:
    """Take one unit of every (limit, identifiers) budget if none is spent; else take none
    and return False."""
    strategy = limiter.limiter
    items = [(item, ids) for limit, ids in budgets for item in parse_many(limit)]
    if not all(strategy.test(item, *ids) for item, ids in items):
        return False
    return all([strategy.hit(item, *ids) for item, ids in items])  # (a list: hit every one)
