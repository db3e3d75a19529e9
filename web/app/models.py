"""Database models: users, their people (address book), their remembered devices, their
second factors (an authenticator app's secret, recovery codes, passkeys) and the audit trail
of auth events.

A value set on a `String(n)` attribute is cut to n characters (`cut_to_column_length`), so no
form, header or parser can make PostgreSQL refuse a row: forms still say what is too long,
this is the floor under them. tests/app/test_models.py walks every string column.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

USERNAME_MAX = 32
USERNAME_KEY_MAX = USERNAME_MAX * 3  # NFKC may expand a name; the form checks this
EMAIL_MAX = 254  # RFC 5321's limit on a forward path
DEVICE_LABEL_MAX = 120
ADDRESS_MAX = 45  # the longest textual IPv6 address
TOTP_CIPHERTEXT_MAX = 255  # a Fernet token of a 32-character secret is 140 characters
PASSKEY_NAME_MAX = 64


def utcnow() -> datetime:
    """Return the current UTC time (a callable default, evaluated per row)."""
    return datetime.now(UTC)


def username_key(username: str) -> str:
    """Return the case- and width-insensitive form usernames are unique under."""
    return unicodedata.normalize("NFKC", username).casefold()


def email_key(email: str) -> str:
    """Return the form addresses are unique under: NFKC, case-folded, no surrounding space.

    The local part is case-sensitive in theory, never in practice: one person, one address.
    """
    return unicodedata.normalize("NFKC", email.strip()).casefold()


def token_hash(token: str) -> str:
    """Return the SHA-256 of a random token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


class User(db.Model):  # type: ignore[name-defined,misc]
    """An account. Its password hash is only ever made and checked by passwords.py."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(USERNAME_MAX))
    username_key: Mapped[str] = mapped_column(sa.String(USERNAME_KEY_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(60))
    # Unused since remember-me became per device (0004); kept nullable for one release so
    # replicas of the previous release keep working during a rolling deploy, then dropped.
    remember_token: Mapped[str | None] = mapped_column(sa.String(64), deferred=True)
    # Nullable for accounts made before addresses existed (they are asked to add one); every
    # new account has one. Unique under email_key. Reset links go to verified addresses only.
    email: Mapped[str | None] = mapped_column(sa.String(EMAIL_MAX))
    email_key: Mapped[str | None] = mapped_column(sa.String(EMAIL_MAX), unique=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # Authenticator app (mfa/totp.py): the secret encrypted (mfa/crypto.py), never in clear;
    # the last time step a code was accepted for, so each code works once.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(TOTP_CIPHERTEXT_MAX), deferred=True)
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # The credential version (auth/credentials.py): bumped in the same transaction as every
    # change of the password, a factor or the address. Sessions and remembered devices record
    # the version they were verified with; step-up and remember-me accept only the current one.
    credential_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")

    people: Mapped[list[Person]] = relationship(
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True
    )
    devices: Mapped[list[RememberedDevice]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    recovery_codes: Mapped[list[RecoveryCode]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )
    passkeys: Mapped[list[Passkey]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    # Flask-Login protocol.
    is_active = True
    is_anonymous = False
    is_authenticated = True

    @classmethod
    def named(cls, username: str) -> sa.Select[tuple[User]]:
        """Return the query for the user called `username` (case- and width-insensitive)."""
        return sa.select(cls).where(cls.username_key == username_key(username))

    def get_id(self) -> str:
        """Return the id Flask-Login keeps in the session (remember-me is per device)."""
        return str(self.id)

    @property
    def verified_email(self) -> str | None:
        """Return the address mail may go to, if it is verified."""
        return self.email if self.email and self.email_verified_at else None

    def has_second_factor(self) -> bool:
        """Return whether an authenticator app or a passkey protects the account."""
        return self.totp_enabled_at is not None or self.has_passkey()

    def has_passkey(self) -> bool:
        """Return whether the account has a passkey (one EXISTS query)."""
        exists = sa.select(Passkey.id).where(Passkey.user_id == self.id).exists()
        return bool(db.session.scalar(sa.select(exists)))

    def clear_totp(self) -> None:
        """Forget the authenticator app: its secret, the last step used, when it was enabled."""
        self.totp_secret = self.totp_last_step = self.totp_enabled_at = None

    def set_email(self, email: str) -> None:
        """Set a new, unverified address."""
        self.email, self.email_key, self.email_verified_at = email.strip(), email_key(email), None


class Person(db.Model):  # type: ignore[name-defined,misc]
    """An entry in a user's private address book."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    owner: Mapped[User] = relationship(back_populates="people")


class AuthEvent(db.Model):  # type: ignore[name-defined,misc]
    """One authentication event of a user, for the "recent activity" list. Never a secret."""

    __tablename__ = "auth_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(sa.String(32))
    ip: Mapped[str | None] = mapped_column(sa.String(ADDRESS_MAX))
    device: Mapped[str | None] = mapped_column(sa.String(DEVICE_LABEL_MAX))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class RememberedDevice(db.Model):  # type: ignore[name-defined,misc]
    """A browser that asked to be remembered: its remember-me cookie holds `id.token`.

    Only the token's SHA-256 is stored (a leaked backup or log restores nobody). Forgetting
    a device deletes its row, which revokes its cookie; its sessions end with it.
    """

    __tablename__ = "remembered_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64))
    label: Mapped[str] = mapped_column(sa.String(DEVICE_LABEL_MAX))
    ip: Mapped[str | None] = mapped_column(sa.String(ADDRESS_MAX))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    # The user's credential version when this device was remembered (or renewed): a device
    # remembered before a credential change restores nobody.
    credential_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")

    user: Mapped[User] = relationship(back_populates="devices")

    def matches(self, token: str) -> bool:
        """Return whether `token` is this device's (constant-time)."""
        return hmac.compare_digest(self.token_hash, token_hash(token))


class RecoveryCode(db.Model):  # type: ignore[name-defined,misc]
    """One single-use recovery code of a user, stored as its SHA-256 (a code carries 120
    random bits, so a fast hash is enough; see mfa/recovery_codes.py)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Passkey(db.Model):  # type: ignore[name-defined,misc]
    """A WebAuthn credential (passkey) of a user: its public key, never a secret."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[bytes] = mapped_column(sa.LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    sign_count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    name: Mapped[str] = mapped_column(sa.String(PASSKEY_NAME_MAX))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="passkeys")


@sa.event.listens_for(sa.orm.Mapper, "mapper_configured")
def cut_to_column_length(mapper: sa.orm.Mapper[Any], cls: type) -> None:
    """Make every `String(n)` attribute of a model cut what it is given to n characters."""
    for attribute in mapper.column_attrs:
        column_type = attribute.columns[0].type
        if isinstance(column_type, sa.String) and column_type.length:
            sa.event.listen(
                getattr(cls, attribute.key), "set", _cutter(column_type.length), retval=True
            )


def _cutter(length: int) -> Any:
    def cut(target: object, value: Any, old: object, initiator: object) -> Any:
        return value[:length] if isinstance(value, str) else value

    return cut
