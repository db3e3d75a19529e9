"""Failed-login budgets that stop guessing without locking the owner out.

A browser that signed in to an account before is *recognised* by a device cookie issued at
that successful login (OWASP's "device cookies": a signed, HttpOnly cookie naming the account
by a hash and a random nonce, valid DEVICE_COOKIE_DAYS). Budgets of failures (Flask-Limiter,
shared by /login, /account/password and /account/delete; a check counts as failed unless it
completed successfully, so one that ends in an error counts too):

- strict, per account *and* client address, or per device cookie for a recognised browser,
  or on the account pages per signed-in session (per remembered device for the sessions it
  restores) (RATELIMIT_ACCOUNT_ADDRESS_FAILURES, default 5 per 5 minutes and 20 per hour):
  one address, one stolen device cookie or one stolen session guesses at most 20 passwords
  an hour on an account; the owner who mistypes waits minutes;
- per account, whatever the address (RATELIMIT_ACCOUNT_FAILURES, default 10 per 15 minutes,
  30 per hour, 100 per day): many addresses together guess at most 100 a day. A recognised
  browser is exempt, and so are the account pages, so a guessing campaign, or clients
  sharing one address with the attacker, cannot lock the owner out from a browser they
  signed in with before, nor out of their own account pages.

Past its budget a client is told to slow down (429 with Retry-After), never told whether the
password was right.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, after_this_request, current_app, g, request
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..extensions import limiter
from ..models import username_key
from ..sessions import current_sid, session_handle, signed_in_identity

MAX_ACCOUNTS_PER_BROWSER = 5  # accounts one device cookie recognises (newest kept)
PENDING, PASSED = "pending", "passed"
View = TypeVar("View", bound=Callable[..., Any])


# Endpoints whose account is named neither by the form nor by the signed-in user: the view's
# module says how to find it (the second-factor step: its pending sign-in, mfa/routes.py).
_ACCOUNT_SOURCES: dict[str, Callable[[], str]] = {}


def account_source(endpoint: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    """Register the function that names the account a request to `endpoint` is about."""

    def register(source: Callable[[], str]) -> Callable[[], str]:
        _ACCOUNT_SOURCES[endpoint] = source
        return source

    return register


def _account() -> str:
    """Return the account a request is about: the signed-in one on account pages, a
    registered source's (account_source), else the form's username."""
    if request.blueprint == "account" and current_user.is_authenticated:
        return username_key(current_user.username)
    source = _ACCOUNT_SOURCES.get(request.endpoint or "")
    return username_key(source() if source else request.form.get("username", "")[:64])


def _account_tag(account: str) -> str:
    # The cookie is signed, not encrypted: it names the account by a hash, not by its name.
    return hashlib.sha256(account.encode()).hexdigest()[:16]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="device-cookie")


def _entries() -> list[list[str]]:
    """Return the [account tag, nonce] pairs of this browser's valid device cookie (checked
    once per request: the limits, the login and the notice all ask)."""
    if "device_entries" not in g:
        g.device_entries = _read_entries()
    entries: list[list[str]] = g.device_entries
    return entries


def _read_entries() -> list[list[str]]:
    value = request.cookies.get(current_app.config["DEVICE_COOKIE_NAME"])
    if not value:
        return []
    max_age = current_app.config["DEVICE_COOKIE_DAYS"] * 86400
    try:
        entries = _serializer().loads(value, max_age=max_age)
    except BadSignature:
        return []
    return [e for e in entries if isinstance(e, list) and len(e) == 2][:MAX_ACCOUNTS_PER_BROWSER]


def recognised_nonce(account: str | None = None) -> str | None:
    """Return this browser's device nonce for `account` (a username key; default: the
    account of the request), if it has one."""
    tag = _account_tag(_account() if account is None else account)
    return next((nonce for account, nonce in _entries() if account == tag), None)


def browser_is_recognised() -> bool:
    """Return whether this browser signed in to the request's account before (sign-in only)."""
    return request.blueprint in ("auth", "mfa") and recognised_nonce() is not None


def recognise_browser(username: str) -> None:
    """Issue (or renew) the device cookie after a successful login to `username`."""
    account = username_key(username)
    tag = _account_tag(account)
    entries = [e for e in _entries() if e[0] != tag]
    nonce = recognised_nonce(account)  # kept: the budgets of this browser are keyed on it
    entries.insert(0, [tag, nonce or secrets.token_urlsafe(16)])
    value = _serializer().dumps(entries[:MAX_ACCOUNTS_PER_BROWSER])
    config = current_app.config

    @after_this_request
    def set_device_cookie(response: Response) -> Response:
        response.set_cookie(
            config["DEVICE_COOKIE_NAME"],
            value,
            max_age=config["DEVICE_COOKIE_DAYS"] * 86400,
            path="/",
            secure=config["SESSION_COOKIE_SECURE"],
            httponly=True,
            samesite="Lax",
        )
        return response


def account_key() -> str:
    """Rate-limit key for failures per account, whatever the address."""
    return "account:" + _account()


def strict_key() -> str:
    """Rate-limit key for failures per recognised browser, else per account and address; on
    the account pages, per guesser: the signed-in session, or its remembered device."""
    if request.blueprint == "account":
        identity = signed_in_identity() or {}
        if identity.get("remembered"):  # every session it restores shares one budget
            return f"remembered:{identity['remembered']}"
        return f"session:{session_handle(current_sid() or '')}"
    nonce = recognised_nonce() if request.blueprint in ("auth", "mfa") else None
    return f"device:{nonce}" if nonce else f"account:{_account()}@{request.remote_addr}"


def exempt_from_account_budget() -> bool:
    """A recognised browser at sign-in, and a signed-in session on the account pages (its
    own budget bounds it), do not use the per-account budget: strangers who spend it by
    guessing at /login lock neither the owner's browser nor the owner's account pages."""
    return request.blueprint == "account" or browser_is_recognised()


def check_started() -> None:
    """Mark that a credential check began: unless `check_passed` follows, it counts as failed."""
    g.credential_check = PENDING


def check_passed() -> None:
    """Mark the credential check (and all the work after it) as completed successfully."""
    g.credential_check = PASSED


def check_failed(response: object) -> bool:
    """Count a request against the budgets if it checked a credential and did not complete."""
    return g.get("credential_check") == PENDING


def failure_budgets(view: View) -> View:
    """Apply both failure budgets to `view` (POST only); the budgets are shared by views."""
    strict = limiter.shared_limit(
        lambda: current_app.config["RATELIMIT_ACCOUNT_ADDRESS_FAILURES"],
        scope="failures-account-address",
        key_func=strict_key,
        methods=["POST"],
        deduct_when=check_failed,
    )(view)
    shared = limiter.shared_limit(
        lambda: current_app.config["RATELIMIT_ACCOUNT_FAILURES"],
        scope="failures-account",
        key_func=account_key,
        methods=["POST"],
        deduct_when=check_failed,
        exempt_when=exempt_from_account_budget,
    )(strict)
    return cast(View, shared)
