"""Recovery codes: ten single-use codes for when the authenticator is lost.

Shown once, stored as SHA-256 only. Each carries 120 random bits (24 base32 characters, more
than the 112 ASVS 6.5.2 asks of an unsalted hash), so a fast hash is enough: no stolen
database can be searched for them (codes made before, of 80 bits, work until replaced).
Making a new set deletes the old one. Using a code marks it used in one conditional UPDATE,
so it works once.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from flask import current_app

from ..config import utcnow
from ..extensions import db
from ..models import RecoveryCode, User

COUNT = 10
BYTES = 15  # 120 bits: base32 without padding


def _normalise(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isascii() and ch.isalnum())


def _hash(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def _new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(BYTES)).decode()  # 24 characters, 120 bits
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4)).lower()


def regenerate(user: User) -> list[str]:
    """Replace the user's codes with a new set (the caller commits); return them, in clear."""
    db.session.execute(db.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_code() for _ in range(COUNT)]
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_hash(code)) for code in codes)
    return codes


def use(user: User, code: str) -> bool:
    """Spend one of the user's unused codes (commits); False if `code` is not one."""
    if len(code) > 64:
        return False
    result = db.session.execute(
        db.update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _hash(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow(current_app.config))
    )
    db.session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def remaining(user: User) -> int:
    """Return how many unused codes the user has."""
    return int(
        db.session.scalar(
            db.select(db.func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )
