"""Database models: users, their people (address book) and the audit trail of auth events."""

from __future__ import annotations

import secrets
import unicodedata
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

USERNAME_MAX = 32
USERNAME_KEY_MAX = USERNAME_MAX * 3  # NFKC may expand a name; the form checks this


def utcnow() -> datetime:
    """Return the current UTC time (a callable default, evaluated per row)."""
    return datetime.now(UTC)


def username_key(username: str) -> str:
    """Return the case- and width-insensitive form usernames are unique under."""
    return unicodedata.normalize("NFKC", username).casefold()


def new_remember_token() -> str:
    """Return a fresh random token; rotating it revokes every remember-me cookie."""
    return secrets.token_urlsafe(24)


class User(db.Model):  # type: ignore[name-defined,misc]
    """An account. Its password hash is only ever made and checked by passwords.py."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(USERNAME_MAX))
    username_key: Mapped[str] = mapped_column(sa.String(USERNAME_KEY_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(60))
    remember_token: Mapped[str] = mapped_column(sa.String(64), default=new_remember_token)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    people: Mapped[list[Person]] = relationship(
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True
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
        """Return `id:remember_token`: a remember-me cookie dies when the token rotates."""
        return f"{self.id}:{self.remember_token}"

    def rotate_remember_token(self) -> None:
        """Invalidate every remember-me cookie issued so far."""
        self.remember_token = new_remember_token()


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
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    device: Mapped[str | None] = mapped_column(sa.String(120))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
