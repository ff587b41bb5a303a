"""Tenants: their Ethernet VLAN and a state (deleting while their networks are released)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("vlan", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("state", sa.String(32), nullable=False, server_default="active")
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("state")
        batch.drop_column("vlan")
