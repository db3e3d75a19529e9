"""Email addresses on accounts (expand: nullable, so existing accounts keep working and are
asked to add one; the registration form requires it for every new account).

Revision ID: 0005_user_email
Revises: 0004_remembered_devices
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_user_email"
down_revision = "0004_remembered_devices"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("email", sa.String(length=254), nullable=True))
    op.add_column("users", sa.Column("email_key", sa.String(length=254), nullable=True))
    op.add_column(
        "users", sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_unique_constraint(op.f("uq_users_email_key"), "users", ["email_key"])


def downgrade():
    op.drop_constraint(op.f("uq_users_email_key"), "users", type_="unique")
    op.drop_column("users", "email_verified_at")
    op.drop_column("users", "email_key")
    op.drop_column("users", "email")
