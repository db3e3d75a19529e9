"""Operator commands: `flask sessions list|end --user NAME` (or `--all`)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from .auth.service import end_all_sessions, find_user
from .extensions import db
from .models import User
from .sessions import list_sessions


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


@sessions_cli.command("end")
@click.option("--user", "username", help="The account's username.")
@click.option("--all", "every", is_flag=True, help="Every account.")
@with_appcontext
def end_command(username: str | None, every: bool) -> None:
    """End every session and remember-me cookie of one user, or of all users."""
    total = end_all_sessions(_users(username, every), everyone=every)
    click.echo(f"ended {total} session(s) and every remember-me cookie")
