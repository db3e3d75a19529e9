"""The account area: live sessions, recent activity, password change, deletion."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, fresh_login_required, login_required

from .. import audit
from ..auth.service import current_account, end_other_sessions, end_this_session
from ..extensions import db, limiter
from ..passwords import hashing_slot
from ..sessions import current_sid, end_session, end_sessions_of, list_sessions, session_handle
from .forms import DeleteAccountForm, EndSessionForm, PasswordChangeForm

bp = Blueprint("account", __name__, url_prefix="/account")


def password_limit() -> str:
    """Password checks here share the login's per-address limit."""
    return str(current_app.config["RATELIMIT_LOGIN"])


@bp.before_request
@login_required
def require_login() -> None:
    """Every page here belongs to a signed-in user."""


@bp.get("")
def index() -> ResponseReturnValue:
    """Show the live sessions and the recent activity."""
    return render_template(
        "account/index.html",
        sessions=list_sessions(current_user.id, current=current_sid()),
        events=audit.recent(current_user),
        event_names=audit.EVENTS,
        form=EndSessionForm(),
    )


@bp.post("/sessions/<handle>/end")
def end_one(handle: str) -> ResponseReturnValue:
    """End one of the user's sessions (ending this one logs out here)."""
    if handle == session_handle(current_sid() or ""):
        return redirect(url_for("auth.logout"))  # ending this session is logging out
    if not end_session(current_user.id, handle):
        abort(404, description="That session has already ended.")
    audit.record(current_user, "session_ended")
    db.session.commit()
    flash("The session has ended.", "success")
    return redirect(url_for("account.index"))


@bp.post("/sessions/end-others")
def end_others() -> ResponseReturnValue:
    """End every other session and every remember-me cookie; this one stays."""
    ended = end_other_sessions(current_account())
    audit.record(current_user, "other_sessions_ended")
    db.session.commit()
    flash(f"Ended {ended} other session{'s' if ended != 1 else ''}.", "success")
    return redirect(url_for("account.index"))


@bp.route("/password", methods=["GET", "POST"])
@fresh_login_required
@limiter.limit(password_limit, methods=["POST"])
def password() -> ResponseReturnValue:
    """Change the password: other sessions and all remember-me cookies end."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = current_account()
        with hashing_slot():
            ok = user.check_password(form.current.data)
            if ok:
                user.set_password(form.password.data, current_app.config["BCRYPT_LOG_ROUNDS"])
        if not ok:
            form.current.errors.append("That is not your current password.")
            return render_template("account/password.html", form=form), 422
        end_other_sessions(user)
        audit.record(user, "password_changed")
        db.session.commit()
        flash("Password changed. Your other sessions have ended.", "success")
        return redirect(url_for("account.index"))
    return render_template("account/password.html", form=form), 422 if form.errors else 200


@bp.route("/delete", methods=["GET", "POST"])
@limiter.limit(password_limit, methods=["POST"])
def delete() -> ResponseReturnValue:
    """Delete the account and its people, and end all its sessions."""
    form = DeleteAccountForm()
    if form.validate_on_submit():
        user = current_account()
        with hashing_slot():
            ok = user.check_password(form.password.data)
        if not ok:
            form.password.errors.append("That is not your password.")
            return render_template("account/delete.html", form=form), 422
        ended = end_sessions_of(user.id)
        db.session.delete(user)
        db.session.commit()
        current_app.logger.info("account deleted: user id %s", user.id)
        end_this_session()
        return render_template("account/deleted.html", ended=ended)
    return render_template("account/delete.html", form=form), 422 if form.errors else 200
