"""OAuth clients registered by AuthBridge itself (RFC 7591 dynamic client registration)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import authbridge.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_registrations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("integration_key", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=True),
        sa.Column("expires_at", authbridge.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", authbridge.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("client_registrations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_registrations_integration_key"), ["integration_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("client_registrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_registrations_integration_key"))
    op.drop_table("client_registrations")
