"""Credential version: a counter on users (bumped by every password, factor or address
change) and the version each remembered device was made with. Expand only: NOT NULL with a
server default of 0, which PostgreSQL adds without rewriting the table, and which rows
inserted by replicas of the previous release get too.

Revision ID: 0007_credential_version
Revises: 0006_second_factor
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_credential_version"
down_revision = "0006_second_factor"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "users",
        sa.Column("credential_version", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "remembered_devices",
        sa.Column("credential_version", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade():
    op.drop_column("remembered_devices", "credential_version")
    op.drop_column("users", "credential_version")
