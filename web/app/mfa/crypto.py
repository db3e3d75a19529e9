"""Authenticator secrets are encrypted at rest (Fernet: AES-128-CBC with HMAC-SHA256).

MFA_ENCRYPTION_KEYS lists secrets (random strings of at least 32 characters, like every other
generated secret); each gives a Fernet key through HKDF-SHA256. The first encrypts, every one
decrypts, so a new secret is put first and the old one kept until `flask mfa rotate-key` has
re-encrypted every authenticator secret. With none set, the key comes from SECRET_KEY (its
own HKDF purpose); the stack's secrets service always sets one of its own, so rotating
SECRET_KEY loses no authenticator.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from ..environment import ConfigError

MIN_KEY_LENGTH = 32


def _fernet(secret: str) -> Fernet:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"flask-stack mfa secrets")
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret.encode())))


def _box() -> MultiFernet:
    if "MFA_BOX" not in current_app.extensions:
        config = current_app.config
        secrets = config["MFA_ENCRYPTION_KEYS"] or [config["SECRET_KEY"]]
        if any(len(secret) < MIN_KEY_LENGTH for secret in secrets):
            raise ConfigError(
                f"MFA_ENCRYPTION_KEYS: each key must be at least {MIN_KEY_LENGTH} random "
                'characters (python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        current_app.extensions["MFA_BOX"] = MultiFernet([_fernet(s) for s in secrets])
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
