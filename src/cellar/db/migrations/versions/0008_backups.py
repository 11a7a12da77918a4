"""backups: Trove's backup rows, each a pgBackRest backup set of an instance's stanza

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("stanza", sa.String(length=128), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("datastore_version_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("repository_bytes", sa.BigInteger(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.Column("fail_reason", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["datastore_version_id"], ["datastore_versions.id"]),
        sa.ForeignKeyConstraint(["parent_id"], ["backups.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("backups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backups_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_backups_instance_id"), ["instance_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_backups_deleted"), ["deleted"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("backups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backups_deleted"))
        batch_op.drop_index(batch_op.f("ix_backups_instance_id"))
        batch_op.drop_index(batch_op.f("ix_backups_tenant_id"))
    op.drop_table("backups")
