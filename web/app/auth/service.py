"""Every credential operation, in one place: register, log in, log out, change the password,
reset it by mail, verify and change the email address, delete the account, end sessions,
forget remembered devices. Notices go to the verified address (mail.py, sent by the worker).

Views validate their forms and call these; each function commits its own work. Passwords are
hashed and checked through passwords.py only, and sessions end through sessions/ only.

Revocation is ordered: credentials first (the database commit that deletes remembered devices
or changes the password), then the sessions (one Redis script that ends them and bumps the
user's session epoch). A sign-in reads the epoch before it checks its credential, so whatever
the timing, none that checked a revoked credential keeps a session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import after_this_request, current_app, request, session
from flask.wrappers import Response
from flask_login import login_user, logout_user
from sqlalchemy.exc import IntegrityError

from .. import audit, mail, passwords, tokens
from ..config import utcnow
from ..devices import device_label
from ..extensions import db
from ..models import RememberedDevice, User, email_key, username_key
from ..sessions import (
    current_sid,
    end_current_session,
    end_device_sessions,
    end_every_session,
    end_session,
    end_sessions_of,
    session_epoch,
    start_authenticated,
)
from .credentials import changed
from .credentials import current_account as current_account
from .lockout import check_passed, check_started, recognise_browser, recognised_nonce
from .remember import remember_device, set_remember_cookie, this_device


def find_user(username: str) -> User | None:
    """Return the user with this username (case-insensitive), or None."""
    return db.session.scalar(User.named(username))


def find_by_email(email: str) -> User | None:
    """Return the user with this address (case-insensitive), or None."""
    return db.session.scalar(db.select(User).where(User.email_key == email_key(email)))


def register(username: str, email: str, password: str) -> User | str:
    """Create an account and mail a verification link; else return which field is taken,
    "username" or "email" (also when two register them at once).

    A taken address is not said: its owner is mailed instead (`address_in_use`), after the
    same bcrypt work a new account costs, and the page answers as for a new account."""
    if find_user(username) is not None:
        return "username"
    owner = find_by_email(email)
    if owner is not None:
        passwords.hash_password(password)  # the same work either way
        address_in_use(owner)
        return "email"
    user = User(
        username=username,
        username_key=username_key(username),
        password_hash=passwords.hash_password(password),
    )
    user.set_email(email)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as error:  # a unique constraint decides between simultaneous sign-ups
        db.session.rollback()
        constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", "")
        return "email" if constraint == "uq_users_email_key" else "username"
    current_app.logger.info("account created: user id %s", user.id)
    send_verification(user)
    return user


def notify(user: User, template: str, to: str | None = None, **context: str) -> None:
    """Tell the user what happened, naming this device and address, at `to` (default: their
    verified address; nothing if none)."""
    address = to or user.verified_email
    if address:
        values: dict[str, Any] = {
            "username": user.username,
            "sessions_url": mail.link("account.index"),
            "device": device_label(request.user_agent.string),
            "ip": request.remote_addr,
            **context,
        }
        mail.send(address, template, account=user.id, **values)


def address_in_use(owner: User, required: bool = False) -> None:
    """Tell the owner of an address that someone asked to use it for another account: the
    page that asked answers as if it were free, so it tells nobody."""
    assert owner.email
    mail.send(
        owner.email,
        "address-in-use",
        account=owner.id,
        required=required,
        username=owner.username,
        url=mail.link("recovery.forgot_password"),
    )


def send_verification(user: User, required: bool = False) -> None:
    """Mail a link that verifies the user's (unverified) address (`required`: past a mail
    budget the request answers 429, see mail.py)."""
    if user.email and not user.email_verified_at:
        url = mail.link("recovery.verify_email", token=tokens.make(user, "verify"))
        mail.send(
            user.email,
            "verify",
            account=user.id,
            required=required,
            username=user.username,
            url=url,
        )


def verify_email(token: str) -> User | None:
    """Mark the address of a valid verification link verified; None if the link is not."""
    found = tokens.load("verify", token)
    if found is None:
        return None
    user, _ = found
    user.email_verified_at = utcnow(current_app.config)
    audit.record(user, "email_verified")
    db.session.commit()
    return user


def request_password_reset(email: str) -> None:
    """Mail a reset link if `email` is an account's verified address; otherwise do nothing.

    Either way the request costs one query (and the enqueue is one Redis command): the
    answer, its status and its timing are the same for known and unknown addresses.
    """
    user = find_by_email(email)
    if user is not None and user.verified_email:
        url = mail.link("recovery.reset_password", token=tokens.make(user, "reset"))
        # Not `required`: a 429 here would tell that the address has an account.
        mail.send(user.verified_email, "reset", account=user.id, username=user.username, url=url)


def reset_password(token: str, new: str) -> User | None:
    """Set a new password from a valid reset link: every session and remembered device of the
    account ends, and the user is told. None if the link is expired, used or forged."""
    found = tokens.load("reset", token)
    if found is None:
        return None
    user, _ = found
    user.password_hash = passwords.hash_password(new)  # the link dies with the old hash
    changed(user, "password_reset", keep_this_browser=False)  # every session, every device
    notify(user, "password-reset-notice")
    return user


def request_email_change(user: User, password: str, new: str) -> bool:
    """Mail a confirmation link to `new` if the password is right (or, if the address is
    another account's, tell it so: the answer is the same); False if the password is wrong."""
    if not check_password(user, password):
        return False
    taken = find_by_email(new)
    if taken is not None and taken.id != user.id:
        check_passed()
        address_in_use(taken, required=True)  # the same answer as a free address
        return True
    url = mail.link("recovery.confirm_email", token=tokens.make(user, "email-change", new))
    check_passed()  # (the password was right, whatever the mail budgets say next)
    old = user.verified_email
    if old and email_key(old) != email_key(new):  # told now, with a way to stop it
        cancel = tokens.make(user, "cancel-email-change", new.strip())
        notify(
            user,
            "email-change-requested",
            new=new.strip(),
            cancel_url=mail.link("recovery.cancel_email_change", token=cancel),
        )
    mail.send(
        new.strip(),
        "email-change",
        account=user.id,
        required=True,
        username=user.username,
        url=url,
        new=new.strip(),
    )
    return True


def cancel_email_change(token: str) -> User | None:
    """Stop an address change from its notice to the old address: the confirmation link dies
    (a credential change) and every session and remembered device of the account ends. None
    if the link is expired or forged, or the change was done already."""
    found = tokens.load("cancel-email-change", token)
    if found is None:
        return None
    user, _ = found
    changed(user, "email_change_cancelled", keep_this_browser=False)
    return user


def confirm_email_change(token: str) -> User | None:
    """Apply a confirmed address change (verified, since the link reached it) and tell the old
    address; None if the link is expired, used or forged, or the address was taken since."""
    found = tokens.load("email-change", token)
    if found is None:
        return None
    user, new = found
    old = user.verified_email
    taken = find_by_email(new)
    if taken is not None and taken.id != user.id:
        return None
    user.set_email(new)
    user.email_verified_at = utcnow(current_app.config)
    try:
        changed(user, "email_changed")  # this browser stays signed in if it is the user's
    except IntegrityError:  # taken at the same moment
        db.session.rollback()
        return None
    if old and email_key(old) != user.email_key:
        notify(user, "email-changed-notice", to=old, new=new)
    return user


def authenticate(username: str, password: str) -> tuple[User, int] | None:
    """Return the user and their session epoch if the password matches; the same bcrypt work
    either way. A hash made at another cost than BCRYPT_LOG_ROUNDS is replaced on success.

    The epoch is read before the password hash that is checked (which is read again after
    it), so a password change or revocation that commits meanwhile defeats this sign-in.
    """
    check_started()
    user = find_user(username)
    epoch = 0
    if user is not None:
        epoch = session_epoch(user.id)
        db.session.refresh(user)
    if not passwords.verify(user.password_hash if user else None, password):
        if user is not None:
            audit.record(user, "login_failed")
            db.session.commit()
        return None
    assert user is not None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        db.session.commit()
    return user, epoch


def log_in(user: User, remember: bool, epoch: int, method: str = "password") -> None:
    """Sign `user` in under a new session id, remembering this device if asked.

    `method` says how: "password" (only for an account without a second factor: the login
    view sends the others to /login/verify) or, once the second factor passed (mfa/),
    "password+totp", "password+passkey", "password+recovery-code"; "passkey" alone. Nothing
    of the signed-out session is kept: the CSRF secret is regenerated after login. The
    database work commits first: if it fails, no session or cookie is made.
    """
    device, payload = remember_device(user) if remember else (None, "")
    audit.record(user, "login_passkey" if method == "passkey" else "login")
    db.session.commit()
    session.clear()
    login_user(user)
    mfa = method != "password"  # a factor passed, or a passkey (itself a second factor) alone
    start_authenticated(
        user.id,
        user.username,
        epoch,
        remembered=device,
        method=method,
        mfa=mfa,
        version=user.credential_version,
    )
    if payload:
        set_remember_cookie(payload)
    # The account is the user's, not the request's: at the factor step and for a passkey the
    # request no longer names it (the pending sign-in has just been taken).
    if recognised_nonce(username_key(user.username)) is None:
        notify(user, "new-device-notice")
    recognise_browser(user.username)
    check_passed()


def log_out(user: User) -> None:
    """End this session on the server and forget this device's remember-me (only this one)."""
    device = this_device()
    if device is not None:
        _delete_device(user.id, device)
    audit.record(user, "logout")
    db.session.commit()
    if device is not None:
        end_device_sessions(user.id, device, keep=current_sid())
    _end_here()


def check_password(user: User, password: str) -> bool:
    """Check the signed-in user's password for a sensitive action; a failure is counted."""
    check_started()
    if passwords.verify(user.password_hash, password):
        return True
    audit.record(user, "password_check_failed")
    db.session.commit()
    return False


def change_password(user: User, current: str, new: str) -> bool:
    """Set a new password if `current` is right: the other sessions and every other remembered
    device end, and this session moves to a new id."""
    if not check_password(user, current):
        return False
    user.password_hash = passwords.hash_password(new)
    changed(user, "password_changed")
    notify(user, "password-changed-notice")
    check_passed()
    return True


def delete_account(user: User, password: str) -> int | None:
    """Delete the account if `password` is right; return how many sessions ended, else None."""
    if not check_password(user, password):
        return None
    user_id = user.id
    db.session.delete(user)
    db.session.commit()  # credentials first: no restore can start a session after this
    ended, _ = end_sessions_of(user_id)
    current_app.logger.info("account deleted: user id %s", user_id)
    _end_here()
    check_passed()
    return ended


def end_one_session(user: audit.Identified, handle: str) -> bool:
    """End one of the user's other sessions by its public handle; False if it had ended."""
    if not end_session(user.id, handle):
        return False
    audit.record(user, "session_ended")
    db.session.commit()
    return True


def forget_device(user: audit.Identified, device_id: int) -> bool:
    """Forget one remembered device: its cookie stops working and its sessions end (this
    session excepted); False if the user has no such device."""
    if not _delete_device(user.id, device_id):
        return False
    audit.record(user, "device_forgotten")
    db.session.commit()
    end_device_sessions(user.id, device_id, keep=current_sid())
    return True


def _delete_device(user_id: int, device_id: int) -> bool:
    """Delete the user's remembered device `device_id` (the caller commits); False if none."""
    deleted = db.session.execute(
        db.delete(RememberedDevice).where(
            RememberedDevice.id == device_id, RememberedDevice.user_id == user_id
        )
    )
    return bool(deleted.rowcount)  # type: ignore[attr-defined]


def end_other_sessions(user: User, event: str = "other_sessions_ended") -> tuple[int, int]:
    """End the user's other sessions and forget every other remembered device; keep this
    session and this device. Returns (how many sessions ended, the user's new epoch)."""
    device = this_device()
    db.session.execute(
        db.delete(RememberedDevice).where(
            RememberedDevice.user_id == user.id, RememberedDevice.id != (device or 0)
        )
    )
    audit.record(user, event)
    db.session.commit()
    return end_sessions_of(user.id, keep=current_sid())


def end_all_sessions(users: Sequence[User], everyone: bool = False) -> int:
    """End every session and remembered device of `users`; return how many sessions ended.

    `everyone` also ends the sessions of accounts deleted meanwhile (`flask sessions end --all`).
    """
    ids = [user.id for user in users]
    db.session.execute(db.delete(RememberedDevice).where(RememberedDevice.user_id.in_(ids)))
    db.session.commit()  # credentials first: see the module's docstring
    ended = sum(end_sessions_of(user_id)[0] for user_id in ids)
    return ended + (end_every_session() if everyone else 0)


def _end_here() -> None:
    """Sign this browser out: its session ended on the server, its remember cookie deleted."""
    logout_user()
    end_current_session()
    config = current_app.config

    @after_this_request
    def delete_remember_cookie(response: Response) -> Response:
        response.delete_cookie(
            config["REMEMBER_COOKIE_NAME"],
            path=config["REMEMBER_COOKIE_PATH"],
            secure=config["REMEMBER_COOKIE_SECURE"],
            httponly=True,
            samesite=config["REMEMBER_COOKIE_SAMESITE"],
        )
        return response
