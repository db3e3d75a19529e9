"""The committed Alembic history builds the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from app.extensions import db
from flask_migrate import downgrade, upgrade


def test_models_and_migration_head_agree(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []


def test_history_is_the_committed_sequence(app):
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
        revisions = [r.revision for r in ScriptDirectory.from_config(config).walk_revisions()]
    assert list(reversed(revisions)) == [
        "0001_create_users",
        "0002_add_person_table",
        "0003_account_security",
        "0004_remembered_devices",
        "0005_user_email",
        "0006_second_factor",
        "0007_credential_version",
    ]


def test_downgrade_to_base_and_upgrade_again(app):
    with app.app_context():
        downgrade(revision="base")
        assert db.inspect(db.engine).get_table_names() == ["alembic_version"]
        upgrade()
        assert {"users", "people", "auth_events", "remembered_devices", "passkeys"} <= set(
            db.inspect(db.engine).get_table_names()
        )
