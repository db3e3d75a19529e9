"""Account security: revocable remember-me tokens and the auth event audit trail.

Revision ID: 0003_account_security
Revises: 0002_add_person_table
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_account_security"
down_revision = "0002_add_person_table"
branch_labels = None
depends_on = None


def upgrade():
    # Existing rows get a random token first, then the column becomes NOT NULL.
    op.add_column("users", sa.Column("remember_token", sa.String(length=64), nullable=True))
    op.execute("UPDATE users SET remember_token = md5(random()::text || clock_timestamp()::text)")
    op.alter_column("users", "remember_token", nullable=False)
    op.create_table(
        "auth_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("device", sa.String(length=120), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auth_events_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_events")),
    )
    op.create_index(op.f("ix_auth_events_user_id"), "auth_events", ["user_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_auth_events_user_id"), table_name="auth_events")
    op.drop_table("auth_events")
    op.drop_column("users", "remember_token")
