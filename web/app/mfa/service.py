"""Second factors, enrolled, used, disabled and reset: each audited, each change mailed to
the account's verified address (a factor is offered to accounts with one).

A factor is an authenticator app (TOTP) or a passkey; recovery codes come with the first
factor and go with the last. Turning a factor on or off changes what this session knows
(`mfa`, for MFA_REQUIRED); ending an account's factors by an operator also ends its sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, session

from .. import audit, mail, tokens
from ..auth import service as auth_service
from ..auth.credentials import changed
from ..config import utcnow
from ..extensions import db
from ..models import Passkey, RecoveryCode, User
from ..sessions import update_identity
from . import crypto, recovery_codes, totp

ENROLMENT_KEY = "totp_enrolment"  # the secret being enrolled, encrypted, in the session


@dataclass(frozen=True)
class Factors:
    """What protects an account besides its password."""

    totp: bool
    passkeys: list[Passkey]
    recovery_codes_left: int

    @property
    def any(self) -> bool:
        """Return whether the account has a second factor."""
        return self.totp or bool(self.passkeys)


def factors_of(user: User) -> Factors:
    """Return the user's factors."""
    return Factors(
        totp=user.totp_enabled_at is not None,
        passkeys=passkeys_of(user),
        recovery_codes_left=recovery_codes.remaining(user),
    )


def passkeys_of(user: User) -> list[Passkey]:
    """Return the user's passkeys, oldest first."""
    query = db.select(Passkey).where(Passkey.user_id == user.id).order_by(Passkey.id)
    return list(db.session.scalars(query))


def notice(user: User, change: str, undo_url: str = "") -> None:
    """Mail the user that their factors changed (to their verified address), with a link
    that undoes the change if there is one."""
    auth_service.notify(user, "second-factor-notice", change=change, undo_url=undo_url)


def begin_totp() -> str:
    """Start enrolling an authenticator app: a new secret, kept (encrypted) in the session."""
    secret = totp.new_secret()
    session[ENROLMENT_KEY] = crypto.encrypt(secret)
    return secret


def enrolling_secret() -> str | None:
    """Return the secret being enrolled in this session, if any."""
    token = session.get(ENROLMENT_KEY)
    return crypto.decrypt(token) if isinstance(token, str) else None


def confirm_totp(user: User, code: str) -> list[str] | None:
    """Turn the authenticator app on if `code` is valid for the secret being enrolled.

    Returns the new recovery codes (a first factor brings a set; else an empty list), or None
    if the code is wrong. The code's step is recorded: it cannot be used again to sign in.
    """
    secret = enrolling_secret()
    step = totp.matching_step(secret, code) if secret else None
    if secret is None or step is None:
        return None
    first = not user.has_second_factor()
    user.totp_secret = crypto.encrypt(secret)
    user.totp_last_step = step
    user.totp_enabled_at = utcnow(current_app.config)
    codes = recovery_codes.regenerate(user) if first or not recovery_codes.remaining(user) else []
    changed(user, "totp_enabled")  # commits; a session from before the factor ends
    session.pop(ENROLMENT_KEY, None)
    update_identity(mfa=True)
    notice(user, "totp_enabled")
    return codes


def disable_totp(user: User) -> None:
    """Turn the authenticator app off (the recovery codes go with the last factor)."""
    user.clear_totp()
    _after_removal(user, "totp_disabled")


def remove_passkey(user: User, passkey_id: int) -> bool:
    """Remove one of the user's passkeys; False if they have no such passkey."""
    deleted = db.session.execute(
        db.delete(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user.id)
    )
    if not deleted.rowcount:  # type: ignore[attr-defined]
        return False
    _after_removal(user, "passkey_removed")
    return True


def _after_removal(user: User, event: str) -> None:
    db.session.flush()
    left = user.has_second_factor()
    if not left:
        db.session.execute(db.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    changed(user, event)  # commits; the other sessions (and their factor flag) end
    update_identity(mfa=left)
    notice(user, event)


def passkey_added(user: User, passkey: Passkey, first: bool) -> list[str]:
    """Record a passkey just registered (commits); return new recovery codes if it is the
    account's first factor, else an empty list. The notice carries a link that undoes it."""
    codes = recovery_codes.regenerate(user) if first else []
    changed(user, "passkey_added")  # commits
    update_identity(mfa=True)
    token = tokens.make(user, "undo-passkey", str(passkey.id))
    notice(user, "passkey_added", undo_url=mail.link("mfa.undo_passkey", token=token))
    return codes


def undo_passkey(token: str) -> bool:
    """Remove the passkey of a valid undo link and end every session and remembered device of
    the account (this browser's too); False if the link is expired, forged or used."""
    found = tokens.load("undo-passkey", token)
    if found is None or not found[1].isdigit():
        return False
    user, passkey_id = found
    deleted = db.session.execute(
        db.delete(Passkey).where(Passkey.id == int(passkey_id), Passkey.user_id == user.id)
    )
    if not deleted.rowcount:  # type: ignore[attr-defined]
        return False  # removed already: the link works once
    db.session.flush()
    if not user.has_second_factor():
        db.session.execute(db.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    changed(user, "passkey_removed", keep_this_browser=False)  # commits, then revokes all
    notice(user, "passkey_removed")
    return True


def regenerate_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes (the old ones stop working); return the new ones."""
    codes = recovery_codes.regenerate(user)
    changed(user, "recovery_codes_regenerated")  # commits
    notice(user, "recovery_codes_regenerated")
    return codes


def check_code(user: User, code: str) -> str | None:
    """Check a code typed at the second-factor step: an authenticator code, else a recovery
    code. Return how the user signed in ("password+totp", "password+recovery-code") or None.
    """
    digits = "".join(code.split())
    if digits.isascii() and digits.isdigit() and len(digits) == 6:
        return "password+totp" if totp.use_code(user, digits) else None
    if recovery_codes.use(user, code):
        audit.record(user, "recovery_code_used")
        db.session.commit()
        notice(user, "recovery_code_used")
        return "password+recovery-code"
    return None


def factor_failed(user: User) -> None:
    """Record a wrong second factor (audited; the caller counts the attempt)."""
    audit.record(user, "second_factor_failed")
    db.session.commit()


def reset(user: User) -> int:
    """Remove every factor of `user` and end their sessions and remembered devices (an
    operator's command, for a user who lost every factor); return how many sessions ended."""
    user.clear_totp()
    db.session.execute(db.delete(Passkey).where(Passkey.user_id == user.id))
    db.session.execute(db.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    ended = changed(user, "factors_reset", keep_this_browser=False)  # commits, then revokes
    notice(user, "factors_reset")
    return ended


def rotate_keys() -> int:
    """Re-encrypt every authenticator secret under the first key; return how many."""
    users = db.session.scalars(db.select(User).where(User.totp_secret.is_not(None)))
    count = 0
    for user in users:
        assert user.totp_secret is not None
        user.totp_secret = crypto.rotate(user.totp_secret)
        count += 1
    db.session.commit()
    return count
