"""Remember-me per device, stored hashed; the per-user token stops being used.

Expand/contract: `users.remember_token` becomes nullable here (the new code no longer writes
it, while replicas of the old code may still read it during a rolling deploy); a later
migration drops it. Every old remember-me cookie stops working: users log in once more.

Revision ID: 0004_remembered_devices
Revises: 0003_account_security
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_remembered_devices"
down_revision = "0003_account_security"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "remembered_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_remembered_devices_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remembered_devices")),
    )
    op.create_index(
        op.f("ix_remembered_devices_user_id"), "remembered_devices", ["user_id"], unique=False
    )
    op.alter_column("users", "remember_token", existing_type=sa.String(length=64), nullable=True)


def downgrade():
    op.execute("UPDATE users SET remember_token = md5(random()::text || clock_timestamp()::text)")
    op.alter_column("users", "remember_token", existing_type=sa.String(length=64), nullable=False)
    op.drop_index(op.f("ix_remembered_devices_user_id"), table_name="remembered_devices")
    op.drop_table("remembered_devices")
