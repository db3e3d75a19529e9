"""Forgot password, reset it from a mailed link; verify an address; confirm a new address."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ..auth import service
from ..auth.forms import ConfirmForm, ForgotPasswordForm, ResetPasswordForm
from ..extensions import limiter
from ..models import email_key

bp = Blueprint("recovery", __name__)

LINK_DEAD = "This link has expired or has been used. Ask for a new one."


def forgot_email_key() -> str:
    """Rate-limit key: the address asked about (normalised), whoever asks."""
    return "forgot:" + email_key(request.form.get("email", "")[:254])


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_FORGOT"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["RATELIMIT_FORGOT_EMAIL"],
    key_func=forgot_email_key,
    methods=["POST"],
    scope="forgot-email",
)
def forgot_password() -> ResponseReturnValue:
    """Mail a reset link to a verified address; the same answer, at the same time, for any."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        started = time.perf_counter()
        service.request_password_reset(form.email.data)  # a lookup, and for some an enqueue
        # The answer waits until FORGOT_MIN_SECONDS have passed: the one Redis round trip
        # that queues a message cannot be timed from outside.
        time.sleep(
            max(0.0, current_app.config["FORGOT_MIN_SECONDS"] - (time.perf_counter() - started))
        )
        return render_template("recovery/forgot-sent.html")
    return render_template("recovery/forgot.html", form=form), 422 if form.errors else 200


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> ResponseReturnValue:
    """Set a new password from a reset link (the link works once)."""
    form = ResetPasswordForm()
    if form.validate_on_submit():
        if service.reset_password(token, form.password.data) is None:
            return render_template("recovery/link-dead.html", message=LINK_DEAD), 400
        flash(_("Your password is changed and every session has ended. Please log in."), "success")
        return redirect(url_for("auth.login"))
    return render_template("recovery/reset.html", form=form), 422 if form.errors else 200


@bp.get("/email/verify/<token>")
def verify_email(token: str) -> ResponseReturnValue:
    """Mark the address verified (a link mailed at registration and on request)."""
    if service.verify_email(token) is None:
        return render_template("recovery/link-dead.html", message=LINK_DEAD), 400
    flash(_("Your email address is verified."), "success")
    return redirect(url_for("account.index" if current_user.is_authenticated else "auth.login"))


@bp.post("/email/verify")
@login_required
def resend_verification() -> ResponseReturnValue:
    """Mail the verification link again."""
    form = ConfirmForm()
    if form.validate_on_submit():
        service.send_verification(service.current_account(), required=True)
        flash(_("A verification link is on its way."), "success")
    return redirect(url_for("account.index"))


@bp.route("/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email(token: str) -> ResponseReturnValue:
    """Confirm a new address: GET shows a button (mail scanners open links), POST applies."""
    form = ConfirmForm()
    if form.validate_on_submit():
        if service.confirm_email_change(token) is None:
            return render_template("recovery/link-dead.html", message=LINK_DEAD), 400
        flash(_("Your email address is changed."), "success")
        return redirect(url_for("account.index" if current_user.is_authenticated else "auth.login"))
    return render_template("recovery/confirm-email.html", form=form)


@bp.route("/email/cancel/<token>", methods=["GET", "POST"])
def cancel_email_change(token: str) -> ResponseReturnValue:
    """Stop an address change, from the notice to the old address: GET shows a button, POST
    kills the confirmation link and ends every session. Needs no sign-in."""
    form = ConfirmForm()
    if form.validate_on_submit():
        if service.cancel_email_change(token) is None:
            return render_template("recovery/link-dead.html", message=LINK_DEAD), 400
        flash(_("The address change is cancelled and every session has ended."), "success")
        return redirect(url_for("auth.login"))
    return render_template("recovery/cancel-email.html", form=form)
