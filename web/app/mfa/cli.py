"""Operator commands: `flask mfa reset USERNAME` (a user who lost every factor) and
`flask mfa rotate-key` (re-encrypt the authenticator secrets under the first key)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from ..auth.service import find_user
from . import service

OPERATOR = "operator command"  # the device the audit trail and the notice name


@click.group("mfa")
def mfa_cli() -> None:
    """Reset a user's second factors; rotate the key that encrypts them."""


@mfa_cli.command("reset")
@click.argument("username")
@with_appcontext
def reset_command(username: str) -> None:
    """Remove every factor of USERNAME and end their sessions (they sign in with the
    password alone, then enrol again). Audited, and the user is told by mail."""
    user = find_user(username)
    if user is None:
        raise click.ClickException(f"no user called {username!r}")
    # Audit rows and the notice describe a request: this one names no address, no browser.
    context = current_app.test_request_context(
        base_url=current_app.config["SITE_URL"],
        environ_base={"REMOTE_ADDR": None},
        headers={"User-Agent": OPERATOR},
    )
    with context:
        ended = service.reset(user)
    click.echo(f"reset the second factors of {user.username}; ended {ended} session(s)")


@mfa_cli.command("rotate-key")
@with_appcontext
def rotate_key_command() -> None:
    """Re-encrypt every authenticator secret under the first of MFA_ENCRYPTION_KEYS (run it
    a second time: it re-encrypts again, harmlessly). Then the old key may be dropped."""
    click.echo(f"re-encrypted {service.rotate_keys()} authenticator secret(s)")
