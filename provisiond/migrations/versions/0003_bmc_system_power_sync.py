"""Redfish system id on nodes; consecutive power-sync failures

A Redfish service can front several systems: bmc_system_id picks one. power_failures counts the
power reconciliation loop's consecutive failures for a node (maintenance after N).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bmc_system_id", sa.String(255), nullable=True))
        batch_op.add_column(
            sa.Column("power_failures", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("power_failures")
        batch_op.drop_column("bmc_system_id")
