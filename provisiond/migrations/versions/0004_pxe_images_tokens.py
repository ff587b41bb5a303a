"""Network boot: NIC reservations, images, one-time boot tokens, discovered MACs, firmware reports

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kernel", sa.Text(), nullable=False),
        sa.Column("initrd", sa.Text(), nullable=True),
        sa.Column("cmdline", sa.Text(), nullable=False),
        sa.Column("kernel_sha256", sa.String(64), nullable=True),
        sa.Column("initrd_sha256", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("name", name=op.f("uq_images_name")),
    )
    op.create_table(
        "boot_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("mac", sa.String(17), nullable=False),
        sa.Column("node_id", sa.String(36), nullable=True),
        sa.Column("operation_id", sa.String(36), nullable=True),
        sa.Column("client_address", sa.String(45), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_boot_tokens_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_boot_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_boot_tokens_token_hash")),
    )
    op.create_index(op.f("ix_boot_tokens_mac"), "boot_tokens", ["mac"])
    op.create_index(op.f("ix_boot_tokens_node_id"), "boot_tokens", ["node_id"])
    op.create_table(
        "discovered",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mac", sa.String(17), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("boots", sa.Integer(), nullable=False),
        sa.Column("client_address", sa.String(45), nullable=True),
        sa.Column(
            "facts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovered")),
        sa.UniqueConstraint("mac", name=op.f("uq_discovered_mac")),
    )
    op.create_table(
        "firmware_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(36), nullable=False),
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
            name=op.f("fk_firmware_reports_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_firmware_reports")),
    )
    op.create_index(
        "ix_firmware_reports_node_component", "firmware_reports", ["node_id", "component"]
    )
    with op.batch_alter_table("nics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ip", sa.String(45), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_nics_ip"), ["ip"])
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("boot_loader", sa.String(64), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_nodes_image_id_images"), "images", ["image_id"], ["id"],
            ondelete="RESTRICT",
        )  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_nodes_image_id_images"), type_="foreignkey")
        batch_op.drop_column("image_id")
        batch_op.drop_column("boot_loader")
    with op.batch_alter_table("nics", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_nics_ip"), type_="unique")
        batch_op.drop_column("ip")
    op.drop_index("ix_firmware_reports_node_component", table_name="firmware_reports")
    op.drop_table("firmware_reports")
    op.drop_table("discovered")
    op.drop_index(op.f("ix_boot_tokens_node_id"), table_name="boot_tokens")
    op.drop_index(op.f("ix_boot_tokens_mac"), table_name="boot_tokens")
    op.drop_table("boot_tokens")
    op.drop_table("images")
