"""Allocations: nodes reserved for a tenant; nodes.allocation_id

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "allocations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("image", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("constraints", JSON, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("releasing_nodes", JSON, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_allocations_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("allocation_id", sa.String(36), nullable=True))
        batch.create_foreign_key(
            op.f("fk_nodes_allocation_id_allocations"),
            "allocations",
            ["allocation_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_constraint(op.f("fk_nodes_allocation_id_allocations"), type_="foreignkey")
        batch.drop_column("allocation_id")
    op.drop_table("allocations")
