"""InfiniBand fabrics and their tenant partitions (P_Keys)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "fabrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("driver", sa.String(32), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("pkey_min", sa.Integer(), nullable=False),
        sa.Column("pkey_max", sa.Integer(), nullable=False),
        sa.Column("port_key_limit", sa.Integer(), nullable=False),
        sa.Column("repair_drift", sa.Boolean(), nullable=False),
        sa.Column("desired_rev", sa.Integer(), nullable=False),
        sa.Column("applied_rev", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("applied", JSON, nullable=False),
        sa.Column("observed", JSON, nullable=True),
        sa.Column("problems", JSON, nullable=False),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_drift_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fabrics")),
        sa.UniqueConstraint("name", name=op.f("uq_fabrics_name")),
    )
    op.create_table(
        "fabric_partitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fabric_id", sa.Integer(), nullable=False),
        sa.Column("pkey", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("ipoib", sa.Boolean(), nullable=False),
        sa.Column("mtu", sa.Integer(), nullable=True),
        sa.Column("rate", sa.Integer(), nullable=True),
        sa.Column("sl", sa.Integer(), nullable=True),
        sa.Column("index0", sa.Boolean(), nullable=False),
        sa.Column("members", JSON, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("rev", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["fabric_id"],
            ["fabrics.id"],
            name=op.f("fk_fabric_partitions_fabric_id_fabrics"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_fabric_partitions_tenant_id_tenants"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fabric_partitions")),
        sa.UniqueConstraint("fabric_id", "pkey", name="uq_fabric_partitions_pkey"),
        sa.UniqueConstraint("fabric_id", "name", name="uq_fabric_partitions_name"),
        sa.UniqueConstraint("fabric_id", "tenant_id", name="uq_fabric_partitions_tenant"),
    )


def downgrade() -> None:
    op.drop_table("fabric_partitions")
    op.drop_table("fabrics")
