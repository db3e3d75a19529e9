"""Operator commands: `flask sessions list|revoke --user NAME` (or `--all`)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from .auth.service import find_user
from .extensions import db
from .models import User
from .sessions import end_every_session, end_sessions_of, list_sessions


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _users(username: str | None, every: bool) -> list[User]:
    if every == bool(username):
        raise click.UsageError("give exactly one of --user NAME or --all")
    if every:
        return list(db.session.scalars(db.select(User).order_by(User.id)))
    user = find_user(username or "")
    if user is None:
        raise click.ClickException(f"no user called {username!r}")
    return [user]


@click.group("sessions")
def sessions_cli() -> None:
    """List or end users' sessions."""


@sessions_cli.command("list")
@click.option("--user", "username", help="The account's username.")
@click.option("--all", "every", is_flag=True, help="Every account.")
@with_appcontext
def list_command(username: str | None, every: bool) -> None:
    """Show the live sessions of one user, or of all users."""
    for user in _users(username, every):
        for info in list_sessions(user.id):
            click.echo(
                f"{user.username}\t{info.handle}\tstarted {_when(info.started)}\t"
                f"last used {_when(info.last_seen)}\t{info.ip or '-'}\t{info.device}"
            )


@sessions_cli.command("revoke")
@click.option("--user", "username", help="The account's username.")
@click.option("--all", "every", is_flag=True, help="Every account.")
@with_appcontext
def revoke_command(username: str | None, every: bool) -> None:
    """End every session and remember-me cookie of one user, or of all users."""
    users = _users(username, every)
    for user in users:
        user.rotate_remember_token()
    # Tokens first: a remember cookie must not start a new session after its user's ended.
    db.session.commit()
    # --all also ends the sessions of accounts deleted meanwhile.
    total = end_every_session() if every else sum(end_sessions_of(u.id) for u in users)
    click.echo(f"ended {total} session(s); remember-me cookies revoked")
