"""Authenticator apps: time-based one-time codes (RFC 6238, 30-second steps, 6 digits).

A code is accepted for the current step or one step either side (clocks drift), and only for
a step later than the last one accepted for that account: one conditional UPDATE records the
step, so a code (or an older one) never works twice, even when two requests race.
"""

from __future__ import annotations

import hmac

import pyotp
import segno
from flask import current_app

from ..config import now
from ..extensions import db
from ..models import User
from . import crypto

WINDOW = 1  # steps accepted either side of now


def new_secret() -> str:
    """Return a new random secret (160 bits, base32, as authenticator apps expect)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str) -> str:
    """Return the otpauth:// URI an authenticator app scans."""
    issuer = current_app.config["SITE_NAME"]
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """Return `uri` as an inline SVG QR code (markup only: no script, no external image)."""
    return str(segno.make(uri, error="m").svg_inline(scale=4, border=2, omitsize=False))


def matching_step(secret: str, code: str) -> int | None:
    """Return the time step `code` belongs to (now, or one step either side), else None."""
    code = "".join(code.split())
    if len(code) != 6 or not (code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(int(now(current_app.config)))  # type: ignore[arg-type]
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def code_is_valid(secret: str, code: str) -> bool:
    """Return whether `code` is valid now for `secret` (enrolment: nothing recorded yet)."""
    return matching_step(secret, code) is not None


def use_code(user: User, code: str) -> bool:
    """Accept `code` for `user` once: record its step unless a later or equal one was used.

    Commits. False for a wrong code, a code of an older step, or a replay.
    """
    if user.totp_secret is None:
        return False
    step = matching_step(crypto.decrypt(user.totp_secret), code)
    if step is None:
        return False
    result = db.session.execute(
        db.update(User)
        .where(User.id == user.id)
        .where((User.totp_last_step.is_(None)) | (User.totp_last_step < step))
        .values(totp_last_step=step)
    )
    db.session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]
