"""tokens.expires: an API token is valid until then (the tokens issued before get a day)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("expires", sa.DateTime(), nullable=True))
    tokens = sa.table("tokens", sa.column("expires", sa.DateTime()))
    a_day = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)
    op.execute(tokens.update().values(expires=a_day))
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("expires", existing_type=sa.DateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("expires")
