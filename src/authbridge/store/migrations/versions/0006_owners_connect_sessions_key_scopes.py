"""connection owners and tags, connect sessions, API key scopes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import authbridge.store.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("end_user_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("end_user", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("organization_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("organization", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=True))
        batch.create_index("ix_connections_end_user_id", ["end_user_id"])
        batch.create_index("ix_connections_organization_id", ["organization_id"])
    op.create_table(
        "connection_tags",
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("connection_id", "key"),
    )
    op.create_index("ix_connection_tags_key_value", "connection_tags", ["key", "value"])
    op.create_table(
        "connect_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("end_user", sa.JSON(), nullable=False),
        sa.Column("organization", sa.JSON(), nullable=True),
        sa.Column("allowed_integrations", sa.JSON(), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("return_to", sa.Text(), nullable=True),
        sa.Column("reconnect_id", sa.String(length=32), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", authbridge.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", authbridge.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", authbridge.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", authbridge.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("connection_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("oauth_flows") as batch:
        batch.add_column(sa.Column("connect_session_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("browser_binding", sa.String(length=64), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.JSON(), server_default='["admin"]', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
    with op.batch_alter_table("oauth_flows") as batch:
        batch.drop_column("browser_binding")
        batch.drop_column("connect_session_id")
    op.drop_table("connect_sessions")
    op.drop_index("ix_connection_tags_key_value", table_name="connection_tags")
    op.drop_table("connection_tags")
    with op.batch_alter_table("connections") as batch:
        batch.drop_index("ix_connections_organization_id")
        batch.drop_index("ix_connections_end_user_id")
        batch.drop_column("tags")
        batch.drop_column("organization")
        batch.drop_column("organization_id")
        batch.drop_column("end_user")
        batch.drop_column("end_user_id")
