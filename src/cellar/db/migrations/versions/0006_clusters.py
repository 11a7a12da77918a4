"""clusters, and the replication columns of instances

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clusters",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("datastore_version_id", sa.String(length=36), nullable=False),
        sa.Column("task_status", sa.String(length=64), nullable=False),
        sa.Column("provisioning_engine", sa.String(length=36), nullable=False),
        sa.Column("stack_id", sa.String(length=36), nullable=True),
        sa.Column("fault_message", sa.Text(), nullable=True),
        sa.Column("fault_details", sa.Text(), nullable=True),
        sa.Column("fault_at", sa.DateTime(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["datastore_version_id"], ["datastore_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clusters_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_clusters_deleted"), ["deleted"], unique=False)
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replica_of_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_instances_cluster_id"), ["cluster_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_instances_replica_of_id"), ["replica_of_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_replica_of_id"))
        batch_op.drop_index(batch_op.f("ix_instances_cluster_id"))
        batch_op.drop_column("replica_of_id")
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clusters_deleted"))
        batch_op.drop_index(batch_op.f("ix_clusters_tenant_id"))
    op.drop_table("clusters")
