"""Authenticator secrets are encrypted at rest (Fernet: AES-128-CBC with HMAC-SHA256).

MFA_ENCRYPTION_KEYS lists Fernet keys: the first encrypts, every one decrypts, so a new key is
put first and the old one kept until `flask mfa rotate-key` has re-encrypted every secret.
With none set, one key is derived from SECRET_KEY (HKDF, its own purpose): the stack's
secrets service always sets a key of its own, so rotating SECRET_KEY loses no secret.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from ..environment import ConfigError


def _derived_key(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"flask-stack mfa secrets")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def _box() -> MultiFernet:
    config = current_app.config
    if "MFA_BOX" not in current_app.extensions:
        keys = config["MFA_ENCRYPTION_KEYS"] or [_derived_key(config["SECRET_KEY"])]
        try:
            current_app.extensions["MFA_BOX"] = MultiFernet([Fernet(key) for key in keys])
        except ValueError as error:
            raise ConfigError(
                "MFA_ENCRYPTION_KEYS: each key must be 32 url-safe base64-encoded bytes "
                '(python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())")'
            ) from error
    box: MultiFernet = current_app.extensions["MFA_BOX"]
    return box


def encrypt(plain: str) -> str:
    """Return `plain` encrypted under the first key."""
    return _box().encrypt(plain.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """Return the plain text of `token`, encrypted under any of the keys.

    Raises ConfigError naming the fix if no key decrypts it (a key was dropped too early).
    """
    try:
        return _box().decrypt(token.encode("ascii")).decode()
    except InvalidToken as error:
        raise ConfigError(
            "an authenticator secret cannot be decrypted: put the key that encrypted it back "
            "in MFA_ENCRYPTION_KEYS (after the new one) and run `flask mfa rotate-key`"
        ) from error


def rotate(token: str) -> str:
    """Return `token` re-encrypted under the first key."""
    return _box().rotate(token.encode("ascii")).decode("ascii")
