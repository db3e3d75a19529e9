"""`flask access grant`: the web tier's own PostgreSQL role, with data rights and no more.

The migrate service owns the schema (it connects as the database owner, POSTGRES_USER) and
runs this after every `flask db upgrade`, so an existing installation is brought to the same
state in place. The role it creates or updates may log in and read and write the
application's tables (and use their sequences), but it is not superuser, owns nothing and
cannot create, alter or drop anything; Alembic's bookkeeping table is read-only to it.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext
from psycopg import sql
from sqlalchemy import Connection

from .extensions import db

READ_ONLY_TABLES = ("alembic_version",)


def grant(connection: Connection, role: str, password: str) -> None:
    """Create or update `role` with exactly the rights the app needs (idempotent)."""
    raw = connection.connection.driver_connection  # psycopg composes names and literals
    assert raw is not None
    name = sql.Identifier(role)
    database = sql.Identifier(connection.exec_driver_sql("SELECT current_database()").scalar_one())
    exists = connection.exec_driver_sql(
        "SELECT 1 FROM pg_roles WHERE rolname = %(role)s", {"role": role}
    ).first()
    statements: list[sql.Composable] = [] if exists else [sql.SQL("CREATE ROLE {}").format(name)]
    statements += [
        sql.SQL(
            "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD {}"
        ).format(name, sql.Literal(password)),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, name),
        sql.SQL("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM {}").format(database, name),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
            name
        ),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(name),
        # Tables and sequences later migrations create (as this owner) get the same rights.
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(name),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {}"
        ).format(name),
    ]
    statements += [
        sql.SQL("REVOKE INSERT, UPDATE, DELETE ON {} FROM {}").format(sql.Identifier(table), name)
        for table in READ_ONLY_TABLES
    ]
    for statement in statements:
        raw.execute(statement)


def grant_monitor(connection: Connection, role: str, password: str) -> None:
    """Create or update the exporter's `role`: pg_monitor's statistics, no data (idempotent)."""
    raw = connection.connection.driver_connection
    assert raw is not None
    name = sql.Identifier(role)
    exists = connection.exec_driver_sql(
        "SELECT 1 FROM pg_roles WHERE rolname = %(role)s", {"role": role}
    ).first()
    if not exists:
        raw.execute(sql.SQL("CREATE ROLE {}").format(name))
    # INHERIT: pg_monitor's rights apply without SET ROLE. A few connections are plenty.
    raw.execute(
        sql.SQL(
            "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT "
            "CONNECTION LIMIT 3 PASSWORD {}"
        ).format(name, sql.Literal(password))
    )
    raw.execute(sql.SQL("GRANT pg_monitor TO {}").format(name))


@click.group("access")
def access_cli() -> None:
    """Manage the web tier's database role."""


@access_cli.command("grant")
@click.option("--role", envvar="POSTGRES_APP_USER", required=True, help="The web tier's role.")
@click.option(
    "--password-file",
    envvar="POSTGRES_APP_PASSWORD_FILE",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the role's password.",
)
@click.option(
    "--monitor-role",
    envvar="POSTGRES_MONITOR_USER",
    default="",
    help="The metrics exporter's role (pg_monitor); with --monitor-password-file.",
)
@click.option(
    "--monitor-password-file",
    envvar="POSTGRES_MONITOR_PASSWORD_FILE",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the exporter role's password.",
)
@with_appcontext
def grant_command(
    role: str, password_file: Path, monitor_role: str, monitor_password_file: Path | None
) -> None:
    """Create or update the web role; run as the database owner after `flask db upgrade`."""
    password = password_file.read_text(encoding="utf-8").strip()
    if not password:
        raise click.ClickException(f"{password_file} is empty")
    monitor_password = ""
    if monitor_role and monitor_password_file:
        monitor_password = monitor_password_file.read_text(encoding="utf-8").strip()
        if not monitor_password:
            raise click.ClickException(f"{monitor_password_file} is empty")
    with db.engine.begin() as connection:
        grant(connection, role, password)
        if monitor_password:
            grant_monitor(connection, monitor_role, monitor_password)
    click.echo(f"access: role {role} may read and write the application's tables, nothing more")
    if monitor_password:
        click.echo(f"access: role {monitor_role} may read server statistics (pg_monitor), no data")
