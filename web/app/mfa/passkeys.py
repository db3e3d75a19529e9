"""Passkeys (WebAuthn, through py_webauthn): registered from the account page, used as a
second factor after the password, or alone to sign in (a discoverable credential with user
verification: the authenticator checked a PIN or biometric, so no password is needed).

The relying party is the site: its id is SITE_URL's host (from SERVER_NAME), its origin
SITE_URL. Each ceremony's challenge is single-use: kept server-side (the signed-in session,
or the pending sign-in in Redis) and dropped as soon as a response is checked.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy.exc import IntegrityError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.parse_authentication_credential_json import (
    parse_authentication_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..config import utcnow
from ..extensions import db
from ..models import Passkey, User

MAX_CREDENTIAL_JSON = 16 * 1024  # an attestation with a certificate chain fits easily


def _origin() -> str:
    return str(current_app.config["SITE_URL"]).rstrip("/")


def _rp_id() -> str:
    return urlsplit(_origin()).hostname or "localhost"


def _descriptors(passkeys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=p.credential_id) for p in passkeys]


def registration_options(user: User, passkeys: list[Passkey]) -> tuple[str, str]:
    """Return (the options for navigator.credentials.create as JSON, the challenge)."""
    options = generate_registration_options(
        rp_id=_rp_id(),
        rp_name=current_app.config["SITE_NAME"],
        user_name=user.username,
        user_id=user.id.to_bytes(8, "big"),  # an opaque handle: no name, no address
        exclude_credentials=_descriptors(passkeys),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    return options_to_json(options), bytes_to_base64url(options.challenge)


def authentication_options(passkeys: list[Passkey] | None) -> tuple[str, str]:
    """Return (options for navigator.credentials.get as JSON, the challenge): for these
    passkeys (a second factor), or for any of the site's (`None`: a passwordless sign-in)."""
    options = generate_authentication_options(
        rp_id=_rp_id(),
        allow_credentials=_descriptors(passkeys) if passkeys is not None else [],
        user_verification=(
            UserVerificationRequirement.PREFERRED
            if passkeys is not None
            else UserVerificationRequirement.REQUIRED
        ),
    )
    return options_to_json(options), bytes_to_base64url(options.challenge)


def register(user: User, name: str, credential: str, challenge: str) -> Passkey | None:
    """Add the passkey of a registration response (the caller commits); None if the response
    does not answer `challenge` on this site, or the passkey is registered already."""
    if not challenge or len(credential) > MAX_CREDENTIAL_JSON:
        return None
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=_rp_id(),
            expected_origin=_origin(),
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        current_app.logger.info("passkey registration refused: %s", type(error).__name__)
        return None
    passkey = Passkey(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=name.strip() or "Passkey",
        created_at=utcnow(current_app.config),
    )
    user.passkeys.append(passkey)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None
    return passkey


def _credential_id(credential: str) -> bytes | None:
    if len(credential) > MAX_CREDENTIAL_JSON:
        return None
    try:
        return parse_authentication_credential_json(json.loads(credential)).raw_id
    except (WebAuthnException, ValueError, KeyError, TypeError):
        return None


def owner_of(credential: str) -> int | None:
    """Return the id of the user whose passkey an assertion claims to be (unchecked)."""
    raw_id = _credential_id(credential)
    if raw_id is None:
        return None
    owner: int | None = db.session.scalar(
        db.select(Passkey.user_id).where(Passkey.credential_id == raw_id)
    )
    return owner


def authenticate(credential: str, challenge: str, user_id: int | None) -> Passkey | None:
    """Return the passkey whose assertion answers `challenge` (of user `user_id`, or anyone's
    for a passwordless sign-in, which needs user verification), its use recorded (the caller
    commits); None for anything else."""
    raw_id = _credential_id(credential)
    if not challenge or raw_id is None:
        return None
    passkey = db.session.scalar(db.select(Passkey).where(Passkey.credential_id == raw_id))
    if passkey is None or (user_id is not None and passkey.user_id != user_id):
        return None
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=_rp_id(),
            expected_origin=_origin(),
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=user_id is None,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        current_app.logger.info("passkey sign-in refused: %s", type(error).__name__)
        return None
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = utcnow(current_app.config)
    return passkey
