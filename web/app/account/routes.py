"""The account area: live sessions, remembered devices, recent activity, password change,
deletion. Every change here is behind the credential gate (auth/credentials.py); password
checks here count against the account's failure budgets (lockout.py)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required

from .. import audit, reads
from ..auth import service
from ..auth.credentials import credential_change
from ..auth.lockout import failure_budgets
from ..auth.remember import this_device
from ..config import utcnow
from ..extensions import limiter
from ..sessions import current_sid, list_sessions, session_handle
from .forms import DeleteAccountForm, EmailChangeForm, EndSessionForm, PasswordChangeForm

bp = Blueprint("account", __name__, url_prefix="/account")
RECENT_EVENTS = 10  # shown under "Recent activity"

# How a session signed in, as the sessions page shows it.
SIGN_IN_METHODS = {
    "password": "Password",
    "password+totp": "Password + authenticator app",
    "password+passkey": "Password + passkey",
    "password+recovery-code": "Password + recovery code",
    "passkey": "Passkey",
    "remember-me": "Remember me",
}


def password_limit() -> str:
    """Password checks here share the login's per-address limit."""
    return str(current_app.config["RATELIMIT_LOGIN"])


@bp.before_request
@login_required
def require_login() -> None:
    """Every page here belongs to a signed-in user."""


@bp.get("")
def index() -> ResponseReturnValue:
    """Show the live sessions, the remembered devices and the recent activity (the reads:
    app/reads.py, one connection and no transaction)."""
    account, devices, events = reads.account_page(
        current_user.id, utcnow(current_app.config), RECENT_EVENTS
    )
    if account is None:
        abort(404)  # deleted meanwhile (its sessions are ending)
    return render_template(
        "account/index.html",
        sessions=list_sessions(current_user.id, current=current_sid()),
        devices=devices,
        account=account,
        this_device=this_device(),
        events=events,
        event_names=audit.EVENTS,
        methods=SIGN_IN_METHODS,
        form=EndSessionForm(),
    )


@bp.post("/sessions/<handle>/end")
@credential_change(back="account.index")
def end_one(handle: str) -> ResponseReturnValue:
    """End one of the user's sessions (ending this one logs out here)."""
    if handle == session_handle(current_sid() or ""):
        return redirect(url_for("auth.logout"))  # ending this session is logging out
    if not service.end_one_session(current_user, handle):
        abort(404, description="That session has already ended.")
    flash(_("The session has ended."), "success")
    return redirect(url_for("account.index"))


@bp.post("/devices/<int:device_id>/forget")
@credential_change(back="account.index")
def forget_device(device_id: int) -> ResponseReturnValue:
    """Forget a remembered device: its remember-me cookie stops working, its sessions end."""
    if not service.forget_device(current_user, device_id):
        abort(404, description="That device is not remembered.")
    flash(_("The device is forgotten."), "success")
    return redirect(url_for("account.index"))


@bp.post("/sessions/end-others")
@credential_change(back="account.index")
def end_others() -> ResponseReturnValue:
    """End every other session and every remember-me cookie; this one stays."""
    ended, _ = service.end_other_sessions(service.current_account())
    flash(
        ngettext("Ended %(num)d other session.", "Ended %(num)d other sessions.", ended), "success"
    )
    return redirect(url_for("account.index"))


@bp.route("/password", methods=["GET", "POST"])
@credential_change()
@limiter.limit(password_limit, methods=["POST"])
@failure_budgets
def password() -> ResponseReturnValue:
    """Change the password: other sessions and all remember-me cookies end."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = service.current_account()
        if not service.change_password(user, form.current.data, form.password.data):
            form.current.errors.append("That is not your current password.")
            return render_template("account/password.html", form=form), 422
        flash(_("Password changed. Your other sessions have ended."), "success")
        return redirect(url_for("account.index"))
    return render_template("account/password.html", form=form), 422 if form.errors else 200


@bp.route("/email", methods=["GET", "POST"])
@credential_change()
@limiter.limit(password_limit, methods=["POST"])
@failure_budgets
def email() -> ResponseReturnValue:
    """Change (or add) the email address: a link to the new one confirms it."""
    form = EmailChangeForm()
    if form.validate_on_submit():
        user = service.current_account()
        if not service.request_email_change(user, form.password.data, form.email.data):
            form.password.errors.append("That is not your password.")
            return render_template("account/email.html", form=form), 422
        flash(_("A confirmation link is on its way to the new address."), "success")
        return redirect(url_for("account.index"))
    return render_template("account/email.html", form=form), 422 if form.errors else 200


@bp.route("/delete", methods=["GET", "POST"])
@credential_change()
@limiter.limit(password_limit, methods=["POST"])
@failure_budgets
def delete() -> ResponseReturnValue:
    """Delete the account and its people, and end all its sessions."""
    form = DeleteAccountForm()
    if form.validate_on_submit():
        ended = service.delete_account(service.current_account(), form.password.data)
        if ended is None:
            form.password.errors.append("That is not your password.")
            return render_template("account/delete.html", form=form), 422
        return render_template("account/deleted.html", ended=ended)
    return render_template("account/delete.html", form=form), 422 if form.errors else 200
