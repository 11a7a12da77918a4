"""backup_schedules: automated backups of an instance, and how many (or how old) to keep

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backup_schedules",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("incremental", sa.Boolean(), nullable=False),
        sa.Column("keep_full", sa.Integer(), nullable=True),
        sa.Column("keep_days", sa.Integer(), nullable=True),
        sa.Column("next_at", sa.DateTime(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["instances.id"]),
        sa.PrimaryKeyConstraint("instance_id"),
    )
    with op.batch_alter_table("backup_schedules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backup_schedules_next_at"), ["next_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("backup_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backup_schedules_next_at"))
    op.drop_table("backup_schedules")
