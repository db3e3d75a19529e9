"""Password rules (NIST SP 800-63B / OWASP ASVS 5) and bounded, constant-work hashing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources

from flask import current_app

from . import metrics
from .extensions import bcrypt

MIN_LENGTH = 8  # characters
MAX_BYTES = 72  # bcrypt ignores (bcrypt 5: rejects) anything past 72 bytes


class HashingBusy(RuntimeError):
    """Every hashing slot stayed busy: the server answers 503 instead of queueing forever."""


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """Return the shipped list of common passwords (lower-cased)."""
    text = resources.files(__package__).joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def password_problem(password: str, username: str = "") -> str | None:
    """Return why `password` is not acceptable as a new password, or None."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password.encode("utf-8")) > MAX_BYTES:
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
    """Hold one of the per-process bcrypt slots, so login floods cannot starve other pages."""
    slots: threading.BoundedSemaphore = current_app.extensions["hashing_slots"]
    with metrics.BCRYPT_SLOT_WAIT.time():
        acquired = slots.acquire(timeout=current_app.config["BCRYPT_SLOT_WAIT"])
    if not acquired:
        metrics.BCRYPT_SLOT_TIMEOUTS.inc()
        raise HashingBusy
    try:
        yield
    finally:
        slots.release()


def burn_equal_work(password: str) -> None:
    """Spend the same bcrypt work as a real check, for a username that does not exist."""
    cache = current_app.extensions
    rounds = current_app.config["BCRYPT_LOG_ROUNDS"]
    dummy = cache.get("dummy_hash")
    if dummy is None or int(dummy.split("$")[2]) != rounds:
        dummy = bcrypt.generate_password_hash("not-a-password", rounds).decode("ascii")
        cache["dummy_hash"] = dummy
    # An over-long password would make bcrypt raise; any in-range value costs the same.
    bcrypt.check_password_hash(dummy, password if len(password.encode()) <= MAX_BYTES else "x")
