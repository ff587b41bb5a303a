"""Ethernet switches: the switches table, port bindings (desired/applied/observed), events by switch

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "switches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("driver", sa.String(32), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(255), nullable=True),
        sa.Column("password_enc", sa.Text(), nullable=True),
        sa.Column("allowed_vlans", sa.Text(), nullable=False),
        sa.Column("allowed_ports", sa.Text(), nullable=True),
        sa.Column("provisioning_vlan", sa.Integer(), nullable=True),
        sa.Column("quarantine_vlan", sa.Integer(), nullable=True),
        sa.Column("repair_drift", sa.Boolean(), nullable=False),
        sa.Column("known_vlans", JSON, nullable=False),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_drift_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_switches")),
        sa.UniqueConstraint("name", name=op.f("uq_switches_name")),
    )
    op.create_table(
        "port_bindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("switch_id", sa.Integer(), nullable=False),
        sa.Column("port", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("node_id", sa.String(36), nullable=True),
        sa.Column("network", sa.String(32), nullable=True),
        sa.Column("desired", JSON, nullable=False),
        sa.Column("desired_rev", sa.Integer(), nullable=False),
        sa.Column("applied", JSON, nullable=True),
        sa.Column("applied_rev", sa.Integer(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("observed", JSON, nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("quarantine_owed", sa.Boolean(), nullable=False),
        sa.Column("releasing", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["switch_id"],
            ["switches.id"],
            name=op.f("fk_port_bindings_switch_id_switches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
            name=op.f("fk_port_bindings_node_id_nodes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_port_bindings")),
        sa.UniqueConstraint("switch_id", "port", name="uq_port_bindings_switch_port"),
    )
    op.create_index("ix_port_bindings_node_id", "port_bindings", ["node_id"])
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("switch_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_events_switch_id_switches"),
            "switches",
            ["switch_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("ix_events_switch_id"), ["switch_id"])


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_index(op.f("ix_events_switch_id"))
        batch.drop_constraint(op.f("fk_events_switch_id_switches"), type_="foreignkey")
        batch.drop_column("switch_id")
    op.drop_index("ix_port_bindings_node_id", table_name="port_bindings")
    op.drop_table("port_bindings")
    op.drop_table("switches")
