"""Operator commands: `flask sessions list|revoke --user NAME` (or `--all`)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from .auth.service import find_user
from .extensions import db
from .models import User
from .sessions import INDEX_PREFIX, end_all_sessions, list_sessions


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
    total = 0
    for user in _users(username, every):
        total += end_all_sessions(user.id)
        user.rotate_remember_token()
    db.session.commit()
    if every:
        # Index entries of accounts deleted meanwhile: nothing can use them, drop them too.
        client = current_app.extensions["redis"]
        for key in client.scan_iter(match=f"{INDEX_PREFIX}*"):
            client.delete(key)
    click.echo(f"ended {total} session(s); remember-me cookies revoked")
