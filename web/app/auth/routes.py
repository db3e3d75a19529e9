"""Register, log in, log out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_fresh, login_required
from sqlalchemy.exc import IntegrityError

from ..extensions import db, limiter
from ..models import User, username_key
from ..passwords import hashing_slot
from .forms import LoginForm, LogoutForm, RegisterForm
from .lockout import (
    account_address_key,
    account_key,
    address_is_known,
    login_failed,
    remember_address,
)
from .service import authenticate, current_account, find_user, log_in, log_out

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
    if form.validate_on_submit() and not username_taken(form):
        user = User(username=form.username.data, username_key=username_key(form.username.data))
        with hashing_slot():
            user.set_password(form.password.data, current_app.config["BCRYPT_LOG_ROUNDS"])
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:
            # Two people chose the same name at once: the unique constraint decides.
            db.session.rollback()
            form.username.errors.append(TAKEN)
        else:
            current_app.logger.info("account created: user id %s", user.id)
            flash("Your account is ready. Please log in.", "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/register.html", form=form), 422 if form.errors else 200


def username_taken(form: RegisterForm) -> bool:
    """Add a form error and return True if the username already exists."""
    if find_user(form.username.data) is None:
        return False
    form.username.errors.append(TAKEN)
    return True


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["RATELIMIT_ACCOUNT_ADDRESS_FAILURES"],
    key_func=account_address_key,
    methods=["POST"],
    deduct_when=login_failed,
    scope="login-account-address",
)
@limiter.limit(
    lambda: current_app.config["RATELIMIT_ACCOUNT_FAILURES"],
    key_func=account_key,
    methods=["POST"],
    deduct_when=login_failed,
    exempt_when=address_is_known,
    scope="login-account",
)
def login() -> ResponseReturnValue:
    """Log in; also where a remembered user confirms their password (a "fresh" login)."""
    target = safe_next(request.args.get("next")) or url_for("main.dashboard")
    if current_user.is_authenticated and login_fresh():
        return redirect(target)
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is not None:
            remember_address(user.username)
            log_in(user, remember=form.remember.data)
            db.session.commit()
            return redirect(target)
        db.session.commit()  # keeps the "failed login" audit event
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
    log_out(current_account())
    db.session.commit()
    flash("You are logged out.", "success")
    return redirect(url_for("main.index"))
