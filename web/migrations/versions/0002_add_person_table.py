"""Add Person table: each user's address book.

Revision ID: 0002_add_person_table
Revises: 0001_create_users
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_add_person_table"
down_revision = "0001_create_users"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_people_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
    )
    op.create_index(op.f("ix_people_owner_id"), "people", ["owner_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_people_owner_id"), table_name="people")
    op.drop_table("people")
