"""The second factor's pages: enrolling and managing factors (/account/two-factor), the
factor step of a sign-in (/login/verify) and signing in with a passkey alone (/login/passkey).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_required

from ..auth import service as auth_service
from ..auth.credentials import credential_change
from ..auth.lockout import account_source, check_started, failure_budgets
from ..extensions import db, limiter
from ..models import User
from ..sessions import session_epoch, signed_in_identity
from . import passkeys, pending, service, totp
from .forms import CodeForm, ConfirmForm, PasskeyAssertionForm, PasskeyRegistrationForm

bp = Blueprint("mfa", __name__)

REGISTRATION_CHALLENGE = "passkey_registration"  # in the signed-in session, single-use
WRONG_CODE = "That code is not valid (or was used already)."
UNDO_DEAD = "This link has expired or has been used (the passkey is gone already)."
WRONG_PASSKEY = "That passkey did not confirm it is you. Try again, or enter a code."
# Where a signed-in user without a factor may still go when MFA_REQUIRED is on.
# (The account page holds the address prompt: a factor needs a verified address first.)
OPEN_WITHOUT_FACTOR = {"auth.logout", "account.index", "account.email", "static"}


def login_limit() -> str:
    """The factor step shares the password step's per-address limit."""
    return str(current_app.config["RATELIMIT_LOGIN"])


def init_app(app: Flask) -> None:
    """Send signed-in users without a factor to enrol one, when MFA_REQUIRED is on (else no
    hook at all: a request pays nothing for a setting that is off)."""
    if not app.config["MFA_REQUIRED"]:
        return

    @app.before_request
    def require_second_factor() -> ResponseReturnValue | None:
        if request.blueprint in ("mfa", "health", "recovery"):
            return None
        identity = signed_in_identity()
        if identity and not identity.get("mfa") and request.endpoint not in OPEN_WITHOUT_FACTOR:
            flash(_("This site needs a second factor on every account: add one to go on."), "info")
            return redirect(url_for("mfa.index"))
        return None


def _account() -> User:
    return auth_service.current_account()


# ---- managing factors -------------------------------------------------------------------


@bp.get("/account/two-factor")
@login_required
def index() -> ResponseReturnValue:
    """Show the account's factors and what can be done with them."""
    user = _account()
    return render_template(
        "mfa/index.html",
        account=user,
        factors=service.factors_of(user),
        form=ConfirmForm(),
        passkey_form=PasskeyRegistrationForm(),
    )


@bp.route("/account/two-factor/app", methods=["GET", "POST"])
@credential_change(back="mfa.index", verified=True)
def enrol_totp() -> ResponseReturnValue:
    """Enrol an authenticator app: scan the code (or type the key), confirm with one code."""
    user = _account()
    if user.totp_enabled_at is not None:
        return redirect(url_for("mfa.index"))
    form = CodeForm()
    secret = service.enrolling_secret()
    if form.validate_on_submit() and secret:
        codes = service.confirm_totp(user, form.code.data)
        if codes is not None:
            flash(_("Your authenticator app is on."), "success")
            return _show_codes(codes) if codes else redirect(url_for("mfa.index"))
        form.code.errors.append(WRONG_CODE)
    if secret is None:
        secret = service.begin_totp()
    uri = totp.provisioning_uri(secret, user.username)
    status = 422 if form.errors else 200
    return render_template(
        "mfa/enrol_totp.html", form=form, secret=secret, qr=totp.qr_svg(uri)
    ), status


def _show_codes(codes: list[str]) -> ResponseReturnValue:
    return render_template("mfa/recovery_codes.html", codes=codes)


@bp.post("/account/two-factor/app/disable")
@credential_change(back="mfa.index")
def disable_totp() -> ResponseReturnValue:
    """Turn the authenticator app off."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    service.disable_totp(_account())
    flash(_("Your authenticator app is off."), "success")
    return redirect(url_for("mfa.index"))


@bp.post("/account/two-factor/recovery-codes")
@credential_change(back="mfa.index")
def regenerate_codes() -> ResponseReturnValue:
    """Make a new set of recovery codes; the old set stops working."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = _account()
    if not user.has_second_factor():
        abort(409, description="Recovery codes come with a second factor: add one first.")
    return _show_codes(service.regenerate_recovery_codes(user))


@bp.post("/account/passkeys/options")
@credential_change(back="mfa.index", verified=True)
def passkey_registration_options() -> ResponseReturnValue:
    """Options for navigator.credentials.create (JSON); the challenge stays in the session."""
    user = _account()
    options, challenge = passkeys.registration_options(user, service.passkeys_of(user))
    session[REGISTRATION_CHALLENGE] = challenge
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/account/passkeys")
@credential_change(back="mfa.index", verified=True)
def add_passkey() -> ResponseReturnValue:
    """Register the passkey the browser created."""
    user = _account()
    form = PasskeyRegistrationForm()
    challenge = session.pop(REGISTRATION_CHALLENGE, "")
    if not form.validate_on_submit():
        return redirect(url_for("mfa.index"))
    first = not user.has_second_factor()
    passkey = passkeys.register(user, form.name.data, form.credential.data or "", challenge)
    if passkey is None:
        flash(_("That passkey could not be added. Try again."), "error")
        return redirect(url_for("mfa.index")), 303
    codes = service.passkey_added(user, passkey, first)
    flash(_("Passkey added."), "success")
    return _show_codes(codes) if codes else redirect(url_for("mfa.index"))


@bp.post("/account/passkeys/<int:passkey_id>/remove")
@credential_change(back="mfa.index")
def remove_passkey(passkey_id: int) -> ResponseReturnValue:
    """Remove a passkey."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if not service.remove_passkey(_account(), passkey_id):
        abort(404, description="That passkey is not one of yours.")
    flash(_("Passkey removed."), "success")
    return redirect(url_for("mfa.index"))


@bp.route("/undo/passkey/<token>", methods=["GET", "POST"])
def undo_passkey(token: str) -> ResponseReturnValue:
    """The "not me" link of a "passkey added" notice: GET shows a button (mail scanners open
    links), POST removes the passkey and ends every session. Needs no sign-in: the owner may
    be locked out by whoever added it."""
    form = ConfirmForm()
    if form.validate_on_submit():
        if not service.undo_passkey(token):
            return render_template("recovery/link-dead.html", message=UNDO_DEAD), 400
        flash(_("The passkey is removed and every session has ended. Please log in."), "success")
        return redirect(url_for("auth.login"))
    return render_template("mfa/undo-passkey.html", form=form)


# ---- signing in -------------------------------------------------------------------------


@account_source("mfa.verify")
def pending_account() -> str:
    """The account a factor attempt is about (its failures spend that account's budgets)."""
    found = pending.current()
    return found.username if found else ""


@bp.route("/login/verify", methods=["GET", "POST"])
@limiter.limit(login_limit, methods=["POST"])
@failure_budgets
def verify() -> ResponseReturnValue:
    """The second step of a sign-in: a code from the app, a passkey or a recovery code."""
    found = pending.current()
    user = db.session.get(User, found.uid) if found else None
    if found is None or user is None:
        pending.cancel()
        flash(_("Your sign-in has expired: log in again."), "info")
        return redirect(url_for("auth.login"))
    form, passkey_form = CodeForm(), PasskeyAssertionForm()
    via_passkey = "credential" in request.form
    if (passkey_form if via_passkey else form).validate_on_submit():
        check_started()
        left = pending.reserve_attempt(found)  # first: at most MFA_PENDING_ATTEMPTS checks
        if left < 0:
            flash(_("Too many wrong codes: log in again."), "error")
            return redirect(url_for("auth.login"))
        if via_passkey:
            pending.set_challenge(found, "")  # each challenge is answered once, right or wrong
            used = passkeys.authenticate(passkey_form.credential.data, found.challenge, user.id)
            method = "password+passkey" if used else None
        else:
            method = service.check_code(user, form.code.data)
        if method and pending.take(found):
            auth_service.log_in(user, remember=found.remember, epoch=found.epoch, method=method)
            return redirect(found.next)
        service.factor_failed(user)
        if left == 0:
            pending.cancel()
            flash(_("Too many wrong codes: log in again."), "error")
            return redirect(url_for("auth.login"))
        form.form_errors.append(WRONG_PASSKEY if via_passkey else WRONG_CODE)
    status = 401 if request.method == "POST" else 200
    return render_template(
        "mfa/verify.html",
        form=form,
        has_app=user.totp_enabled_at is not None,
        has_passkey=user.has_passkey(),
    ), status


@bp.post("/login/verify/passkey-options")
@limiter.limit(login_limit)
def verify_passkey_options() -> ResponseReturnValue:
    """Options for navigator.credentials.get at the factor step, for the account's passkeys."""
    found = pending.current()
    user = db.session.get(User, found.uid) if found else None
    if found is None or user is None:
        abort(409, description="Your sign-in has expired: log in again.")
    options, challenge = passkeys.authentication_options(service.passkeys_of(user))
    pending.set_challenge(found, challenge)
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/login/passkey/options")
@limiter.limit(login_limit)
def passkey_login_options() -> ResponseReturnValue:
    """Options for a passwordless sign-in (any passkey of this site, user verification)."""
    options, challenge = passkeys.authentication_options(None)
    pending.offer_challenge(challenge)
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/login/passkey")
@limiter.limit(login_limit)
def passkey_login() -> ResponseReturnValue:
    """Sign in with a passkey alone: it is both factors (possession and a PIN or biometric)."""
    form = PasskeyAssertionForm()
    challenge = pending.take_challenge()
    if not form.validate_on_submit():
        abort(400)
    owner = passkeys.owner_of(form.credential.data)
    # The epoch before the check, as for a password (auth/service.py: authenticate).
    epoch = session_epoch(owner) if owner is not None else 0
    used = passkeys.authenticate(form.credential.data, challenge, None)
    if used is None or used.user_id != owner:
        db.session.rollback()
        flash(_("That passkey did not sign you in. Try again, or use your password."), "error")
        return redirect(url_for("auth.login"))
    user = used.user
    auth_service.log_in(user, remember=False, epoch=epoch, method="passkey")
    return redirect(url_for("main.dashboard"))
