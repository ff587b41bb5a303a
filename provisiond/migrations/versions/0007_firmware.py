"""Firmware: report channels, kinds, identifiers and staged images; imported catalogs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("firmware_reports") as batch:
        batch.add_column(sa.Column("kind", sa.String(32), nullable=True))
        batch.add_column(sa.Column("identifiers", JSON, nullable=True))
        batch.add_column(
            sa.Column("channel", sa.String(32), nullable=False, server_default="inband")
        )
        batch.add_column(
            sa.Column("staged", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "firmware_catalogs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("components", sa.Integer(), nullable=False),
        sa.Column("releases", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("imported_by", sa.String(64), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_firmware_catalogs")),
    )


def downgrade() -> None:
    op.drop_table("firmware_catalogs")
    with op.batch_alter_table("firmware_reports") as batch:
        batch.drop_column("staged")
        batch.drop_column("channel")
        batch.drop_column("identifiers")
        batch.drop_column("kind")
