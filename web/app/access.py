"""The database roles: a superuser that only bootstraps, an owner that migrates, a web role.

    superuser (POSTGRES_SUPERUSER)  made by the postgres image; used by `flask access
                                    bootstrap` only, to create and update the roles below
    owner (the app's POSTGRES_USER) NOSUPERUSER; owns the database, the schema's tables and
                                    sequences; runs the migrations, `flask access grant` and
                                    the auth_events retention (`flask auth-events prune`)
    web (POSTGRES_APP_USER)         reads and writes the tables, appends to auth_events (no
                                    UPDATE or DELETE there: the audit trail is the owner's),
                                    no DDL; Alembic's table is read-only to it
    monitor (POSTGRES_MONITOR_USER) pg_monitor's statistics, no table data

The migrate service runs `flask access bootstrap && flask db upgrade && flask access grant`
on every start, so an existing installation (whose objects the superuser owned) is moved to
this layout in place. Passwords are sent as SCRAM-SHA-256 verifiers computed here, by libpq
(PQencryptPasswordConn): no statement holds a password, so none can leak into a log.
"""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext
from psycopg import sql
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from .extensions import db

READ_ONLY_TABLES = ("alembic_version",)
# The web tier inserts and reads these rows; changing or removing them is the owner's.
APPEND_ONLY_TABLES = ("auth_events",)
ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
# Relations the superuser may still own from before the owner role existed (or a restore
# with --no-owner): tables, partitioned tables, views, materialized views, foreign tables.
OWNED_RELATIONS = """
    SELECT c.oid::regclass::text FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relowner <> %(owner)s::regrole
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""
# Sequences that no table column owns (those follow their table's owner).
OWNED_SEQUENCES = """
    SELECT c.oid::regclass::text FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relowner <> %(owner)s::regrole
      AND c.relkind = 'S'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
"""


def scram_verifier(connection: Connection, role: str, password: str) -> str:
    """Return the SCRAM-SHA-256 verifier of `password` for `role`, computed client-side."""
    raw = connection.connection.driver_connection
    assert raw is not None
    verifier: bytes = raw.pgconn.encrypt_password(
        password.encode(), role.encode(), b"scram-sha-256"
    )
    return verifier.decode()


def login_role(
    connection: Connection, role: str, password: str, extra: str = ""
) -> list[sql.Composable]:
    """Return the statements that create or update a login role, its password as a verifier."""
    exists = connection.exec_driver_sql(
        "SELECT 1 FROM pg_roles WHERE rolname = %(role)s", {"role": role}
    ).first()
    name = sql.Identifier(role)
    statements: list[sql.Composable] = []
    if not exists:
        statements.append(sql.SQL("CREATE ROLE {}").format(name))
    statements.append(
        sql.SQL("ALTER ROLE {} WITH {} {} PASSWORD {}").format(
            name,
            sql.SQL(ROLE_ATTRIBUTES),
            sql.SQL(extra),
            sql.Literal(scram_verifier(connection, role, password)),
        )
    )
    return statements


def role_statements(
    connection: Connection,
    owner: tuple[str, str],
    web: tuple[str, str],
    monitor: tuple[str, str] | None = None,
) -> list[sql.Composable]:
    """Return what the superuser runs first: create or update the login roles.

    Each pair is (role, password); the passwords go out as verifiers only. Idempotent.
    """
    statements = [
        *login_role(connection, *owner, extra="NOINHERIT"),
        *login_role(connection, *web, extra="NOINHERIT"),
    ]
    if monitor:
        # INHERIT: pg_monitor's rights apply without SET ROLE. A few connections are plenty.
        statements += login_role(connection, *monitor, extra="INHERIT CONNECTION LIMIT 3")
        statements.append(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(monitor[0])))
    return statements


def ownership_statements(connection: Connection, owner: str, web: str) -> list[sql.Composable]:
    """Return what the superuser runs next: the database and its objects to the owner."""
    database = sql.Identifier(connection.exec_driver_sql("SELECT current_database()").scalar_one())
    owner_name = sql.Identifier(owner)
    statements: list[sql.Composable] = [
        # The owner owns the database, so the schema `public` (pg_database_owner's) lets
        # it create tables; nobody else may, and nobody gets temporary tables by default.
        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, owner_name),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(owner_name),
        sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(database),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, sql.Identifier(web)),
    ]
    for query, kind in ((OWNED_RELATIONS, "TABLE"), (OWNED_SEQUENCES, "SEQUENCE")):
        for (relation,) in connection.exec_driver_sql(query, {"owner": owner}):
            # regclass text is already quoted where needed: an identifier, not a literal.
            statements.append(
                sql.SQL("ALTER {} {} OWNER TO {}").format(
                    sql.SQL(kind), sql.SQL(relation), owner_name
                )
            )
    return statements


def grant_statements(connection: Connection, role: str) -> list[sql.Composable]:
    """Return what the owner runs after a migration: the web role's rights on its tables."""
    name = sql.Identifier(role)
    statements: list[sql.Composable] = [
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
    for tables, rights in ((READ_ONLY_TABLES, "INSERT, UPDATE, DELETE"),
                           (APPEND_ONLY_TABLES, "UPDATE, DELETE")):  # fmt: skip
        for table in tables:
            if connection.exec_driver_sql("SELECT to_regclass(%(t)s)", {"t": table}).scalar():
                statements.append(
                    sql.SQL("REVOKE {}, TRUNCATE ON {} FROM {}").format(
                        sql.SQL(rights), sql.Identifier(table), name
                    )
                )
    return statements


def execute(connection: Connection, statements: list[sql.Composable]) -> None:
    """Run psycopg-composed statements on the connection's driver connection."""
    raw = connection.connection.driver_connection
    assert raw is not None
    for statement in statements:
        raw.execute(statement)


def grant(connection: Connection, role: str) -> None:
    """Give `role` exactly the rights the web tier needs on the owner's tables (idempotent)."""
    execute(connection, grant_statements(connection, role))


def read_secret(path: Path) -> str:
    """Return the password in `path`, refusing an empty one."""
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise click.ClickException(f"{path} is empty")
    return value


@click.group("access")
def access_cli() -> None:
    """Manage the database roles."""


secret_file = click.Path(exists=True, dir_okay=False, path_type=Path)


@access_cli.command("bootstrap")
@click.option("--superuser", envvar="POSTGRES_SUPERUSER", required=True, help="A superuser.")
@click.option(
    "--superuser-password-file", envvar="POSTGRES_SUPERUSER_PASSWORD_FILE", type=secret_file,
    required=True, help="File holding the superuser's password.",
)  # fmt: skip
@click.option("--role", envvar="POSTGRES_APP_USER", required=True, help="The web tier's role.")
@click.option(
    "--password-file", envvar="POSTGRES_APP_PASSWORD_FILE", type=secret_file, required=True,
    help="File holding the web role's password.",
)  # fmt: skip
@click.option(
    "--monitor-role", envvar="POSTGRES_MONITOR_USER", default="",
    help="The metrics exporter's role (pg_monitor); with --monitor-password-file.",
)  # fmt: skip
@click.option(
    "--monitor-password-file", envvar="POSTGRES_MONITOR_PASSWORD_FILE", type=secret_file,
    default=None, help="File holding the exporter role's password.",
)  # fmt: skip
@with_appcontext
def bootstrap_command(
    superuser: str,
    superuser_password_file: Path,
    role: str,
    password_file: Path,
    monitor_role: str,
    monitor_password_file: Path | None,
) -> None:
    """As the superuser: create or update the owner (the app's login), web and monitor roles."""
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    if not url.username or not url.password:
        raise click.ClickException("the app's database URL names no owner role and password")
    if url.username == superuser:
        raise click.ClickException("the owner role must not be the superuser")
    monitor = None
    if monitor_role and monitor_password_file:
        monitor = (monitor_role, read_secret(monitor_password_file))
    engine = sa.create_engine(
        url.set(username=superuser, password=read_secret(superuser_password_file)),
        poolclass=sa.pool.NullPool,
    )
    try:
        with engine.begin() as connection:
            owner, web = (url.username, url.password), (role, read_secret(password_file))
            execute(connection, role_statements(connection, owner, web, monitor))
            execute(connection, ownership_statements(connection, url.username, role))
    finally:
        engine.dispose()
    click.echo(f"access: role {url.username} owns the database and migrates it (not superuser)")
    if monitor:
        click.echo(f"access: role {monitor[0]} may read server statistics (pg_monitor), no data")


@access_cli.command("grant")
@click.option("--role", envvar="POSTGRES_APP_USER", required=True, help="The web tier's role.")
@with_appcontext
def grant_command(role: str) -> None:
    """As the owner, after `flask db upgrade`: give the web role its rights on the tables."""
    with db.engine.begin() as connection:
        grant(connection, role)
    click.echo(f"access: role {role} may read and write the tables, only append to auth_events")
