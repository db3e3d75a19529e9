"""Changing credentials: one gate in front, one versioned operation behind.

The gate (`credential_change`) is declared on every route that changes how an account signs
in or who is signed in to it: the password, the address, a factor (the authenticator app,
passkeys, both requests of a passkey registration, recovery codes), the sessions and the
remembered devices, the account itself. It lets a request through only from a session that
signed in completely (the password and the second factor, or a passkey) within
MFA_STEP_UP_SECONDS, with the account's *current* credentials (the credential version it
recorded is the user's): a remember-me restore never counts. Others sign in again and come
back to the page the form lives on. tests/app/test_credential_gate.py walks every route.

The operation (`changed`) is what every change of the password, a factor or the address
ends with: the user's credential version is incremented in the same transaction as the
change, every other session and remembered device is revoked (the session epoch too), and
this browser keeps its session (under a new id) and, if remembered, gets a new remember-me
token: copies of its old cookie stop working.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from .. import audit
from ..config import now
from ..extensions import db, login_manager
from ..models import RememberedDevice, User
from ..sessions import (
    current_sid,
    end_sessions_of,
    rotate_current_session,
    signed_in_identity,
    update_identity,
)
from .remember import renew_device, set_remember_cookie, this_device

View = TypeVar("View", bound=Callable[..., Any])
VERSION = "cv"  # the credential version a session was verified with, in its identity


def current_account() -> User:
    """Return the signed-in user's database row (their session only knows id and username)."""
    user = current_user._get_current_object()
    return user if isinstance(user, User) else db.get_or_404(User, user.id)


def is_fresh(user: User | None = None) -> bool:
    """Return whether this session signed in completely within MFA_STEP_UP_SECONDS, with the
    credentials `user` (default: the signed-in account) has now."""
    identity = signed_in_identity()
    if not identity or not identity.get("verified_at"):  # signed out, or a restore
        return False
    age = now(current_app.config) - float(identity["verified_at"])
    if age > current_app.config["MFA_STEP_UP_SECONDS"]:
        return False
    user = user or current_account()
    return int(identity.get(VERSION) or 0) == user.credential_version


def credential_change(*, back: str | None = None, verified: bool = False) -> Callable[[View], View]:
    """Gate a view that changes credentials (see the module's docstring).

    `back`: the endpoint of the page the form lives on, where a POST-only action returns
    after signing in again (a route that answers GET returns to itself). `verified`: the
    account needs a verified address too (notices about its factors go there).
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def gated(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            user = current_account()
            if not is_fresh(user):
                flash(_("Please sign in again to continue."), "info")
                return redirect(url_for("auth.login", next=_return_to(back)))
            if verified and not user.verified_email:
                flash(_("Verify your email address first: notices about your factors go there."))
                return redirect(url_for(back or "account.index"))
            return view(*args, **kwargs)

        gated.credential_change = True  # type: ignore[attr-defined]
        return cast(View, gated)

    return decorate


def _return_to(back: str | None) -> str:
    """Where to come back after signing in again: this page if it answers GET, else `back`."""
    rule = request.url_rule
    if rule is not None and "GET" in (rule.methods or ()):
        return request.path if request.method != "GET" else request.full_path.rstrip("?")
    assert back, f"{request.endpoint}: a POST-only credential change needs `back`"
    return url_for(back)


def changed(user: User, event: str, keep_this_browser: bool = True) -> int:
    """Commit a credential change of `user` (already made on the row) with a new credential
    version, audited as `event`; revoke every other session and remembered device; renew this
    browser's session and remember-me token (if it is the user's and `keep_this_browser`).
    Return how many other sessions ended.

    Ordered like every revocation (auth/service.py): the database commit first, then one Redis
    script that ends the sessions and bumps the epoch.
    """
    identity = signed_in_identity()
    here = keep_this_browser and bool(identity) and identity["uid"] == user.id  # type: ignore[index]
    device_id = this_device() if here else None
    user.credential_version = User.credential_version + 1  # in SQL: no lost update
    db.session.execute(
        db.delete(RememberedDevice).where(
            RememberedDevice.user_id == user.id, RememberedDevice.id != (device_id or 0)
        )
    )
    audit.record(user, event)
    db.session.flush()
    version = user.credential_version  # (read back from the UPDATE)
    device = db.session.get(RememberedDevice, device_id) if device_id else None
    payload = renew_device(device, version) if device is not None else ""
    db.session.commit()
    ended, epoch = end_sessions_of(user.id, keep=current_sid() if here else None)
    if here:
        rotate_current_session(epoch)
        update_identity(**{VERSION: version})
    if payload:
        set_remember_cookie(payload)
    return ended
