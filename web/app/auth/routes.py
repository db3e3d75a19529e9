"""Register, log in, log out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ..extensions import limiter
from ..mfa import pending
from . import service
from .credentials import is_fresh
from .forms import LoginForm, LogoutForm, RegisterForm
from .lockout import check_passed, failure_budgets

bp = Blueprint("auth", __name__)

INVALID_LOGIN = "Invalid username or password."
TAKEN = "That username is taken."


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a same-site relative path, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return None
    return target


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_REGISTER"], methods=["POST"])
def register() -> ResponseReturnValue:
    """Create an account, then send the user to log in."""
    form = RegisterForm()
    if form.validate_on_submit():
        created = service.register(form.username.data, form.email.data, form.password.data)
        if created != "username":  # a taken address is not said: its owner is mailed instead
            flash(
                _("Your account is ready: a link to verify your address is on its way."), "success"
            )
            return redirect(url_for("auth.login"))
        form.username.errors.append(TAKEN)
    return render_template("auth/register.html", form=form), 422 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"])
@failure_budgets
def login() -> ResponseReturnValue:
    """Log in; also where a signed-in user signs in again for a sensitive action (step-up).

    An account with a second factor goes on to /login/verify with no session yet."""
    target = safe_next(request.args.get("next")) or url_for("main.dashboard")
    if current_user.is_authenticated and is_fresh():
        return redirect(target)
    form = LoginForm()
    if form.validate_on_submit():
        found = service.authenticate(form.username.data, form.password.data)
        if found is not None:
            user, epoch = found
            if user.has_second_factor():  # no session until the second factor (mfa/pending.py)
                pending.start(user, epoch, remember=form.remember.data, next_url=target)
                check_passed()
                return redirect(url_for("mfa.verify"))
            service.log_in(user, remember=form.remember.data, epoch=epoch)
            return redirect(target)
        form.form_errors.append(INVALID_LOGIN)
        return render_template("auth/login.html", form=form), 401
    return render_template("auth/login.html", form=form), 422 if form.errors else 200


@bp.route("/logout", methods=["GET", "POST"])
@login_required
def logout() -> ResponseReturnValue:
    """GET asks for confirmation (a link must not log anyone out); POST logs out."""
    form = LogoutForm()
    if request.method == "GET":
        return render_template("auth/logout.html", form=form)
    if not form.validate_on_submit():
        return render_template("auth/logout.html", form=form), 400
    service.log_out(service.current_account())
    flash(_("You are logged out."), "success")
    return redirect(url_for("main.index"))
