"""The database roles (app/access.py): a bootstrap superuser, an owner, a web role, a monitor.

The test database's tables were made by the superuser, as an installation from before the
owner role was: bootstrap must hand them over.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
import sqlalchemy as sa
from app.access import grant, role_statements
from app.extensions import db
from sqlalchemy.engine import make_url

OWNER, ROLE, MONITOR = "app_owner_test", "app_web_test", "monitor_test"
PASSWORDS = {
    OWNER: "owner's password",
    ROLE: "a 'quoted' password with % and \\ in it",
    MONITOR: "monitor password",
}


@pytest.fixture
def roles(make_app, base_config, tmp_path):
    """Run `flask access bootstrap` (superuser), `flask db upgrade` and `flask access grant`
    (owner), as migrate does; return {role: engine logged in as it}."""
    files = {}
    for name, value in {**PASSWORDS, "superuser": "trust auth here"}.items():
        files[name] = tmp_path / name
        files[name].write_text(value + "\n")
    url = make_url(base_config["SQLALCHEMY_DATABASE_URI"])
    owner_app = make_app(SQLALCHEMY_DATABASE_URI=url.set(username=OWNER, password=PASSWORDS[OWNER]))
    runner = owner_app.test_cli_runner()
    bootstrap = ["access", "bootstrap", "--superuser", url.username]
    bootstrap += ["--superuser-password-file", str(files["superuser"])]
    bootstrap += ["--role", ROLE, "--password-file", str(files[ROLE])]
    bootstrap += ["--monitor-role", MONITOR, "--monitor-password-file", str(files[MONITOR])]
    for args in (bootstrap, ["db", "upgrade"], ["access", "grant", "--role", ROLE]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    engines = {
        name: sa.create_engine(url.set(username=name, password=pw))
        for name, pw in PASSWORDS.items()
    }
    yield engines
    for engine in engines.values():
        engine.dispose()


def attributes(connection) -> tuple:
    return tuple(
        connection.exec_driver_sql(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles"
            " WHERE rolname = current_user"
        ).one()
    )


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder (id int)",
        "CREATE TEMPORARY TABLE intruder (id int)",
        "DROP TABLE users",
        "ALTER TABLE users ADD COLUMN intruder int",
        "TRUNCATE users",
        "UPDATE alembic_version SET version_num = 'x'",
        "UPDATE auth_events SET event = 'forged'",
        "DELETE FROM auth_events",
        "TRUNCATE auth_events",
        "CREATE ROLE intruder",
    ],
)
def test_the_web_role_cannot_change_the_schema_or_the_audit_trail(roles, statement):
    with roles[ROLE].connect() as connection, pytest.raises(sa.exc.ProgrammingError):
        connection.exec_driver_sql(statement)


def test_the_web_role_reads_writes_and_appends_to_the_audit_trail(roles, auth):
    auth.register()  # through the app, as the superuser here
    with roles[ROLE].begin() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM users").scalar_one() == 1
        connection.exec_driver_sql("UPDATE users SET remember_token = 'rotated'")
        connection.exec_driver_sql(
            "INSERT INTO people (owner_id, name, created_at) SELECT id, 'Ada', now() FROM users"
        )
        connection.exec_driver_sql(
            "INSERT INTO auth_events (user_id, event, created_at) SELECT id, 'login', now()"
            " FROM users"
        )
        assert connection.exec_driver_sql("SELECT count(*) FROM auth_events").scalar_one() >= 1
        assert attributes(connection) == (False, False, False, False)


def test_the_owner_owns_everything_migrates_and_prunes_but_is_no_superuser(roles):
    with roles[OWNER].begin() as connection:
        assert attributes(connection) == (False, False, False, False)
        owners = connection.exec_driver_sql(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).scalars()
        assert set(owners) == {OWNER}  # the superuser's tables were handed over
        database_owner = connection.exec_driver_sql(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).scalar_one()
        assert database_owner == OWNER
        connection.exec_driver_sql("DELETE FROM auth_events")  # the retention job's right
        connection.exec_driver_sql("CREATE TABLE owner_made (id int)")  # a migration's
        connection.exec_driver_sql("DROP TABLE owner_made")
        with pytest.raises(sa.exc.ProgrammingError):
            connection.exec_driver_sql("CREATE ROLE intruder")


def test_nobody_gets_temporary_tables_by_default(roles):
    with roles[MONITOR].connect() as connection:
        assert not connection.exec_driver_sql(
            "SELECT has_database_privilege('public', current_database(), 'TEMPORARY')"
        ).scalar_one()


def scram_matches(verifier: str, password: str) -> bool:
    """Check a SCRAM-SHA-256 verifier (RFC 5802/7677) against a password."""
    mechanism, rest = verifier.split("$", 1)
    params, keys = rest.split("$")
    iterations, salt = params.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return mechanism == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(
        stored_key
    )


def test_passwords_travel_as_scram_verifiers_never_in_a_statement(roles, app):
    with app.app_context(), db.engine.begin() as connection:
        stored = dict(
            connection.exec_driver_sql(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%(names)s)",
                {"names": list(PASSWORDS)},
            ).all()
        )
        assert all(scram_matches(stored[name], pw) for name, pw in PASSWORDS.items())
        raw = connection.connection.driver_connection
        statements = role_statements(
            connection,
            (OWNER, PASSWORDS[OWNER]),
            (ROLE, PASSWORDS[ROLE]),
            (MONITOR, PASSWORDS[MONITOR]),
        )
        text = "\n".join(s.as_string(raw) for s in statements)
    assert "SCRAM-SHA-256$" in text
    assert not any(pw in text for pw in PASSWORDS.values())


def test_bootstrap_and_grant_are_idempotent(roles, app):
    with app.app_context(), db.engine.begin() as connection:
        grant(connection, ROLE)
        grant(connection, ROLE)


def test_the_monitor_role_reads_statistics_and_no_data(roles):
    with roles[MONITOR].connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM pg_stat_activity").scalar()
        assert connection.exec_driver_sql("SHOW max_connections").scalar()
        assert attributes(connection) == (False, False, False, False)
        limit = connection.exec_driver_sql(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user"
        ).scalar_one()
        assert limit == 3
        with pytest.raises(sa.exc.ProgrammingError):
            connection.exec_driver_sql("SELECT count(*) FROM users")


def test_bootstrap_refuses_to_make_the_superuser_the_owner(app, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("x")
    superuser = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).username
    app.config["SQLALCHEMY_DATABASE_URI"] = (
        make_url(app.config["SQLALCHEMY_DATABASE_URI"])
        .set(password="x")
        .render_as_string(hide_password=False)
    )
    result = app.test_cli_runner().invoke(
        args=["access", "bootstrap", "--superuser", superuser, "--superuser-password-file",
              str(secret), "--role", ROLE, "--password-file", str(secret)]
    )  # fmt: skip
    assert result.exit_code != 0
    assert "must not be the superuser" in result.output
