"""Passwords, in one place: the rules for new ones, hashing, checking and re-hashing.

Rules follow NIST SP 800-63B / OWASP ASVS 5. Hashing is bcrypt through Flask-Bcrypt, and a
flood of logins cannot starve the other pages:
- each process hashes on a few threads of its own (BCRYPT_MAX_CONCURRENCY) whose CPU
  priority is low (nice 10): bcrypt (which releases the GIL) gets about a tenth of the
  share of a request thread when the CPU is contended, instead of an equal share;
- at most BCRYPT_MAX_CONCURRENCY password checks or hashes are in flight per process, so
  logins never hold more than that many of its request threads; one more waits at most
  BCRYPT_SLOT_WAIT (default 0: not at all) and is then answered 503 with Retry-After,
  counted in `bcrypt_slot_timeouts_total`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from typing import TypeVar

from flask import Flask, current_app, g, request

from . import metrics
from .extensions import bcrypt

MIN_LENGTH = 8  # characters
MAX_BYTES = 72  # bcrypt ignores (bcrypt 5: rejects) anything past 72 bytes
HINT = f"At least {MIN_LENGTH} characters and at most {MAX_BYTES} bytes (UTF-8)."
# The endpoints anyone can flood with password checks: each POST holds a slot throughout.
HASHING_ENDPOINTS = frozenset({"auth.login", "auth.register"})
# CFS weights: nice 0 = 1024, nice 10 = 110, nice 19 = 15. At 19 a login under a steady read
# load that fills both cores could wait some 30 s for its 270 ms of bcrypt (nginx gives up
# at 35 s); at 10 a few seconds, while 4 hashing threads still take only ~5 % from reads.
# Raising a thread's niceness needs no privilege (lowering it back would).
HASHING_NICE = 10
T = TypeVar("T")


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


def init_app(app: Flask) -> None:
    """Make the per-process hashing slots; a login or registration holds one from its start."""
    app.extensions["hashing_slots"] = threading.BoundedSemaphore(
        app.config["BCRYPT_MAX_CONCURRENCY"]
    )

    @app.before_request
    def hold_a_hashing_slot() -> None:
        # Refused before any other work (rate limits, lookups): the refusal costs little, so
        # a flood of them leaves the CPU to other pages. (After CSRFProtect's check.)
        if request.method == "POST" and request.endpoint in HASHING_ENDPOINTS:
            _acquire()
            g.hashing_slot_held = True

    @app.teardown_request
    def release_the_hashing_slot(error: BaseException | None) -> None:
        if g.pop("hashing_slot_held", False):
            app.extensions["hashing_slots"].release()


def _acquire() -> None:
    """Take one of the per-process slots, or raise HashingBusy after BCRYPT_SLOT_WAIT."""
    slots: threading.BoundedSemaphore = current_app.extensions["hashing_slots"]
    with metrics.BCRYPT_SLOT_WAIT.time():
        acquired = slots.acquire(timeout=current_app.config["BCRYPT_SLOT_WAIT"])
    if not acquired:
        metrics.BCRYPT_SLOT_TIMEOUTS.inc()
        raise HashingBusy


@contextmanager
def hashing_slot() -> Iterator[None]:
    """Hold one of the per-process bcrypt slots (unless this request holds one already)."""
    if g.get("hashing_slot_held"):
        yield
        return
    _acquire()
    try:
        yield
    finally:
        current_app.extensions["hashing_slots"].release()


def _lower_priority() -> None:
    """Run this (hashing) thread at a low CPU priority (Linux: niceness per thread)."""
    # Elsewhere than Linux (no per-thread niceness) the hashes run at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICE)


_pool_lock = threading.Lock()


def in_hashing_thread(work: Callable[..., T], *args: object) -> T:
    """Run `work(*args)` on one of this process's low-priority hashing threads; wait for it.

    The caller holds a hashing slot, so the pool (as many threads as slots) never queues.
    The pool is made on first use in each process: threads do not survive gunicorn's fork.
    """
    extensions = current_app.extensions
    pid, pool = extensions.get("hashing_pool", (None, None))
    if pid != os.getpid() or pool is None:
        with _pool_lock:
            pid, pool = extensions.get("hashing_pool", (None, None))
            if pid != os.getpid() or pool is None:
                pool = ThreadPoolExecutor(
                    max_workers=current_app.config["BCRYPT_MAX_CONCURRENCY"],
                    thread_name_prefix="bcrypt",
                    initializer=_lower_priority,
                )
                extensions["hashing_pool"] = (os.getpid(), pool)
    result: T = pool.submit(work, *args).result()
    return result


def _rounds() -> int:
    return int(current_app.config["BCRYPT_LOG_ROUNDS"])


def hash_password(password: str) -> str:
    """Return the bcrypt hash of an accepted new password, at BCRYPT_LOG_ROUNDS."""
    with hashing_slot():
        hashed = in_hashing_thread(bcrypt.generate_password_hash, password, _rounds())
    return str(hashed.decode("ascii"))


def _dummy_hash() -> str:
    """Return a hash at today's cost, made once per process, for checks without an account."""
    cache = current_app.extensions
    dummy = cache.get("dummy_hash")
    if dummy is None or needs_rehash(dummy):
        hashed = in_hashing_thread(bcrypt.generate_password_hash, "not-a-password", _rounds())
        dummy = hashed.decode("ascii")
        cache["dummy_hash"] = dummy
    return str(dummy)


def verify(stored_hash: str | None, password: str) -> bool:
    """Return whether `password` matches `stored_hash`, spending the same work either way.

    With no hash (no such account) or a password bcrypt cannot check, a dummy hash is
    checked instead, so the answer takes as long as a real mismatch.
    """
    with hashing_slot():
        if stored_hash is None or not fits_bcrypt(password):
            checkable = password if fits_bcrypt(password) else "x"
            in_hashing_thread(bcrypt.check_password_hash, _dummy_hash(), checkable)
            return False
        return bool(in_hashing_thread(bcrypt.check_password_hash, stored_hash, password))


def needs_rehash(stored_hash: str) -> bool:
    """Return whether the hash was made at another cost than BCRYPT_LOG_ROUNDS (`$2b$12$…`)."""
    return int(stored_hash.split("$")[2]) != _rounds()
