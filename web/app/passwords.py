"""Passwords, in one place: the rules for new ones, hashing, checking and re-hashing.

Rules follow NIST SP 800-63B / OWASP ASVS 5. Hashing is bcrypt through Flask-Bcrypt, bounded
by per-process slots so that a flood of logins cannot starve every other page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources

from flask import current_app

from .extensions import bcrypt

MIN_LENGTH = 8  # characters
MAX_BYTES = 72  # bcrypt ignores (bcrypt 5: rejects) anything past 72 bytes
HINT = f"At least {MIN_LENGTH} characters and at most {MAX_BYTES} bytes (UTF-8)."


class HashingBusy(RuntimeError):
    """Every hashing slot stayed busy: the server answers 503 instead of queueing forever."""


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """Return the shipped list of common passwords (lower-cased)."""
    text = resources.files(__package__).joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def fits_bcrypt(password: str) -> bool:
    """Return whether bcrypt can check `password` (at most 72 UTF-8 bytes)."""
    return len(password.encode("utf-8")) <= MAX_BYTES


def password_problem(password: str, username: str = "") -> str | None:
    """Return why `password` is not acceptable as a new password, or None."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if not fits_bcrypt(password):
        return (
            f"Use at most {MAX_BYTES} bytes (UTF-8): about {MAX_BYTES} letters, "
            "fewer with accents or emoji."
        )
    if password.lower() in common_passwords():
        return "This password is too common; choose another."
    if username and password.casefold() == username.casefold():
        return "Your password must differ from your username."
    return None


@contextmanager
def hashing_slot() -> Iterator[None]:
    """Hold one of the per-process bcrypt slots, or raise HashingBusy after BCRYPT_SLOT_WAIT."""
    slots: threading.BoundedSemaphore = current_app.extensions["hashing_slots"]
    if not slots.acquire(timeout=current_app.config["BCRYPT_SLOT_WAIT"]):
        raise HashingBusy
    try:
        yield
    finally:
        slots.release()


def _rounds() -> int:
    return int(current_app.config["BCRYPT_LOG_ROUNDS"])


def hash_password(password: str) -> str:
    """Return the bcrypt hash of an accepted new password, at BCRYPT_LOG_ROUNDS."""
    with hashing_slot():
        return str(bcrypt.generate_password_hash(password, _rounds()).decode("ascii"))


def _dummy_hash() -> str:
    """Return a hash at today's cost, made once per process, for checks without an account."""
    cache = current_app.extensions
    dummy = cache.get("dummy_hash")
    if dummy is None or needs_rehash(dummy):
        dummy = bcrypt.generate_password_hash("not-a-password", _rounds()).decode("ascii")
        cache["dummy_hash"] = dummy
    return str(dummy)


def verify(stored_hash: str | None, password: str) -> bool:
    """Return whether `password` matches `stored_hash`, spending the same work either way.

    With no hash (no such account) or a password bcrypt cannot check, a dummy hash is
    checked instead, so the answer takes as long as a real mismatch.
    """
    with hashing_slot():
        if stored_hash is None or not fits_bcrypt(password):
            bcrypt.check_password_hash(_dummy_hash(), password if fits_bcrypt(password) else "x")
            return False
        return bool(bcrypt.check_password_hash(stored_hash, password))


def needs_rehash(stored_hash: str) -> bool:
    """Return whether the hash was made at another cost than BCRYPT_LOG_ROUNDS (`$2b$12$…`)."""
    return int(stored_hash.split("$")[2]) != _rounds()
