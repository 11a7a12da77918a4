"""default flavors and the PostgreSQL datastore

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FLAVORS = [
    ("1", "m1.tiny", 512, 1),
    ("2", "m1.small", 1024, 1),
    ("3", "m1.medium", 2048, 2),
    ("4", "m1.large", 4096, 2),
]
POSTGRESQL_ID = "8f7c3b1e-0c5e-4c55-9d8e-5f0a3a3d1001"
POSTGRESQL_15_ID = "8f7c3b1e-0c5e-4c55-9d8e-5f0a3a3d1015"


def upgrade() -> None:
    flavors = sa.table(
        "flavors", sa.column("id"), sa.column("name"), sa.column("ram_mb"), sa.column("vcpus")
    )
    op.bulk_insert(flavors, [dict(id=i, name=n, ram_mb=r, vcpus=c) for i, n, r, c in FLAVORS])
    datastores = sa.table(
        "datastores", sa.column("id"), sa.column("name"), sa.column("default_version_id")
    )
    op.bulk_insert(
        datastores,
        [dict(id=POSTGRESQL_ID, name="postgresql", default_version_id=POSTGRESQL_15_ID)],
    )
    versions = sa.table(
        "datastore_versions",
        sa.column("id"),
        sa.column("datastore_id"),
        sa.column("name"),
        sa.column("manager"),
        sa.column("image"),
        sa.column("ports"),
        sa.column("active", sa.Boolean),
    )
    op.bulk_insert(
        versions,
        [
            dict(
                id=POSTGRESQL_15_ID,
                datastore_id=POSTGRESQL_ID,
                name="15",
                manager="postgresql",
                image="postgresql-15",
                ports="5432",
                active=True,
            )
        ],
    )


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM datastore_versions WHERE id = :i").bindparams(i=POSTGRESQL_15_ID)
    )
    op.execute(sa.text("DELETE FROM datastores WHERE id = :i").bindparams(i=POSTGRESQL_ID))
    op.execute(sa.text("DELETE FROM flavors WHERE id IN ('1', '2', '3', '4')"))
