"""cache invalidations

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import authbridge.store.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cache_invalidations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("created_at", authbridge.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("cache_invalidations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cache_invalidations_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cache_invalidations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cache_invalidations_created_at"))
    op.drop_table("cache_invalidations")
