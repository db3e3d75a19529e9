"""The web tier's PostgreSQL role reads and writes the app's tables and can do nothing else."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from app.access import grant
from app.extensions import db
from sqlalchemy.engine import make_url

ROLE = "app_web_test"
PASSWORD = "a 'quoted' password with % and \\ in it"


@pytest.fixture
def web_engine(app, tmp_path):
    """Run `flask access grant` as the owner; return an engine logged in as the web role."""
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    result = app.test_cli_runner().invoke(
        args=["access", "grant", "--role", ROLE, "--password-file", secret]
    )
    assert result.exit_code == 0, result.output
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).set(username=ROLE, password=PASSWORD)
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder (id int)",
        "DROP TABLE users",
        "ALTER TABLE users ADD COLUMN intruder int",
        "TRUNCATE users",
        "UPDATE alembic_version SET version_num = 'x'",
        "CREATE ROLE intruder",
    ],
)
def test_the_web_role_cannot_change_the_schema(web_engine, statement):
    with web_engine.connect() as connection, pytest.raises(sa.exc.ProgrammingError):
        connection.exec_driver_sql(statement)


def test_the_web_role_reads_and_writes_the_tables(web_engine, auth):
    auth.register()  # through the app, as the owner here
    with web_engine.begin() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM users").scalar_one() == 1
        connection.exec_driver_sql("UPDATE users SET remember_token = 'rotated'")
        connection.exec_driver_sql(
            "INSERT INTO people (owner_id, name, created_at) SELECT id, 'Ada', now() FROM users"
        )
        attrs = connection.exec_driver_sql(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).one()
    assert tuple(attrs) == (False, False, False)


def test_grant_is_idempotent(app):
    with app.app_context(), db.engine.begin() as connection:
        grant(connection, ROLE, PASSWORD)
        grant(connection, ROLE, PASSWORD)


def test_the_monitor_role_reads_statistics_and_no_data(app, tmp_path):
    web_secret, monitor_secret = tmp_path / "web", tmp_path / "monitor"
    web_secret.write_text("web password")
    monitor_secret.write_text(PASSWORD)
    args = ["access", "grant", "--role", ROLE, "--password-file", str(web_secret)]
    monitor = ["--monitor-role", "monitor_test", "--monitor-password-file", str(monitor_secret)]
    for _ in range(2):  # idempotent: migrate runs it on every start
        result = app.test_cli_runner().invoke(args=[*args, *monitor])
        assert result.exit_code == 0, result.output
    assert "monitor_test may read server statistics" in result.output
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    engine = sa.create_engine(url.set(username="monitor_test", password=PASSWORD))
    try:
        with engine.connect() as connection:
            # What the exporter reads: every backend's state, the settings.
            assert connection.exec_driver_sql("SELECT count(*) FROM pg_stat_activity").scalar()
            assert connection.exec_driver_sql("SHOW max_connections").scalar()
            attrs = connection.exec_driver_sql(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolconnlimit FROM pg_roles"
                " WHERE rolname = current_user"
            ).one()
            assert tuple(attrs) == (False, False, False, 3)
            with pytest.raises(sa.exc.ProgrammingError):
                connection.exec_driver_sql("SELECT count(*) FROM users")
    finally:
        engine.dispose()
